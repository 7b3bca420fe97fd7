"""The site's side of running a program, with the runtime queue faked: the
service that sends a call and waits, the "Try it" box, POST /infer, case checks.
(tests/runtime/test_worker.py runs the same paths through a real worker.)"""

import pytest
from celery import current_app
from django.core.cache import cache
from django.test import Client
from kombu.exceptions import OperationalError

from accounts.models import ApiKey
from paw_site import limits as ratelimit
from paw_site.limits import Rule
from pawhub.calls import MAX_INPUT_CHARS, RunResult
from programs import services as program_services
from programs.models import Case
from runtime import services, tasks
from tests.factories import ProgramFactory
from tests.runtime.fakes import WORKER_LOST, FakePending, FakeQueue

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture(autouse=True)
def fresh_limits(monkeypatch):
    monkeypatch.setattr(ratelimit, "clock", lambda: 1_800_000_030.0)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def queue(monkeypatch, settings):
    settings.RUNTIME_WAIT_SECONDS = 1  # how long a call nobody answers is waited for
    return FakeQueue(monkeypatch)


def runnable(**fields):
    """A ready program with (the path of) an adapter; no worker reads it here."""
    return ProgramFactory(adapter_path="programs/x/adapter.gguf", **fields)


@pytest.fixture
def program(user):
    return runnable(owner=user)


# --- the service ------------------------------------------------------------------------


def test_a_call_goes_to_the_runtime_queue_and_expires_with_the_wait(queue, program, settings):
    settings.RUNTIME_WAIT_SECONDS = 7
    result = services.program_run(program=program, input_text="hello", max_tokens=5)
    assert result == RunResult(output="echo: hello", tokens_generated=3, latency_ms=42.4)
    assert queue.sent == [{"args": (program.pk, "hello", 5, 0.0), "expires": 7}]
    route = current_app.amqp.router.route({}, tasks.run_program.name)
    assert route["queue"].name == "runtime"


def test_run_task_is_acknowledged_early_and_time_limited():
    assert tasks.run_program.acks_late is False
    assert 0 < tasks.run_program.soft_time_limit < tasks.run_program.time_limit


@pytest.mark.parametrize(
    ("pending", "code", "status"),
    [
        (FakePending(never=True), "busy", 503),
        (WORKER_LOST, "worker_lost", 503),
        (FakePending("REVOKED", None), "busy", 503),
        (FakePending("FAILURE", RuntimeError("boom")), "unavailable", 503),
        (
            FakePending(result={"error": "input_too_long", "message": "Too long."}),
            "input_too_long",
            422,
        ),
        (FakePending(result={"error": "timeout", "message": "Too slow."}), "timeout", 503),
    ],
)
def test_every_failure_is_a_run_error(queue, program, pending, code, status):
    queue.reply(pending)
    with pytest.raises(services.RunError) as error:
        services.program_run(program=program, input_text="hello")
    assert (error.value.code, error.value.status) == (code, status)
    assert error.value.message and "Traceback" not in error.value.message


def test_a_broker_that_is_down_is_a_run_error(monkeypatch, program):
    def down(*args, **kwargs):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(tasks.run_program, "apply_async", down)
    with pytest.raises(services.RunError) as error:
        services.program_run(program=program, input_text="hello")
    assert error.value.code == "unavailable"


@pytest.mark.parametrize("status", ["compiling", "failed"])
def test_a_program_not_ready_is_refused_before_anything_is_sent(queue, status):
    with pytest.raises(services.RunError) as error:
        services.program_run(program=ProgramFactory(status=status), input_text="hi")
    assert (error.value.code, error.value.status, queue.sent) == ("not_ready", 409, [])


def test_a_ready_program_without_its_adapter_cannot_run(queue):
    with pytest.raises(services.RunError) as error:
        services.program_run(program=ProgramFactory(), input_text="hi")
    assert (error.value.code, error.value.status, queue.sent) == ("broken_program", 503, [])


@pytest.mark.parametrize(
    "call",
    [
        {"input_text": "x" * (MAX_INPUT_CHARS + 1)},
        {"input_text": "hi", "max_tokens": 0},
        {"input_text": "hi", "temperature": 9.0},
    ],
)
def test_a_request_out_of_bounds_is_refused_before_anything_is_sent(queue, program, call):
    with pytest.raises(services.RunError) as error:
        services.program_run(program=program, **call)
    assert (error.value.code, queue.sent) == ("invalid_request", [])


# --- the "Try it" box -------------------------------------------------------------------


