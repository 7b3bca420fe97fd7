"""Issue 18: a burst of 50 cases does not delay a "Try it" behind them by more than one run.

Each case added queues its check, a run of the program like any other. The
checks go to their own queue (`runtime_checks`) and worker, as the Procfile's
`checks` process takes them, while the people's runs (`runtime`) have a worker
of their own: the Try it that comes right after 50 cases waits for none of
their checks. It may still share the CPU with the check running beside it, so
the bound is one warm run of margin over its own run, plus a small constant for
the round trip through the broker and the result store on a busy machine.
"""

import statistics
import time

import pytest

from programs import services as program_services
from programs.models import Case
from runtime import services
from tests.conftest import WorkerProcess
from tests.factories import UserFactory
from tests.runtime.conftest import URGENCY_INPUTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]

CASES = 50
SLACK_SECONDS = 0.5
# Two workers on a machine: each gets its share of the cores, as the README says.
WORKER_ENV = {"RUNTIME_THREADS": "1"}


@pytest.fixture(scope="module")
def workers(django_db_setup, tmp_path_factory):
    """The Procfile's `checks` worker (runtime_checks; default, for its readiness
    ping) and its `runtime` worker (runtime only)."""
    folder = tmp_path_factory.mktemp("workers")
    checks = WorkerProcess(folder / "checks.log", queues="default,runtime_checks", **WORKER_ENV)
    runtime = WorkerProcess(folder / "runtime.log", queues="runtime", **WORKER_ENV)
    try:
        checks.start()
        runtime.start()  # ready once it answers a run: the warm-up below
        yield checks, runtime
    finally:
        runtime.stop()
        checks.stop()


def timed_run(program, text):
    started = time.monotonic()
    result = services.program_run(program=program, input_text=text)
    return time.monotonic() - started, result.output


def test_a_burst_of_fifty_cases_does_not_delay_a_try_it_by_more_than_one_run(
    workers, compiled_program, capsys
):
    program = compiled_program
    for text in URGENCY_INPUTS:  # the model loaded, the program's prompt head computed
        timed_run(program, text)
    one_run = statistics.median(timed_run(program, text)[0] for text in URGENCY_INPUTS * 2)

    authors = UserFactory.create_batch(10)
    for i in range(CASES):
        program_services.case_submit(
            program=program,
            author=authors[i % len(authors)],
            input=f"{URGENCY_INPUTS[i % len(URGENCY_INPUTS)]} (case {i})",
            expected="urgent",
            type=Case.Type.SUCCESS,
        )
    cases = Case.objects.filter(program=program)
    deadline = time.monotonic() + 60
    while not cases.filter(checked_at__isnull=False).exists():  # the checks are running
        assert time.monotonic() < deadline, "no case was checked"
        time.sleep(0.02)

    elapsed, output = timed_run(program, URGENCY_INPUTS[0])  # as Try it sends it
    unchecked = cases.filter(checked_at__isnull=True).count()
    with capsys.disabled():
        print(
            f"\nFIGURE warm run {one_run * 1000:.0f} ms (median of 10); Try it after "
            f"{CASES} cases {elapsed * 1000:.0f} ms, with {unchecked} checks still queued",
            flush=True,
        )
    assert output in ("urgent", "normal", "low")
    assert elapsed <= 2 * one_run + SLACK_SECONDS
    assert unchecked >= CASES // 2, "the checks were done before the Try it: nothing was measured"
