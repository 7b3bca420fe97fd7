"""The site as deployed, under a mixed load: requests/s, latency per kind, errors.

What it starts, on loopback:

- PostgreSQL: a database of its own (default
  ``postgres://postgres@127.0.0.1:5432/paw_load``), created at the start and
  dropped at the end; Redis db 7 as the Celery broker and db 8 as the cache.
  The cache database is flushed at the start: rate-limit counters and gallery
  pages cached by an earlier run would skew this one. Override with
  ``--database-url``/``--broker-url``/``--cache-url`` or ``PAW_LOAD_DATABASE_URL``,
  ``PAW_LOAD_BROKER_URL``, ``PAW_LOAD_CACHE_URL``.
- the real settings module as in production: DEBUG off, a random SECRET_KEY,
  SECURE_SSL_REDIRECT on, hashed static files (collectstatic into a temporary
  folder, served by WhiteNoise), the Redis cache and broker, a database
  connection per request (``--conn-max-age 0``: under ASGI each request runs in
  a thread of its own, and with 60 the kept connections reached PostgreSQL's
  100 within a minute). HTTPS is terminated by a front server in
  production; here the load client plays that proxy (BEHIND_HTTPS_PROXY,
  TRUSTED_PROXY_COUNT=1): it talks plain HTTP to gunicorn, one connection per
  request as nginx does by default, and sends ``X-Forwarded-Proto: https`` and
  ``X-Forwarded-For`` with each client's own address.
- the Procfile's processes: gunicorn serving ``paw_site.asgi`` with 2 uvicorn
  workers (its access log as ``gunicorn.conf.py`` writes it, the answering
  worker's pid in each line), a runtime worker (``celery -Q runtime
  --concurrency 1``) and a checks worker (``-Q runtime_checks``), with
  RUNTIME_THREADS=1 each by default so the web keeps a share of a 2-core
  machine. No compile worker: the compiles the form-flooder gets through stay
  queued (and hold its compile slots).
- data: ``seed_programs`` (``--programs``, 200 authors and their votes) and
  ``embed_programs``, plus one really compiled program for "Try it": the
  ``urgency`` task of ``benchmarks/data/`` compiled by the pipeline, the same
  compile ``benchmarks/runtime.py`` makes and keeps under
  ``<PAW_VAR_DIR or var>/bench-runtime/`` (minutes the first time, reused after).

The load comes from a second process: ``--clients`` threads, each a signed-in
user of its own (a session made the way Django's test client's force_login
makes one: signing in is not part of the load) with its own IP, for
``--seconds`` after a warm-up that is not counted. Each client pauses between
requests as a person reading the page does (``--think-ms``: exponential, mean
1 s); ``--think-ms 0`` makes a closed loop that finds where the site saturates.
Before any of it, every web worker answers a search, so each has loaded the
search model (seconds that are no part of serving). Each request is one of:
gallery (pages, sort orders, tag filters; a third of them htmx list swaps),
search (words and meaning), a program page (by id or by name), a vote (htmx)
and "Try it" on the compiled program (htmx, answered by the runtime worker).

Then, in the same invocation (unless ``--abusers ''``), the same load again with
three abusers beside the normal clients, each a signed-in user at an address of
its own that sends its next request as soon as the last is answered:

- a form-flooder posts the compile form with ``examples-TOTAL_FORMS`` at 100,000,
  64 filled rows and an ``add``, malformed (``remove-x``, ``remove-99999``,
  ``zap``) or ``compile`` action, and half its compiles with an honest count;
- a case-flooder adds cases to the Try it program (each queues a check);
- a runner keeps 16 calls in flight, half "Try it", half ``POST /api/v1/infer``.

Rate limits stay as deployed: every normal client is its own user and IP, as
people are, so none should apply to them; a 429 is counted as ``rate_limited``, apart from
the errors. An error is any 5xx, connection error or timeout, or any other
status than the one the request expects. Percentiles are over the answered
requests that were not errors.

    .venv/bin/python benchmarks/load.py [--quick] [--clients 20] [--seconds 60]

The last output line is one JSON object: the normal clients alone (``rps``,
``p50_ms``, ``p95_ms``, ``p99_ms``, ``errors``, ``rate_limited``, ``page_p95_ms``,
``kinds``, ...; ``normal_p95_ms``, ``normal_errors``), and beside the abusers
(``normal_p95_ms_under_abuse``, ``normal_errors_under_abuse``, ``under_abuse``
with the same figures, ``abusers``: each one's requests and statuses).
The client process shares the machine with the site, and timings only mean
something on an otherwise idle machine: the JSON carries the load average
seen at the start and the end.
"""

