"""Issue 18, "hold under abuse": one test per finding, through the front door.

Each of these failed on the code before the issue (the finding's number is in
the test's docstring). Findings 8 (a run pinning a web thread) and the burst of
cases in front of Try it need a live site and workers:
tests/reliability/test_runs_hold_no_thread.py.
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from api.routers import meta
from compiler import services as compile_services
from compiler import tasks as compile_tasks
from compiler.models import CompileJob
from compiler.spec import MAX_EXAMPLES
from paw_site import limits
from paw_site.celery import app as celery_app
from programs import services as program_services
from programs.models import Case, Program
from runtime import services as runtime_services
from tests.conftest import REPO, child_env
from tests.factories import PASSWORD, ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture(autouse=True)
def fresh_limits(monkeypatch):
    """Counters start empty, in the middle of a window that does not roll over."""
    monkeypatch.setattr(limits, "clock", lambda: 1_800_000_030.0)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_enqueue(monkeypatch):
    sent = []
    monkeypatch.setattr(compile_services, "enqueue", sent.append)
    return sent


@pytest.fixture
def no_case_checks(monkeypatch):
    """Cases are recorded; their checks (a runtime task) are not sent."""
    monkeypatch.setattr(runtime_services, "case_check_on_commit", lambda *, case: None)


def compile_form(rows, action="compile", total=None, **fields):
    data = {
        "description": "Classify a support message by urgency.",
        "hints": "",
        "compiler": "paw-smollm2-135m",
        "name": "",
        "tags": "",
        "is_public": "on",
        "action": action,
        "examples-TOTAL_FORMS": str(len(rows) if total is None else total),
        "examples-INITIAL_FORMS": "0",
        "examples-MIN_NUM_FORMS": "1",
        "examples-MAX_NUM_FORMS": "64",
    }
    for i, (x, y) in enumerate(rows):
        data[f"examples-{i}-input"] = x
        data[f"examples-{i}-output"] = y
    data.update(fields)
    return data


# --- 1: unbounded form work -------------------------------------------------------------


def test_1_a_huge_row_count_is_capped_at_max_examples(client, user):
    """Finding 1: TOTAL_FORMS=100000 with action=add rendered 100001 rows."""
    client.force_login(user)
    started = time.monotonic()
    response = client.post(
        reverse("compile"), compile_form([("a", "b")], action="add", total=100_000)
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    page = response.content.decode()
    assert f'name="examples-{MAX_EXAMPLES - 1}-input"' in page
    assert f'name="examples-{MAX_EXAMPLES}-input"' not in page
    assert len(response.content) < 2_000_000, (len(response.content), elapsed)


@pytest.mark.parametrize("action", ["remove-x", "remove-", "remove--1", "remove-99999", "zap"])
def test_1_a_malformed_row_action_is_no_500(client, user, action):
    """Finding 1: `action=remove-x` was a 500 (an unhandled int())."""
    client.force_login(user)
    response = client.post(
        reverse("compile"),
        compile_form([("a", "b"), ("c", "d")], action=action, total="2"),
    )
    assert response.status_code == 200
    assert 'name="examples-1-input"' in response.content.decode()


def test_1_a_non_numeric_row_count_is_no_500(client, user):
    client.force_login(user)
    response = client.post(reverse("compile"), compile_form([("a", "b")], "add", total="lots"))
    assert response.status_code == 200


# --- 2: the API read every program on each detail call ----------------------------------


def _bulk_programs(start, stop, owner):
    Program.objects.bulk_create(
        [
            Program(
                id=hashlib.sha256(f"bulk-{i}".encode()).hexdigest()[:20],
                owner=owner,
                name=f"Bulk {i}",
                spec=f"Bulk {i}: classify.\nExamples:\nInput: a\nOutput: b\n",
                compiler_alias="paw-smollm2-135m",
                compiler_snapshot="paw-smollm2-135m-20261124",
                compiler_fingerprint="0" * 64,
                status="ready",
            )
            for i in range(start, stop)
        ]
    )


def _rows_read(client, url):
    """Rows the database returned for the request's SELECTs (each run again to count)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    rows = 0
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].lstrip().upper().startswith("SELECT"):
                cursor.execute(query["sql"])
                rows += len(cursor.fetchall())
    return rows


