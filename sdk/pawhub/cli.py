"""``pawhub run BUNDLE.paw "input"``: run a downloaded program locally.

    pawhub run support-urgency.paw "Nobody can log in"
    pawhub run support-urgency.paw --inputs inputs.jsonl

One input prints its output. ``--inputs`` reads JSON lines (``{"input": ...}``
each) and prints one JSON object per input, in order: its output,
tokens_generated and latency_ms, or an ``error``. No Django, no database.
"""

import argparse
import json
import sys
from pathlib import Path

from pawhub.bundle import BundleError
from pawhub.calls import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT, RunLimitError, RunTimeout
from pawhub.local import load


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pawhub", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a .paw bundle on one input or a JSONL file")
    run.add_argument("bundle", type=Path, help="the downloaded .paw file")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="one input text")
    source.add_argument("--inputs", type=Path, help='JSONL file, one {"input": ...} per line')
    run.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help=f"1 to {MAX_TOKENS_LIMIT}"
    )
    run.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    args = parser.parse_args(argv)

    try:
        program = load(args.bundle)
    except (BundleError, OSError) as exc:
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
