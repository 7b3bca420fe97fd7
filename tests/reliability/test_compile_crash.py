"""A compile worker SIGKILLed mid-training (the whole worker at once, as an OOM
kill or a lost machine does it): once a worker runs again the job finishes, and
at no moment is a half-written file served or left behind.

While the job is unfinished, the program's four downloads (page and API,
adapter and bundle) are asked for every few seconds: each answer must be "not
yet" (API 202, page 503) or the complete published file, never a part of one.
Afterwards the program's folder holds exactly the two published files and the
killed attempt's work folder is gone. Slow: real training, twice.
"""

import hashlib
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from django.test import Client

from compiler import services
from compiler.models import CompileJob
from programs.models import Program
from tests.compiler.test_compile_e2e import URGENCY, wait_for
from tests.compiler.test_compile_recovery import crash_worker as crash_worker_fixture
from tests.compiler.test_compile_recovery import pool_child_pid
from tests.reliability.jobs import media_files

crash_worker = crash_worker_fixture  # a worker of the test's own, to kill

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

STALE_SECONDS = 5
PROBE_EVERY_SECONDS = 3
NOT_YET = {202, 503}  # API and page while the program compiles


class DownloadWatch:
    """Asks for every download of the program, at most every few seconds, and
    checks each answer. Used as `wait_for(until=...)`: it never ends a wait."""

    def __init__(self, client, program_id):
        self.client = client
        self.urls = [
            f"/p/{program_id}/download/adapter/",
            f"/p/{program_id}/download/bundle/",
            f"/api/v1/programs/{program_id}/download?file=adapter",
            f"/api/v1/programs/{program_id}/download?file=bundle",
        ]
        self.program_id = program_id
        self.answers = Counter()
        self.next_probe = 0.0

    def __call__(self, job=None, *, now=False):
        if now or time.monotonic() >= self.next_probe:
            self.next_probe = time.monotonic() + PROBE_EVERY_SECONDS
            self.last_round = [self.check(url, self.client.get(url)) for url in self.urls]
        return False

    def check(self, url, response):
        self.answers[response.status_code] += 1
        if response.status_code != 200:
            assert response.status_code in NOT_YET, (url, response.status_code)
            assert "attachment" not in response.get("Content-Disposition", "")
            return response.status_code
        # Served: it must be the whole file the program says it has.
        body = b"".join(response.streaming_content)
        program = Program.objects.get(pk=self.program_id)
        kind = "adapter" if "adapter" in url else "bundle"
        assert program.status == "ready", url
        assert hashlib.sha256(body).hexdigest() == getattr(program, f"{kind}_sha256"), url
        assert len(body) == getattr(program, f"{kind}_size"), url
        return 200


def test_a_compile_killed_mid_training_finishes_after_restart_and_never_serves_a_partial_file(
    crash_worker, user, settings, figure
):
    env = {"COMPILE_HEARTBEAT_STALE_SECONDS": STALE_SECONDS}
    settings.COMPILE_HEARTBEAT_STALE_SECONDS = STALE_SECONDS  # stale here when it is there
    worker = crash_worker(**env)
    job = services.compile_submit(spec=URGENCY + "\nHints:\n- SIGKILL mid-training", owner=user).job
    client = Client()
    client.force_login(user)
    watch = DownloadWatch(client, job.program_id)

    job = wait_for(job, until=lambda j: watch(j) or (j.stage == "training" and j.percent >= 20))
    os.kill(pool_child_pid(job), signal.SIGKILL)
    worker.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    killed_in = f"{job.stage} at {job.percent}%"

    # Nobody reports on it now; once its heartbeat is stale, a worker starts again.
    job = wait_for(
        job, until=lambda j: watch(j) or CompileJob.objects.stale().filter(pk=j.pk).exists()
    )
    assert job.status == "compiling" and job.attempts == 1
    crash_worker(**env)
    job = wait_for(job, until=lambda j: watch(j) or j.status in CompileJob.FINISHED)
    recovered_in = time.monotonic() - killed_at
    watch(now=True)  # once more, now that it is ready

    figure("killed during", killed_in)
    figure("time to recovery (SIGKILL to ready)", f"{recovered_in:.1f}s")
    figure("attempts", job.attempts)
    figure("download answers while watched", dict(watch.answers))
    assert job.status == "ready", job.error
    assert job.attempts == 2
    assert watch.last_round == [200] * 4
    assert set(watch.answers) <= NOT_YET | {200}

    program = Program.objects.get(pk=job.program_id)
    published = Path(program.adapter_path).parent
    assert Path(program.bundle_path).parent == published
    # This job's folders (MEDIA_ROOT outlives the test database, and with it
    # earlier runs' programs of the same id).
    left = [
        path
        for path in media_files(program_id=program.id)
        if path.startswith("tmp/") or f"-{job.id.hex[:8]}" in path
    ]
    figure("files of the program under MEDIA_ROOT", left)
    assert left == sorted(
        [str(published), str(published / "adapter.gguf"), str(published / "program.paw")]
    ), "a killed attempt left files behind"
