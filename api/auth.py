"""Who is calling: an `X-API-Key`, the browser session, or (where allowed) nobody.

`SIGNED_IN` is for endpoints that need a user, `ANYONE` for those that also
serve anonymous callers. Either way `request.user` is the caller afterwards.
A key that is sent but invalid or revoked is a 401 even where anonymous calls
are fine: a client with a broken key should hear about it, not silently lose
access to its private programs.
"""

from django.conf import settings
from ninja.security import APIKeyCookie, APIKeyHeader
from ninja.utils import check_csrf

from accounts.models import ApiKey

from . import ratelimit
from .errors import ApiError


class ApiKeyAuth(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request, key):
        if not key:
            return None
        api_key = ApiKey.authenticate(key)
        if api_key is None:
            ratelimit.limit(request, "bad_key")  # 429 once an address keeps guessing
            raise ApiError(401, "The API key is invalid or revoked.", error="invalid_api_key")
        request.user = api_key.user
        request.api_key = api_key
        return api_key.user


class SessionAuth(APIKeyCookie):
    """Django's session cookie; unsafe methods need the CSRF token (X-CSRFToken)
    exactly like a form post, since the browser sends the cookie on its own."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request):
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request, key):
        if not request.user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise ApiError(
                403,
                "CSRF check failed: with session auth, send the csrftoken cookie's value "
                "in the X-CSRFToken header.",
                error="csrf_failed",
            )
        return request.user


def anonymous(request):
    """Lets the call through as the anonymous user (who is truthy for Ninja)."""
    return request.user


SIGNED_IN = [ApiKeyAuth(), SessionAuth()]
ANYONE = [*SIGNED_IN, anonymous]
# OpenAPI for ANYONE endpoints: either scheme, or none.
ANYONE_OPENAPI = {"security": [{"ApiKeyAuth": []}, {"SessionAuth": []}, {}]}
