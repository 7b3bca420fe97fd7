from uuid import UUID

from django.shortcuts import get_object_or_404
from ninja import Router, Status

from compiler import registry, services
from compiler.models import CompileJob
from compiler.spec import SpecError
from programs import services as program_services
from programs.models import Program

from .. import ratelimit
from ..auth import ANYONE, ANYONE_OPENAPI, SIGNED_IN
from ..errors import ApiError
from ..schemas import CompileIn, CompileOut, JobOut, errors

router = Router(tags=["compile"])


def job_out(job):
    return {
        "job_id": job.id,
        "program_id": job.program_id,
        "status": job.status,
        "stage": job.stage,
        "percent": job.percent,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


@router.post(
    "/compile",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={202: CompileOut} | errors(400, 401, 403, 409, 422, 429),
    summary="Compile a spec into a program",
)
def compile_submit(request, payload: CompileIn):
    """Starts a compile; poll the job. A spec compiled before with the same
    compiler is a cache hit (`cache_hit`, status `ready`, nothing runs); one
    being compiled right now gives that running job (`joined`). Always 202, as
    the PAW SDK expects."""
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
    alias = _name(request, program, payload.slug) if payload.slug else program.primary_alias
    if job is None:
        job = program.jobs.filter(status=CompileJob.Status.READY).first()
    body = {
        "job_id": job.id if job else None,
        "status": job.status if job else program.status,
        "program_id": program.id,
        "slug": alias.name if alias else None,
        "pseudo_program": program.pseudo_program,
        "compiler_snapshot": program.compiler_snapshot,
        "version": alias.version if alias else None,
        "cache_hit": submission.cache_hit,
        "joined": submission.joined,
    }
    return Status(202, body)


def _name(request, program, slug):
    if program.owner_id != request.user.pk:
        # A cache hit or a running compile of someone else's: nothing new was started.
        raise ApiError(
            409,
            "This spec was already compiled by someone else, so you cannot name that program; "
            "compile it privately (public: false) to have your own.",
            details={"program_id": program.id},
        )
    alias, _ = program_services.alias_point(user=request.user, slug=slug, program=program)
    return alias


def _job_for(request, job_id):
    visible = Program.objects.visible_to(request.user)
    return get_object_or_404(CompileJob, pk=job_id, program__in=visible)


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
