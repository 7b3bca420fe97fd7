from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from ninja import Field, Schema
from pydantic import StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from compiler.spec import SPEC_MAX_CHARS, SPEC_MIN_CHARS, SpecError, validate_spec
from pawhub.calls import (
    DEFAULT_MAX_TOKENS,
    MAX_INPUT_CHARS,
    MAX_TEMPERATURE,
    MAX_TOKENS_LIMIT,
    RunLimitError,
    check_request,
)
from programs.models import (
    MAX_TAGS,
    SLUG_MAX_LENGTH,
    SLUG_MIN_LENGTH,
    TAG_PATTERN,
    validate_slug,
)

TagName = Annotated[str, StringConstraints(pattern=f"^{TAG_PATTERN.pattern}$")]
ProgramName = Annotated[str, StringConstraints(max_length=100)]


def _valid_slug(slug):
    # The naming form's rule (programs.models.validate_slug), not a copy of it.
    try:
        validate_slug(slug)
    except DjangoValidationError as exc:
        raise PydanticCustomError("slug_invalid", " ".join(exc.messages)) from exc
    return slug


def _no_null_characters(value):
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("null_character", "Null characters are not allowed.")
    if isinstance(value, list):
        for item in value:
            _no_null_characters(item)
    return value


class Input(Schema):
    """What every request schema is: its text never holds NUL characters, which
    PostgreSQL cannot store (Django's form fields refuse them the same way)."""

    @field_validator("*")
    @classmethod
    def no_null_characters(cls, value):
        return _no_null_characters(value)


class ErrorOut(Schema):
    error: str = Field(description="A stable code, e.g. not_found, rate_limited.")
    message: str = Field(description="What went wrong, in a sentence for people.")
    details: dict[str, Any] | None = Field(description="Machine-readable specifics, or null.")
    request_id: str = Field(description="Also in the X-Request-ID header; quote it in reports.")
    detail: str | None = Field(
        None,
        description="404s only: the message again, always saying “not found”, where the "
        "PAW SDK looks for it to stop retrying a download.",
    )


def errors(*statuses):
    """The `response=` entries documenting these error statuses."""
    return dict.fromkeys(statuses, ErrorOut)


class CompileIn(Input):
    spec: str = Field(
        description="The task: a description and at least two examples, as 'Input: …' / "
        "'Output: …' pairs or 'input -> output' lines.",
        json_schema_extra={"minLength": SPEC_MIN_CHARS, "maxLength": SPEC_MAX_CHARS},
    )
    compiler: str | None = Field(None, description="A name from GET /models/compilers.")
    slug: str | None = Field(
        None,
        description="Also name the program `you/slug` (signed in only).",
        json_schema_extra={"minLength": SLUG_MIN_LENGTH, "maxLength": SLUG_MAX_LENGTH},
    )
    name: ProgramName = ""
    tags: list[TagName] = Field(default_factory=list, max_length=MAX_TAGS)
    public: bool = True

    @field_validator("spec")
    @classmethod
    def spec_compiles(cls, spec):
        # The same validation as the compile form: one function, two callers.
        try:
            validate_spec(spec)
        except SpecError as exc:
            raise PydanticCustomError("spec_invalid", str(exc)) from exc
        return spec

    @field_validator("slug")
    @classmethod
    def slug_allowed(cls, slug):
        return None if slug is None else _valid_slug(slug)


class CompileOut(Schema):
    job_id: UUID | None = Field(description="Poll GET /compile/{job_id}; null when no job ran.")
    status: Literal["queued", "compiling", "ready", "failed", "cancelled"]
    program_id: str
    slug: str | None = Field(description="The program's name (user/slug), when it has one.")
    pseudo_program: str
    compiler_snapshot: str
    compiler_kind: str = Field(description="How the compiler makes programs: `finetune`.")
    version: int | None = Field(description="The version of `slug` this program is.")
    version_action: Literal["created", "no_change"] | None = Field(
        description="With `slug`: a new version of the name, or it already named this program."
    )
    cache_hit: bool = Field(description="The same spec was compiled before: no new work.")
    cached: bool = Field(description="The same as `cache_hit` (the PAW SDK's name).")
    joined: bool = Field(description="An identical compile was already running: this is it.")
    runtime_id: str = Field(description="GET /models/runtimes/{runtime_id} to run it locally.")
    runtime_manifest_version: int
    queue_position: int | None = Field(
        description="Queued jobs ahead of this one, plus one; null unless queued."
    )
    estimated_wait_s: float | None = Field(
        description="Until this compile is done, from recent compiles' durations; null when "
        "unknown or done."
    )


