"""A site that spans hosts: a worker with a disk of its own compiles a program into
S3 (a real SeaweedFS server), the site serves the files from there, and the same
worker, as a runtime worker, runs the program from a copy it caches by sha256.

The worker's MEDIA_ROOT differs from the site's (this process), so nothing
can pass through a shared folder. Slow: one real compile (training included).
"""

import hashlib
import time

import pytest
from django.conf import settings
from django.urls import reverse

from compiler import services
from compiler.models import CompileJob
from pawhub.bundle import read_bundle
from programs.artifacts import artifact_local_path, artifact_storage
from programs.models import Program
from runtime.services import program_run
from tests.compiler.test_compile_e2e import URGENCY, wait_for
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]


@pytest.fixture
def remote_worker(s3_storage, tmp_path):
    """A worker on "another host": its own MEDIA_ROOT and cache, the same bucket."""
    worker_disk = tmp_path / "worker-host"
    worker = WorkerProcess(
        tmp_path / "worker.log",
        queues="default,compile,runtime",
        MEDIA_ROOT=worker_disk / "media",
        ARTIFACT_CACHE_DIR=worker_disk / "artifact-cache",
        **s3_storage,
    )
    try:
        worker.start()
        yield worker_disk
    finally:
        worker.stop()


def body(response):
    return b"".join(response.streaming_content)


def test_a_compile_on_another_host_downloads_from_object_storage(remote_worker, client, user):
    site_media = settings.MEDIA_ROOT
    started = time.monotonic()
    job = services.compile_submit(
        spec=URGENCY + "\nHints:\n- object storage", owner=user, name="Urgency"
    ).job
    job = wait_for(job)
    print(f"\ncompile wall time: {time.monotonic() - started:.1f}s")
    assert job.status == CompileJob.Status.READY, job.error
    program = Program.objects.get(pk=job.program_id)

    # The files are objects in the bucket, on no one's disk.
    storage = artifact_storage()
    for kind in ("adapter", "bundle"):
        key = getattr(program, f"{kind}_path")
        assert storage.exists(key), key
        assert storage.size(key) == getattr(program, f"{kind}_size")
        assert not (site_media / key).exists()
        assert not (remote_worker / "media" / key).exists()
    assert not any((remote_worker / "media" / "tmp").iterdir())  # nothing left half-done

    # The site serves them with the usual contract.
    for kind in ("adapter", "bundle"):
        url = reverse("program_download", args=[program.id, kind])
        whole = client.get(url)
        assert whole.status_code == 200
        data = body(whole)
        sha = hashlib.sha256(data).hexdigest()
        assert sha == getattr(program, f"{kind}_sha256")
        assert whole["ETag"] == f'"{sha}"'
        assert client.get(url, headers={"If-None-Match": whole["ETag"]}).status_code == 304
        piece = client.get(url, headers={"Range": "bytes=10-1033"})
        assert piece.status_code == 206 and body(piece) == data[10:1034]
    # What needs a real file (reading a bundle, llama.cpp) gets a verified copy.
    bundle = read_bundle(artifact_local_path(program.bundle_path, sha256=program.bundle_sha256))
    assert bundle.meta.program_id == program.id
    assert Program.objects.get(pk=program.pk).download_count == 2

    # A runtime worker with no shared disk runs it from its sha256-keyed copy.
    answer = program_run(program=program, input_text="The whole site is down!")
    print(f"answer: {answer.output!r}")
    assert answer.output in {"urgent", "normal", "low"}
    cached = remote_worker / "artifact-cache" / f"{program.adapter_sha256}.gguf"
    assert cached.is_file()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == program.adapter_sha256
