"""A really compiled program run by a real runtime worker: "Try it", POST /infer
and the case check give exactly what the downloaded bundle gives when run
locally; a burst of 50 "Try it" calls is answered right; a worker killed in
the middle of a call costs that call only."""

import html
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import psutil
import pytest
from django.conf import settings
from django.test import Client

from programs.models import Case
from runtime import services, tasks
from tests.runtime.conftest import URGENCY_INPUTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]


# The "Try it" box's answer (the page has other <output> elements, e.g. the score).
ANSWER = re.compile(r'<pre class="output"><output[^>]*>(.*?)</output>', re.S)


@pytest.fixture
def program(compiled_program):
    return compiled_program


def tried(response):
    """The output shown by the "Try it" box."""
    assert response.status_code == 200, response.content.decode()[-2000:]
    match = ANSWER.search(response.content.decode())
    return html.unescape(match.group(1))


def test_the_site_and_a_downloaded_bundle_give_the_same_answers(
    runtime_worker, program, local_outputs, tmp_path
):
    client = Client()
    download = client.get(f"/p/{program.pk}/download/bundle/")
    assert download.status_code == 200
    bundle = tmp_path / "urgency.paw"
    bundle.write_bytes(b"".join(download.streaming_content))

    import pawhub

    with pawhub.load(bundle) as local:
        for text in URGENCY_INPUTS:
            try_it = tried(client.post(f"/p/{program.pk}/try/", {"input": text}))
            api = client.post(
                "/api/v1/infer", {"program_id": program.pk, "input": text}, "application/json"
            )
            assert api.status_code == 200, api.content
            assert try_it == api.json()["output"] == local.run(text).output
            assert try_it == local_outputs[text]
    assert {"urgent", "low"} <= set(local_outputs.values())  # it is a real program


def test_a_submitted_case_is_checked_by_the_runtime(runtime_worker, program, user, local_outputs):
    client = Client()
    client.force_login(user)
    text = URGENCY_INPUTS[0]
    for expected in ("urgent", "low"):
        response = client.post(
            f"/p/{program.pk}/cases/", {"input": text, "expected": expected, "type": "success"}
        )
        assert response.status_code == 302
    deadline = time.monotonic() + 120
    while Case.objects.filter(program=program, checked_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the cases were not checked"
        time.sleep(0.5)
    for case in Case.objects.filter(program=program):
        assert case.actual_output == local_outputs[text]
        assert case.passed == (case.expected == local_outputs[text])
    page = client.get(program.get_absolute_url()).content.decode()
    assert "<strong>50%</strong> pass" in page


def pool_child(worker):
    (child,) = psutil.Process(worker.proc.pid).children()
    return child.pid


def test_a_worker_killed_mid_call_fails_that_call_only(
    runtime_worker, program, monkeypatch, local_outputs
):
    sent = []
    apply_async = tasks.run_program.apply_async

    def keep(*args, **kwargs):
        sent.append(apply_async(*args, **kwargs))
        return sent[-1]

    monkeypatch.setattr(tasks.run_program, "apply_async", keep)
    outcome = {}

    def slow_call():
        # ~1400 tokens of input: seconds of prompt processing.
        text = "The export button gives me a CSV with wrong dates. " * 120
        started = time.monotonic()
        try:
            services.program_run(program=program, input_text=text, max_tokens=1)
        except services.RunError as error:
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 60
    while not sent or sent[0].state != "STARTED":
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.05)
    pid = sent[0].info["pid"]
    assert pid == pool_child(runtime_worker)
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    caller.join(timeout=60)
    assert outcome["error"].code == "worker_lost", outcome
    assert outcome["seconds"] < settings.RUNTIME_WAIT_SECONDS
    # A fresh pool process takes over and answers the next call right.
    text = URGENCY_INPUTS[1]
    result = services.program_run(program=program, input_text=text)
    assert result.output == local_outputs[text]
    assert pool_child(runtime_worker) != pid


class Browser:
    """A signed-in visitor: the session cookie, and the CSRF cookie once a page set it."""

    def __init__(self, site, user):
        client = Client()
        client.force_login(user)
        self.site = site
        self.cookies = {
            settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value
        }
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def open(self, path, data=None, headers=None):
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            **(headers or {}),
        }
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        body = urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.site + path, body, headers)
        try:
            with self.opener.open(request, timeout=300) as response:
                for header in response.headers.get_all("Set-Cookie") or []:
                    self.cookies.update({k: m.value for k, m in SimpleCookie(header).items()})
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def test_fifty_concurrent_try_it_calls_are_all_answered_right(
    runtime_worker, site, program, user, local_outputs
):
    """Fifty people at once (one person may have only a few runs waiting at once:
    tests/reliability/test_runs_hold_no_thread.py)."""
    from tests.factories import UserFactory

    browsers = [Browser(site, person) for person in UserFactory.create_batch(50)]
    for browser in browsers:
        assert browser.open(program.get_absolute_url())[0] == 200  # sets the CSRF cookie
    child = pool_child(runtime_worker)
    texts = [URGENCY_INPUTS[i % len(URGENCY_INPUTS)] for i in range(50)]

    def try_it(browser, text):
        status, body = browser.open(
            f"/p/{program.pk}/try/", {"input": text}, headers={"HX-Request": "true"}
        )
        match = ANSWER.search(body)
        return status, html.unescape(match.group(1)) if match else body

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(try_it, browsers, texts))
    print(f"\n50 concurrent calls answered in {time.monotonic() - started:.1f} s")
    assert answers == [(200, local_outputs[text]) for text in texts]
    assert runtime_worker.proc.poll() is None and pool_child(runtime_worker) == child
