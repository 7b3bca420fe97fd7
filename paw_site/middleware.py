import re
import uuid
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware

GITHUB_URL = "https://github.com"  # allauth's default

# An incoming id is kept only if it is short and plain, so logs and headers stay clean.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def around(get_response, before, after):
    """A middleware that runs `before(request)`, the view, then
    `after(request, response)`, sync or async as the chain below it is: under
    ASGI an async view (a run waiting for the runtime) then holds no thread."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            before(request)
            return after(request, await get_response(request))

    else:

        def middleware(request):
            before(request)
            return after(request, get_response(request))

    return middleware


def _nothing(request):
    pass


@sync_and_async_middleware
def request_id(get_response):
    """Give every request an id (the caller's X-Request-ID when sane, else a new
    one) and echo it on every response, so a report can be matched to the logs."""

    def before(request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    def after(request, response):
        response["X-Request-ID"] = request.request_id
        return response

    return around(get_response, before, after)


@sync_and_async_middleware
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

    def after(request, response):
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return around(get_response, _nothing, after)


class StaticFiles(WhiteNoiseMiddleware):
    """WhiteNoise, able to sit in an async chain: under ASGI a sync-only
    middleware would run every request, async views too, in a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=settings):
        super().__init__(get_response, settings)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)
