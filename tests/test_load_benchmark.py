"""benchmarks/load.py runs end to end: the site as deployed (gunicorn, PostgreSQL,
Redis, the runtime and checks workers) under its mixed load, with no errors, then
again beside its abusers, who are refused what exceeds their share.

Its speed is printed, never asserted: CI machines are shared and vary.
"""

import json
import subprocess
import sys
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.conftest import REPO

# It compiles a program the first time (kept for later runs) and runs llama.cpp
# in a real runtime worker.
pytestmark = [pytest.mark.slow, pytest.mark.worker]

SUMMARY_KEYS = {
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "errors",
    "rate_limited",
    "requests",
    "page_p95_ms",
    "kinds",
    "server_log_errors",
    "normal_p95_ms",
    "normal_errors",
    "normal_p95_ms_under_abuse",
    "normal_errors_under_abuse",
    "abusers",
}
KINDS = {"gallery", "search", "program", "vote", "try_it"}


def load_benchmark_services():
    """--database-url, --broker-url, --cache-url for the benchmark: the servers the
    tests use, with a database of its own; skips where they are not PostgreSQL and Redis."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("benchmarks/load.py measures the production setup: it needs PostgreSQL")
    cache = settings.CACHES["default"]
    if not settings.CELERY_BROKER_URL.startswith("redis://") or "redis" not in cache["BACKEND"]:
        pytest.skip("benchmarks/load.py needs Redis as the broker and the cache")
    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    name = db["NAME"].removeprefix("test_")
    database = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}_load"
    location = cache["LOCATION"]
    location = location[0] if isinstance(location, list | tuple) else location
    cache_url = urlunsplit(urlsplit(location)._replace(scheme="rediscache"))
    return ["--database-url", database, "--broker-url", settings.CELERY_BROKER_URL] + [
        "--cache-url",
        cache_url,
    ]


def test_load_benchmark_quick_run_has_no_errors(capsys):
    services = load_benchmark_services()
    done = subprocess.run(
        [sys.executable, "benchmarks/load.py", "--quick", *services],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,  # a first run compiles its Try it program
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    with capsys.disabled():  # the figures, in the CI log
        print("\n" + "\n".join(done.stdout.strip().splitlines()[-14:]), flush=True)

    assert SUMMARY_KEYS <= summary.keys()
    assert set(summary["kinds"]) == KINDS
    assert summary["requests"] > 0 and summary["rps"] > 0
    for kind, figures in summary["kinds"].items():
        assert figures["requests"] > 0, f"no {kind} request was made"
    assert summary["errors"] == 0, output[-5000:]
    assert summary["server_log_errors"] == 0, output[-5000:]

    # Beside the abusers: the normal clients still get every answer (slower, on a
    # small machine; how much is printed), the abusers are held to their share.
    assert summary["normal_errors_under_abuse"] == 0, output[-5000:]
    assert summary["server_log_errors_under_abuse"] == 0, output[-5000:]
    abusers = summary["abusers"]
    assert set(abusers) == {"form_flooder", "case_flooder", "runner"}
    for kind, figures in abusers.items():
        assert figures["requests"] > 0, f"the {kind} sent nothing"
        assert not {"500", "502", "503"} & figures["statuses"].keys(), (kind, figures)
    # 16 runs at once from one person: most are turned away (429); a few may run
    # (none, once its refused calls have spent its infer quota in the warm-up).
    runner = abusers["runner"]["statuses"]
    assert runner.get("429", 0) > runner.get("200", 0), runner
