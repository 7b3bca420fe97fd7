"""The two clients of a hub, measured from their own environments (`make sdk-envs`):

- the size of the pawhub environment's site-packages (and of the site's, for scale);
- per program: first call (download + base model + first answer, from an empty
  cache) and warm-call p50, for pawhub and for the official SDK run locally,
  and the site's own POST /infer p50 on the same inputs;
- per program: how often each client's local answer equals the site's (the
  SDK decodes freely, without the program's output constraint; pawhub must be 100 %),
  and the SDK's with pawhub's constraint as its logits processor (``pawhub.guided``);
- pawhub's warm call beside the runtime worker's own time for the site's calls
  (the interpreter's warm call, as ``benchmarks/runtime.py`` measures it), same run.

    .venv/bin/python benchmarks/clients.py --hub http://127.0.0.1:8000 \\
        --program alice/is-question --inputs inputs.jsonl [--program ... --inputs ...]

The hub is any running site (`make run`) whose programs are ready; each
--inputs file holds JSON lines `{"input": ...}`. Without ``--hub`` (as `make
bench` runs it) the script starts a site of its own on the embedded default
(gunicorn over ASGI, a compile worker and a runtime worker, in a fresh var
folder), compiles one quality-benchmark task per output kind through
``POST /api/v1/compile`` (``--tasks``, default a label, a span, a shape and a
free-text rule task) and measures each on its held-out inputs. Prints a table
and, as the last line, one JSON object (``sdk_agreement_by_kind`` among it).
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from site_run import free_port, running

REPO = Path(__file__).resolve().parent.parent
SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
PAWHUB_PYTHON = REPO / ".venv-pawhub" / "bin" / "python"
DRIVER = REPO / "tests" / "sdk" / "sdk_driver.py"
DATA = REPO / "benchmarks" / "data"
# One task per output kind the compiler infers: labels, a span, a shape, free text.
DEFAULT_TASKS = "urgency,email,phone,slug"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SETUP = """
import django
django.setup()
from accounts.models import ApiKey, User
user, _ = User.objects.get_or_create(username="bench-clients")
print(ApiKey.create_for(user=user, name="bench")[1])
"""

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
    """The site's answers, the wall time of each POST /infer, and the runtime
    worker's own time for each call (its interpreter's warm call)."""
    answers, seconds, engine_ms = [], [], []
    for text in inputs:
        headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})
        request = urllib.request.Request(
            f"{hub}/api/v1/infer",
            data=json.dumps({"program_id": ref, "input": text}).encode(),
            headers=headers,
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=300) as response:
            body = json.load(response)
        seconds.append(time.monotonic() - started)
        answers.append(body["output"])
        engine_ms.append(body["latency_ms"])
    return answers, seconds, engine_ms


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


def sdk_step(hub, key, step, args):
    """One step of tests/sdk/sdk_driver.py in the SDK's environment, from empty
    caches (pawhub's too, which `guided` uses): (its JSON, wall seconds)."""
    with tempfile.TemporaryDirectory() as cache:
        env = clean_env(
            PAW_API_URL=hub,
            PAW_CACHE_DIR=cache,
            PAWHUB_URL=hub,
            PAWHUB_CACHE_DIR=Path(cache) / "pawhub",
            MODEL_CACHE_DIR=Path(cache) / "m",
        )
        if key:
            env["PAW_API_KEY"] = env["PAWHUB_API_KEY"] = key
        started = time.monotonic()
        out = subprocess.run(
            [str(SDK_PYTHON), str(DRIVER), step, json.dumps(args)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=cache,
        ).stdout
        return json.loads(out.strip().splitlines()[-1]), time.monotonic() - started


def time_sdk(hub, ref, inputs, key):
    out, wall = sdk_step(hub, key, "run", {"refs": [ref], "inputs": inputs})
    result = out[ref]
    result["first_s"] = result["load_s"] + result["call_s"][0]
    result["wall_s"] = wall
    return result


def sdk_guided(hub, ref, inputs, key):
    """The SDK's local answers with pawhub's constraint as its logits processor."""
    return sdk_step(hub, key, "guided", {"ref": ref, "inputs": inputs, "free": False})[0]


def agreement(answers, reference):
    return round(sum(a == b for a, b in zip(answers, reference, strict=True)) / len(reference), 3)


def p50_ms(seconds):
    return round(statistics.median(seconds) * 1000, 1) if seconds else None


@contextlib.contextmanager
def own_site(var: Path):
    """(url, api key): a site on the embedded default in ``var``, with a compile
    worker and a runtime worker, as the Procfile runs them."""
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    python = str(REPO / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL")}
    env = {k: v for k, v in env.items() if not k.startswith("CELERY_")}
    env.update(
        PAW_VAR_DIR=str(var),
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="paw_site.settings",
        # the derived models (HF folder, Q8_0 copy) kept with the other benchmarks'
        MODEL_CACHE_DIR=os.environ.get("MODEL_CACHE_DIR", str(REPO / "var" / "models")),
        COMPILE_WAIT_SECONDS="1800",
    )
    run = {"cwd": REPO, "env": env, "check": True, "capture_output": True, "text": True}
    subprocess.run([python, "manage.py", "migrate", "--noinput"], **run)
    key = subprocess.run([python, "-c", SETUP], **run).stdout.strip().splitlines()[-1]
    port = free_port()
    commands = {
        "web": [python, "-m", "gunicorn", "paw_site.asgi", "--bind", f"127.0.0.1:{port}"]
        + ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1"]
        + ["--timeout", "1800"],
        "compile": [python, "-m", "celery", "-A", "paw_site", "worker", "-Q", "default,compile"]
        + ["--concurrency", "1", "--hostname", f"bench-compile-{os.getpid()}@%h"],
        "runtime": [python, "-m", "celery", "-A", "paw_site", "worker", "-Q", "runtime"]
        + ["--concurrency", "1", "--hostname", f"bench-runtime-{os.getpid()}@%h"],
    }
    with running(commands, env, var):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                OPENER.open(f"{url}/api/v1/health", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url, key


def compile_task(url, key, task) -> str:
    """The task's program id, compiled by the site (POST /compile blocks until ready)."""
    sys.path.insert(0, str(REPO))
    from compiler.spec import merge_spec

    spec = merge_spec(task["description"], [tuple(pair) for pair in task["train"]])
    request = urllib.request.Request(
        f"{url}/api/v1/compile",
        data=json.dumps({"spec": spec, "name": task["name"]}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with OPENER.open(request, timeout=1800) as response:
        answer = json.load(response)
    if answer["status"] != "ready":
        raise RuntimeError(f"{task['name']} did not compile: {answer}")
    return answer["program_id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hub", help="a running site (default: start one)")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="without --hub: quality tasks")
    parser.add_argument("--api-key", default=os.environ.get("PAW_API_KEY"))
    parser.add_argument("--program", action="append", default=[], help="a program id or name")
    parser.add_argument(
        "--inputs", action="append", default=[], type=Path, help="JSONL, per program"
    )
    args = parser.parse_args()
    if len(args.program) != len(args.inputs):
        parser.error("give one --inputs file per --program")
    if args.hub is None:
        var = Path(os.environ.get("PAW_VAR_DIR", REPO / "var")) / "bench-clients"
        with own_site(var) as (url, key):
            tasks = [json.loads((DATA / f"{n}.json").read_text()) for n in args.tasks.split(",")]
            programs = []
            for task in tasks:
                started = time.monotonic()
                program_id = compile_task(url, key, task)
                print(
                    f"compiled {task['name']} ({task['kind']}): {program_id} "
                    f"in {time.monotonic() - started:.0f} s",
                    flush=True,
                )
                programs.append((program_id, task))
            return measure(url, key, programs)
    programs = []
    for ref, path in zip(args.program, args.inputs, strict=True):
        inputs = [json.loads(line)["input"] for line in path.read_text().splitlines() if line]
        programs.append((ref, {"name": ref, "held_out": [(x, None) for x in inputs]}))
    return measure(args.hub, args.api_key, programs)


def measure(hub, key, programs):
    """Each program's figures for both clients; ``programs`` is (ref, task) pairs."""

    figures = {
        "pawhub_site_packages_mb": site_packages_mb(PAWHUB_PYTHON),
        "site_site_packages_mb": site_packages_mb(REPO / ".venv" / "bin" / "python"),
        "programs": {},
    }
    print(f"pawhub env site-packages: {figures['pawhub_site_packages_mb']} MB")
    print(f"site env site-packages:   {figures['site_site_packages_mb']} MB")
    for ref, task in programs:
        inputs = [x for x, _ in task["held_out"]]
        hub_says, hub_s, engine_ms = site_answers(hub, ref, inputs, key)
        ours = time_pawhub(hub, ref, inputs, key)
        theirs = time_sdk(hub, ref, inputs, key)
        guided = sdk_guided(hub, ref, inputs, key)
        pawhub_warm = p50_ms(ours["call_s"][1:])
        runtime_warm = round(statistics.median(engine_ms[1:] or engine_ms), 1)

        row = {
            "inputs": len(inputs),
            "site_p50_ms": p50_ms(hub_s),
            # The runtime worker's own warm call (benchmarks/runtime.py's warm_p50_ms), here.
            "runtime_warm_p50_ms": runtime_warm,
            "pawhub_first_s": round(ours["first_s"], 2),
            "pawhub_warm_p50_ms": pawhub_warm,
            "pawhub_warm_over_runtime": round(pawhub_warm / runtime_warm, 2),
            "pawhub_agreement": agreement(ours["answers"], hub_says),
            "sdk_first_s": round(theirs["first_s"], 2),
            "sdk_warm_p50_ms": p50_ms(theirs["call_s"][1:]),
            "sdk_agreement": agreement(theirs["answers"], hub_says),
            "sdk_guided_agreement": agreement(guided["guided"], hub_says),
        }
        if "kind" in task:
            row["task"], row["kind"] = task["name"], task["kind"]
            expected = [y.strip() for _, y in task["held_out"]]
            row["site_em"] = agreement(hub_says, expected)
        figures["programs"][ref] = row
        print(f"\n{ref}")
        for name, value in row.items():
            print(f"  {name:22} {value}")
    kinds = {}
    for row in figures["programs"].values():
        kinds.setdefault(row.get("kind", "given"), []).append(row["sdk_agreement"])
    figures["sdk_agreement_by_kind"] = {k: round(statistics.mean(v), 3) for k, v in kinds.items()}
    figures["pawhub_agreement_min"] = min(
        r["pawhub_agreement"] for r in figures["programs"].values()
    )
    figures["sdk_guided_agreement_min"] = min(
        r["sdk_guided_agreement"] for r in figures["programs"].values()
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
