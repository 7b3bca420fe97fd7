import logging
import time

from django.db import connection
from ninja import Router

from compiler import registry
from paw_site.celery import app as celery_app
from pawhub import manifest
from pawhub.model import BASE_MODEL_FILENAME, base_model_path, base_model_sha256
from programs import downloads
from programs.models import Artifact

from .. import ratelimit
from ..auth import ANYONE, ANYONE_OPENAPI, SIGNED_IN
from ..errors import ApiError
from ..schemas import CompilerListOut, HealthOut, MeOut, RuntimeOut, errors

log = logging.getLogger(__name__)
router = Router()

BROKER_TIMEOUT_SECONDS = 2
# A broker round trip answers for this long: health checks may come often, and
# each must not open a broker connection.
BROKER_CHECK_SECONDS = 10
_broker_checked = {}  # id of the Celery app -> (when, the error or None)


@router.get(
    "/models/compilers",
    auth=ANYONE,
    openapi_extra=ANYONE_OPENAPI,
    response={200: CompilerListOut} | errors(401, 429),
    tags=["models"],
    summary="Compilers a spec can be compiled with",
)
def compilers(request):
    """`{"compilers": [...]}`, the shape the PAW SDK reads."""
    ratelimit.limit(request, "read")
    return {"compilers": registry.compilers()}


def base_model_url(request):
    return request.build_absolute_uri(f"/api/v1/models/files/{base_model_sha256()}")


@router.get(
    "/models/runtimes/{runtime_id}",
    auth=None,
    response={200: RuntimeOut} | errors(404, 429),
    tags=["models"],
    summary="A runtime manifest: how to run this hub's programs locally",
)
def runtime_detail(request, runtime_id: str):
    """Manifest version 1, as the PAW SDK reads it: the interpreter, the prompt
    and adapter formats, and the base model's file, URL, size and sha256 (the
    file the adapters were trained on). A bundle's meta.json names its
    `runtime_id`. No auth: the SDK fetches it without a key."""
    ratelimit.limit(request, "read")
    if runtime_id != manifest.RUNTIME_ID:
        raise ApiError(
            404, f"Runtime {runtime_id!r} not found; this hub runs {manifest.RUNTIME_ID}."
        )
    return manifest.runtime_manifest(
        base_model_url=base_model_url(request),
        size_bytes=base_model_path().stat().st_size,
        sha256=base_model_sha256(),
    )


MODEL_FILE_OPENAPI = {
    "responses": {
        "200": {
            "description": "The GGUF file. ETag is its sha256; Range requests get 206.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        "206": {"description": "The requested byte range."},
        "304": {"description": "Not modified: If-None-Match matched the ETag."},
    }
}


@router.api_operation(
    ["GET", "HEAD"],
    "/models/files/{sha256}",
    auth=None,
    openapi_extra=MODEL_FILE_OPENAPI,
    response=errors(404, 416, 429),
    tags=["models"],
    summary="A model file by its sha256 (the base model of the runtime manifest)",
)
def model_file(request, sha256: str):
    """Content-addressed: the URL names the bytes, so it never changes meaning."""
    ratelimit.limit(request, "download")
    if sha256 != base_model_sha256():
        raise ApiError(404, "No model file with this sha256 was found here.")
    path = base_model_path()
    artifact = Artifact(
        kind="model",
        path="",
        size=path.stat().st_size,
        sha256=sha256,
        filename=BASE_MODEL_FILENAME,
        content_type="application/octet-stream",
    )
    response, _ = downloads.serve(request, artifact, path, public=True, accel=False)
    return response


@router.get(
    "/auth/me",
    auth=SIGNED_IN,
    response={200: MeOut} | errors(401, 429),
    tags=["auth"],
    summary="The signed-in caller",
)
def me(request):
    ratelimit.limit(request, "read")
    user = request.user
    api_key = getattr(request, "api_key", None)
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.shown_name,
        "avatar_url": user.avatar_url,
        "is_staff": user.is_staff,
        "auth": "api_key" if api_key else "session",
        "api_key": {"name": api_key.name, "prefix": api_key.prefix} if api_key else None,
    }


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker():
    """The last broker round trip's outcome, made again once it is older than
    BROKER_CHECK_SECONDS."""
    at, error = _broker_checked.get(id(celery_app), (float("-inf"), None))
    if time.monotonic() - at > BROKER_CHECK_SECONDS:
        try:
            _broker_round_trip()
            error = None
        except Exception as exc:
            error = exc
        _broker_checked[id(celery_app)] = (time.monotonic(), error)
    if error is not None:
        raise error


def _broker_round_trip():
    # A real round trip, bounded: a broker that is down must not hang the check.
    with celery_app.connection_for_write(
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options={
            "socket_timeout": BROKER_TIMEOUT_SECONDS,
            "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
        },
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        conn.default_channel  # noqa: B018 (opening a channel is the round trip)


def _check_model():
    path = base_model_path()
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path.name} is not a GGUF file")


CHECKS = {"database": _check_database, "broker": _check_broker, "model": _check_model}


@router.get(
    "/health",
    auth=None,
    response={200: HealthOut} | errors(429, 503),
    tags=["meta"],
    summary="Whether the database, the broker and the base model file are usable",
)
def health(request):
    """200 when every check passes; 503 naming the failing ones otherwise.
    The broker's answer is at most BROKER_CHECK_SECONDS old."""
    ratelimit.limit(request, "health")
    checks = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("health check %s failed: %s", name, exc)
            checks[name] = "unavailable"
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        raise ApiError(
            503,
            f"Unavailable: {', '.join(failing)}.",
            error="unavailable",
            details={"checks": checks},
            headers={"Retry-After": "30"},
        )
    return {"status": "ok", "checks": checks}
