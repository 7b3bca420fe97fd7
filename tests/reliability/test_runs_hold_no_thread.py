"""Issue 18, finding 8: a run waiting for the runtime held a web thread.

A live site (ASGI, as the Procfile runs it) with no runtime worker at all: every
run waits its whole RUNTIME_WAIT_SECONDS. Under the old WSGI server (one process,
4 threads here) 16 such runs pinned every thread and the gallery stopped
answering until they timed out; now the runs are awaited and hold none.
"""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import site_process
from tests.factories import ProgramFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

WAIT = 20  # seconds each run waits for a worker that never comes
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url, *, data=None, forwarded_for=None, timeout=60):
    headers = {"Content-Type": "application/json"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    request = urllib.request.Request(
        url, data=json.dumps(data).encode() if data else None, headers=headers
    )
    started = time.monotonic()
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except TimeoutError:
        status = "timeout"
    return status, time.monotonic() - started


@pytest.fixture(scope="module")
def site(django_db_setup, tmp_path_factory):
    with site_process(
        tmp_path_factory.mktemp("site") / "site.log",
        "/hub/",
        RUNTIME_WAIT_SECONDS=str(WAIT),
        TRUSTED_PROXY_COUNT="1",
        HUB_CACHE_SECONDS="0",  # every gallery request does its queries
    ) as url:
        yield url


def burst(url, program, addresses):
    """Start one /infer per address at once; return the threads and their results."""
    results = []

    def run(address):
        body = {"program_id": program.pk, "input": "server down"}
        results.append(call(f"{url}/api/v1/infer", data=body, forwarded_for=address))

    threads = [threading.Thread(target=run, args=(a,)) for a in addresses]
    for thread in threads:
        thread.start()
    return threads, results


def test_16_waiting_runs_leave_the_site_answering_the_gallery(site, figure):
    program = ProgramFactory(adapter_path="programs/x/adapter.gguf")
    addresses = [f"198.51.100.{i}" for i in range(1, 17)]  # 16 callers, within their limits
    threads, results = burst(site, program, addresses)
    time.sleep(2)  # the runs are waiting now
    gallery = [call(f"{site}/hub/", timeout=WAIT / 2) for _ in range(5)]
    for thread in threads:
        thread.join(timeout=WAIT + 30)
    figure("gallery while 16 runs wait (status, s)", [(s, round(t, 3)) for s, t in gallery])
    assert all(status == 200 for status, _ in gallery), gallery
    # the runs themselves waited their whole time and were told the runtime is busy
    assert sorted(status for status, _ in results) == [503] * 16, results


def test_one_caller_cannot_hold_more_than_its_share_of_runs(site, figure):
    program = ProgramFactory(adapter_path="programs/x/adapter.gguf")
    threads, results = burst(site, program, ["203.0.113.7"] * 16)
    for thread in threads:
        thread.join(timeout=WAIT + 30)
    statuses = sorted(status for status, _ in results)
    figure("16 runs at once from one address", statuses)
    # two wait (and find no worker); the rest are refused at once
    assert statuses == [429] * 14 + [503] * 2, results
    refused = [seconds for status, seconds in results if status == 429]
    assert max(refused) < WAIT / 2
