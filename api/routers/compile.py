"""Compiling: `POST /compile` answers when the program is ready (as the PAW SDK
expects), `POST /compile/async` at once with a job to poll, `POST
/compile/precheck` says whether a compile would be a cache hit."""

import asyncio
import time
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.shortcuts import get_object_or_404
from ninja import Router, Status

from compiler import registry, services
from compiler.models import CompileJob
from compiler.spec import SpecError
from pawhub import manifest
from programs import services as program_services
from programs.models import Program

from .. import ratelimit
from ..auth import ANYONE, ANYONE_OPENAPI, SIGNED_IN
from ..errors import ApiError
from ..schemas import (
    CompileIn,
    CompileOut,
    CompileResultOut,
    JobOut,
    PrecheckIn,
    PrecheckOut,
    errors,
)

router = Router(tags=["compile"])

# Every compiler of this hub fine-tunes an adapter (the PAW SDK's `compiler_kind`).
COMPILER_KIND = "finetune"
RUNTIME = {
    "runtime_id": manifest.RUNTIME_ID,
    "runtime_manifest_version": manifest.MANIFEST_VERSION,
}
# How often the blocking compile looks at its job.
POLL_SECONDS = 1.0


def job_out(job):
    return {
        "job_id": job.id,
        "program_id": job.program_id,
        "status": job.status,
        "stage": job.stage,
        "percent": job.percent,
        "error": job.error or None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "completed_at": job.finished_at,
        "compiler_snapshot": job.program.compiler_snapshot,
        "compiler_kind": COMPILER_KIND,
        "cached": False,
        "queue_length": services.compile_queue_length(),
        "estimated_wait_s": services.compile_estimate(job=job),
        **RUNTIME,
    }


def _submit(request, payload: CompileIn) -> dict:
    """Start the compile (or find what answers it); the body of POST /compile/async."""
    try:
        registry.resolve(payload.compiler)
    except registry.UnknownCompiler as exc:
        raise ApiError(400, str(exc), error="unknown_compiler") from exc
    if payload.slug and not request.user.is_authenticated:
        raise ApiError(401, "Sign in (or send an API key) to name a program.")
    try:
        submission = services.compile_submit(
            spec=payload.spec,
            compiler=payload.compiler,
            name=payload.name,
            tags=payload.tags,
            is_public=payload.public,
            caller=ratelimit.caller(request),
        )
    except SpecError as exc:  # e.g. the spec's program was removed by moderators
        raise ApiError(422, str(exc), error="invalid_spec") from exc
    program, job = submission.program, submission.job
    version_action = None
    if payload.slug:
        alias, created = _name(request, program, payload.slug)
        version_action = "created" if created else "no_change"
    else:
        alias = program.primary_alias
    if job is None:
        job = program.jobs.filter(status=CompileJob.Status.READY).first()
    return {
        "job_id": job.id if job else None,
        "status": job.status if job else program.status,
        "program_id": program.id,
        "slug": alias.name if alias else None,
        "pseudo_program": program.pseudo_program,
        "compiler_snapshot": program.compiler_snapshot,
        "compiler_kind": COMPILER_KIND,
        "version": alias.version if alias else None,
        "version_action": version_action,
        "cache_hit": submission.cache_hit,
        "cached": submission.cache_hit,
        "joined": submission.joined,
        "queue_position": services.compile_queue_position(job=job) if job else None,
        "estimated_wait_s": services.compile_estimate(job=job) if job else None,
        **RUNTIME,
    }


@router.post(
    "/compile/async",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={202: CompileOut} | errors(400, 401, 403, 409, 422, 429),
    summary="Start compiling a spec; poll the job",
)
def compile_async(request, payload: CompileIn):
    """Answers at once. A spec compiled before with the same compiler is a cache
    hit (`cache_hit`, status `ready`, nothing runs); one being compiled right now
    gives that running job (`joined`). Always 202."""
    return Status(202, _submit(request, payload))