class CompileResultOut(Schema):
    program_id: str
    job_id: UUID | None = Field(description="The compile job; null for a cache hit.")
    status: Literal["queued", "compiling", "ready", "failed", "cancelled"] = Field(
        description="`ready` or `failed` (`error` says why), or `cancelled`; `queued` or "
        "`compiling` only when the wait ran out (then poll GET /compile/{job_id})."
    )
    slug: str | None
    version: int | None
    version_action: Literal["created", "no_change"] | None
    compiler_snapshot: str
    compiler_kind: str
    pseudo_program: str
    pseudo_program_strategy: str | None = Field(description="Always null on this hub.")
    runtime_id: str
    runtime_manifest_version: int
    cached: bool
    timings: dict[str, float] = Field(
        description="`total_ms`: the request's wall time; per stage `<stage>_ms` when compiled."
    )
    error: str | None


class PrecheckIn(Input):
    spec: str = Field(min_length=1, max_length=SPEC_MAX_CHARS)
    compiler: str | None = None


class PrecheckOut(Schema):
    cached: bool = Field(description="A ready program already answers this spec: no compile.")
    program_id: str | None = Field(description="That program when cached, else null.")
    compiler_snapshot: str
    compiler_kind: str
    queue_length: int = Field(description="Compile jobs waiting for a worker now.")
    estimated_wait_s: float | None


