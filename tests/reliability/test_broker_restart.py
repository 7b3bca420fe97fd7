"""No compile is lost when Redis, the broker, restarts.

Each test runs a redis-server of its own on a free port (never the machine's
shared Redis), configured as a production broker must be: `--appendonly yes`,
so a restart reloads every queued message from the append-only file (RDB
snapshots alone would lose whatever came after the last one). A message that is
lost anyway (the broker was down when the site sent it) is resent by the
stale-job sweeper, which every worker runs when it starts and beat every minute.

The jobs end at once on purpose: their program names a compiler snapshot that
does not exist, so the task claims the job (one attempt recorded) and fails it
right away. What is measured is delivery, not compiling.
"""

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from compiler.models import CompileJob
from compiler.tasks import compile_program
from paw_site.celery import app
from programs.models import Program
from tests.compiler.test_compile_e2e import URGENCY
from tests.conftest import WorkerProcess, free_port, site_process
from tests.factories import ProgramFactory
from tests.reliability.jobs import queued_messages, tasks_received

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.skipif(
        REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"
    ),
]
RETIRED_SNAPSHOT = "paw-smollm2-135m-19990101"  # no such compiler: the task fails the job at once


class ThrowawayRedis:
    """A redis-server of the test's own, persisting to an append-only file in `folder`."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self, timeout=20):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "yes", "--dir", str(self.folder)]
            + ["--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.folder / "redis.log").read_text()[-2000:])
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return self
            time.sleep(0.1)
        raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout}s")

    def stop(self):
        """SIGTERM: what a service manager sends; Redis flushes the append-only file."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def restart(self):
        started = time.perf_counter()
        self.stop()
        self.start()
        return time.perf_counter() - started


@pytest.fixture
def redis_broker(tmp_path):
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed (it comes with redis-server)")
    folder = tmp_path / "redis"
    folder.mkdir()
    redis = ThrowawayRedis(folder).start()
    yield redis
    redis.stop()


@pytest.fixture
def broker_worker(tmp_path, redis_broker):
    """start(**env): a real worker on the throwaway Redis that keeps what is
    queued there (no purge on start)."""
    workers = []

    def start(**env):
        worker = WorkerProcess(
            tmp_path / f"worker{len(workers)}.log", CELERY_BROKER_URL=redis_broker.url, **env
        )
        workers.append(worker)
        return worker.start(purge=False)

    yield start
    for worker in workers:
        worker.stop()


def quick_job(**fields):
    program = ProgramFactory(status=Program.Status.COMPILING, compiler_snapshot=RETIRED_SNAPSHOT)
    return CompileJob.objects.create(program=program, **fields)


def send(jobs, broker_url):
    with app.connection_for_write(broker_url) as connection:
        for job in jobs:
            compile_program.apply_async(args=[str(job.id)], connection=connection)


def wait_finished(jobs, timeout=180):
    ids = [job.pk for job in jobs]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = CompileJob.objects.filter(pk__in=ids, status__in=CompileJob.FINISHED)
        if finished.count() == len(ids):
            return list(CompileJob.objects.filter(pk__in=ids))
        time.sleep(0.2)
    left = CompileJob.objects.filter(pk__in=ids).exclude(status__in=CompileJob.FINISHED)
    raise AssertionError(f"{left.count()} of {len(ids)} jobs unfinished after {timeout}s")


def wait_for_log(path, text, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path} after {timeout}s")


def ran_once_each(jobs):
    for job in jobs:
        assert (job.status, job.attempts) == ("failed", 1), (job.status, job.attempts, job.error)
        assert RETIRED_SNAPSHOT in job.error  # failed by the task itself, after its claim