def test_2_an_api_detail_reads_no_more_rows_at_2000_programs_than_at_10(user):
    """Finding 2: `queryset or Program.objects` evaluated the queryset (every
    program, its tags and aliases) to test it; the query count stayed 7."""
    program = ProgramFactory(owner=user, tags=["support"])
    program_services.alias_point(user=user, slug="urgency", program=program)
    client = Client()
    urls = [f"{API}/programs/{program.pk}", f"{API}/programs/{user.username}/urgency"]
    _bulk_programs(0, 10, user)
    small = [_rows_read(client, url) for url in urls]
    _bulk_programs(10, 2000, user)
    large = [_rows_read(client, url) for url in urls]
    assert large == small


# --- 3: the web compile form had no limit -------------------------------------------------


def test_3_the_web_form_shares_the_concurrent_compile_slot(client, user, no_enqueue):
    """Finding 3: 4 web posts left 4 active compiles where the API refused the third."""
    client.force_login(user)
    statuses = []
    for i in range(3):
        rows = [(f"message {i}", "urgent"), (f"other {i}", "low")]
        statuses.append(client.post(reverse("compile"), compile_form(rows)).status_code)
    assert statuses == [302, 302, 429]
    assert CompileJob.objects.filter(owner=user).active().count() == 2
    # and the API counts the web's compiles: no third one there either
    from tests.api.conftest import SPEC, key_client

    api = key_client(user).post(f"{API}/compile", {"spec": SPEC}, content_type="application/json")
    assert api.status_code == 429 and api.json()["error"] == "too_many_compiles"


def test_3_the_web_form_shows_the_wait(client, user, no_enqueue, monkeypatch):
    monkeypatch.setitem(limits.RULES, "compile", limits.Rule(1, 1, 10, 3600))
    client.force_login(user)
    client.post(reverse("compile"), compile_form([("x1", "y"), ("x2", "z")]))
    response = client.post(reverse("compile"), compile_form([("x3", "y"), ("x4", "z")]))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "retry in" in response.content.decode()


# --- 4: cases flooded the runtime ---------------------------------------------------------


def test_4_unchecked_cases_per_author_are_bounded_on_the_web(client, user, no_case_checks):
    """Finding 4: every case queued a check; nothing bounded them."""
    program = ProgramFactory()
    client.force_login(user)
    for i in range(program_services.MAX_UNCHECKED_CASES["author"] + 3):
        client.post(
            reverse("program_case", args=[program.pk]),
            {"input": f"input {i}", "expected": "urgent", "type": "success", "note": ""},
        )
    assert (
        Case.objects.filter(author=user).count() == (program_services.MAX_UNCHECKED_CASES["author"])
    )


def test_4_case_checks_have_a_queue_of_their_own():
    """Interactive runs never wait behind case checks."""
    route = celery_app.amqp.router.route({}, "runtime.tasks.check_case")
    assert route["queue"].name == "runtime_checks"
    route = celery_app.amqp.router.route({}, "runtime.tasks.run_program")
    assert route["queue"].name == "runtime"


def test_4_api_cases_share_the_case_quota(user, no_case_checks, monkeypatch):
    from tests.api.conftest import key_client

    monkeypatch.setitem(limits.RULES, "case", limits.Rule(2, 2, 10, 3600))
    program = ProgramFactory()
    web, api = Client(), key_client(user)
    web.force_login(user)
    web.post(
        reverse("program_case", args=[program.pk]),
        {"input": "one", "expected": "urgent", "type": "success", "note": ""},
    )
    body = {"input": "two", "expected": "low", "type": "success"}
    first = api.post(f"{API}/programs/{program.pk}/cases", body, content_type="application/json")
    assert first.status_code == 201
    second = api.post(f"{API}/programs/{program.pk}/cases", body, content_type="application/json")
    assert second.status_code == 429 and second.json()["error"] == "rate_limited"
    assert "Retry-After" in second