import argparse
import collections
import html
import http.client
import importlib.util
import io
import json
import multiprocessing
import os
import queue
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/paw_load"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/7"
DEFAULT_CACHE_URL = "rediscache://127.0.0.1:6379/8"
TRY_IT_TASK = "urgency"
# Share of each kind of request in the mix.
MIX = {"gallery": 30, "search": 20, "program": 35, "vote": 10, "try_it": 5}
PAGE_KINDS = ("gallery", "search", "program")
EXPECTED_STATUS = 200
PAGE_P95_TARGET_MS = 200.0
SEARCHES = [
    "support ticket urgency",
    "classify",
    "sentiment",
    "extract dates",
    "invoice total",
    "spam filter",
    "redact phone numbers",
    "which language is this written in",
    "is the customer happy or angry",
    "summarize meeting notes",
    "turn text into json",
    "title case headlines",
    "keywords",
    "tweet",
    "bug report",
    "what does the customer want",
]
SORTS = ["", "votes", "recent", "downloads"]
TRY_INPUTS = [
    "Nobody can log in and the shop is losing orders right now",
    "Where can I download last month's invoice?",
    "The new logo looks great, well done",
    "My CSV export has the wrong dates",
    "Someone is using our admin account and changing passwords!",
    "Could you add a dark mode some day?",
]
REQUEST_TIMEOUT_S = 90  # above RUNTIME_WAIT_SECONDS: the site answers a slow Try it itself


# --- HTTP, as the front server would send it ---------------------------------------------


def send(
    port,
    method,
    path,
    *,
    identity,
    body=None,
    htmx=False,
    json_body=None,
    timeout=REQUEST_TIMEOUT_S,
):
    """One request on a fresh connection; returns (status, headers, body). A
    `json_body` goes with the identity's API key (the API), a `body` as a form."""
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": identity["ip"],
        "User-Agent": "paw-load/1",
    }
    cookies = {k: identity[k] for k in ("sessionid", "csrftoken") if identity.get(k)}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if htmx:
        headers["HX-Request"] = "true"
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
        headers["X-API-Key"] = identity["api_key"]
    elif method == "POST":
        body = urllib.parse.urlencode(body or {}, doseq=True).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["X-CSRFToken"] = identity.get("csrftoken", "")
        headers["Origin"] = f"https://127.0.0.1:{port}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def take_csrf_cookie(port, identity, path):
    """Visit a page as a browser's first visit does, keeping the CSRF cookie it sets."""
    status, headers, _ = send(port, "GET", path, identity=identity)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookie = SimpleCookie(value)
            if "csrftoken" in cookie:
                identity["csrftoken"] = cookie["csrftoken"].value
    if not identity.get("csrftoken"):
        raise RuntimeError(f"GET {path} set no csrftoken cookie")


# --- the load client (the second process) --------------------------------------------------


def pick_request(rng, plan):
    """(kind, method, path, form, htmx) of one request of the mix."""
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    pages = plan["pages"]
    # Popular programs get most visits and votes: Zipf-like over the ranking.
    program = rng.choices(pages, weights=plan["page_weights"])[0]
    if kind == "gallery":
        params = {}
        roll = rng.random()
        if roll < 0.4:
            params["page"] = rng.randint(2, 6)
        elif roll < 0.6:
            params["tag"] = rng.choice(plan["tags"])
        if sort := rng.choice(SORTS):
            params["sort"] = sort
        path = "/hub/" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        return kind, "GET", path, None, rng.random() < 1 / 3
    if kind == "search":
        params = {"q": rng.choice(SEARCHES)}
        if rng.random() < 0.2:
            params["page"] = 2
        return kind, "GET", f"/hub/?{urllib.parse.urlencode(params)}", None, rng.random() < 1 / 3
    if kind == "program":
        return kind, "GET", rng.choice(program["urls"]), None, False
    if kind == "vote":
        form = {"value": rng.choice(["1", "1", "1", "-1"])}
        return kind, "POST", f"/p/{program['id']}/vote/", form, True
    form = {"input": rng.choice(TRY_INPUTS)}
    return kind, "POST", f"/p/{plan['try_program']}/try/", form, True


def client_loop(port, plan, identity, seed, warmup_until, stop_at, record):
    rng = random.Random(seed)
    while (now := time.monotonic()) < stop_at:
        kind, method, path, form, htmx = pick_request(rng, plan)
        started = time.perf_counter()
        try:
            status, _, body = send(port, method, path, identity=identity, body=form, htmx=htmx)
            outcome = status
        except (OSError, http.client.HTTPException) as exc:
            status, body, outcome = None, b"", type(exc).__name__
        elapsed_ms = (time.perf_counter() - started) * 1000
        if now >= warmup_until:
            record(kind, method, path, status, outcome, elapsed_ms, body)
        if plan["think_s"]:  # a person reads the page before the next click
            pause = rng.expovariate(1 / plan["think_s"])
            time.sleep(max(0.0, min(pause, stop_at - time.monotonic())))


