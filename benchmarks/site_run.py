"""A warm run end to end through a live site, beside the engine's own time.

`site_run_p50_ms` is the wall time of ``POST /api/v1/infer`` (request in,
answer out) on a small label program, through the site as the Procfile runs it
(gunicorn + uvicorn worker, ASGI) and one runtime worker
(``celery -Q runtime --concurrency 1``). `engine_p50_ms` is the interpreter's
own time for the same calls, as the worker reports it in ``latency_ms`` (what
``benchmarks/runtime.py`` calls ``warm_p50_ms``); both come from the same
calls, so `overhead_p50_ms` is what the broker, the result store and the web
add. Goal (issue 18): overhead <= 30 ms, on the embedded default as on Redis.

Transports:

- ``embedded``: the defaults with nothing set (SQLite, kombu's filesystem
  broker, the file result store), in a folder of its own;
- ``redis``: ``--redis-url`` (default ``redis://127.0.0.1:6379/9``) as broker
  and result store, SQLite still.

The program is the ``urgency`` task of ``benchmarks/data/`` compiled by the
pipeline, kept as ``benchmarks/runtime.py`` keeps it (minutes the first time).

    .venv/bin/python benchmarks/site_run.py [--calls 60] [--transports embedded,redis]

The last output line is one JSON object.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def bench_runtime():
    spec = importlib.util.spec_from_file_location("bench_runtime", REPO / "benchmarks/runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(commands: dict, env: dict, logs: Path):
    """Each of ``commands`` (name -> argv) started from the repository root, its
    output in ``logs/<name>.log``; all stopped on leaving (terminated, killed
    after 30 s). benchmarks/clients.py starts its site with this too."""
    processes, files = [], []
    try:
        for name, command in commands.items():
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
            files.append(log)
            processes.append(
                subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in files:
            log.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


SETUP = """
import json, shutil, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from accounts.models import ApiKey, User
from programs.models import Program
compiled = json.loads(sys.argv[1])
owner, _ = User.objects.get_or_create(username="bench")
program, _ = Program.objects.update_or_create(
    id="b" * 20,
    defaults=dict(owner=owner, name="Urgency", spec="urgency", status="ready",
        compiler_alias="paw-smollm2-135m", compiler_snapshot=compiled["snapshot"],
        compiler_fingerprint="0" * 64, pseudo_program=compiled["pseudo_program"],
        output_constraint=compiled["output"], adapter_path="programs/bench/adapter.gguf"),
)
target = Path(settings.MEDIA_ROOT) / "programs" / "bench"
target.mkdir(parents=True, exist_ok=True)
shutil.copyfile(compiled["adapter"], target / "adapter.gguf")
print(program.pk, ApiKey.create_for(user=owner, name="bench")[1])
"""


def infer(port, program_id, token, text):
    body = json.dumps({"program_id": program_id, "input": text, "max_tokens": 8}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/infer",
        data=body,
        # signed in: 120 runs a minute, above what is sent here
        headers={"Content-Type": "application/json", "X-API-Key": token},
    )
    started = time.perf_counter()
    with OPENER.open(request, timeout=120) as response:
        answer = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, answer


def measure(transport, compiled, inputs, args):
    var = Path(args.var_dir) / transport
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = dict(os.environ)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        env.pop(name, None)
    env.update(
        PAW_VAR_DIR=str(var),
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="paw_site.settings",
        # the derived models benchmarks/runtime.py built (not again per transport)
        MODEL_CACHE_DIR=os.environ.get("MODEL_CACHE_DIR", str(args.models)),
        RUNTIME_THREADS=os.environ.get("RUNTIME_THREADS", "1"),
    )
    if transport == "redis":
        env.update(CELERY_BROKER_URL=args.redis_url, CELERY_RESULT_BACKEND=args.redis_url)
        subprocess.run(
            ["redis-cli", "-u", args.redis_url, "flushdb"], check=True, capture_output=True
        )
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    setup = subprocess.run(
        [PYTHON, "-c", SETUP, json.dumps(compiled)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    program_id, token = setup.stdout.strip().splitlines()[-1].split()
    port = free_port()
    commands = {
        "web": [PYTHON, "-m", "gunicorn", "paw_site.asgi", "--bind", f"127.0.0.1:{port}"]
        + ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1"],
        "runtime": [PYTHON, "-m", "celery", "-A", "paw_site", "worker", "-Q", "runtime"]
        + ["--concurrency", "1", "--hostname", f"bench-{transport}-{os.getpid()}@%h"],
    }
    with running(commands, env, var):
        deadline = time.monotonic() + 600
        while True:  # the first answer: the site serves and the worker has its model
            try:
                infer(port, program_id, token, inputs[0])
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for text in inputs[: args.warmup]:
            infer(port, program_id, token, text)
        wall, engine = [], []
        for i in range(args.calls):
            ms, answer = infer(port, program_id, token, inputs[i % len(inputs)])
            wall.append(ms)
            engine.append(answer["latency_ms"])
    overheads = [w - e for w, e in zip(wall, engine, strict=True)]
    return {
        "site_run_p50_ms": round(statistics.median(wall), 1),
        "site_run_p95_ms": round(percentile(wall, 95), 1),
        "engine_p50_ms": round(statistics.median(engine), 1),
        "overhead_p50_ms": round(statistics.median(overheads), 1),
        "overhead_p95_ms": round(percentile(overheads, 95), 1),
        "calls": len(wall),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--transports", default="embedded,redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument(
        "--var-dir",
        default=str(Path(os.environ.get("PAW_VAR_DIR", REPO / "var")) / "bench-site-run"),
    )
    args = parser.parse_args(argv)
    runtime = bench_runtime()
    args.models = runtime.var_dir() / "models"
    from compiler import pipeline
    from pawhub.bundle import read_bundle

    snapshot = runtime.resolve(None)
    program = runtime.compile_task("urgency", snapshot)
    bundle = read_bundle(Path(program["adapter"]).parent / pipeline.BUNDLE_FILE)
    compiled = {
        "snapshot": snapshot.name,
        "pseudo_program": bundle.pseudo_program,
        "output": program["constraint"].to_dict(),
        "adapter": program["adapter"],
    }
    load_start = os.getloadavg()[0]
    results = {}
    for transport in args.transports.split(","):
        results[transport] = measure(transport, compiled, program["inputs"], args)
        print(transport, json.dumps(results[transport]), flush=True)
    results["loadavg"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