def try_url(program):
    return f"/p/{program.id}/try/"


def test_program_page_has_the_try_it_box_and_the_local_usage(client, program):
    page = client.get(program.get_absolute_url()).content.decode()
    assert f'action="{try_url(program)}#try-it"' in page
    assert f'hx-post="{try_url(program)}"' in page
    # The official SDK first, pointed at this site, then pawhub for exact answers.
    sdk = page.index("pip install programasweights")
    assert "export PAW_API_URL=http://testserver" in page
    assert f'paw.function("{program.id}"' in page and f"paw run {program.id} " in page
    assert page.index(f'pawhub.function("{program.id}")') > sdk
    assert f'pawhub run {program.id} "your input here"' in page


def test_try_it_with_htmx_swaps_in_the_answer(client, queue, program):
    response = client.post(try_url(program), {"input": "hello"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="try-it"' in body
    assert "echo: hello" in body and "3 tokens in 42 ms" in body
    assert "HX-Request" in response["Vary"]


def test_try_it_without_javascript_answers_with_the_whole_page(client, queue, program):
    response = client.post(try_url(program), {"input": "hello"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" in body and "echo: hello" in body
    assert "hello</textarea>" in body  # the input stays in the box


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "This field is required."), ("x" * (MAX_INPUT_CHARS + 1), "at most 8000 characters")],
)
def test_try_it_refuses_bad_input_next_to_the_field(client, queue, program, text, message):
    response = client.post(try_url(program), {"input": text}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert queue.sent == []


@pytest.mark.parametrize("htmx", [True, False])
def test_try_it_says_plainly_when_no_worker_answers(client, queue, program, htmx):
    queue.reply(FakePending(never=True))
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(try_url(program), {"input": "hello"}, headers=headers)
    assert response.status_code == 503
    assert response["Retry-After"] == str(services.RETRY_AFTER_SECONDS)
    assert "busy or down" in response.content.decode()


def test_try_it_reports_a_lost_worker(client, queue, program):
    queue.reply(WORKER_LOST)
    response = client.post(try_url(program), {"input": "hello"}, headers={"HX-Request": "true"})
    assert response.status_code == 503
    assert "stopped while running this input" in response.content.decode()


def test_try_it_on_a_compiling_program_says_so(client, queue):
    program = ProgramFactory(status="compiling")
    response = client.post(try_url(program), {"input": "hello"}, headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert "still compiling" in response.content.decode()


@pytest.mark.parametrize("signed_in", [False, True])
def test_try_it_is_rate_limited_with_an_html_429(client, queue, program, monkeypatch, signed_in):
    monkeypatch.setitem(ratelimit.RULES, "infer", Rule(anonymous=2, user=3, ip=10, period=60))
    if signed_in:
        client.force_login(program.owner)
    allowed = 3 if signed_in else 2
    statuses = [
        client.post(try_url(program), {"input": "hi"}).status_code for _ in range(allowed + 1)
    ]
    assert statuses == [200] * allowed + [429]
    response = client.post(try_url(program), {"input": "hi"}, headers={"HX-Request": "true"})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "try again in" in response.content.decode()
    assert len(queue.sent) == allowed


def test_try_it_is_limited_per_ip_across_users(queue, program, monkeypatch, user, other_user):
    monkeypatch.setitem(ratelimit.RULES, "infer", Rule(anonymous=5, user=5, ip=3, period=60))
    statuses = []
    for who in (user, other_user):
        client = Client()
        client.force_login(who)
        statuses += [client.post(try_url(program), {"input": "hi"}).status_code for _ in range(2)]
    assert statuses == [200, 200, 200, 429]


# (anonymous, other user, owner, staff)
TRY_MATRIX = {"public": (200, 200, 200, 200), "private": (404, 404, 200, 200)}


@pytest.mark.parametrize("kind", TRY_MATRIX)
@pytest.mark.parametrize("who", ["anonymous", "other", "owner", "staff"])
def test_try_it_access_matrix(client, queue, user, other_user, staff, kind, who):
    program = runnable(owner=user, is_public=kind == "public")
    if who != "anonymous":
        client.force_login({"owner": user, "other": other_user, "staff": staff}[who])
    expected = TRY_MATRIX[kind][["anonymous", "other", "owner", "staff"].index(who)]
    assert client.post(try_url(program), {"input": "hi"}).status_code == expected


def test_try_it_takes_posts_only(client, program):
    assert client.get(try_url(program)).status_code == 405


# --- POST /infer --------------------------------------------------------------------


def infer(client, **body):
    return client.post(f"{API}/infer", body, content_type="application/json")


def assert_error(response, status, error):
    assert response.status_code == status, response.content
    body = response.json()
    # 404s also say "not found" in `detail`, where the PAW SDK looks.
    extra = {"detail"} if status == 404 else set()
    assert set(body) == {"error", "message", "details", "request_id"} | extra
    assert body["error"] == error and body["message"]
    return body


def test_infer_answers_by_id_and_by_name(client, queue, program, user):
    program_services.alias_point(user=user, slug="urgency", program=program)
    for ref in (program.id, f"{user.username}/urgency", f"{user.username}/urgency@v1"):
        response = infer(client, program_id=ref, input="hello", max_tokens=9, temperature=0.5)
        assert response.status_code == 200, response.content
        assert response.json() == {
            "output": "echo: hello",
            "tokens_generated": 3,
            "latency_ms": 42.4,
        }
        assert response["X-RateLimit-Limit"] == str(ratelimit.RULES["infer"].anonymous)
    assert queue.sent[0]["args"] == (program.pk, "hello", 9, 0.5)


def test_infer_keeps_private_programs_private(queue, user, other_user):
    private = runnable(owner=user, is_public=False)
    _, other_key = ApiKey.create_for(user=other_user, name="t")
    _, owner_key = ApiKey.create_for(user=user, name="t")
    assert_error(infer(Client(), program_id=private.id, input="hi"), 404, "not_found")
    other = Client(headers={"X-API-Key": other_key})
    assert_error(infer(other, program_id=private.id, input="hi"), 404, "not_found")
    owner = Client(headers={"X-API-Key": owner_key})
    assert infer(owner, program_id=private.id, input="hi").status_code == 200


def test_infer_on_a_compiling_program_is_a_conflict(client, queue):
    program = ProgramFactory(status="compiling")
    assert_error(infer(client, program_id=program.id, input="hi"), 409, "not_ready")


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x" * (MAX_INPUT_CHARS + 1)},
        {"input": ""},
        {"input": "hi", "max_tokens": 0},
        {"input": "hi", "max_tokens": 513},
        {"input": "hi", "temperature": -1},
        {"input": "hi", "temperature": 2.5},
        {},
    ],
)
def test_infer_validates_its_request(client, queue, program, body):
    assert_error(infer(client, program_id=program.id, **body), 422, "validation_error")
    assert queue.sent == []


@pytest.mark.parametrize(
    ("pending", "status", "error"),
    [
        (FakePending(never=True), 503, "busy"),
        (WORKER_LOST, 503, "worker_lost"),
        (
            FakePending(result={"error": "input_too_long", "message": "Too long."}),
            422,
            "input_too_long",
        ),
    ],
)
def test_infer_errors_follow_the_api_contract(client, queue, program, pending, status, error):
    queue.reply(pending)
    response = infer(client, program_id=program.id, input="hi")
    assert_error(response, status, error)
    if status == 503:
        assert response["Retry-After"] == str(services.RETRY_AFTER_SECONDS)


def test_infer_is_rate_limited(client, queue, program, monkeypatch):
    monkeypatch.setitem(ratelimit.RULES, "infer", Rule(anonymous=2, user=5, ip=10, period=60))
    assert [infer(client, program_id=program.id, input="hi").status_code for _ in range(2)] == [
        200,
        200,
    ]
    body = assert_error(infer(client, program_id=program.id, input="hi"), 429, "rate_limited")
    assert body["details"]["scope"] == "infer"


# --- cases --------------------------------------------------------------------------------


def test_a_submitted_case_is_checked_once_it_is_committed(
    monkeypatch, program, user, django_capture_on_commit_callbacks
):
    checked = []
    monkeypatch.setattr(tasks.check_case, "delay", checked.append)
    with django_capture_on_commit_callbacks(execute=True):
        case = program_services.case_submit(
            program=program, author=user, input="server down", expected="urgent", type="success"
        )
        assert checked == []  # not before the case is committed
    assert checked == [case.pk]


def test_program_page_shows_pass_rates_per_case_type(client, program, user):
    for passed in (True, True, False, None):
        Case.objects.create(program=program, author=user, input="i", expected="e", passed=passed)
    Case.objects.create(program=program, author=user, input="i", expected="e", type="edge_case")
    page = client.get(program.get_absolute_url()).content.decode()
    assert "<strong>67%</strong> pass" in page and "(2 of 3 checked)" in page
    assert page.count('class="pass-rate"') == 1  # no rate for a type with nothing checked
    assert "being checked…" in page
