"""Programs: the gallery's list, one program, names and versions, votes, cases.

The rules live in programs/ (QuerySet methods and programs.services); these
views find the program the caller may see, call them, and shape the answer.
"""

import re
from typing import Literal

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from pydantic import Field

from pawhub import manifest
from programs import downloads, gallery, services
from programs.models import ARTIFACT_TYPES, PROGRAM_ID_LENGTH, Alias, Program

from .. import ratelimit
from ..auth import ANYONE, ANYONE_OPENAPI, SIGNED_IN
from ..errors import ApiError
from ..schemas import (
    AliasIn,
    AliasOut,
    CaseIn,
    CaseListOut,
    CaseOut,
    Input,
    NotReadyOut,
    ProgramListOut,
    ProgramOut,
    ProgramPatchIn,
    VersionsOut,
    VoteIn,
    VoteOut,
    errors,
)

router = Router(tags=["programs"])

MAX_PER_PAGE = 100
PROGRAM_ID = re.compile(rf"[0-9a-f]{{{PROGRAM_ID_LENGTH}}}")
READ_ERRORS = errors(401, 404, 429)
WRITE_ERRORS = errors(400, 401, 403, 404, 422, 429)


def find_program(request, ref, queryset=None) -> tuple[Program, Alias | None]:
    """The program `ref` names, as the caller may see it: a program id, or a
    name (`user/slug`, a bare official slug, either with `@vN`). 404 otherwise,
    private and hidden programs included, so their existence does not leak."""
    # `queryset or ...` would evaluate the queryset (every program) to test it.
    visible = (Program.objects if queryset is None else queryset).visible_to(request.user)
    if PROGRAM_ID.fullmatch(ref):
        program = visible.filter(pk=ref).first()
        if program is not None:
            return program, None
    try:
        alias = services.alias_resolve(name=ref, user=request.user)
    except Alias.DoesNotExist as exc:
        raise ApiError(404, f"No program is called “{ref}”.") from exc
    return get_object_or_404(visible, pk=alias.program_id), alias


def _artifact(request, program, kind):
    artifact = program.artifact(kind)
    if not program.is_ready or not artifact.path:
        return None
    return {
        "size": artifact.size,
        "sha256": artifact.sha256,
        "url": request.build_absolute_uri(f"/api/v1/programs/{program.id}/download?file={kind}"),
    }


def program_summary(request, program, alias=None):
    alias = alias or program.primary_alias
    # for_cards() loads only the spec's start, as `summary`.
    spec_start = getattr(program, "summary", None)
    if spec_start is None:
        spec_start = program.spec
    return {
        "id": program.id,
        "slug": alias.name if alias else None,
        "version": alias.version if alias else None,
        "name": program.name,
        "title": program.title,
        "owner": program.owner.username if program.owner else None,
        "description": spec_start.split("\n", 1)[0][:200],
        "compiler": program.compiler_alias,
        "status": program.status,
        "public": program.is_public,
        "tags": [tag.name for tag in program.tags.all()],
        "score": program.score,
        "downloads": program.download_count,
        "created_at": program.created_at,
        "url": request.build_absolute_uri(program.get_absolute_url()),
    }


def program_out(request, program, alias=None):
    return program_summary(request, program, alias) | {
        "program_id": program.id,
        "aliases": [a.full_name for a in program.aliases.all()],
        "interpreter": manifest.INTERPRETER,
        "runtime_id": manifest.RUNTIME_ID,
        "runtime_manifest_version": manifest.MANIFEST_VERSION,
        "spec": program.spec,
        "pseudo_program": program.pseudo_program,
        "prompt_template": program.prompt_template,
        "compiler_snapshot": program.compiler_snapshot,
        "hidden": program.is_hidden,
        "hidden_reason": program.hidden_reason,
        "example_count": program.example_count,
        "selfcheck_accuracy": program.selfcheck_accuracy,
        "heldout_accuracy": program.heldout_accuracy,
        "sdk_agreement": program.sdk_agreement,
        "output": program.constraint.to_dict(),
        "adapter": _artifact(request, program, "adapter"),
        "bundle": _artifact(request, program, "bundle"),
        "ready_at": program.ready_at,
    }


class ProgramFilters(Input):
    q: str = Field("", max_length=200, description="Words in the name, slug, tags or spec.")
    sort: Literal["votes", "recent", "downloads"] | None = Field(
        None, description="Default: relevance when searching, else votes."
    )
    tag: str = Field("", max_length=32)
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)
    mine: bool = Field(False, description="Only your programs, any status (signed in).")