# --- the abusers: beside the normal clients, each from an address of its own --------------

# Row actions a form-flooder sends: a costly one, malformed ones, and compiles.
FORM_ACTIONS = ["add", "remove-x", "remove-99999", "zap", "compile"]
FORM_ROWS = 64  # the most examples a spec may have, each of them filled
RUNNER_CALLS = 16  # "Try it" and /api/v1/infer calls one runner keeps in flight


def flood_form(rng, plan, n, thread):
    """The compile form with all rows filled and an action that adds a row, names
    no row, or compiles (a new spec each time); examples-TOTAL_FORMS at 100,000,
    but for half the compiles, which say 64 and so reach the compile limits."""
    action = rng.choice(FORM_ACTIONS)
    honest_count = action == "compile" and rng.random() < 0.5
    form = {
        "description": f"Flood {n}: classify a support message by urgency.",
        "hints": "",
        "compiler": "paw-smollm2-135m",
        "name": "",
        "tags": "",
        "is_public": "on",
        "action": action,
        "examples-TOTAL_FORMS": str(FORM_ROWS) if honest_count else "100000",
        "examples-INITIAL_FORMS": "0",
        "examples-MIN_NUM_FORMS": "1",
        "examples-MAX_NUM_FORMS": "64",
    }
    for i in range(FORM_ROWS):
        form[f"examples-{i}-input"] = f"message {n}-{i}: " + "the shop is down " * 10
        form[f"examples-{i}-output"] = rng.choice(["urgent", "normal", "low"])
    return "/compile/", form, None


def flood_case(rng, plan, n, thread):
    """A case for the Try it program: each one added queues a check on the runtime."""
    form = {
        "input": f"{rng.choice(TRY_INPUTS)} ({n})",
        "expected": rng.choice(["urgent", "normal", "low"]),
        "type": "success",
    }
    return f"/p/{plan['try_program']}/cases/", form, None


def run_many(rng, plan, n, thread):
    """Half the runner's threads "Try it" (htmx, its session), half /api/v1/infer (its key)."""
    text = TRY_INPUTS[(n + thread) % len(TRY_INPUTS)]
    if thread % 2:
        return "/api/v1/infer", None, {"program_id": plan["try_program"], "input": text}
    return f"/p/{plan['try_program']}/try/", {"input": text}, None


# kind -> (what one of its requests is, how many threads send them at once)
ABUSERS = {
    "form_flooder": (flood_form, 1),
    "case_flooder": (flood_case, 1),
    "runner": (run_many, RUNNER_CALLS),
}


# The first thing a page or the API said was wrong: why an abuser's request was refused.
ERROR_TEXT = re.compile(
    r'class="errorlist[^"]*"[^>]*>\s*<li>(.*?)</li>|class="message message-error"[^>]*>(.*?)</p>'
    r'|"message":\s*"([^"]*)"',
    re.S,
)


def refusal(body):
    match = ERROR_TEXT.search(body.decode("utf-8", "replace"))
    if not match:
        return ""
    # "retry in 40 s" and "retry in 29 s" are the same refusal.
    text = next(group for group in match.groups() if group is not None)
    return re.sub(r"\d+", "N", html.unescape(text))[:160]


def abuser_loop(port, plan, kind, thread, identity, warmup_until, stop_at, record):
    """One abuser thread: its next request as soon as the last one is answered."""
    make, _ = ABUSERS[kind]
    rng = random.Random(f"{kind}-{thread}")
    n = 0
    while (now := time.monotonic()) < stop_at:
        n += 1
        path, form, json_body = make(rng, plan, n, thread)
        started = time.perf_counter()
        try:
            status, _, body = send(
                port,
                "POST",
                path,
                identity=identity,
                body=form,
                json_body=json_body,
                htmx=kind == "runner" and json_body is None,
            )
            outcome, why = status, refusal(body)
        except (OSError, http.client.HTTPException) as exc:
            outcome, why = type(exc).__name__, ""
        if now >= warmup_until:
            record(kind, outcome, (time.perf_counter() - started) * 1000, why)