# --- 5: the admin login had no failed-login limit ------------------------------------------


def test_5_the_admin_login_form_does_not_sign_in(client):
    """Finding 5: 12 wrong passwords then the right one signed in at /admin/."""
    staff = UserFactory(username="boss", is_staff=True, is_superuser=True)
    for _ in range(12):
        client.post("/admin/login/", {"username": staff.username, "password": "wrong"})
    response = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    # allauth's login is where the admin signs in, and it stops guessing
    for _ in range(12):
        client.post(reverse("account_login"), {"login": staff.username, "password": "wrong"})
    client.post(reverse("account_login"), {"login": staff.username, "password": PASSWORD})
    assert "_auth_user_id" not in client.session, "12 failures must lock the login a while"
    assert client.get("/admin/").status_code == 302


# --- 6 and 7: settings that only show in a fresh process -----------------------------------


def _settings_of(code, **env):
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=REPO,
        env=child_env(DJANGO_SETTINGS_MODULE="paw_site.settings", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_6_allauth_keys_its_limits_on_the_same_client_address():
    """Finding 6: behind a proxy, allauth's IP limits keyed on the proxy."""
    result = _settings_of(
        "from allauth.core import context; from allauth import app_settings as a; "
        "print(a.TRUSTED_PROXY_COUNT)",
        TRUSTED_PROXY_COUNT="2",
        SECRET_KEY="t" * 50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


def test_7_production_never_runs_on_the_development_key(tmp_path):
    """Finding 7: with SECRET_KEY unset and DEBUG off the public key was used."""
    dev = "django-insecure-paw-hub-local-development-key-not-for-production-use"
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    unset = _settings_of(code, DEBUG="false", SECRET_KEY=None, PAW_VAR_DIR=str(tmp_path))
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.strip() not in ("", dev)
    again = _settings_of(code, DEBUG="false", SECRET_KEY=None, PAW_VAR_DIR=str(tmp_path))
    assert again.stdout == unset.stdout  # kept: sessions survive a restart
    explicit = _settings_of(code, DEBUG="false", SECRET_KEY=dev, PAW_VAR_DIR=str(tmp_path))
    assert explicit.returncode != 0 and "development key" in explicit.stderr


# --- 9: the gallery cache kept the first visitor's extra parameters ------------------------


def test_9_cached_gallery_links_carry_only_the_filters(client, settings):
    settings.HUB_CACHE_SECONDS = 30
    ProgramFactory.create_batch(21)
    first = client.get("/hub/?utm_source=evil&sort=recent")
    assert first.status_code == 200
    second = Client().get("/hub/?sort=recent")
    assert "utm_source" not in second.content.decode()
    assert "page=2" in second.content.decode()


# --- 10: raw exception text on public job pages ---------------------------------------------


def test_10_a_crash_shows_users_a_generic_error(client, user, no_enqueue, monkeypatch, caplog):
    def crash(**kwargs):
        raise RuntimeError("secret detail /srv/paw/var/models at 0xdeadbeef")

    monkeypatch.setattr(compile_tasks, "run_pipeline", crash)
    spec = "Say hi.\nExamples:\nInput: a\nOutput: hi\n\nInput: b\nOutput: hey\n"
    job = compile_services.compile_submit(spec=spec).job
    assert compile_tasks.compile_program.apply(args=[str(job.id)]).get() == "failed"
    page = client.get(job.get_absolute_url()).content.decode()
    api = client.get(f"{API}/compile/{job.id}").json()
    for shown in (page, api["error"]):
        assert "secret detail" not in shown and "0xdeadbeef" not in shown
    assert "went wrong on our side" in api["error"]
    assert "secret detail" in caplog.text  # the details are in the log


def test_10_staff_see_the_details_of_a_crash_in_the_admin(
    client, user, staff, no_enqueue, monkeypatch
):
    def crash(**kwargs):
        raise RuntimeError("secret detail /srv/paw/var/models at 0xdeadbeef")

    monkeypatch.setattr(compile_tasks, "run_pipeline", crash)
    spec = "Say hi.\nExamples:\nInput: a\nOutput: hi\n\nInput: b\nOutput: hey\n"
    job = compile_services.compile_submit(spec=spec, owner=user).job
    assert compile_tasks.compile_program.apply(args=[str(job.id)]).get() == "failed"
    admin_url = reverse("admin:compiler_compilejob_change", args=[job.id])

    client.force_login(user)  # the owner: the generic sentence, on the page and the API
    for shown in (
        client.get(job.get_absolute_url()).content.decode(),
        client.get(f"{API}/compile/{job.id}").json()["error"],
        client.get(reverse("program_detail", args=[job.program_id])).content.decode(),
    ):
        assert "secret detail" not in shown and "0xdeadbeef" not in shown
    assert client.get(admin_url).status_code == 302  # to the admin's login

    client.force_login(staff)
    page = client.get(admin_url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "RuntimeError: secret detail /srv/paw/var/models at 0xdeadbeef" in text
    assert "Traceback" in text
    assert 'name="error_detail"' not in text  # read-only: no form field


# --- 12: the front doors without limits -----------------------------------------------------


def test_12_health_is_limited_and_reuses_its_broker_check(client, monkeypatch):
    calls = []
    real = meta._broker_round_trip

    def counted():
        calls.append(1)
        real()

    monkeypatch.setattr(meta, "_broker_round_trip", counted)
    meta._broker_checked.clear()
    rule = limits.RULES["health"]
    statuses = [client.get(f"{API}/health").status_code for _ in range(rule.anonymous + 1)]
    assert statuses[:-1] == [200] * rule.anonymous and statuses[-1] == 429
    assert len(calls) == 1


def test_12_web_downloads_share_the_download_quota(client, monkeypatch):
    monkeypatch.setitem(limits.RULES, "download", limits.Rule(3, 3, 10, 3600))
    program = ProgramFactory()  # no files on disk: 404, but counted first
    url = reverse("program_download", args=[program.pk, "bundle"])
    statuses = [client.get(url).status_code for _ in range(4)]
    assert statuses[-1] == 429 and 429 not in statuses[:-1]


def test_12_gallery_searches_are_limited(client, settings, monkeypatch):
    settings.HUB_CACHE_SECONDS = 0
    monkeypatch.setitem(limits.RULES, "search", limits.Rule(3, 3, 10, 60))
    statuses = [client.get(f"/hub/?q=word{i}").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/hub/").status_code == 200  # browsing is not a search


# --- 13: the embedded broker's polling --------------------------------------------------------


def test_13_the_filesystem_broker_is_polled_often(settings):
    """Finding 13: kombu's filesystem transport looked for messages once a second,
    which every run on the embedded default waited for. (The end-to-end figure,
    site_run_p50_ms against the engine's warm_p50_ms, is benchmarks/runtime.py's.)"""
    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        pytest.skip("the embedded default's transport")
    with celery_app.connection_for_write() as conn:
        assert conn.transport.polling_interval <= 0.02


REDIS_RESULTS = "redis://127.0.0.1:6379/12"


@pytest.mark.parametrize("store", ["redis", "file"])
def test_13_a_waiting_run_is_told_its_answer_by_its_result_store(
    settings, monkeypatch, tmp_path, store
):
    """Finding 13: the waiting run reads the result store once the answer is there,
    instead of every few milliseconds. With a Redis store it subscribes to the
    result's channel (the worker publishes the answer); with the embedded file
    store it looks for the result's file, which is written whole (paw_site.broker)."""
    import threading

    from asgiref.sync import async_to_sync
    from celery import states
    from celery.backends.redis import RedisBackend
    from celery.result import AsyncResult

    from paw_site.broker import ResultBackend

    if store == "redis":
        import redis

        try:
            redis.Redis.from_url(REDIS_RESULTS).ping()
        except redis.ConnectionError:
            pytest.skip("no Redis on 127.0.0.1:6379")
        settings.CELERY_RESULT_BACKEND = REDIS_RESULTS
        backend = RedisBackend(app=celery_app, url=REDIS_RESULTS)
    else:
        settings.CELERY_RESULT_BACKEND = f"file://{tmp_path}"
        backend = ResultBackend(app=celery_app, url=f"file://{tmp_path}")

    def send(program, input_text, max_tokens, temperature, task_id=None):
        def worker():  # the runtime worker, answering after 300 ms
            time.sleep(0.3)
            answer = {"output": "urgent", "tokens_generated": 1, "latency_ms": 300.0}
            backend.store_result(task_id, answer, states.SUCCESS)

        threading.Thread(target=worker).start()
        return AsyncResult(task_id, backend=backend)

    reads = []
    poll = runtime_services._poll
    monkeypatch.setattr(runtime_services, "_result_backend", lambda: backend)
    monkeypatch.setattr(runtime_services, "_send", send)
    monkeypatch.setattr(runtime_services, "_poll", lambda p: reads.append(1) or poll(p))
    program = ProgramFactory(adapter_path="programs/x/adapter.gguf")
    started = time.monotonic()
    result = async_to_sync(runtime_services.program_run_async)(program=program, input_text="hi")
    assert result.output == "urgent"
    assert len(reads) <= 3, len(reads)
    assert time.monotonic() - started < runtime_services.PUSHED_POLL_SECONDS


def test_13_the_embedded_result_store_writes_each_result_whole(tmp_path):
    """A run looks for its result's file every few milliseconds: Celery's file
    store created the file and then wrote into it, so a reader could find it empty."""
    from celery import states
    from celery.utils import uuid

    from paw_site.broker import ResultBackend

    task_id, visible_while_writing = uuid(), []

    def opener(path, mode):
        if "w" in mode:
            visible_while_writing.append(os.path.exists(backend.result_path(task_id)))
        return open(path, mode)

    backend = ResultBackend(app=celery_app, url=f"file://{tmp_path}")
    backend.open = opener
    backend.store_result(task_id, {"output": "urgent"}, states.SUCCESS)
    assert visible_while_writing == [False]
    assert backend.get_task_meta(task_id)["result"] == {"output": "urgent"}
    assert [p.name for p in tmp_path.iterdir()] == [Path(backend.result_path(task_id)).name]


def test_13_the_embedded_default_uses_the_whole_file_result_store():
    from paw_site.broker import ResultBackend

    backend = celery_app.backend
    if not backend.url or not str(backend.url).startswith("file://"):
        pytest.skip("the embedded default's result store")
    assert isinstance(backend, ResultBackend)


def test_13_a_fast_polled_filesystem_queue_never_reads_a_half_written_message(tmp_path):
    """Polled every 10 ms, kombu's filesystem transport read messages its
    producer was still writing (an empty payload killed the worker's consumer)."""
    import threading

    from kombu import Connection

    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(tmp_path),
        "store_processed": False,
    }
    payload = {"body": "x" * 200_000}  # long enough to be caught mid-write
    sent = 300
    received, errors = [], []

    def consume():
        with Connection(
            "filesystem://", transport="paw_site.broker:Transport", transport_options=options
        ) as conn:
            channel = conn.default_channel
            deadline = time.monotonic() + 60
            while len(received) < sent and time.monotonic() < deadline:
                try:
                    received.append(channel._get("q"))
                except Exception as exc:  # noqa: BLE001 (an Empty, or the bug)
                    if type(exc).__name__ != "Empty":
                        errors.append(exc)

    reader = threading.Thread(target=consume)
    reader.start()
    with Connection(
        "filesystem://", transport="paw_site.broker:Transport", transport_options=options
    ) as conn:
        channel = conn.default_channel
        for _ in range(sent):
            channel._put("q", payload)
    reader.join(timeout=90)
    assert errors == []
    assert len(received) == sent and all(m == payload for m in received)
