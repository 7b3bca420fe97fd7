"""Two attempts at one compile job. The first is slow but alive; its heartbeat
goes stale and the sweeper hands the job to a second attempt. From then on the
first attempt must stop at its next progress report, must never fail the job
the second one runs, and must never touch the files the second one published:
the files served keep matching the sha256 the program records.

Both attempts run in this process, the second inside the first one's slow step,
through the task's own functions and the database. The pipeline is replaced at
the boundary the task calls (`run_pipeline`) by one that writes small files
saying which attempt made them. Real workers crashing mid-compile on the real
model are in test_compile_recovery.py and tests/reliability/.
"""

import contextlib
import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from compiler import services, tasks
from compiler.models import STAGES, CompileJob, CompileJobQuerySet
from compiler.pipeline import CompileResult, sha256_file
from programs.artifacts import artifact_storage
from programs.models import Program
from tests.compiler.test_compile_e2e import URGENCY

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def running(request, settings, tmp_path, monkeypatch):
    """The attempts whose process is running now, innermost last: this process
    plays the worker process of each one in turn. Files published to MEDIA_ROOT
    (local), or uploaded to a real S3 server (s3)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    stack = []
    monkeypatch.setattr(tasks, "this_worker", lambda: stack[-1].worker)
    monkeypatch.setattr(tasks, "run_pipeline", lambda **kwargs: stack[-1].pipeline(**kwargs))
    monkeypatch.setattr(services, "enqueue", lambda job: None)  # the test runs each attempt
    monkeypatch.setattr(tasks, "program_embed", lambda program_id: None)  # search has its tests
    return stack


class Attempt:
    """One attempt at the job, in a worker process of its own (`worker`).

    Its pipeline reports every stage as the real one does and writes an adapter
    and a bundle whose bytes name the attempt. It is slow at `slow_at` (a stage,
    or "end": finished, not yet published): there `meanwhile` runs, which is what
    the rest of the system does in the meantime; then it raises if `fails`."""

    def __init__(self, running, name, *, slow_at=None, meanwhile=None, fails=False):
        self.running = running
        self.name = name
        self.worker = f"worker-{name}.example:{100 + len(name)}"
        self.slow_at, self.meanwhile, self.fails = slow_at, meanwhile, fails
        self.reached = []

    @contextlib.contextmanager
    def process(self):
        self.running.append(self)
        try:
            yield
        finally:
            self.running.pop()

    def run(self, job):
        """The compile task, from its claim to its result."""
        with self.process():
            return tasks.compile_program(str(job.pk))

    def claim(self, job):
        """The task's start alone: the attempt is running from here on."""
        with self.process():
            claimed = tasks.claim(job.pk)
        assert claimed is not None
        return claimed

    def publish(self, claimed):
        """The rest of a claimed attempt, at once: its files, then the task's publish."""
        with self.process():
            media = Path(settings.MEDIA_ROOT)
            (media / "tmp").mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"{claimed.program_id}-", dir=media / "tmp"))
            self.write(workdir)
            tasks.publish(claimed, claimed.program, self.result(workdir), workdir)

    def pipeline(self, *, workdir, report, **_):
        for stage in [name for name, _ in STAGES] + ["done"]:
            report(stage, 0.0)
            self.reached.append(stage)
            if stage == "packaging":
                self.write(workdir)
            if stage == self.slow_at:
                self.slow()
        result = self.result(workdir)
        if self.slow_at == "end":
            self.slow()
        return result

    def slow(self):
        self.meanwhile()
        if self.fails:
            raise RuntimeError(f"attempt {self.name} ran out of memory")

    def write(self, workdir):
        (workdir / "adapter.gguf").write_bytes(f"adapter of attempt {self.name}".encode())
        (workdir / "program.paw").write_bytes(f"bundle of attempt {self.name}".encode())

    def result(self, workdir):
        adapter, bundle = workdir / "adapter.gguf", workdir / "program.paw"
        return CompileResult(
            pseudo_program=f"pseudo-program of attempt {self.name}",
            prompt_template="",
            example_count=12,
            selfcheck_accuracy=1.0,
            heldout_accuracy=None,
            heldout_count=0,
            sdk_agreement=1.0,
            adapter_size=adapter.stat().st_size,
            adapter_sha256=sha256_file(adapter),
            bundle_size=bundle.stat().st_size,
            bundle_sha256=sha256_file(bundle),
        )


def heartbeat_goes_stale(job):
    """The slow attempt has not reported for longer than the stale limit."""
    long_ago = timezone.now() - timedelta(seconds=settings.COMPILE_HEARTBEAT_STALE_SECONDS + 1)
    CompileJob.objects.filter(pk=job.pk).update(heartbeat_at=long_ago)


def heartbeat_goes_stale_and_the_sweeper_runs(job):
    heartbeat_goes_stale(job)
    assert services.sweep_stale_jobs() == 1
    job.refresh_from_db()
    assert job.status == "queued"


@pytest.fixture
def job(user):
    return services.compile_submit(spec=URGENCY, owner=user).job