def drive(port, plan, clients, warmup_s, seconds, abuse, results):
    """The load: `clients` threads (and the threads of the abusers named in
    `abuse` beside them), warm-up then the timed run; results go to the queue."""
    identities = plan["identities"][:clients]
    abusers = {kind: plan["abusers"][kind] for kind in abuse}
    # Each client's first visit: its CSRF cookie.
    first_page = plan["pages"][0]["urls"][0]
    with_threads(lambda i: take_csrf_cookie(port, identities[i], first_page), clients)
    for identity in abusers.values():
        take_csrf_cookie(port, identity, first_page)

    lock = threading.Lock()
    stats = collections.defaultdict(
        lambda: {"latencies": [], "statuses": collections.Counter(), "errors": 0, "limited": 0}
    )
    samples = []

    def record(kind, method, path, status, outcome, elapsed_ms, body):
        with lock:
            entry = stats[kind]
            entry["statuses"][str(outcome)] += 1
            if status == EXPECTED_STATUS:
                entry["latencies"].append(elapsed_ms)
            elif status == 429:
                entry["limited"] += 1
            else:
                entry["errors"] += 1
                if len(samples) < 10:
                    text = body[:300].decode("utf-8", "replace")
                    samples.append(f"{method} {path} -> {outcome}: {text!r}")

    abuse_stats = collections.defaultdict(
        lambda: {"latencies": [], "statuses": collections.Counter(), "said": {}}
    )

    def record_abuse(kind, outcome, elapsed_ms, why):
        with lock:
            entry = abuse_stats[kind]
            entry["statuses"][str(outcome)] += 1
            entry["latencies"].append(elapsed_ms)
            if why:  # what the site said, counted per status and message
                entry["said"][f"{outcome}: {why}"] = entry["said"].get(f"{outcome}: {why}", 0) + 1

    warmup_until = time.monotonic() + warmup_s
    stop_at = warmup_until + seconds
    # (kind, thread) of every thread: the normal clients first, then the abusers'.
    threads = [("client", i) for i in range(clients)]
    threads += [(kind, t) for kind in abusers for t in range(ABUSERS[kind][1])]

    def run(i):
        kind, t = threads[i]
        if kind == "client":
            client_loop(port, plan, identities[t], t, warmup_until, stop_at, record)
        else:
            args = (kind, t, abusers[kind], warmup_until, stop_at, record_abuse)
            abuser_loop(port, plan, *args)

    with_threads(run, len(threads))
    elapsed = time.monotonic() - warmup_until
    results.put(
        {
            "seconds": elapsed,
            "kinds": {
                kind: entry | {"statuses": dict(entry["statuses"])} for kind, entry in stats.items()
            },
            "abusers": {
                kind: entry | {"statuses": dict(entry["statuses"])}
                for kind, entry in abuse_stats.items()
            },
            "samples": samples,
        }
    )


def with_threads(target, n):
    """Run target(i) for i < n in n threads; re-raise the first failure."""
    failures = []

    def run(i):
        try:
            target(i)
        except Exception as exc:  # reported by the caller, not lost in a thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


# --- the site: database, data, processes ---------------------------------------------------


def bench_runtime():
    """benchmarks/runtime.py as a module (its name clashes with the runtime package)."""
    spec = importlib.util.spec_from_file_location("bench_runtime", REPO / "benchmarks/runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def maintenance(database_url):
    """(autocommit connection to the server's `postgres` database, the benchmark's db name)."""
    import psycopg

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"--database-url must be postgres://.../<database>, not {database_url!r}")
    admin = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    return psycopg.connect(admin, autocommit=True), name


