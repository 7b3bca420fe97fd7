"""A compile that outlives the broker's visibility timeout runs once.

Redis hands an unacknowledged message out again once its visibility timeout
has passed, even while the first worker is still on it. Production keeps the
timeout above the hard time limit; here the workers get a 2-second one (with
kombu's restore sweep every second) so a real compile outlives it, and a second
idle worker is there to take the redelivered message while the first one
compiles. The job's claim must turn the second delivery away: one attempt.

The filesystem broker has no visibility timeout (a message leaves the queue
folder when it is taken, and is never handed out again), so there the test
sends the job's message a second time itself, mid-compile, as Redis would.
"""

import json
import time
from collections import Counter

import pytest
from django.conf import settings

from compiler import services
from compiler.tasks import compile_program
from tests.compiler.test_compile_e2e import URGENCY, wait_for
from tests.conftest import WorkerProcess
from tests.reliability.jobs import forget_unacknowledged, task_results, tasks_received
from tests.reliability.test_broker_restart import wait_for_log

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

VISIBILITY_TIMEOUT = 2
REDIS = settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


@pytest.fixture
def two_workers(tmp_path):
    env = {
        "BROKER_TRANSPORT_OPTIONS": json.dumps(
            {
                "visibility_timeout": VISIBILITY_TIMEOUT,
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
            }
        )
    }
    workers = [WorkerProcess(tmp_path / f"worker{i}.log", **env) for i in range(2)]
    if REDIS:
        forget_unacknowledged()
    try:
        workers[0].start()
        # Its readiness ping may be answered by the first worker: wait for its own word.
        workers[1].start(purge=False)
        wait_for_log(workers[1].log_path, " ready.")
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def test_a_compile_longer_than_the_visibility_timeout_runs_once(two_workers, user, figure):
    started = time.monotonic()
    job = services.compile_submit(spec=URGENCY + "\nHints:\n- outlives the broker", owner=user).job
    job = wait_for(job, until=lambda j: j.status == "compiling")
    if not REDIS:
        compile_program.delay(str(job.id))  # the redelivery Redis would make

    job = wait_for(job)
    ran_for = time.monotonic() - started
    deliveries = sum(tasks_received(worker.log_path) for worker in two_workers)
    results = wait_for_results(two_workers, deliveries)

    figure(
        f"{'redis' if REDIS else 'filesystem'} broker, visibility timeout {VISIBILITY_TIMEOUT}s",
        f"compile ran {job.attempts} time(s) in {ran_for:.0f}s; "
        f"message delivered {deliveries} times; task results {dict(results)}",
    )
    assert job.status == "ready", job.error
    assert job.attempts == 1
    assert deliveries >= 2, "the message was never delivered twice: nothing was tested"
    assert results == {"ready": 1, "skipped": deliveries - 1}


def wait_for_results(workers, deliveries, timeout=60):
    """The compile task's results in the workers' logs, once every delivery has
    one (a worker logs its result just after the job row says ready)."""
    deadline = time.monotonic() + timeout
    while True:
        results = sum((task_results(worker.log_path) for worker in workers), Counter())
        if results.total() >= deliveries or time.monotonic() > deadline:
            return results
        time.sleep(0.2)
