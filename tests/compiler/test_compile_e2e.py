"""Real compiles: a real worker process trains a real LoRA on the real base model.

Slow (about a minute of CPU per compile on 2 cores): marked `slow`, run in CI.
"""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from compiler import services
from compiler.models import CompileJob
from pawhub.bundle import read_bundle
from programs.models import Program
from tests.conftest import REPO, child_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

URGENCY = """Classify a support message by urgency: urgent, normal or low.

Examples:
Input: The whole site is down and customers cannot pay!
Output: urgent
Input: Our database server crashed, nothing works
Output: urgent
Input: Production is returning errors for every request
Output: urgent
Input: Security breach: someone is logged in as admin
Output: urgent
Input: Can you update the billing address on my invoice?
Output: normal
Input: How do I add a new user to my team?
Output: normal
Input: The export button gives me a CSV with wrong dates
Output: normal
Input: Please reset my password, I forgot it
Output: normal
Input: Love the new dark mode, thanks!
Output: low
Input: Just a suggestion: a bigger font would be nice
Output: low
Input: No rush, but is there a roadmap for next year?
Output: low
Input: FYI the footer has a typo
Output: low
"""


def wait_for(job, *, statuses=CompileJob.FINISHED, timeout=600, until=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if (until and until(job)) or (until is None and job.status in statuses):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job still {job.status} {job.stage} {job.percent}% after {timeout}s")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_spec_compiles_into_a_checked_program(celery_worker, user):
    started = time.monotonic()
    job = services.compile_submit(spec=URGENCY, owner=user, name="Urgency").job
    job = wait_for(job)
    print(f"\ncompile wall time: {time.monotonic() - started:.1f}s stages={job.stage_seconds}")
    assert job.status == "ready", job.error
    assert set(job.stage_seconds) == {
        "parsing",
        "pseudo-program",
        "training",
        "quantizing",
        "validating",
        "packaging",
    }

    program = Program.objects.get(pk=job.program_id)
    media = Path(settings.MEDIA_ROOT)
    adapter, bundle_path = media / program.adapter_path, media / program.bundle_path
    assert program.status == "ready" and program.pseudo_program.startswith("Task: ")
    assert (
        sha256(adapter) == program.adapter_sha256 and adapter.stat().st_size == program.adapter_size
    )
    assert sha256(bundle_path) == program.bundle_sha256
    bundle = read_bundle(bundle_path)
    assert bundle.meta.program_id == program.id
    assert bundle.meta.adapter_quantization == "Q4_0"
    assert bundle.adapter == adapter.read_bytes()
    # The examples use three labels again and again: the program answers with one of them.
    labels = {"kind": "choice", "choices": ["urgent", "normal", "low"]}
    assert program.output_constraint == labels and bundle.meta.output == labels
    # 12 examples: 9 to train on, 3 held out; the program must have learned its own examples.
    assert program.heldout_count == 3
    assert program.selfcheck_accuracy >= 0.8
    # How often the official SDK's free decoding gives these answers: measured, per example.
    assert program.sdk_agreement is not None and round(program.sdk_agreement * 12, 6).is_integer()
    print(f"self-check {program.selfcheck_accuracy:.2f} held-out {program.heldout_accuracy:.2f}")

    # Nothing half-written is left behind.
    assert not any((media / "tmp").iterdir())

    # Compiling the same spec again is a cache hit: no new job, at once.
    started = time.perf_counter()
    again = services.compile_submit(spec=URGENCY, owner=user)
    assert again.cache_hit and again.program.pk == program.pk
    print(f"cache hit in {(time.perf_counter() - started) * 1000:.1f} ms")

    # The management command runs the program through the same interpreter.
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "run_program",
            program.id,
            "--input",
            "The server is on fire",
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["input"] == "The server is on fire" and row["output"] in {"urgent", "normal", "low"}
