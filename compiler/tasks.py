"""Celery tasks of the compile queue. They take ids and are idempotent by status."""

import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path

import psutil
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from programs import artifacts
from programs.models import Program
from programs.semantic import program_embed

from . import registry, services
from .models import STAGE_END, STAGE_START, CompileJob
from .pipeline import ADAPTER_FILE, BUNDLE_FILE, run_pipeline
from .spec import SpecError

log = logging.getLogger(__name__)
HOST = socket.gethostname()
# Progress is written at most this often (plus at every stage change).
PROGRESS_INTERVAL_SECONDS = 1.0


class JobStopped(Exception):
    """The job was cancelled, or another attempt took it over: stop quietly."""


def this_worker():
    return f"{HOST}:{os.getpid()}"


def _owner_alive(job):
    """Whether the attempt recorded on `job` may still be running."""
    host, _, pid = job.worker.rpartition(":")
    if host == HOST and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            # A killed process stays a zombie until its parent reaps it.
            return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    return True  # another host: trust its heartbeat


def claim(job_id):
    """Take the job for this process, or return None when there is nothing to do:
    it is finished, cancelled, or a live attempt elsewhere is running it."""
    with transaction.atomic():
        job = CompileJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in CompileJob.FINISHED:
            return None
        if (
            job.status == CompileJob.Status.COMPILING
            and _owner_alive(job)
            and not CompileJob.objects.stale().filter(pk=job.pk).exists()
        ):
            return None  # a duplicate delivery while a live attempt runs
        if job.attempts >= settings.COMPILE_MAX_ATTEMPTS:
            services.job_fail(
                job.pk,
                f"The compile was interrupted {job.attempts} time(s) by a worker crash; giving up.",
            )
            return None
        now = timezone.now()
        job.status = CompileJob.Status.COMPILING
        job.attempts += 1
        job.worker = this_worker()
        job.heartbeat_at = now
        job.started_at = now
        job.stage, job.percent, job.stage_seconds = "parsing", 0, {}
        job.error = job.error_detail = ""
        job.save()
        return job


def make_reporter(job):
    """`report(stage, fraction)` for the pipeline of the attempt that claimed `job`;
    it raises JobStopped once that attempt no longer runs the job."""
    last = {"stage": None, "percent": -1, "at": 0.0}

    def report(stage, fraction):
        start, end = STAGE_START.get(stage, 0), STAGE_END.get(stage, 100)
        percent = int(start + (end - start) * max(0.0, min(1.0, fraction)))
        now = time.monotonic()
        if stage == last["stage"] and (
            percent == last["percent"] or now - last["at"] < PROGRESS_INTERVAL_SECONDS
        ):
            return
        last.update(stage=stage, percent=percent, at=now)
        if not services.job_progress(job, stage=stage, percent=percent):
            raise JobStopped()

    return report


