"""Compile work that crosses systems: the database, Celery and files on disk."""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from paw_site import limits
from programs.models import Program, program_id_for
from programs.services import tags_named

from . import registry
from .models import CompileJob
from .spec import SpecError, normalize_spec, validate_spec

log = logging.getLogger(__name__)

# Compile jobs queued or running at once: anonymous per IP, signed-in per user.
CONCURRENT_COMPILES = {"anonymous": 1, "user": 2}
CONCURRENCY_RETRY_AFTER = 30
SLOT_WAIT_SECONDS = 5  # how long a compile request waits for the caller's other one


@dataclass
class Submission:
    program: Program
    job: CompileJob | None  # None for a cache hit on a ready program
    cache_hit: bool = False  # the program was already compiled
    joined: bool = False  # an identical compile was already running


def compile_submit(
    *,
    spec,
    owner=None,
    compiler=None,
    name="",
    tags=(),
    is_public=True,
    client_ip=None,
    caller: limits.Caller | None = None,
) -> Submission:
    """Start compiling `spec`, or return the program/job that already answers it.

    With a `caller` (every front door passes one), the caller's compile quota
    is counted and its concurrent-compile slot held: limits.RateLimited when over.
    Raises SpecError or registry.UnknownCompiler with a message for the author.
    """
    if caller is not None:
        limits.hit("compile", caller)
        owner = caller.user
        client_ip = caller.ip or None
        with compile_slot(caller):
            return _submit(spec, owner, compiler, name, tags, is_public, client_ip)
    return _submit(spec, owner, compiler, name, tags, is_public, client_ip)


@contextmanager
def compile_slot(caller: limits.Caller):
    """Hold the caller's compile slot while a compile is submitted: refuse when
    the caller already has its share of queued or running jobs. A short cache
    lock makes check-then-submit one step, so two requests at once cannot both
    take the last slot."""
    if caller.is_authenticated:
        allowed = CONCURRENT_COMPILES["user"]
        active = CompileJob.objects.active().filter(owner=caller.user)
    else:
        allowed = CONCURRENT_COMPILES["anonymous"]
        active = CompileJob.objects.active().filter(owner=None, client_ip=caller.ip or None)
    lock = f"compile-slot:{caller.key}"
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while not cache.add(lock, 1, timeout=30):
        if time.monotonic() > deadline:
            raise limits.RateLimited(
                "compile", 1, "Another compile request of yours is being handled."
            )
        time.sleep(0.05)
    try:
        if active.count() >= allowed:
            raise limits.RateLimited(
                "concurrent_compiles",
                CONCURRENCY_RETRY_AFTER,
                f"You have {allowed} compile{'s' if allowed > 1 else ''} queued or running; "
                "wait for one to finish or cancel it.",
                limit=allowed,
                error="too_many_compiles",
                details={"concurrent_limit": allowed},
            )
        yield
    finally:
        cache.delete(lock)


def _submit(spec, owner, compiler, name, tags, is_public, client_ip) -> Submission:
    validate_spec(spec)
    snapshot = registry.resolve(compiler)
    normalized = normalize_spec(spec)
    owner = owner if owner is not None and owner.is_authenticated else None
    is_public = is_public or owner is None  # an anonymous compile has no one to be private to
    program_id = program_id_for(
        normalized_spec=normalized,
        fingerprint=snapshot.fingerprint,
        private_owner_id=None if is_public else owner.pk,
    )
    with transaction.atomic():
        program, created = Program.objects.select_for_update().get_or_create(
            id=program_id,
            defaults={
                "owner": owner,
                "name": name[:100],
                "spec": normalized,
                "compiler_alias": snapshot.alias,
                "compiler_snapshot": snapshot.name,
                "compiler_fingerprint": snapshot.fingerprint,
                "is_public": is_public,
            },
        )
        if created:
            program.tags.set(tags_named(tags))
        elif program.is_hidden and not _may_see_hidden(owner, program):
            raise SpecError(
                "A program compiled from this exact spec was removed by moderators. "
                "Change the spec to compile a new program."
            )
        elif program.is_ready:
            return Submission(program=program, job=None, cache_hit=True)
        else:
            running = program.jobs.active().first()
            if running:
                return Submission(program=program, job=running, joined=True)
            # Failed or cancelled before: compile again.
            program.status = Program.Status.COMPILING
            program.save(update_fields=["status", "updated_at"])
        job = CompileJob.objects.create(program=program, owner=owner, client_ip=client_ip)
        transaction.on_commit(lambda: enqueue(job))
    return Submission(program=program, job=job)


def _may_see_hidden(user, program):
    return user is not None and (user == program.owner or user.is_staff)


def enqueue(job):
    """Send the job to its compile queue. A broker that cannot be reached is
    logged, not raised: the job is committed by now, and the sweeper resends
    queued jobs that no worker took (`sweep_stale_jobs`)."""
    from .tasks import compile_program

    # vLLM compiles go to the queue only GPU hosts' workers consume.
    queue = registry.compile_queue(job.program.compiler_snapshot)
    try:
        compile_program.apply_async(args=[str(job.id)], queue=queue)
    except OperationalError:
        log.warning("compile job %s not sent: the broker is unreachable", job.pk, exc_info=True)


def compile_cancel(*, job: CompileJob) -> bool:
    """Cancel an active job; the worker stops at its next progress report."""
    with transaction.atomic():
        updated = CompileJob.objects.filter(pk=job.pk, status__in=CompileJob.ACTIVE).update(
            status=CompileJob.Status.CANCELLED, finished_at=timezone.now(), error="Cancelled."
        )
        if updated:
            Program.objects.filter(pk=job.program_id, status=Program.Status.COMPILING).update(
                status=Program.Status.FAILED
            )
    job.refresh_from_db()
    return bool(updated)


