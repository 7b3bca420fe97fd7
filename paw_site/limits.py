"""Limits shared by every front door: the services count a caller's work here.

The web views and the API both pass a `Caller` (who, from which address) to the
services, which call `hit(scope, caller)` before doing the work; over a limit it
raises `RateLimited(scope, retry_after)`, which each front door renders its way
(the API: 429, `Retry-After` and its error envelope; the web: a page message
with the wait). Nothing here knows about HTTP beyond reading a request's
address in `Caller.of`.

Each hit is counted in two fixed-window buckets kept in Django's cache (Redis in
production): one for the caller (the signed-in user, whichever key or session
they use; an anonymous caller is its address) and one for the address, whoever
is signed in there, so neither many keys nor many accounts from one address get
past the per-address cap. The address is the real one: only
`settings.TRUSTED_PROXY_COUNT` proxies' X-Forwarded-For entries are believed.

`concurrent(scope, caller, allowed)` holds one of the caller's slots while work
runs (a run waiting for the runtime), so one caller cannot fill every worker.
"""

import ipaddress
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Rule:
    anonymous: int  # per anonymous caller (its IP)
    user: int  # per signed-in user, all their keys and sessions together
    ip: int  # per client IP, everyone together
    period: int  # seconds


RULES = {
    "compile": Rule(anonymous=20, user=60, ip=120, period=3600),
    "infer": Rule(anonymous=30, user=120, ip=240, period=60),
    "write": Rule(anonymous=30, user=60, ip=240, period=60),
    "read": Rule(anonymous=120, user=600, ip=1200, period=60),
    "download": Rule(anonymous=120, user=600, ip=1200, period=3600),
    # Cases queue a check on the runtime: far fewer than other writes.
    "case": Rule(anonymous=10, user=30, ip=60, period=3600),
    # Gallery searches miss the page cache: a light cap per address.
    "search": Rule(anonymous=120, user=300, ip=600, period=60),
    # Requests with a wrong API key, per IP: they fail before any other limit.
    "bad_key": Rule(anonymous=30, user=30, ip=30, period=600),
    # Health checks (a load balancer polls; a flood must not).
    "health": Rule(anonymous=120, user=120, ip=120, period=60),
}
# Runs one caller may have waiting on the runtime at once.
CONCURRENT_RUNS = {"anonymous": 2, "user": 4}
CONCURRENCY_RETRY_AFTER = 5
clock = time.time  # the windows' clock (tests hold it still)


class RateLimited(Exception):
    """The caller is over a limit of `scope`: try again in `retry_after` s."""

    def __init__(
        self, scope, retry_after, message=None, *, limit=None, error="rate_limited", details=None
    ):
        self.scope = scope
        self.details = details
        self.retry_after = max(1, int(retry_after))
        self.limit = limit
        self.error = error
        self.message = message or (
            f"Rate limit exceeded for {scope} requests; retry in {self.retry_after} s."
        )
        super().__init__(self.message)

    @property
    def wait_message(self):
        """For a page: what happened and how long to wait."""
        if "retry in" in self.message:
            return self.message
        return f"{self.message} Try again in {self.retry_after} s."


@dataclass
class Usage:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends


@dataclass
class Caller:
    """Who does something: a user (or None/anonymous) and their client address."""

    user: object = None
    ip: str = ""
    # The tightest bucket of the last hit, for the API's X-RateLimit-* headers.
    usage: Usage | None = field(default=None, compare=False)

    @classmethod
    def of(cls, request):
        caller = getattr(request, "_limits_caller", None)
        if caller is None or caller.user is not request.user:
            caller = cls(user=request.user, ip=ip_bucket(client_ip(request)))
            caller.is_authenticated  # noqa: B018 (load the user here, in a sync context)
            request._limits_caller = caller
        return caller

    @property
    def is_authenticated(self):
        return self.user is not None and self.user.is_authenticated

    @property
    def key(self):
        if self.is_authenticated:
            return f"user:{self.user.pk}"
        return f"anon:{self.ip or 'unknown'}"


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with N trusted proxies in front,
    the Nth X-Forwarded-For entry from the right (the one the outermost trusted
    proxy appended); entries further left are whatever the client sent."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if hops:
            candidate = hops[-trusted] if len(hops) >= trusted else hops[0]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def ip_bucket(ip: str) -> str:
    """What limits key an address on: the address, or its /64 for IPv6, since
    one IPv6 subscriber usually holds a whole /64. Empty when there is no address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def _hit(key: str, limit: int, period: int) -> tuple[Usage, int]:
    now = clock()
    window = int(now // period)
    cache_key = f"ratelimit:{key}:{period}:{window}"
    timeout = period + 60
    # add() then incr() is atomic on Redis and locmem: concurrent requests each
    # get their own count, none is lost.
    cache.add(cache_key, 0, timeout=timeout)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # evicted between add() and incr()
        cache.add(cache_key, 0, timeout=timeout)
        count = cache.incr(cache_key)
    reset = math.ceil((window + 1) * period - now)
    return Usage(limit=limit, remaining=max(0, limit - count), reset=reset), count


def hit(scope: str, caller: Caller) -> Usage:
    """Count one `scope` action of `caller`; RateLimited when over. Returns
    the tightest bucket (also kept on the caller for the API's headers)."""
    rule = RULES[scope]
    caller_limit = rule.user if caller.is_authenticated else rule.anonymous
    buckets = [
        (f"{scope}:{caller.key}", caller_limit),
        (f"{scope}:ip:{caller.ip or 'unknown'}", rule.ip),
    ]
    usages = []
    over = []
    for key, allowed in buckets:
        usage, count = _hit(key, allowed, rule.period)
        usages.append(usage)
        if count > allowed:
            over.append(usage)
    caller.usage = min(usages, key=lambda u: (u.remaining, -u.reset))
    if over:
        retry_after = max(u.reset for u in over)
        raise RateLimited(scope, retry_after, limit=over[0].limit)
    return caller.usage


@contextmanager
def concurrent(scope: str, caller: Caller, allowed: int | None = None):
    """Hold one of `caller`'s `allowed` slots of `scope` while the block runs;
    RateLimited when all are taken. The counter expires on its own after an
    hour, so a process killed mid-way cannot leak a slot for longer."""
    if allowed is None:
        allowed = CONCURRENT_RUNS["user" if caller.is_authenticated else "anonymous"]
    key = f"concurrent:{scope}:{caller.key}"
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.add(key, 0, timeout=3600)
        count = cache.incr(key)
    try:
        if count > allowed:
            raise RateLimited(
                scope,
                CONCURRENCY_RETRY_AFTER,
                f"You already have {allowed} {scope} calls waiting; wait for one to finish.",
                limit=allowed,
                error="too_many_concurrent",
            )
        yield
    finally:
        try:
            cache.decr(key)
        except ValueError:
            pass