class JobOut(Schema):
    job_id: UUID
    program_id: str
    status: Literal["queued", "compiling", "ready", "failed", "cancelled"]
    stage: str
    percent: int
    error: str | None = Field(description="Why it failed or was cancelled; null otherwise.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    completed_at: datetime | None = Field(description="The same as `finished_at`.")
    compiler_snapshot: str
    compiler_kind: str
    runtime_id: str
    runtime_manifest_version: int
    cached: bool = Field(description="Always false: a job is a compile that ran.")
    queue_length: int = Field(description="Compile jobs waiting for a worker now.")
    estimated_wait_s: float | None = Field(
        description="Until this job is done, from recent compiles; null when done or unknown."
    )


class CompilerOut(Schema):
    name: str
    description: str
    default: bool
    latest_snapshot: str


class CompilerListOut(Schema):
    compilers: list[CompilerOut]


class BaseModelOut(Schema):
    file: str
    url: str = Field(description="Content-addressed: ETag is the sha256; Range and 304.")
    size_bytes: int
    sha256: str


class LocalSdkOut(Schema):
    supported: bool
    n_ctx: int
    base_model: BaseModelOut


class RuntimeOut(Schema):
    runtime_id: str
    manifest_version: int
    display_name: str
    interpreter: str = Field(description="The base model; bundles' meta.json names it too.")
    adapter_format: Literal["gguf_lora"]
    prompt_template: dict[str, str]
    program_assets: dict[str, str]
    local_sdk: LocalSdkOut


class KeyOut(Schema):
    name: str
    prefix: str


class MeOut(Schema):
    id: int
    username: str
    display_name: str
    avatar_url: str
    is_staff: bool
    auth: Literal["api_key", "session"]
    api_key: KeyOut | None


class HealthOut(Schema):
    status: Literal["ok"]
    checks: dict[str, str]


class ArtifactOut(Schema):
    size: int | None
    sha256: str
    url: str = Field(description="GET it here (ETag = sha256, Range supported).")


class ProgramSummaryOut(Schema):
    id: str
    slug: str | None = Field(description="Its name: user/slug, or a bare official slug.")
    version: int | None
    name: str
    title: str
    owner: str | None = Field(description="The author's username; null for anonymous.")
    description: str = Field(description="The spec's first line.")
    compiler: str
    status: Literal["compiling", "ready", "failed"]
    public: bool
    tags: list[str]
    score: int
    downloads: int
    created_at: datetime
    url: str = Field(description="The program's page on the hub.")


class OutputOut(Schema):
    kind: Literal["free", "choice", "span", "shape", "words"]
    choices: list[str] = Field(default_factory=list)
    shapes: list[str] = Field(
        default_factory=list, description="For `shape`: digit layouts, `#` for each digit."
    )
    start: Literal["word", "space"] = Field(
        default="word",
        description="For `span`: where it may start: at any word, or only after a space "
        "(and any punctuation after it).",
    )
    fixed: list[str] = Field(
        default_factory=list,
        description="For `span`: whole answers allowed besides a span, e.g. `NONE`.",
    )
    max_bytes: int = Field(
        default=0,
        description="The longest answer in UTF-8 bytes (0: no bound); an answer that "
        "goes round in a loop also ends after its first round.",
    )
    copied: list[list[int]] = Field(
        default_factory=list,
        description="For `shape`: per shape, its digit groups (0-based) that must be a "
        "number of the input, zero-padded to the group's width.",
    )


class ProgramOut(ProgramSummaryOut):
    program_id: str = Field(description="The same as `id` (the PAW SDK reads it on resolve).")
    aliases: list[str] = Field(description="Every name pointing at it (`user/slug@vN`).")
    interpreter: str
    runtime_id: str
    runtime_manifest_version: int
    spec: str
    pseudo_program: str
    prompt_template: str = Field(
        description="The whole prompt the program runs in: its pseudo-program in its "
        "compiler's prompt format, in the base model's chat template, with one "
        "`{INPUT_PLACEHOLDER}` where the input goes (as in the `.paw` bundle)."
    )
    compiler_snapshot: str
    hidden: bool
    hidden_reason: str = Field(description="Shown to the author and moderators only.")
    example_count: int
    selfcheck_accuracy: float | None
    heldout_accuracy: float | None
    sdk_agreement: float | None = Field(
        description="The share of the spec's examples on which the official PAW SDK's local "
        "run (free decoding on the shipped base file) gives the program's answer here; "
        "null when not measured. Below 1, run it with `remote=True` or through `pawhub`."
    )
    output: OutputOut = Field(
        description="What the answers may be, read off the examples at compile time: "
        "`choice` (one of `choices`), `span` (whole words copied from the input), `shape` "
        "(digits laid out as one of `shapes`, e.g. `###-###-####`), `words` (the input's "
        "own words, in any order and case) or `free`."
    )
    adapter: ArtifactOut | None
    bundle: ArtifactOut | None
    ready_at: datetime | None


class ProgramListOut(Schema):
    programs: list[ProgramSummaryOut]
    total: int
    page: int
    per_page: int


class ProgramPatchIn(Input):
    slug: str | None = Field(
        None,
        description="Give it the name `you/slug` (a new version when the name exists; the "
        "old names keep resolving). A name cannot be removed.",
    )
    name: ProgramName | None = None
    tags: list[TagName] | None = Field(None, max_length=MAX_TAGS)
    public: bool | None = None


class VersionOut(Schema):
    version: int
    program_id: str
    created_at: datetime
    is_main: bool = Field(description="The version the bare name resolves to (the newest).")


class VersionsOut(Schema):
    slug: str
    main_version: int
    versions: list[VersionOut]


class AliasIn(Input):
    slug: str = Field(
        description="The name under your namespace, e.g. `urgency` for `you/urgency`.",
        json_schema_extra={"minLength": SLUG_MIN_LENGTH, "maxLength": SLUG_MAX_LENGTH},
    )

    @field_validator("slug")
    @classmethod
    def slug_allowed(cls, slug):
        return _valid_slug(slug)


class AliasOut(Schema):
    slug: str
    version: int
    program_id: str
    created: bool = Field(description="False when the name already pointed at this program.")


class VoteIn(Input):
    vote: Literal[1, -1]


class VoteOut(Schema):
    score: int
    vote: Literal[1, 0, -1] = Field(description="Your vote now; 0 after voting the same again.")


class CaseIn(Input):
    input: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    expected: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    type: Literal["success", "limitation", "edge_case"] = "success"
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class CaseOut(Schema):
    id: int
    input: str
    expected: str
    type: Literal["success", "limitation", "edge_case"]
    note: str
    author: str | None
    actual_output: str
    passed: bool | None
    checked_at: datetime | None
    created_at: datetime


class CaseListOut(Schema):
    cases: list[CaseOut]
    total: int
    page: int
    per_page: int


class NotReadyOut(Schema):
    status: Literal["compiling"]
    job_id: UUID | None
    message: str


class InferIn(Input):
    program_id: str = Field(
        description="A program id, or a name: `user/slug` or an official `slug`, either "
        "with `@vN`.",
        json_schema_extra={"minLength": 1, "maxLength": 200},
    )
    input: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(
        0.0, ge=0.0, le=MAX_TEMPERATURE, description="0 (the default) decodes greedily."
    )

    @model_validator(mode="after")
    def within_bounds(self):
        # The interpreter's own bounds, as the "Try it" form checks them.
        try:
            check_request(self.input, max_tokens=self.max_tokens, temperature=self.temperature)
        except RunLimitError as exc:
            raise PydanticCustomError("run_limit", str(exc)) from exc
        return self


class InferOut(Schema):
    output: str
    tokens_generated: int
    latency_ms: float = Field(description="Time the runtime worker spent on the call.")
