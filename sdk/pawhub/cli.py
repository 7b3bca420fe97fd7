"""``pawhub``: run PAW programs locally, exactly as PAW Hub runs them.

    pawhub run support-urgency.paw "Nobody can log in"     # a downloaded bundle
    pawhub run alice/support-urgency "Nobody can log in"   # a program on a hub
    pawhub run 3f2a9c0d1e4b5a6c7d8e --inputs inputs.jsonl
    pawhub pull alice/support-urgency                      # into the cache; prints its path
    pawhub compile spec.txt                                # prints the new program's id

REF is a ``.paw`` file, a program id or a name (``user/slug``, ``slug``,
``@vN``) on the hub (``--hub`` or ``PAWHUB_URL``; see ``pawhub.hub``). One
input prints its output. ``--inputs`` reads JSON lines (``{"input": ...}``
each) and prints one JSON object per input, in order: its output,
tokens_generated and latency_ms, or an ``error``. ``compile`` shows its
progress on stderr and prints the program id alone on stdout's last line.
"""

import argparse
import json
import sys
from pathlib import Path

from pawhub.bundle import BundleError
from pawhub.calls import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT, RunLimitError, RunTimeout
from pawhub.hub import Hub, HubError, progress_to_stderr
from pawhub.local import load


def hub_options(parser):
    parser.add_argument("--hub", help="the hub's URL (default: PAWHUB_URL, PAW_API_URL)")
    parser.add_argument("--api-key", help="for private programs (default: PAWHUB_API_KEY)")
    parser.add_argument("--offline", action="store_true", default=None, help="use the cache only")


def make_hub(args) -> Hub:
    return Hub(args.hub, api_key=args.api_key, offline=args.offline, progress=progress_to_stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pawhub", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pull = commands.add_parser("pull", help="download a hub program into the cache")
    pull.add_argument("ref", help="a program id or name on the hub")
    hub_options(pull)
    compile_ = commands.add_parser("compile", help="compile a spec file on the hub")
    compile_.add_argument("spec", type=Path, help="a text file holding the spec")
    compile_.add_argument("--compiler", help="a name from the hub's compilers list")
    compile_.add_argument("--private", action="store_true", help="compile it privately")
    hub_options(compile_)
    run = commands.add_parser("run", help="run a program on one input or a JSONL file")
    run.add_argument("bundle", metavar="REF", help="a .paw file, or a program id or name")
    hub_options(run)
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="one input text")
    source.add_argument("--inputs", type=Path, help='JSONL file, one {"input": ...} per line')
    run.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help=f"1 to {MAX_TOKENS_LIMIT}"
    )
    run.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    args = parser.parse_args(argv)

    if args.command == "pull":
        try:
            print(make_hub(args).pull(args.ref))
        except (HubError, BundleError) as exc:
            parser.exit(1, f"{args.ref}: {exc}\n")
        return 0
    if args.command == "compile":
        return compile_spec(args, parser)
    try:
        path = Path(args.bundle)
        if not path.is_file():
            path = make_hub(args).pull(args.bundle)
        program = load(path)
    except (BundleError, HubError, OSError) as exc:
        parser.exit(2, f"{args.bundle}: {exc}\n")
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    with program:
        if args.inputs is None:
            try:
                print(program.run(args.input, **options).output)
            except (RunLimitError, RunTimeout) as exc:
                parser.exit(1, f"error: {exc}\n")
            return 0
        for text in read_inputs(args.inputs, parser):
            try:
                result = program.run(text, **options)
            except (RunLimitError, RunTimeout) as exc:
                print(json.dumps({"input": text, "error": str(exc)}), flush=True)
                continue
            answer = {
                "input": text,
                "output": result.output,
                "tokens_generated": result.tokens_generated,
                "latency_ms": round(result.latency_ms, 1),
            }
            print(json.dumps(answer), flush=True)
    return 0


def compile_spec(args, parser) -> int:
    try:
        spec = args.spec.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        parser.exit(2, f"cannot read {args.spec}: {exc}\n")
    try:
        job = make_hub(args).compile(spec, compiler=args.compiler, public=not args.private)
    except HubError as exc:
        parser.exit(1, f"compile: {exc}\n")
    if job["status"] != "ready":
        parser.exit(1, f"compile {job['status']}: {job.get('error') or ''}\n")
    print(job["program_id"])
    return 0


def read_inputs(path: Path, parser):
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        parser.exit(2, f"cannot read {path}: {exc}\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["input"]
        except (ValueError, KeyError, TypeError):
            parser.exit(2, f'{path}:{number}: expected a JSON object {{"input": "..."}}\n')
        if not isinstance(text, str):
            parser.exit(2, f"{path}:{number}: input must be a string\n")
        yield text


if __name__ == "__main__":
    sys.exit(main())
