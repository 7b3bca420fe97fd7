"""The two clients of a hub, measured from their own environments (`make sdk-envs`):

- the size of the pawhub environment's site-packages (and of the site's, for scale);
- per program: first call (download + base model + first answer, from an empty
  cache) and warm-call p50, for pawhub and for the official SDK run locally,
  and the site's own POST /infer p50 on the same inputs;
- per program: how often each client's local answer equals the site's (the
  SDK decodes freely, without the program's output constraint; pawhub must be 100 %).

    .venv/bin/python benchmarks/clients.py --hub http://127.0.0.1:8000 \\
        --program alice/is-question --inputs inputs.jsonl [--program ... --inputs ...]

The hub is any running site (`make run`) whose programs are ready; each
--inputs file holds JSON lines `{"input": ...}`. Prints a table and, as the
last line, one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
PAWHUB_PYTHON = REPO / ".venv-pawhub" / "bin" / "python"
DRIVER = REPO / "tests" / "sdk" / "sdk_driver.py"

# Run inside .venv-pawhub: first call and warm calls of pawhub.function.
PAWHUB_TIMER = """
import json, sys, time
t = time.monotonic()
import pawhub
fn = pawhub.function(sys.argv[1])
inputs = json.loads(sys.argv[2])
answers, seconds = [], []
for i, text in enumerate(inputs):
    s = time.monotonic()
    answers.append(fn(text))
    seconds.append(time.monotonic() - s)
    if i == 0:
        first = time.monotonic() - t
print(json.dumps({"answers": answers, "first_s": first, "call_s": seconds}))
"""


def site_packages_mb(python: Path) -> float:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    total = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    return round(total / 1e6, 1)


def site_answers(hub, ref, inputs, key=None):
    answers, seconds = [], []
    for text in inputs:
        headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})
        request = urllib.request.Request(
            f"{hub}/api/v1/infer",
            data=json.dumps({"program_id": ref, "input": text}).encode(),
            headers=headers,
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=300) as response:
            answers.append(json.load(response)["output"])
        seconds.append(time.monotonic() - started)
    return answers, seconds


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "PAW", "MODEL"))}
    return env | {k: str(v) for k, v in extra.items()}


def time_pawhub(hub, ref, inputs, key):
    with tempfile.TemporaryDirectory() as cache:
        env = clean_env(PAWHUB_URL=hub, PAWHUB_CACHE_DIR=cache, MODEL_CACHE_DIR=Path(cache) / "m")
        if key:
            env["PAWHUB_API_KEY"] = key
        out = subprocess.run(
            [str(PAWHUB_PYTHON), "-c", PAWHUB_TIMER, ref, json.dumps(inputs)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_sdk(hub, ref, inputs, key):
    with tempfile.TemporaryDirectory() as cache:
        env = clean_env(PAW_API_URL=hub, PAW_CACHE_DIR=cache)
        if key:
            env["PAW_API_KEY"] = key
        started = time.monotonic()
        out = subprocess.run(
            [str(SDK_PYTHON), str(DRIVER), "run", json.dumps({"refs": [ref], "inputs": inputs})],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=cache,
        ).stdout
        wall = time.monotonic() - started
    result = json.loads(out.strip().splitlines()[-1])[ref]
    result["first_s"] = result["load_s"] + result["call_s"][0]
    result["wall_s"] = wall
    return result


def agreement(answers, reference):
    return round(sum(a == b for a, b in zip(answers, reference, strict=True)) / len(reference), 3)


def p50_ms(seconds):
    return round(statistics.median(seconds) * 1000, 1) if seconds else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hub", required=True)
    parser.add_argument("--api-key", default=os.environ.get("PAW_API_KEY"))
    parser.add_argument("--program", action="append", default=[], help="a program id or name")
    parser.add_argument(
        "--inputs", action="append", default=[], type=Path, help="JSONL, per program"
    )
    args = parser.parse_args()
    if len(args.program) != len(args.inputs):
        parser.error("give one --inputs file per --program")

    figures = {
        "pawhub_site_packages_mb": site_packages_mb(PAWHUB_PYTHON),
        "site_site_packages_mb": site_packages_mb(REPO / ".venv" / "bin" / "python"),
        "programs": {},
    }
    print(f"pawhub env site-packages: {figures['pawhub_site_packages_mb']} MB")
    print(f"site env site-packages:   {figures['site_site_packages_mb']} MB")
    for ref, path in zip(args.program, args.inputs, strict=True):
        inputs = [json.loads(line)["input"] for line in path.read_text().splitlines() if line]
        hub_says, hub_s = site_answers(args.hub, ref, inputs, args.api_key)
        ours = time_pawhub(args.hub, ref, inputs, args.api_key)
        theirs = time_sdk(args.hub, ref, inputs, args.api_key)

        row = {
            "inputs": len(inputs),
            "site_p50_ms": p50_ms(hub_s),
            "pawhub_first_s": round(ours["first_s"], 2),
            "pawhub_warm_p50_ms": p50_ms(ours["call_s"][1:]),
            "pawhub_agreement": agreement(ours["answers"], hub_says),
            "sdk_first_s": round(theirs["first_s"], 2),
            "sdk_warm_p50_ms": p50_ms(theirs["call_s"][1:]),
            "sdk_agreement": agreement(theirs["answers"], hub_says),
        }
        figures["programs"][ref] = row
        print(f"\n{ref}")
        for name, value in row.items():
            print(f"  {name:22} {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