@router.get(
    "/programs",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: ProgramListOut} | errors(401, 422, 429),
    summary="List programs: the public gallery, or your own",
)
def program_list(request, filters: Query[ProgramFilters]):
    ratelimit.limit(request, "read")
    if filters.mine:
        if not request.user.is_authenticated:
            raise ApiError(401, "Sign in (or send an API key) to list your programs.")
        programs = Program.objects.filter(owner=request.user)
    else:
        programs = Program.objects.listed()
    # The gallery's filters, count and paging, as the hub page's; the public
    # listing's count cached (the caller's own listing is never).
    count_key = None if filters.mine else gallery.count_key(q=filters.q, tag=filters.tag)
    start = (filters.page - 1) * filters.per_page
    total, ids = gallery.listing_ids(
        programs,
        start,
        filters.per_page,
        q=filters.q,
        tag=filters.tag,
        sort=filters.sort,
        count_key=count_key,
    )
    # The rows by id alone: the search's filter and rank found the ids already.
    rows = {program.pk: program for program in Program.objects.for_cards().filter(pk__in=ids)}
    page = [rows[pk] for pk in ids if pk in rows]
    return {
        "programs": [program_summary(request, p) for p in page],
        "total": total,
        "page": filters.page,
        "per_page": filters.per_page,
    }


def _detail_queryset():
    return Program.objects.select_related("owner").prefetch_related("tags", "aliases__owner")


@router.get(
    "/programs/resolve/{path:name}",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: ProgramOut} | READ_ERRORS,
    summary="The program a name points at (`user/slug`, official `slug`, `@vN`)",
)
def program_resolve(request, name: str):
    """The slash may be sent raw or as `%2F`. Without `@vN`, the newest version."""
    ratelimit.limit(request, "read")
    try:
        alias = services.alias_resolve(name=name, user=request.user)
    except Alias.DoesNotExist as exc:
        raise ApiError(404, f"No program is called “{name}”.") from exc
    program = get_object_or_404(_detail_queryset(), pk=alias.program_id)
    return program_out(request, program, alias)


@router.get(
    "/programs/{path:name}/versions",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: VersionsOut} | READ_ERRORS,
    summary="Every version of a name, newest first",
)
def program_versions(request, name: str):
    ratelimit.limit(request, "read")
    program, alias = find_program(request, name)
    alias = alias or program.primary_alias
    if alias is None:
        raise ApiError(404, "This program has no name, so it has no versions.")
    versions = list(Alias.objects.versions_of(alias, user=request.user))
    # The bare name resolves to the newest version the caller may see.
    main = versions[0].version if versions else alias.version
    return {
        "slug": alias.name,
        "main_version": main,
        "versions": [
            {
                "version": v.version,
                "program_id": v.program_id,
                "created_at": v.created_at,
                "is_main": v.version == main,
            }
            for v in versions
        ],
    }


@router.post(
    "/programs/{path:ref}/alias",
    auth=SIGNED_IN,
    response={200: AliasOut, 201: AliasOut} | WRITE_ERRORS,
    summary="Name your program `you/slug` (again: a new version of the name)",
)
def program_alias(request, ref: str, payload: AliasIn):
    ratelimit.limit(request, "write")
    program, _ = find_program(request, ref)
    alias, created = services.alias_point(user=request.user, slug=payload.slug, program=program)
    body = {
        "slug": alias.name,
        "version": alias.version,
        "program_id": program.id,
        "created": created,
    }
    return Status(201 if created else 200, body)


@router.post(
    "/programs/{path:ref}/vote",
    auth=SIGNED_IN,
    response={200: VoteOut} | WRITE_ERRORS,
    summary="Vote +1 or -1; the same vote again takes it back",
)
def program_vote(request, ref: str, payload: VoteIn):
    ratelimit.limit(request, "write")
    program, _ = find_program(request, ref)
    outcome = services.vote_toggle(user=request.user, program=program, value=payload.vote)
    return {"score": outcome.score, "vote": outcome.value}


def case_out(case):
    return {
        "id": case.pk,
        "input": case.input,
        "expected": case.expected,
        "type": case.type,
        "note": case.note,
        "author": case.author.username if case.author else None,
        "actual_output": case.actual_output,
        "passed": case.passed,
        "checked_at": case.checked_at,
        "created_at": case.created_at,
    }


class CaseFilters(Input):
    type: Literal["success", "limitation", "edge_case"] | None = None
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE)


@router.get(
    "/programs/{path:ref}/cases",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: CaseListOut} | errors(401, 404, 422, 429),
    summary="Cases people reported: where the program works, and where not",
)
def case_list(request, ref: str, filters: Query[CaseFilters]):
    ratelimit.limit(request, "read")
    program, _ = find_program(request, ref)
    cases = program.cases.select_related("author").order_by("-created_at")
    if filters.type:
        cases = cases.filter(type=filters.type)
    start = (filters.page - 1) * filters.per_page
    return {
        "cases": [case_out(c) for c in cases[start : start + filters.per_page]],
        "total": cases.count(),
        "page": filters.page,
        "per_page": filters.per_page,
    }


