#!/usr/bin/env python3
"""Compile a spec through the PAW Hub REST API, wait for it, try it, download it.

Standard library only, so it runs anywhere Python 3.11 does:

    python examples/client.py --base-url http://127.0.0.1:8000 --api-key paw_...
    PAW_API_KEY=paw_... python examples/client.py --spec-file my_spec.txt --out programs/

Without a key the compile is anonymous (public, and limited to 20 an hour).
Exit status: 0 when the bundle was downloaded and its sha256 checked.

With ``--local`` it then runs the program on this machine with each client
that is installed, the same few inputs the hub answered:

- ``pawhub`` (``pip install ./sdk``): the bundle just downloaded, with the hub's
  output constraint, so its answers are the hub's;
- the official PAW SDK (``pip install programasweights``), pointed at this hub
  with ``PAW_API_URL``: ``paw.function(program_id)``, which fetches the bundle
  and the base model itself and decodes freely (``remote=True`` runs it on the hub);
  with ``pawhub`` installed too, again with ``logits_processor=pawhub.guided(...)``,
  the program's output constraint, which gives the hub's answers.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

EXAMPLE_SPEC = """\
Classify a customer support message by urgency: urgent, normal or low.

Examples:
Input: The whole site is down and customers cannot pay!
Output: urgent

Input: How do I change the email on my account?
Output: normal

Input: Love the new colours, thanks.
Output: low

Input: Our checkout fails for every card since this morning.
Output: urgent
"""
TRY_INPUTS = ["Nobody can log in right now", "Can I get a copy of last month's invoice?"]


class ApiError(Exception):
    def __init__(self, status, body):
        self.status, self.body = status, body
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")


class Client:
    def __init__(self, base_url, api_key=None, max_retries=5):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.api_key = api_key
        self.max_retries = max_retries
        # Talk to the server directly, whatever proxy the environment names.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method, path, body=None, raw=False):
        """JSON in, JSON out (or bytes with raw=True). Waits out 429s as told."""
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for _ in range(self.max_retries):
            req = urllib.request.Request(self.base + path, data, headers, method=method)
            try:
                with self.opener.open(req, timeout=60) as response:
                    payload = response.read()
                    if raw:
                        return response.status, payload, dict(response.headers)
                    return response.status, json.loads(payload or b"null")
            except urllib.error.HTTPError as error:
                text = error.read()
                try:
                    answer = json.loads(text)
                except ValueError:
                    answer = text.decode(errors="replace")
                if error.code == 429:
                    wait = int(error.headers.get("Retry-After", "5"))
                    print(f"  rate limited; waiting {wait} s", file=sys.stderr)
                    time.sleep(min(wait, 60))
                    continue
                raise ApiError(error.code, answer) from None
        raise ApiError(429, {"message": "still rate limited after retries"})

    def compile(self, spec, **fields):
        return self.request("POST", "/compile/async", {"spec": spec, **fields})[1]

    def wait(self, job_id, timeout, poll_seconds=2.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            job = self.request("GET", f"/compile/{job_id}")[1]
            progress = (job["status"], job["stage"], job["percent"])
            if progress != last:
                print(f"  {job['status']:<9} {job['stage'] or '-':<15} {job['percent']:3d}%")
                last = progress
            if job["status"] not in ("queued", "compiling"):
                return job
            time.sleep(poll_seconds)
        raise TimeoutError(f"job {job_id} not finished after {timeout} s")

    def infer(self, program_id, text):
        """The program's output for `text`, or None where this hub cannot run it
        (no /infer, or no runtime worker answered: 503)."""
        try:
            return self.request("POST", "/infer", {"program_id": program_id, "input": text})[1]
        except ApiError as error:
            if error.status in (404, 405, 503):
                print(f"  could not run it here ({error})")
                return None
            raise

    def download(self, program_id, out_dir, file="bundle"):
        program = self.request("GET", f"/programs/{program_id}")[1]
        status, data, headers = self.request(
            "GET", f"/programs/{program_id}/download?file={file}", raw=True
        )
        if status != 200:
            raise ApiError(status, {"message": "the file is not ready"})
        expected = program[file]["sha256"]
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(f"downloaded {file} does not match its sha256 {expected}")
        suffix = ".paw" if file == "bundle" else ".gguf"
        path = Path(out_dir) / f"{program_id}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path, expected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("PAW_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("PAW_API_KEY"))
    parser.add_argument("--spec-file", type=Path, help="the spec (default: a built-in example)")
    parser.add_argument("--name", default="Support urgency (client.py)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where the bundle goes")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for it")
    parser.add_argument("--local", action="store_true", help="then run it with pawhub / the SDK")
    args = parser.parse_args(argv)

    client = Client(args.base_url, args.api_key)
    spec = args.spec_file.read_text() if args.spec_file else EXAMPLE_SPEC
    try:
        submitted = client.compile(spec, name=args.name)
        print(f"program {submitted['program_id']} on {submitted['compiler_snapshot']}")
        if submitted["cache_hit"]:
            print("  compiled before: nothing to wait for")
        elif submitted["status"] != "ready":
            job = client.wait(submitted["job_id"], args.timeout)
            if job["status"] != "ready":
                print(f"compile {job['status']}: {job['error']}", file=sys.stderr)
                return 1
        program_id = submitted["program_id"]
        for text in TRY_INPUTS:
            answer = client.infer(program_id, text)
            if answer is None:
                print("  (run the bundle locally instead: pawhub run BUNDLE.paw ...)")
                break
            print(f"  {text!r} -> {answer['output']!r} ({answer['latency_ms']} ms)")
        path, sha256 = client.download(program_id, args.out)
        print(f"bundle saved to {path} (sha256 {sha256})")
        if args.local:
            run_locally(args.base_url, args.api_key, program_id, path)
    except ApiError as error:
        request_id = error.body.get("request_id") if isinstance(error.body, dict) else None
        print(f"error: {error} (request id {request_id})", file=sys.stderr)
        return 1
    return 0


def run_locally(base_url, api_key, program_id, bundle_path):
    """TRY_INPUTS on this machine, with each client that is installed."""
    try:
        import pawhub
    except ImportError:
        print("  pawhub is not installed (pip install ./sdk)")
    else:
        with pawhub.load(bundle_path) as program:
            for text in TRY_INPUTS:
                print(f"  pawhub: {text!r} -> {program.run(text).output!r}")
    try:
        os.environ.setdefault("PAW_API_URL", base_url)
        if api_key:
            os.environ.setdefault("PAW_API_KEY", api_key)
        import programasweights as paw
    except ImportError:
        print("  the official PAW SDK is not installed (pip install programasweights)")
    else:
        fn = paw.function(program_id)
        for text in TRY_INPUTS:
            print(f"  programasweights: {text!r} -> {fn(text)!r}")
        try:
            import pawhub
        except ImportError:
            return
        # The program's output constraint as the SDK's logits processor: the hub's answers.
        guided = pawhub.guided(program_id, url=base_url, api_key=api_key or None)
        for text in TRY_INPUTS:
            answer = fn(text, logits_processor=guided(text))
            print(f"  programasweights + pawhub.guided: {text!r} -> {answer!r}")


if __name__ == "__main__":
    sys.exit(main())
