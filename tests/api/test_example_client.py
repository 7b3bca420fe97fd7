"""examples/client.py against the site running under gunicorn on the test database."""

import hashlib
import importlib.util
import json
import secrets
import subprocess
import sys
import zipfile

import pytest

from accounts.models import ApiKey
from compiler import services
from compiler.models import CompileJob
from programs.models import Program
from tests.conftest import REPO, WorkerProcess, child_env, site_process
from tests.factories import UserFactory

CLIENT = REPO / "examples" / "client.py"

_spec = importlib.util.spec_from_file_location("example_client", CLIENT)
example_client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example_client)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def live_api(django_db_setup, tmp_path_factory, media_root):
    """Base URL of the site under gunicorn, sharing the test database and media."""
    log_path = tmp_path_factory.mktemp("live_api") / "gunicorn.log"
    with site_process(
        log_path,
        "/api/v1/health",
        DEBUG="false",
        SECRET_KEY="api-tests-" + secrets.token_hex(24),
        ALLOWED_HOSTS="127.0.0.1",
        MEDIA_ROOT=str(media_root),
        DOWNLOADS_X_ACCEL_REDIRECT_PREFIX="",
    ) as url:
        yield url


def run_client(live_api, out, *args):
    return subprocess.run(
        [sys.executable, str(CLIENT), "--base-url", live_api, "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=child_env(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"),
    )


def compiled_before(spec, media_root):
    """The program the spec compiles to, marked ready with a bundle on disk, as
    if a worker had compiled it (a real compile is the slow test below)."""
    submission = services.compile_submit(spec=spec)
    program, job = submission.program, submission.job
    folder = media_root / "programs" / program.id
    folder.mkdir(parents=True)
    bundle = folder / "program.paw"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("meta.json", json.dumps({"program_id": program.id}))
    data = bundle.read_bytes()
    Program.objects.filter(pk=program.pk).update(
        status=Program.Status.READY,
        bundle_path=f"programs/{program.id}/program.paw",
        bundle_size=len(data),
        bundle_sha256=hashlib.sha256(data).hexdigest(),
    )
    CompileJob.objects.filter(pk=job.pk).update(status=CompileJob.Status.READY, percent=100)
    return program.id, data


@pytest.mark.django_db(transaction=True)
def test_client_compiles_and_downloads_the_bundle(live_api, media_root, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job: None)
    program_id, bundle = compiled_before(example_client.EXAMPLE_SPEC, media_root)
    result = run_client(live_api, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"program {program_id}" in result.stdout and "compiled before" in result.stdout
    assert (tmp_path / f"{program_id}.paw").read_bytes() == bundle
    assert Program.objects.get(pk=program_id).download_count == 1


@pytest.mark.django_db(transaction=True)
def test_client_reports_api_errors(live_api, tmp_path):
    spec = tmp_path / "spec.txt"
    spec.write_text("Do something useful with text.")
    result = run_client(live_api, tmp_path, "--spec-file", str(spec))
    assert result.returncode == 1
    assert "HTTP 422" in result.stderr and "at least 2 examples" in result.stderr
    assert "request id" in result.stderr


SLOW_SPEC = """Say whether a sentence is a question: yes or no.

Examples:
Input: Where is the train station?
Output: yes
Input: The train leaves at noon.
Output: no
Input: Can you help me with this form?
Output: yes
Input: I like green tea.
Output: no
Input: Is it going to rain today?
Output: yes
Input: My brother lives in Lyon.
Output: no
Input: What time does the shop open?
Output: yes
Input: The report is finished.
Output: no
"""


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_client_with_a_real_compile(live_api, media_root, tmp_path):
    """The whole story: a real worker compiles the spec the client sends, into
    the media folder the live site serves downloads from."""
    worker = WorkerProcess(tmp_path / "worker.log", MEDIA_ROOT=str(media_root))
    _, token = ApiKey.create_for(user=UserFactory(), name="client.py")
    spec = tmp_path / "spec.txt"
    spec.write_text(SLOW_SPEC)
    try:
        worker.start()
        result = run_client(live_api, tmp_path, "--spec-file", str(spec), "--api-key", token)
    finally:
        worker.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    program = Program.objects.get()
    assert program.is_ready and program.owner.api_keys.get().last_used_at
    path = tmp_path / f"{program.id}.paw"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == program.bundle_sha256
    assert "ready" in result.stdout and "training" in result.stdout
