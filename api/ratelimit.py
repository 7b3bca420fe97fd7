"""Rate limits for the API, counted in Django's cache (Redis in production).

Each request is counted in two fixed-window buckets: one for the caller (the
signed-in user, whichever key they use; an anonymous caller is its IP) and one
for the client IP, whoever is signed in there, so neither many keys nor many
accounts from one address get past the per-IP cap. The client IP is the real
one: only `settings.TRUSTED_PROXY_COUNT` proxies' X-Forwarded-For entries are
believed, so a client cannot pick its own address by sending the header.
"""

import ipaddress
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from compiler.models import CompileJob

from .errors import ApiError


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
    # Requests with a wrong API key, per IP: they fail before any other limit.
    "bad_key": Rule(anonymous=30, user=30, ip=30, period=600),
}
# Compile jobs queued or running at once: anonymous per IP, signed-in per user.
CONCURRENT_COMPILES = {"anonymous": 1, "user": 2}
CONCURRENCY_RETRY_AFTER = 30
SLOT_WAIT_SECONDS = 5  # how long a compile request waits for the caller's other one
clock = time.time  # the windows' clock (tests hold it still)


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


@dataclass
class Usage:
    limit: int
    remaining: int
    reset: int  # seconds until the window ends


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


def caller_key(request) -> str:
    user = request.user
    if user.is_authenticated:
        return f"user:{user.pk}"
    return f"anon:{ip_bucket(client_ip(request)) or 'unknown'}"


def limit(request, scope: str) -> None:
    """Count this request against `scope`; raise a 429 ApiError when over.
    The tightest bucket is reported in X-RateLimit-* by api.middleware."""
    rule = RULES[scope]
    caller_limit = rule.user if request.user.is_authenticated else rule.anonymous
    buckets = [
        (f"{scope}:{caller_key(request)}", caller_limit),
        (f"{scope}:ip:{ip_bucket(client_ip(request)) or 'unknown'}", rule.ip),
    ]
    usages = []
    over = []
    for key, allowed in buckets:
        usage, count = _hit(key, allowed, rule.period)
        usages.append(usage)
        if count > allowed:
            over.append(usage)
    request.rate_limit = min(usages, key=lambda u: (u.remaining, -u.reset))
    if over:
        retry_after = max(u.reset for u in over)
        raise ApiError(
            429,
            f"Rate limit exceeded for {scope} requests; retry in {retry_after} s.",
            details={"scope": scope, "limit": over[0].limit, "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


@contextmanager
def compile_slot(request, ip: str):
    """Hold the caller's compile slot while a compile is submitted: refuse when
    the caller already has its share of queued or running jobs. A short cache
    lock makes check-then-submit one step, so two requests at once cannot both
    take the last slot."""
    user = request.user
    if user.is_authenticated:
        allowed = CONCURRENT_COMPILES["user"]
        active = CompileJob.objects.active().filter(owner=user)
    else:
        allowed = CONCURRENT_COMPILES["anonymous"]
        active = CompileJob.objects.active().filter(owner=None, client_ip=ip or None)
    lock = f"compile-slot:{caller_key(request)}"
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while not cache.add(lock, 1, timeout=30):
        if time.monotonic() > deadline:
            raise ApiError(
                429,
                "Another compile request of yours is being handled.",
                headers={"Retry-After": "1"},
            )
        time.sleep(0.05)
    try:
        if active.count() >= allowed:
            raise ApiError(
                429,
                f"You have {allowed} compile{'s' if allowed > 1 else ''} queued or running; "
                "wait for one to finish or cancel it.",
                error="too_many_compiles",
                details={"concurrent_limit": allowed},
                headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER)},
            )
        yield
    finally:
        cache.delete(lock)
