from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from compiler.forms import TAG_PATTERN
from compiler.spec import SPEC_MAX_CHARS, SPEC_MIN_CHARS, SpecError, validate_spec
from programs.models import MAX_TAGS

TagName = Annotated[str, StringConstraints(pattern=f"^{TAG_PATTERN.pattern}$")]
ProgramName = Annotated[str, StringConstraints(max_length=100)]


class ErrorOut(Schema):
    error: str = Field(description="A stable code, e.g. not_found, rate_limited.")
    message: str = Field(description="What went wrong, in a sentence for people.")
    details: dict[str, Any] | None = Field(description="Machine-readable specifics, or null.")
    request_id: str = Field(description="Also in the X-Request-ID header; quote it in reports.")


class CompileIn(Schema):
    spec: str = Field(
        description="The task: a description and at least two examples, as 'Input: …' / "
        "'Output: …' pairs or 'input -> output' lines.",
        json_schema_extra={"minLength": SPEC_MIN_CHARS, "maxLength": SPEC_MAX_CHARS},
    )
    compiler: str | None = Field(None, description="A name from GET /models/compilers.")
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


class CompileOut(Schema):
    job_id: UUID | None = Field(description="Poll GET /compile/{job_id}; null when no job ran.")
    status: Literal["queued", "compiling", "ready", "failed", "cancelled"]
    program_id: str
    slug: str | None = Field(description="The program's name (user/slug), when it has one.")
    pseudo_program: str
    compiler_snapshot: str
    version: int | None = Field(description="The version of `slug` this program is.")
    cache_hit: bool = Field(description="The same spec was compiled before: no new work.")
    joined: bool = Field(description="An identical compile was already running: this is it.")


class JobOut(Schema):
    job_id: UUID
    program_id: str
    status: Literal["queued", "compiling", "ready", "failed", "cancelled"]
    stage: str
    percent: int
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CompilerOut(Schema):
    name: str
    description: str
    default: bool
    latest_snapshot: str


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
