"""The one error shape of the API: `{error, message, details, request_id}`.

Errors raised inside Ninja reach `install_handlers`' handlers; errors that never
reach Ninja (an unknown route, a method a route does not take, a crash in a
middleware) are rewritten by `api.middleware.api_errors`, so a client sees the
same shape for every failure and never a stack trace.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from paw_site.limits import RateLimited

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
DEFAULT_MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in or send an API key in the X-API-Key header.",
    403: "You may not do this.",
    404: "Not found.",
    405: "This method is not allowed here.",
    409: "The request conflicts with the current state.",
    416: "The requested byte range is outside the file.",
    422: "The request is invalid.",
    429: "Too many requests.",
    500: "Something went wrong on our side; the request id identifies it in our logs.",
    503: "The service is unavailable.",
}


class ApiError(HttpError):
    """An error meant for the client: status, a stable code, a sentence, details."""

    def __init__(self, status, message=None, *, error=None, details=None, headers=None):
        super().__init__(status, message or DEFAULT_MESSAGES.get(status, ""))
        self.error = error or ERROR_CODES.get(status, "error")
        self.details = details
        self.headers = headers or {}


def error_response(request, status, message=None, *, error=None, details=None, headers=None):
    body = {
        "error": error or ERROR_CODES.get(status, "error"),
        "message": message or DEFAULT_MESSAGES.get(status, ""),
        "details": details,
        "request_id": getattr(request, "request_id", ""),
    }
    if status == 404:
        # The PAW SDK retries a 404 download for a minute unless `detail` says "not found".
        message = body["message"]
        body["detail"] = message if "not found" in message.lower() else f"Not found: {message}"
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _validation_details(errors):
    # Only what a client can act on: where, what, and pydantic's error type.
    return [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e["type"],
        }
        for e in errors
    ]


def _validation_message(details):
    def where(d):
        # "body.payload.spec" -> "spec": the part a client recognises.
        loc = [part for part in d["loc"] if part not in ("body", "payload", "query", "path")]
        return ".".join(loc) or "request"

    if len(details) == 1:
        return f"{where(details[0])}: {details[0]['msg']}"
    return "Invalid fields: " + ", ".join(sorted({where(d) for d in details})) + "."


def install_handlers(api):
    @api.exception_handler(ApiError)
    def on_api_error(request, exc):
        return error_response(
            request,
            exc.status_code,
            exc.message,
            error=exc.error,
            details=exc.details,
            headers=exc.headers,
        )

    @api.exception_handler(RateLimited)
    def on_rate_limited(request, exc):
        details = exc.details or {
            "scope": exc.scope,
            "limit": exc.limit,
            "retry_after": exc.retry_after,
        }
        return error_response(
            request,
            429,
            exc.message,
            error=exc.error,
            details=details,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @api.exception_handler(ValidationError)
    def on_validation_error(request, exc):
        details = _validation_details(exc.errors)
        return error_response(
            request, 422, _validation_message(details), details={"errors": details}
        )

    @api.exception_handler(Throttled)
    def on_throttled(request, exc):
        return error_response(request, 429)

    @api.exception_handler(AuthenticationError)
    def on_unauthenticated(request, exc):
        return error_response(request, 401)

    @api.exception_handler(HttpError)
    def on_http_error(request, exc):
        # Ninja's own errors, e.g. a body that is not JSON (400).
        return error_response(request, exc.status_code, str(exc))

    @api.exception_handler(Http404)
    def on_not_found(request, exc):
        return error_response(request, 404)

    @api.exception_handler(DjangoValidationError)
    def on_model_validation_error(request, exc):
        # Raised by the services in programs/ and compiler/ for input they refuse.
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        message = " ".join(exc.messages)
        return error_response(request, 422, message, details={"fields": fields} if fields else None)

    @api.exception_handler(PermissionDenied)
    def on_permission_denied(request, exc):
        return error_response(request, 403, str(exc) or None)

    @api.exception_handler(Exception)
    def on_crash(request, exc):
        log.exception("API error (request id %s)", getattr(request, "request_id", "-"))
        return error_response(request, 500)