def job_fail(job_id, reason, *, attempt=None, detail=""):
    """Mark a job failed (if it is still active) and its program with it. An
    attempt failing (`attempt`: the job as its claim saved it) fails the job only
    while it still runs it: one that was taken over leaves the job to its successor.
    `reason` is shown to the owner; `detail` (e.g. a traceback) only to staff."""
    jobs = CompileJob.objects.filter(pk=job_id)
    jobs = jobs.active() if attempt is None else jobs.held_by(attempt)
    with transaction.atomic():
        updated = jobs.update(
            status=CompileJob.Status.FAILED,
            error=reason,
            error_detail=detail,
            finished_at=timezone.now(),
        )
        if updated:
            Program.objects.filter(jobs__pk=job_id, status=Program.Status.COMPILING).update(
                status=Program.Status.FAILED
            )
    return bool(updated)


def sweep_stale_jobs():
    """Recover compiling jobs whose worker died without the broker redelivering
    them yet: re-enqueue while attempts remain, else fail them. Resend queued
    jobs no worker has taken for COMPILE_RESEND_QUEUED_SECONDS: their message
    may be lost (the broker was down when it was sent, or lost its data); a
    duplicate is harmless, the claim runs a job once. Returns the number of
    jobs touched. Runs periodically (celery beat) and at worker start."""
    touched = 0
    for job in CompileJob.objects.unsent():
        # Guarded by the last send, so two sweepers resend it once.
        resent = CompileJob.objects.filter(
            pk=job.pk, status=CompileJob.Status.QUEUED, heartbeat_at=job.heartbeat_at
        ).update(heartbeat_at=timezone.now())
        if resent:
            log.warning("resending compile job %s, queued since %s", job.pk, job.created_at)
            transaction.on_commit(lambda job=job: enqueue(job))
            touched += 1
    for job in CompileJob.objects.stale():
        if job.attempts >= settings.COMPILE_MAX_ATTEMPTS:
            touched += job_fail(
                job.pk,
                f"The compile worker stopped responding {job.attempts} times; giving up.",
                attempt=job,
            )
            continue
        # Back to queued, guarded by the attempt and its stale heartbeat: one that
        # reported or published since the sweeper looked is never raced.
        requeued = (
            CompileJob.objects.held_by(job)
            .filter(heartbeat_at=job.heartbeat_at)
            .update(status=CompileJob.Status.QUEUED, worker="", heartbeat_at=timezone.now())
        )
        if requeued:
            log.warning("re-enqueueing stale compile job %s", job.pk)
            transaction.on_commit(lambda job=job: enqueue(job))
            touched += 1
    return touched


def job_progress(attempt, *, stage, percent):
    """Record an attempt's progress and heartbeat (`attempt`: the job as its claim
    saved it). False once the attempt no longer runs the job: it was cancelled,
    or its heartbeat went stale and the sweeper gave the job to another attempt."""
    return bool(
        CompileJob.objects.held_by(attempt).update(
            stage=stage, percent=percent, heartbeat_at=timezone.now()
        )
    )


# How many finished compiles the wait estimate averages over.
ESTIMATE_SAMPLE = 20


def compile_queue_length() -> int:
    """Compile jobs waiting for a worker."""
    return CompileJob.objects.filter(status=CompileJob.Status.QUEUED).count()


def compile_mean_seconds() -> float | None:
    """The mean duration of the last ESTIMATE_SAMPLE successful compiles; None without any."""
    recent = (
        CompileJob.objects.filter(
            status=CompileJob.Status.READY, started_at__isnull=False, finished_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:ESTIMATE_SAMPLE]
    )
    durations = [(end - start).total_seconds() for start, end in recent]
    return sum(durations) / len(durations) if durations else None


def compile_queue_position(*, job) -> int | None:
    """Queued jobs created before `job`, plus one; None when it is not queued."""
    if job.status != CompileJob.Status.QUEUED:
        return None
    ahead = CompileJob.objects.filter(
        status=CompileJob.Status.QUEUED, created_at__lt=job.created_at
    ).count()
    return ahead + 1


def compile_estimate(*, job=None) -> float | None:
    """Seconds until `job` is done (or, without one, until a new compile would
    be): the jobs ahead of it and itself, one after another, at the recent mean
    duration. A rough figure: workers run jobs side by side. None when unknown
    or when the job is finished."""
    mean = compile_mean_seconds()
    if mean is None or (job is not None and job.status in CompileJob.FINISHED):
        return None
    if job is None:
        return round(mean * (compile_queue_length() + 1), 1)
    if job.status == CompileJob.Status.COMPILING:
        left = mean * (100 - job.percent) / 100
        return round(max(left, 0.0), 1)
    return round(mean * (compile_queue_position(job=job) or 1), 1)


def compile_precheck(*, spec, user, compiler=None):
    """(snapshot, the ready public program that already answers `spec` or None):
    what a public compile of it would be. Raises SpecError or
    registry.UnknownCompiler as compile_submit does."""
    validate_spec(spec)
    snapshot = registry.resolve(compiler)
    program_id = program_id_for(
        normalized_spec=normalize_spec(spec),
        fingerprint=snapshot.fingerprint,
        private_owner_id=None,
    )
    program = (
        Program.objects.visible_to(user).filter(pk=program_id, status=Program.Status.READY).first()
    )
    return snapshot, program