def publish(job, program, result, workdir):
    """Put the finished artifacts in storage and point the program at them, if
    the attempt that claimed `job` still runs it.

    Each attempt publishes under a folder (key prefix) of its own. On local
    storage the work folder is renamed into place (atomic) inside the
    transaction that marks the job ready and only once the job's row, locked by
    that update, says this attempt owns it. On remote storage (programs/artifacts.py)
    the files are uploaded first, each object appearing whole, and that same
    transaction is what points the program at them. So a download never sees a
    half-written file, and an attempt that was taken over never touches the
    files another attempt's ready program points at."""
    relative = f"programs/{program.id}-{job.id.hex[:8]}-{job.attempts}"
    names = (ADAPTER_FILE, BUNDLE_FILE)
    local = artifacts.is_local()
    if local:
        keys = {name: f"{relative}/{name}" for name in names}
        final = artifacts.local_folder(relative)
        final.parent.mkdir(parents=True, exist_ok=True)
    else:
        # Uploading takes a while: not for an attempt already taken over (whose
        # work folder the new attempt may have removed). One taken over during
        # the upload is caught by the transaction below, which deletes the objects.
        if not CompileJob.objects.held_by(job).exists():
            raise JobStopped()
        keys = artifacts.artifact_upload(folder=workdir, prefix=relative, names=names)
    try:
        with transaction.atomic():
            updated = CompileJob.objects.held_by(job).update(
                status=CompileJob.Status.READY,
                stage="done",
                percent=100,
                stage_seconds=result.stage_seconds,
                finished_at=timezone.now(),
            )
            if not updated:
                raise JobStopped()
            if local:
                os.replace(workdir, final)
            Program.objects.filter(pk=program.pk).update(
                status=Program.Status.READY,
                pseudo_program=result.pseudo_program,
                output_constraint=result.output_constraint,
                example_count=result.example_count,
                selfcheck_accuracy=result.selfcheck_accuracy,
                heldout_accuracy=result.heldout_accuracy,
                heldout_count=result.heldout_count,
                sdk_agreement=result.sdk_agreement,
                adapter_path=keys[ADAPTER_FILE],
                adapter_size=result.adapter_size,
                adapter_sha256=result.adapter_sha256,
                bundle_path=keys[BUNDLE_FILE],
                bundle_size=result.bundle_size,
                bundle_sha256=result.bundle_sha256,
                ready_at=timezone.now(),
            )
    except BaseException:
        # Not committed: nothing points at this attempt's files.
        if local:
            shutil.rmtree(final, ignore_errors=True)
        else:
            artifacts.artifact_delete(keys.values())
        raise
    program_embed(program_id=program.pk)  # for search by meaning, once per program


def fail(job, reason, detail=""):
    """Fail the job for the attempt that claimed `job`: "failed", or "stopped" when
    it no longer runs the job (taken over by another attempt, or cancelled)."""
    return "failed" if services.job_fail(job.pk, reason, attempt=job, detail=detail) else "stopped"


@shared_task(
    bind=True,
    soft_time_limit=settings.COMPILE_SOFT_TIME_LIMIT,
    time_limit=settings.COMPILE_HARD_TIME_LIMIT,
)
def compile_program(self, job_id):
    job = claim(job_id)
    if job is None:
        return "skipped"
    program = job.program
    tmp_root = Path(settings.MEDIA_ROOT) / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    # Work folders of earlier attempts whose worker was killed (a SIGKILL runs
    # no `finally`): the claim made this the one attempt at the program now (one
    # taken over while still alive stops at its next progress report or publish).
    for leftover in tmp_root.glob(f"{program.id}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    # A fresh directory per attempt: a half-done earlier attempt leaves nothing reused.
    workdir = Path(tempfile.mkdtemp(prefix=f"{program.id}-", dir=tmp_root))
    try:
        result = run_pipeline(
            program_id=program.id,
            spec=program.spec,
            snapshot=registry.resolve(program.compiler_snapshot),
            workdir=workdir,
            report=make_reporter(job),
            model_cache=settings.MODEL_CACHE_DIR,
        )
        publish(job, program, result, workdir)
        return "ready"
    except JobStopped:
        return "stopped"
    except SoftTimeLimitExceeded:
        return fail(job, "The compile took longer than the time limit and was stopped.")
    except (SpecError, registry.UnknownCompiler) as exc:
        return fail(job, str(exc))
    except Exception as exc:
        # The exception's text may name paths, settings or library internals: it
        # goes to the log (with the job id) and to the job's admin page, the user
        # gets a sentence.
        log.exception("compile job %s failed: %s", job.pk, exc)
        stage = CompileJob.objects.filter(pk=job.pk).values_list("stage", flat=True).first()
        return fail(
            job,
            f"Something went wrong on our side while {stage or 'compiling'}; the admins "
            f"can find the details in the logs under job {job.pk}.",
            detail=traceback.format_exc(),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@shared_task
def sweep_stale_jobs():
    return services.sweep_stale_jobs()


@worker_ready.connect
def _sweep_on_worker_start(sender, **kwargs):
    # Jobs orphaned by a crash while no worker ran are picked up right away.
    sweep_stale_jobs.delay()
