"""A compile survives its worker dying: redelivery, the stale-job sweeper, bounded attempts.

Each test runs its own worker so it can kill it (and no other worker is
running while it does). Slow: real training on the real base model.
"""

import os
import signal
import time

import pytest

from compiler import services
from programs.models import Program
from tests.compiler.test_compile_e2e import URGENCY, wait_for
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]


@pytest.fixture
def crash_worker(tmp_path):
    """A worker of our own, so the test can kill it. Stale after 5 s without a heartbeat."""
    workers = []

    def start(**env):
        worker = WorkerProcess(tmp_path / f"worker{len(workers)}.log", **env)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


def pool_child_pid(job):
    return int(job.worker.rpartition(":")[2])


def test_a_killed_pool_process_is_redelivered_and_the_job_finishes(crash_worker, user):
    crash_worker()
    job = services.compile_submit(spec=URGENCY + "\nHints:\n- killed child", owner=user).job
    job = wait_for(job, until=lambda j: j.stage == "training" and j.percent > 10)
    os.kill(pool_child_pid(job), signal.SIGKILL)

    job = wait_for(job)
    assert job.status == "ready", job.error
    assert job.attempts == 2
    print(f"\nrecovered after SIGKILL of the pool process; attempts={job.attempts}")


def test_a_killed_worker_is_recovered_by_the_sweeper_after_restart(crash_worker, user):
    env = {"COMPILE_HEARTBEAT_STALE_SECONDS": 5}
    worker = crash_worker(**env)
    job = services.compile_submit(spec=URGENCY + "\nHints:\n- killed worker", owner=user).job
    job = wait_for(job, until=lambda j: j.stage == "training")
    # The whole worker dies at once (an OOM kill or a lost machine).
    os.kill(pool_child_pid(job), signal.SIGKILL)
    worker.kill(signal.SIGKILL)
    job.refresh_from_db()
    assert job.status == "compiling"  # orphaned: nobody will report on it

    time.sleep(6)  # let the heartbeat go stale
    crash_worker(**env)
    job = wait_for(job)
    assert job.status == "ready", job.error
    assert job.attempts >= 2


def test_a_job_that_keeps_crashing_fails_after_bounded_attempts(crash_worker, user):
    crash_worker(COMPILE_MAX_ATTEMPTS=1)
    job = services.compile_submit(spec=URGENCY + "\nHints:\n- keeps crashing", owner=user).job
    job = wait_for(job, until=lambda j: j.stage == "training")
    os.kill(pool_child_pid(job), signal.SIGKILL)

    job = wait_for(job)
    assert job.status == "failed"
    assert "interrupted 1 time(s)" in job.error
    assert Program.objects.get(pk=job.program_id).status == "failed"
