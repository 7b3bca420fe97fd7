from ninja import NinjaAPI, Swagger

from .auth import ANYONE
from .errors import install_handlers
from .routers import compile, infer, meta, programs

DESCRIPTION = """\
The PAW Hub REST API: compile specs into programs, find and run programs, vote,
name and report cases.

**Auth.** Send an API key (made on your account's settings page) in the
`X-API-Key` header, or use the browser session (then unsafe methods need the
`X-CSRFToken` header). Many reads and anonymous compiles need no auth.

**Errors** are always `{error, message, details, request_id}`; `request_id`
is also in the `X-Request-ID` header of every response.

**Limits** are per user (or, anonymous, per IP) and per IP. Limited endpoints
send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; over
a limit the answer is `429` with `Retry-After`. Compiles: anonymous 20 an hour
and one at a time, signed in 60 an hour and two at a time. Runs (`POST /infer`):
anonymous 30 a minute, signed in 120 a minute.
"""

api = NinjaAPI(
    title="PAW Hub API",
    version="1",
    description=DESCRIPTION,
    # Swagger UI from the copy vendored in django-ninja's static files (no CDN),
    # without the online validator badge that would call swagger.io.
    docs=Swagger(settings={"validatorUrl": None}),
    urls_namespace="api-1",
    # The default for operations that name none; it also makes the docs page
    # send the CSRF token, so "Try it out" works with the session too.
    auth=ANYONE,
)
install_handlers(api)
api.add_router("", compile.router)
api.add_router("", meta.router)
api.add_router("", programs.router)
api.add_router("", infer.router)