def served(client, program, kind):
    response = client.get(f"/p/{program.id}/download/{kind}/")
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def assert_published_by(attempt, program, client):
    """The program is ready with `attempt`'s files, and what is served is what it records."""
    program.refresh_from_db()
    assert program.status == "ready"
    assert program.pseudo_program == f"pseudo-program of attempt {attempt.name}"
    for kind in ("adapter", "bundle"):
        body = served(client, program, kind)
        assert body == f"{kind} of attempt {attempt.name}".encode()
        assert hashlib.sha256(body).hexdigest() == getattr(program, f"{kind}_sha256")
        assert len(body) == getattr(program, f"{kind}_size")


def test_a_superseded_attempt_stops_at_its_next_progress_report(running, job, client, user):
    second = Attempt(running, "second")
    claimed = {}

    def taken_over():
        heartbeat_goes_stale_and_the_sweeper_runs(job)
        claimed["second"] = second.claim(job)

    first = Attempt(running, "first", slow_at="pseudo-program", meanwhile=taken_over)

    outcome = first.run(job)
    assert first.reached == ["parsing", "pseudo-program"]  # no stage after the takeover
    job.refresh_from_db()
    # The row is the second attempt's, as it claimed it: the first wrote nothing.
    assert (job.status, job.worker, job.attempts) == ("compiling", second.worker, 2)
    assert (job.stage, job.percent) == ("parsing", 0)
    assert job.heartbeat_at == claimed["second"].heartbeat_at
    assert outcome == "stopped"

    second.publish(claimed["second"])
    job.refresh_from_db()
    assert job.status == "ready"
    client.force_login(user)
    assert_published_by(second, job.program, client)


def test_a_superseded_attempt_that_fails_does_not_fail_the_job(running, job, client, user):
    second = Attempt(running, "second")
    claimed = {}

    def taken_over():
        heartbeat_goes_stale_and_the_sweeper_runs(job)
        claimed["second"] = second.claim(job)

    first = Attempt(running, "first", slow_at="training", meanwhile=taken_over, fails=True)

    outcome = first.run(job)
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts, job.error) == ("compiling", second.worker, 2, "")
    assert Program.objects.get(pk=job.program_id).status == "compiling"
    assert outcome == "stopped"

    second.publish(claimed["second"])
    job.refresh_from_db()
    assert job.status == "ready"
    client.force_login(user)
    assert_published_by(second, job.program, client)


def test_a_superseded_attempt_that_finishes_last_leaves_the_published_files_alone(
    running, job, client, user
):
    second = Attempt(running, "second")

    def taken_over_and_finished():
        heartbeat_goes_stale_and_the_sweeper_runs(job)
        assert second.run(job) == "ready"
        client.force_login(user)
        assert_published_by(second, job.program, client)

    first = Attempt(running, "first", slow_at="end", meanwhile=taken_over_and_finished)

    outcome = first.run(job)
    assert_published_by(second, job.program, client)
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts, job.error) == ("ready", second.worker, 2, "")
    assert outcome == "stopped"
    # Nothing of the first attempt is left: one published folder, no work folder.
    media = Path(settings.MEDIA_ROOT)
    program = Program.objects.get(pk=job.program_id)
    folders, files = artifact_storage().listdir("programs")
    assert (folders, files) == ([Path(program.adapter_path).parent.name], [])
    assert list((media / "tmp").iterdir()) == []


def test_the_sweeper_leaves_alone_a_job_published_after_it_looked(
    running, job, client, user, monkeypatch
):
    seen_stale = []

    def goes_stale_and_the_sweeper_looks():
        heartbeat_goes_stale(job)
        seen_stale.extend(CompileJob.objects.stale())

    first = Attempt(running, "first", slow_at="end", meanwhile=goes_stale_and_the_sweeper_looks)
    assert first.run(job) == "ready"
    assert [stale.pk for stale in seen_stale] == [job.pk]

    # The sweeper goes on from what it read, as if the publish happened in between.
    monkeypatch.setattr(CompileJobQuerySet, "stale", lambda jobs: seen_stale)
    assert services.sweep_stale_jobs() == 0
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == ("ready", first.worker, 1)
    client.force_login(user)
    assert_published_by(first, job.program, client)


def test_an_attempt_taken_over_during_its_upload_deletes_what_it_uploaded(
    running, job, client, user, monkeypatch
):
    """Remote storage: the objects are uploaded before the transaction that
    publishes them; when that transaction finds the job is no longer this
    attempt's, the objects go and the program points at nothing of it."""
    from programs import artifacts

    if artifacts.is_local():
        pytest.skip("local storage renames the folder inside the transaction")
    upload = artifacts.artifact_upload
    uploaded = {}

    def upload_then_taken_over(**kwargs):
        uploaded.update(upload(**kwargs))
        heartbeat_goes_stale_and_the_sweeper_runs(job)
        return uploaded

    monkeypatch.setattr(artifacts, "artifact_upload", upload_then_taken_over)
    first = Attempt(running, "first")
    assert first.run(job) == "stopped"
    storage = artifact_storage()
    assert len(uploaded) == 2
    assert not any(storage.exists(key) for key in uploaded.values())
    # (SeaweedFS may keep the emptied "folder" as a prefix: no objects are left in it.)
    folder = str(Path(next(iter(uploaded.values()))).parent)
    assert storage.listdir(folder)[1] == []
    job.refresh_from_db()
    assert job.status == "queued"
    assert Program.objects.get(pk=job.program_id).adapter_path == ""
