import re
import uuid

# An incoming id is kept only if it is short and plain, so logs and headers stay clean.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def request_id(get_response):
    """Give every request an id (the caller's X-Request-ID when sane, else a new
    one) and echo it on every response, so a report can be matched to the logs."""

    def middleware(request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        response = get_response(request)
        response["X-Request-ID"] = request.request_id
        return response

    return middleware
