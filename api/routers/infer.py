"""Running a program: `POST /infer`, the API's "Try it"."""

from asgiref.sync import sync_to_async
from django.http import Http404
from ninja import Router

from paw_site import limits
from runtime import services as runtime_services

from .. import ratelimit
from ..auth import ANYONE, ANYONE_OPENAPI
from ..errors import ApiError
from ..schemas import InferIn, InferOut, errors
from .programs import find_program

router = Router(tags=["runtime"])


@router.post(
    "/infer",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: InferOut} | errors(400, 401, 404, 409, 422, 429, 503),
    summary="Run a program on an input",
)
async def infer(request, payload: InferIn):
    """Runs the program in a runtime worker and answers when it is done (the
    wait is bounded, and holds no thread: the view awaits the answer). 409
    `not_ready` while it compiles or after a failed compile; 422 `input_too_long`
    when the prompt does not fit the model's context; 429 over the run quota or
    with too many runs of yours waiting; 503 with `Retry-After` when no worker
    could answer (`busy`, `worker_lost`, `timeout`, `unavailable`). Private
    programs are 404 to others."""

    def find():
        caller = ratelimit.caller(request)
        try:
            program, _ = find_program(request, payload.program_id)
        except (ApiError, Http404):
            # Probing for programs counts as runs too (the service counts found ones).
            limits.hit("infer", caller)
            raise
        return program, caller

    program, caller = await sync_to_async(find)()
    try:
        result = await runtime_services.program_run_async(
            program=program,
            input_text=payload.input,
            max_tokens=payload.max_tokens,
            temperature=payload.temperature,
            caller=caller,
        )
    except runtime_services.RunError as exc:
        headers = {}
        if exc.status == 503:
            headers["Retry-After"] = str(runtime_services.RETRY_AFTER_SECONDS)
        raise ApiError(exc.status, exc.message, error=exc.code, headers=headers) from exc
    return {
        "output": result.output,
        "tokens_generated": result.tokens_generated,
        "latency_ms": round(result.latency_ms, 1),
    }
