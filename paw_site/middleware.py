import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings

GITHUB_URL = "https://github.com"  # allauth's default

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


def content_security_policy(get_response):
    """Send a Content-Security-Policy: scripts, styles, fonts and requests from
    this site only, never inline (no 'unsafe-inline', no 'unsafe-eval'), so an
    injected `<script>` or `onclick=` does not run. Pages keep their JavaScript
    in static/js and their styles in static/css; htmx is told not to inject its
    indicator styles nor to eval anything (meta htmx-config in base.html).
    Images may also come from GitHub (avatars); forms may also post to GitHub,
    since "Sign in with GitHub" is a form whose answer redirects there."""
    github = settings.SOCIALACCOUNT_PROVIDERS.get("github", {}).get("GITHUB_URL", GITHUB_URL)
    github = "{0.scheme}://{0.netloc}".format(urlsplit(github))
    policy = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {github} https://avatars.githubusercontent.com",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action 'self' {github}",
            "frame-ancestors 'none'",
        ]
    )

    def middleware(request):
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return middleware