def recreate_database(database_url):
    connection, name = maintenance(database_url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(database_url):
    connection, name = maintenance(database_url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_cache(cache_url):
    import redis

    parts = urllib.parse.urlsplit(cache_url)
    if parts.scheme != "rediscache":
        sys.exit(f"--cache-url must be rediscache://host:port/db, not {cache_url!r}")
    redis.Redis.from_url(urllib.parse.urlunsplit(parts._replace(scheme="redis"))).flushdb()


def production_env(args, var_dir):
    return {
        "DJANGO_SETTINGS_MODULE": "paw_site.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": args.database_url,
        "CONN_MAX_AGE": str(args.conn_max_age),
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_RESULT_BACKEND": args.broker_url,
        "CACHE_URL": args.cache_url,
        "SECURE_SSL_REDIRECT": "true",
        "BEHIND_HTTPS_PROXY": "true",
        "TRUSTED_PROXY_COUNT": "1",
        "STATIC_MANIFEST": "true",
        "WHITENOISE_USE_FINDERS": "false",
        "PAW_VAR_DIR": str(var_dir),
        "STATIC_ROOT": str(var_dir / "staticfiles"),
        "MEDIA_ROOT": str(var_dir / "media"),
        "RUNTIME_THREADS": str(args.runtime_threads),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def seed(args, compiled):
    """Fill the database (Django set up in this process); returns the client's plan."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import ApiKey
    from compiler.registry import resolve
    from compiler.spec import normalize_spec
    from programs.models import Alias, Program, Tag, program_id_for

    call_command("migrate", verbosity=0)
    call_command("collectstatic", verbosity=0, interactive=False)
    call_command("seed_programs", count=args.programs, users=200, batch_size=2000)

    # The compiled program, official and named as seed_examples names its examples.
    snapshot = resolve(None)
    spec = normalize_spec(compiled["spec"])
    program_id = program_id_for(normalized_spec=spec, fingerprint=snapshot.fingerprint)
    folder = Path(os.environ["MEDIA_ROOT"]) / "programs" / program_id
    folder.mkdir(parents=True)
    files = {}
    for kind, source in (("adapter", compiled["adapter"]), ("bundle", compiled["bundle"])):
        shutil.copyfile(source, folder / source.name)
        files |= {
            f"{kind}_path": f"programs/{program_id}/{source.name}",
            f"{kind}_size": source.stat().st_size,
            f"{kind}_sha256": compiled["sha256"](source),
        }
    program = Program.objects.create(
        id=program_id,
        owner=None,
        name="Support urgency",
        spec=spec,
        pseudo_program=compiled["pseudo_program"],
        compiler_alias=snapshot.alias,
        compiler_snapshot=snapshot.name,
        compiler_fingerprint=snapshot.fingerprint,
        status=Program.Status.READY,
        example_count=compiled["examples"],
        ready_at=timezone.now(),
        **files,
    )
    program.tags.set(Tag.objects.filter(name__in=["classification", "support", "triage"]))
    Alias.objects.create(owner=None, slug="support-urgency", version=1, program=program)
    Program.objects.filter(pk=program.pk).refresh_search_vector()
    call_command("embed_programs", batch_size=64, stdout=io.StringIO())

    # The most popular listed programs, each by its id and by its names.
    pages = []
    listed = Program.objects.listed().prefetch_related("aliases__owner")
    for listed_program in listed.order_by("-score", "-created_at")[:500]:
        urls = [listed_program.get_absolute_url()]
        for alias in listed_program.aliases.all():
            if alias.owner is None:
                urls.append(reverse("official_alias", args=[alias.slug]))
            else:
                urls.append(reverse("alias", args=[alias.owner.username, alias.slug]))
        pages.append({"id": listed_program.pk, "urls": urls})

    User = get_user_model()

    def identity(username, ip):
        """A signed-in person at `ip`: a session (and an API key) of their own."""
        user = User.objects.create(username=username, email=f"{username}@example.com")
        client = Client()
        client.force_login(user)
        session = client.cookies["sessionid"].value
        api_key = ApiKey.create_for(user=user, name="load")[1]
        return {"user": username, "sessionid": session, "api_key": api_key, "ip": ip}

    identities = [
        identity(f"load-{i:03d}", f"10.77.{i // 250}.{i % 250 + 1}") for i in range(args.clients)
    ]
    abusers = {kind: identity(kind, f"10.66.0.{n + 1}") for n, kind in enumerate(ABUSERS)}
    tags = sorted(
        Tag.objects.filter(programs__in=Program.objects.listed())
        .values_list("name", flat=True)
        .distinct()
    )
    programs = Program.objects.count()
    connections.close_all()
    return {
        "pages": pages,
        "page_weights": [1 / (rank + 1) for rank in range(len(pages))],
        "identities": identities,
        "abusers": abusers,
        "tags": tags,
        "try_program": program_id,
        "programs": programs,
    }


def compile_try_program():
    """The urgency task compiled by the pipeline, as benchmarks/runtime.py keeps it."""
    runtime_bench = bench_runtime()
    from compiler import pipeline
    from compiler.registry import resolve
    from compiler.spec import merge_spec
    from pawhub.bundle import read_bundle

    task = json.loads((REPO / "benchmarks" / "data" / f"{TRY_IT_TASK}.json").read_text())
    compiled = runtime_bench.compile_task(TRY_IT_TASK, resolve(None))
    folder = Path(compiled["adapter"]).parent
    return {
        "spec": merge_spec(task["description"], [tuple(pair) for pair in task["train"]]),
        "examples": len(task["train"]),
        "pseudo_program": read_bundle(folder / pipeline.BUNDLE_FILE).pseudo_program,
        "adapter": folder / pipeline.ADAPTER_FILE,
        "bundle": folder / pipeline.BUNDLE_FILE,
        "sha256": pipeline.sha256_file,
        "folder": folder,
    }, runtime_bench.percentile


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command, env, log_path):
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(process, port, identity, log_path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if send(port, "GET", "/hub/", identity=identity, timeout=10)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"the site did not answer in {timeout} s:\n{log_path.read_text()[-3000:]}")


# An answered search in the access log, as gunicorn.conf.py has the uvicorn worker
# write it: `[date] [pid] client - "GET /hub/?q=... HTTP/1.1" 200`.
ACCESS_PID = re.compile(r'^\[[^]]+\] \[(\d+)\] \S+ - "GET /hub/\?q=[^"]*" 200$')
BOOTED_PID = re.compile(r"Booting worker with pid: (\d+)")


def warm_up_search(port, identity, log_path, timeout=600):
    """Searches until every web worker has answered one: each loads the search
    model (and the vectors) on its first search, seconds that are no part of
    serving. The access log's pids say which worker answered."""
    deadline = time.monotonic() + timeout
    burst = 0
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        workers = set(BOOTED_PID.findall(text))
        searched = {m.group(1) for m in map(ACCESS_PID.search, text.splitlines()) if m}
        if workers and workers <= searched:
            return
        burst += 1
        queries = [f"/hub/?q=warm+up+{burst}+{i}" for i in range(8)]
        with_threads(lambda i, q=queries: send(port, "GET", q[i], identity=identity), len(queries))
    sys.exit(f"not every web worker answered a search in {timeout} s")


def wait_until_running_programs(port, plan, worker, log_path, attempts=4):
    """One Try it answered: the runtime worker is up with the model loaded."""
    identity = plan["identities"][0]
    take_csrf_cookie(port, identity, plan["pages"][0]["urls"][0])
    path = f"/p/{plan['try_program']}/try/"
    for _ in range(attempts):
        if worker.poll() is not None:
            sys.exit(f"the runtime worker exited early:\n{log_path.read_text()[-3000:]}")
        status, _, body = send(
            port, "POST", path, identity=identity, body={"input": TRY_INPUTS[0]}, htmx=True
        )
        if status == 200:
            return
    sys.exit(f"Try it answered {status}: {body[:500]!r}\n{log_path.read_text()[-3000:]}")


LOG_ERROR = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def log_errors(marks):
    """Lines at ERROR level or with a traceback in the processes' logs, from
    the offsets in `marks` on (a Try it that found the worker still starting,
    before the load began, is not one)."""
    lines = []
    for path, offset in marks.items():
        with path.open("rb") as log:
            log.seek(offset)
            lines += log.read().decode(errors="replace").splitlines()
    return [line for line in lines if LOG_ERROR.search(line)]


# --- the figures -------------------------------------------------------------------------


def summarize(run, percentile, args, plan, load_start):
    seconds = run["seconds"]
    kinds, all_latencies, page_latencies = {}, [], []
    for kind in MIX:
        entry = run["kinds"].get(kind, {"latencies": [], "errors": 0, "limited": 0, "statuses": {}})
        latencies = entry["latencies"]
        requests = len(latencies) + entry["errors"] + entry["limited"]
        all_latencies += latencies
        if kind in PAGE_KINDS:
            page_latencies += latencies
        kinds[kind] = {
            "requests": requests,
            "rps": round(requests / seconds, 2),
            **latency_figures(latencies, percentile),
            "errors": entry["errors"],
            "rate_limited": entry["limited"],
            "statuses": entry["statuses"],
        }
    requests = sum(k["requests"] for k in kinds.values())
    page = latency_figures(page_latencies, percentile)
    return {
        "rps": round(requests / seconds, 1),
        **latency_figures(all_latencies, percentile),
        "errors": sum(k["errors"] for k in kinds.values()),
        "rate_limited": sum(k["rate_limited"] for k in kinds.values()),
        "requests": requests,
        "page_p50_ms": page["p50_ms"],
        "page_p95_ms": page["p95_ms"],
        "page_p99_ms": page["p99_ms"],
        "page_p95_target_ms": PAGE_P95_TARGET_MS,
        "kinds": kinds,
        "clients": args.clients,
        "think_ms": args.think_ms,
        "seconds": round(seconds, 1),
        "warmup_s": args.warmup,
        "programs": plan["programs"],
        "try_it_program": f"{TRY_IT_TASK} task of benchmarks/data, compiled by the pipeline",
        "web": f"gunicorn, {args.web_workers} uvicorn workers (ASGI)",
        "runtime_threads": args.runtime_threads,
        "conn_max_age": args.conn_max_age,
        "cores": os.cpu_count(),
        "quick": args.quick,
        "load_avg_1m_start": round(load_start, 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
    }


# What the JSON line gives of the run with the abusers.
PHASE_KEYS = (
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "errors",
    "rate_limited",
    "requests",
    "page_p50_ms",
    "page_p95_ms",
    "page_p99_ms",
    "kinds",
    "seconds",
    "server_log_errors",
    "load_avg_1m_end",
)


def abuser_figures(run, kinds, percentile):
    """Per abuser: requests, what it got (statuses), how long its answers took."""
    figures = {}
    for kind in kinds:
        entry = run["abusers"].get(kind, {"latencies": [], "statuses": {}, "said": {}})
        requests = sum(entry["statuses"].values())
        figures[kind] = {
            "threads": ABUSERS[kind][1],
            "requests": requests,
            "rps": round(requests / run["seconds"], 1),
            "statuses": entry["statuses"],
            "said": entry["said"],
            **latency_figures(entry["latencies"], percentile),
        }
    return figures


def report_abusers(abusers, normal, abused):
    print("the abusers (each from one address of its own, no pause between requests):")
    for kind, f in abusers.items():
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(f["statuses"].items()))
        print(
            f"  {kind:<13} {f['threads']:>2} thread(s) {f['requests']:>6} requests "
            f"({f['rps']} /s), p50 {f['p50_ms']} ms; {statuses}"
        )
        for text, n in sorted(f["said"].items(), key=lambda item: -item[1])[:5]:
            print(f"      {n} x {text}")
    print(
        f"normal clients' page p95: {normal['page_p95_ms']} ms alone, "
        f"{abused['page_p95_ms']} ms beside the abusers; errors {normal['errors']} -> "
        f"{abused['errors']}; Try it p95 {normal['kinds']['try_it']['p95_ms']} -> "
        f"{abused['kinds']['try_it']['p95_ms']} ms"
    )


def latency_figures(latencies, percentile):
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    return {f"p{p}_ms": round(percentile(latencies, p), 1) for p in (50, 95, 99)}


def report(summary, samples, server_errors, title="the normal clients alone"):
    print(f"\n== {title}")
    print(
        f"{summary['clients']} clients (pausing {summary['think_ms']:.0f} ms on average "
        f"between requests) for {summary['seconds']} s "
        f"(after {summary['warmup_s']} s of warm-up); {summary['web']}, a runtime and a "
        f"checks worker ({summary['runtime_threads']} thread each); "
        f"{summary['programs']} programs"
    )
    print(f"{'kind':<10} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    rows = [(kind, figures) for kind, figures in summary["kinds"].items()]
    rows.append(("all", summary))
    for kind, f in rows:
        cells = " ".join(
            f"{f[key]:>8.1f}" if f[key] is not None else f"{'-':>8}"
            for key in ("p50_ms", "p95_ms", "p99_ms")
        )
        print(
            f"{kind:<10} {f['requests']:>8} {f['rps']:>7.1f} {cells}"
            f"  errors {f['errors']}, 429 {f['rate_limited']}"
        )
    page_p95 = summary["page_p95_ms"]
    met = page_p95 is not None and page_p95 <= PAGE_P95_TARGET_MS
    print(
        f"page views (gallery, search, program) p50 {summary['page_p50_ms']} ms, "
        f"p95 {page_p95} ms: target p95 <= {PAGE_P95_TARGET_MS:.0f} ms -> "
        f"{'met' if met else 'NOT met'}"
    )
    print(
        f"errors {summary['errors']} (5xx, connection errors, timeouts, unexpected statuses); "
        f"rate limited (429, not errors) {summary['rate_limited']}; "
        f"ERROR lines in the site's and worker's logs since the load began {len(server_errors)}"
    )
    for sample in samples:
        print(f"  error: {sample}")
    for line in server_errors[:10]:
        print(f"  log: {line}")
    print(f"Try it ran the {summary['try_it_program']}")
    print(
        f"load average {summary['load_avg_1m_start']} -> {summary['load_avg_1m_end']} on "
        f"{summary['cores']} cores, the load client included: timings are only meaningful "
        "on an idle machine"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 s, 300 programs (a smoke run)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--seconds", type=float, help="timed run (default 60, quick 20)")
    parser.add_argument("--warmup", type=float, help="untimed load first (default 10, quick 5)")
    parser.add_argument("--programs", type=int, help="seeded programs (default 1000, quick 300)")
    env = os.environ.get
    parser.add_argument(
        "--database-url", default=env("PAW_LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--broker-url", default=env("PAW_LOAD_BROKER_URL", DEFAULT_BROKER_URL))
    parser.add_argument(
        "--cache-url",
        default=env("PAW_LOAD_CACHE_URL", DEFAULT_CACHE_URL),
        help="flushed at the start: give it a Redis database of its own",
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--runtime-threads", type=int, default=1, help="llama.cpp threads of each runtime worker"
    )
    parser.add_argument(
        "--logs", type=Path, help="a folder to keep the site's and workers' logs in"
    )
    parser.add_argument(
        "--abusers",
        type=lambda names: [name for name in names.split(",") if name],
        default=list(ABUSERS),
        help="who runs beside the normal clients in the second run (comma-separated, "
        f"default {','.join(ABUSERS)}; '' for no second run)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="CONN_MAX_AGE; keep 0 under ASGI (a thread per request: kept connections pile up)",
    )
    parser.add_argument(
        "--think-ms", type=float, default=1000, help="mean pause between a client's requests"
    )
    args = parser.parse_args(argv)
    if unknown := set(args.abusers) - set(ABUSERS):
        parser.error(f"no such abuser: {', '.join(sorted(unknown))}")
    args.seconds = args.seconds or (20.0 if args.quick else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (5.0 if args.quick else 10.0)
    args.programs = args.programs or (300 if args.quick else 1000)
    load_start = os.getloadavg()[0]

    compiled, percentile = compile_try_program()
    print(f"Try it program: {TRY_IT_TASK}, compiled once, kept in {compiled['folder']}")
    var_dir = Path(tempfile.mkdtemp(prefix="paw-load-"))
    env = production_env(args, var_dir)
    recreate_database(args.database_url)
    processes = []
    try:
        flush_cache(args.cache_url)
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        started = time.monotonic()
        plan = seed(args, compiled) | {"think_s": args.think_ms / 1000}
        print(f"seeded {plan['programs']} programs in {time.monotonic() - started:.0f} s")

        port = free_port()
        web_log = var_dir / "web.log"
        # The Procfile's web process (gunicorn.conf.py, read from REPO, prefixes
        # each access-log line with the pid of the worker that answered).
        web = start(
            [sys.executable, "-m", "gunicorn", "paw_site.asgi", "--bind", f"127.0.0.1:{port}"]
            + ["--worker-class", "uvicorn_worker.UvicornWorker"]
            + ["--workers", str(args.web_workers), "--access-logfile", "-"],
            env,
            web_log,
        )
        processes.append(web)
        # Its runtime (people's runs) and checks (case checks) workers.
        workers = {}
        for name, queue_name in (("runtime", "runtime"), ("checks", "runtime_checks")):
            workers[name] = var_dir / f"{name}.log"
            processes.append(
                start(
                    [sys.executable, "-m", "celery", "-A", "paw_site", "worker", "-Q", queue_name]
                    + ["--concurrency", "1", "--hostname", f"load-{name}-{os.getpid()}@%h"]
                    + ["--loglevel", "INFO"],
                    env,
                    workers[name],
                )
            )
        wait_until_serving(web, port, plan["identities"][0], web_log)
        warm_up_search(port, plan["identities"][0], web_log)
        wait_until_running_programs(port, plan, processes[1], workers["runtime"])
        print(f"site and workers up; {args.clients} clients for {args.seconds:.0f} s")

        runs, server_errors = {}, {}
        for phase, abuse in (("normal", ()), ("under_abuse", args.abusers)):
            if phase == "under_abuse" and not abuse:
                continue
            if abuse:
                print(f"again, with the abusers beside them ({', '.join(abuse)})")
            log_marks = {path: path.stat().st_size for path in (web_log, *workers.values())}
            runs[phase] = drive_in_a_process(port, plan, args, abuse)
            server_errors[phase] = log_errors(log_marks)
        for process in processes:
            stop(process)
    except BaseException:
        for log in sorted(var_dir.glob("*.log")):
            print(f"--- the end of {log.name}:\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        for process in processes:
            stop(process)
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for log in var_dir.glob("*.log"):
                shutil.copyfile(log, args.logs / log.name)
        drop_database(args.database_url)
        shutil.rmtree(var_dir, ignore_errors=True)

    summary = summarize(runs["normal"], percentile, args, plan, load_start)
    summary["server_log_errors"] = len(server_errors["normal"])
    summary["normal_p95_ms"] = summary["page_p95_ms"]
    summary["normal_errors"] = summary["errors"]
    report(summary, runs["normal"]["samples"], server_errors["normal"])
    if "under_abuse" in runs:
        run = runs["under_abuse"]
        abused = summarize(run, percentile, args, plan, load_start)
        abused["server_log_errors"] = len(server_errors["under_abuse"])
        report(abused, run["samples"], server_errors["under_abuse"], "beside the abusers")
        abusers = abuser_figures(run, args.abusers, percentile)
        report_abusers(abusers, summary, abused)
        summary |= {
            "normal_p95_ms_under_abuse": abused["page_p95_ms"],
            "normal_errors_under_abuse": abused["errors"],
            "normal_rate_limited_under_abuse": abused["rate_limited"],
            "server_log_errors_under_abuse": abused["server_log_errors"],
            "under_abuse": {key: abused[key] for key in PHASE_KEYS},
            "abusers": abusers,
        }
    summary["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary))
    return summary


def drive_in_a_process(port, plan, args, abuse):
    """One timed run of the load from a process of its own; returns its results."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    client = context.Process(
        target=drive, args=(port, plan, args.clients, args.warmup, args.seconds, abuse, results)
    )
    client.start()
    run = None
    while run is None:
        try:
            run = results.get(timeout=5)
        except queue.Empty:
            if not client.is_alive():
                sys.exit(f"the load client failed (exit code {client.exitcode})")
    client.join()
    return run


if __name__ == "__main__":
    main()