def test_jobs_queued_across_a_redis_restart_all_run_once(redis_broker, broker_worker, figure):
    jobs = [quick_job() for _ in range(5)]
    send(jobs, redis_broker.url)
    before = queued_messages("compile", broker_url=redis_broker.url)

    downtime = redis_broker.restart()
    after = queued_messages("compile", broker_url=redis_broker.url)

    started = time.perf_counter()
    worker = broker_worker()
    jobs = wait_finished(jobs)
    elapsed = time.perf_counter() - started

    figure(
        "jobs queued / messages before restart / after restart",
        f"{len(jobs)} / {before} / {after}",
    )
    figure("redis restart took", f"{downtime:.2f}s")
    figure("all jobs finished after worker start in", f"{elapsed:.1f}s")
    assert before == after == len(jobs)
    ran_once_each(jobs)
    assert tasks_received(worker.log_path) == len(jobs)


def test_a_running_worker_reconnects_after_a_redis_restart(redis_broker, broker_worker, figure):
    worker = broker_worker()

    started = time.perf_counter()
    redis_broker.stop()
    wait_for_log(worker.log_path, "Connection to broker lost")
    redis_broker.start()
    downtime = time.perf_counter() - started
    jobs = [quick_job() for _ in range(3)]
    started = time.perf_counter()
    send(jobs, redis_broker.url)
    jobs = wait_finished(jobs)
    elapsed = time.perf_counter() - started

    figure("redis down (until the worker noticed) for", f"{downtime:.2f}s")
    figure("3 jobs sent after the restart finished in", f"{elapsed:.1f}s")
    ran_once_each(jobs)
    assert worker.proc.poll() is None


def post_json(url, body, token):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"X-API-Key": token, "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")[:500]


def test_a_compile_submitted_while_redis_is_down_is_sent_later_by_the_sweeper(
    redis_broker, broker_worker, user, tmp_path, figure
):
    """The site commits the job, then cannot reach the broker: the person still
    gets their job (202), and once Redis is back the sweeper sends it."""
    token = ApiKey.create_for(user=user, name="compile")[1]
    with site_process(
        tmp_path / "site.log", "/api/v1/health", CELERY_BROKER_URL=redis_broker.url
    ) as url:
        redis_broker.stop()
        started = time.perf_counter()
        status, body = post_json(f"{url}/api/v1/compile/async", {"spec": URGENCY}, token)
        answered = time.perf_counter() - started
    figure("compile submitted with the broker down", f"HTTP {status} in {answered:.2f}s")
    assert status == 202, body
    job = CompileJob.objects.get(pk=body["job_id"])
    assert job.status == "queued"

    # Redis comes back empty-handed: the message was never sent. The job is made
    # quick to run, and old enough for the sweeper's resend threshold.
    redis_broker.start()
    assert queued_messages("compile", broker_url=redis_broker.url) == 0
    Program.objects.filter(pk=job.program_id).update(compiler_snapshot=RETIRED_SNAPSHOT)
    CompileJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    started = time.perf_counter()
    broker_worker(COMPILE_RESEND_QUEUED_SECONDS=600)
    (job,) = wait_finished([job])
    figure("lost job resent by the sweeper and run after", f"{time.perf_counter() - started:.1f}s")
    ran_once_each([job])


def test_a_queued_job_whose_message_was_lost_is_resent_once(redis_broker, broker_worker, figure):
    """Jobs queued long ago with no message anywhere (a broker without
    persistence restarted, say) are resent by the sweeper at worker start; a
    job queued just now is left to its own message."""
    long_ago = timezone.now() - timedelta(hours=1)
    lost = [quick_job() for _ in range(3)]
    CompileJob.objects.filter(pk__in=[j.pk for j in lost]).update(created_at=long_ago)
    recent = quick_job()
    send([recent], redis_broker.url)

    started = time.perf_counter()
    worker = broker_worker(COMPILE_RESEND_QUEUED_SECONDS=600)
    jobs = wait_finished([*lost, recent])
    elapsed = time.perf_counter() - started

    figure("lost jobs recovered", f"{len(lost)} of {len(lost)} in {elapsed:.1f}s")
    ran_once_each(jobs)
    # One message per job: the recent one was not resent.
    assert tasks_received(worker.log_path) == len(jobs)