@router.post(
    "/compile",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: CompileResultOut} | errors(400, 401, 403, 409, 422, 429),
    summary="Compile a spec and answer when the program is ready (or failed)",
)
async def compile_blocking(request, payload: CompileIn):
    """What `paw.compile()` of the PAW SDK calls. The request waits for the compile
    job (minutes on CPUs; up to COMPILE_WAIT_SECONDS, after which it answers with
    the job still `queued` or `compiling`, to poll). The wait is an async sleep,
    so under ASGI a waiting compile holds no server thread. For a compile that
    should not hold the connection, use POST /compile/async."""
    started = time.monotonic()
    body = await sync_to_async(_submit)(request, payload)
    job_id = body["job_id"]
    job = None
    deadline = started + settings.COMPILE_WAIT_SECONDS
    while job_id is not None:
        job = await CompileJob.objects.aget(pk=job_id)
        if job.status in CompileJob.FINISHED or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    program = await Program.objects.aget(pk=body["program_id"])
    timings = {"total_ms": round((time.monotonic() - started) * 1000, 1)}
    if job is not None and job.status == CompileJob.Status.READY and not body["cached"]:
        timings |= {f"{stage}_ms": round(s * 1000, 1) for stage, s in job.stage_seconds.items()}
    return {
        "program_id": body["program_id"],
        "job_id": job_id,
        "status": job.status if job else program.status,
        "slug": body["slug"],
        "version": body["version"],
        "version_action": body["version_action"],
        "compiler_snapshot": body["compiler_snapshot"],
        "compiler_kind": COMPILER_KIND,
        "pseudo_program": program.pseudo_program,
        "pseudo_program_strategy": None,
        "cached": body["cached"],
        "timings": timings,
        "error": (job.error if job else "") or None,
        **RUNTIME,
    }


@router.post(
    "/compile/precheck",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: PrecheckOut} | errors(400, 401, 422, 429),
    summary="Whether compiling a spec would be a cache hit, and the queue now",
)
def compile_precheck(request, payload: PrecheckIn):
    """Submits nothing. `cached` is about a public compile (a private one is
    its author's own program)."""
    ratelimit.limit(request, "read")
    try:
        snapshot, program = services.compile_precheck(
            spec=payload.spec, user=request.user, compiler=payload.compiler
        )
    except registry.UnknownCompiler as exc:
        raise ApiError(400, str(exc), error="unknown_compiler") from exc
    except SpecError as exc:
        raise ApiError(422, str(exc), error="invalid_spec") from exc
    return {
        "cached": program is not None,
        "program_id": program.id if program else None,
        "compiler_snapshot": snapshot.name,
        "compiler_kind": COMPILER_KIND,
        "queue_length": services.compile_queue_length(),
        "estimated_wait_s": None if program else services.compile_estimate(),
    }


def _name(request, program, slug):
    if program.owner_id != request.user.pk:
        # A cache hit or a running compile of someone else's: nothing new was started.
        raise ApiError(
            409,
            "This spec was already compiled by someone else, so you cannot name that program; "
            "compile it privately (public: false) to have your own.",
            details={"program_id": program.id},
        )
    return program_services.alias_point(user=request.user, slug=slug, program=program)


def _job_for(request, job_id):
    visible = Program.objects.visible_to(request.user)
    return get_object_or_404(
        CompileJob.objects.select_related("program"), pk=job_id, program__in=visible
    )


@router.get(
    "/compile/{uuid:job_id}",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: JobOut} | errors(401, 404, 429),
    summary="A compile job's status and progress",
)
def compile_status(request, job_id: UUID):
    ratelimit.limit(request, "read")
    return job_out(_job_for(request, job_id))


@router.delete(
    "/compile/{uuid:job_id}",
    auth=SIGNED_IN,
    response={200: JobOut} | errors(401, 403, 404, 409, 429),
    summary="Cancel a queued or running compile (its owner or staff)",
)
def compile_cancel(request, job_id: UUID):
    """409 once the job has finished (ready, failed or cancelled)."""
    ratelimit.limit(request, "write")
    job = _job_for(request, job_id)
    if job.owner_id != request.user.pk and not request.user.is_staff:
        raise ApiError(403, "Only the owner can cancel this compile.")
    if not services.compile_cancel(job=job):
        raise ApiError(
            409,
            f"The compile has already finished ({job.status}).",
            details={"status": job.status},
        )
    return job_out(job)