@router.post(
    "/programs/{path:ref}/cases",
    auth=SIGNED_IN,
    response={201: CaseOut} | errors(400, 401, 403, 404, 409, 422, 429),
    summary="Add a case: an input and the output you expect",
)
def case_create(request, ref: str, payload: CaseIn):
    ratelimit.limit(request, "write")
    program, _ = find_program(request, ref)
    if not program.is_ready:
        raise ApiError(409, "Cases can be added once the program has compiled.")
    case = services.case_submit(
        program=program, author=request.user, caller=ratelimit.caller(request), **payload.dict()
    )
    return Status(201, case_out(case))


BINARY = {"schema": {"type": "string", "format": "binary"}}
DOWNLOAD_OPENAPI = ANYONE_OPENAPI | {
    "responses": {
        "200": {
            "description": "The file. ETag is its sha256; Range requests are answered with 206.",
            "content": {content_type: BINARY for _, content_type in ARTIFACT_TYPES.values()},
        },
        "206": {
            "description": "The requested byte range.",
            "content": {content_type: BINARY for _, content_type in ARTIFACT_TYPES.values()},
        },
        "304": {"description": "Not modified: If-None-Match matched the ETag."},
    }
}
DOWNLOAD_RETRY_AFTER = 30


# HEAD too, as on the site: a client reads the size and ETag before asking for ranges.
@router.api_operation(
    ["GET", "HEAD"],
    "/programs/{path:ref}/download",
    auth=ANYONE,
    openapi_extra=DOWNLOAD_OPENAPI,
    response={202: NotReadyOut} | errors(401, 404, 409, 416, 422, 429),
    summary="Download the .paw bundle (default) or the adapter .gguf",
)
def program_download(request, ref: str, file: Query[Literal["bundle", "adapter"]] = "bundle"):
    """202 with Retry-After while the program compiles; 409 if it failed to."""
    ratelimit.limit(request, "download")
    program, _ = find_program(request, ref, Program.objects.prefetch_related("aliases"))
    if program.status == Program.Status.COMPILING:
        job = program.jobs.first()
        response = JsonResponse(
            {
                "status": "compiling",
                "job_id": str(job.id) if job else None,
                "message": "The program is still compiling; try again shortly.",
            },
            status=202,
        )
        response["Retry-After"] = str(DOWNLOAD_RETRY_AFTER)
        return response
    if not program.is_ready:
        raise ApiError(409, "This program did not compile, so it has no files.")
    if file == "bundle":
        # Bundles stored before format version 4 are upgraded on first download.
        program = services.program_bundle_current(program=program)
    artifact = program.artifact(file)
    path = downloads.artifact_file(artifact)
    if path is None:
        raise ApiError(404, "This file is missing.")
    response, counts = downloads.serve(
        request, artifact, path, public=program.is_public and not program.is_hidden
    )
    if counts:
        services.program_count_download(program=program)
    return response


@router.get(
    "/programs/{path:ref}",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: ProgramOut} | READ_ERRORS,
    summary="One program, by id or by name",
)
def program_detail(request, ref: str):
    ratelimit.limit(request, "read")
    program, alias = find_program(request, ref, _detail_queryset())
    return program_out(request, program, alias)


@router.patch(
    "/programs/{path:ref}",
    auth=SIGNED_IN,
    response={200: ProgramOut} | WRITE_ERRORS | errors(409),
    summary="Name (`slug`), retitle, retag, or publish a private program (the author only)",
)
def program_update(request, ref: str, payload: ProgramPatchIn):
    """`slug` gives the program the name `you/slug` (the PAW SDK's `paw rename`):
    a new name, or the next version of an existing one; earlier names and
    versions keep resolving, so code that pinned them keeps working. A name
    cannot be taken away (`slug` empty is refused)."""
    ratelimit.limit(request, "write")
    program, alias = find_program(request, ref, _detail_queryset())
    try:
        program, renamed = services.program_update(
            program=program,
            actor=request.user,
            name=payload.name,
            public=payload.public,
            tags=payload.tags,
            slug=payload.slug,
        )
    except ValidationError as exc:
        code = getattr(exc, "code", None)
        if code == "stays_public":
            raise ApiError(409, exc.message) from exc
        if code == "rename_refused":
            raise ApiError(422, exc.message, error="rename_refused") from exc
        raise
    program = _detail_queryset().get(pk=program.pk)
    return program_out(request, program, renamed or alias)
