"""The API's side of the limits layer (paw_site.limits): count a request in a
scope, and keep the tightest bucket on the request for the X-RateLimit-*
headers (api.middleware). Over a limit, `RateLimited` propagates and the API's
handler (api.errors) answers 429 with Retry-After and the error envelope.

The services count the work they do themselves (compile, concurrent compiles,
cases, runs) from the `Caller` a router passes them; routers call `limit` only
for the plain read/write/download scopes.
"""

from paw_site.limits import Caller, RateLimited, client_ip, hit, ip_bucket

__all__ = ["Caller", "RateLimited", "caller", "client_ip", "ip_bucket", "limit"]


def caller(request) -> Caller:
    """The caller of `request`; the bucket its services hit is reported in the headers."""
    who = Caller.of(request)
    request.rate_limit_caller = who
    return who


def limit(request, scope: str) -> None:
    """Count this request against `scope`; RateLimited (a 429) when over."""
    hit(scope, caller(request))
