"""Rate limits against gunicorn with production proxy settings (one trusted
proxy that appends the client's address to X-Forwarded-For): a client that
sends a new random X-Forwarded-For with every request gets no new bucket, and
many API keys (of many accounts) from one address still meet the per-IP cap.

The limits are the production ones (paw_site.limits.RULES), in fixed windows
of the site's clock: each measurement starts early enough in a window to end
before it rolls over, from a client address no earlier run used."""

import ipaddress
import json
import random
import time

import pytest

from accounts.models import ApiKey
from paw_site.limits import RULES
from tests.factories import UserFactory
from tests.reliability.production import Proxy

pytestmark = pytest.mark.django_db(transaction=True)

rng = random.Random()


def fresh_client_ip():
    """An address in 198.18.0.0/15 (benchmarking), new to the shared cache."""
    return str(ipaddress.ip_address("198.18.0.0") + rng.randrange(1, 1 << 17))


def spoofed_forwarded_for():
    """What a client might put in X-Forwarded-For to look like someone new."""
    v4 = ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    v6 = f"2001:db8:{rng.randrange(1 << 16):x}::{rng.randrange(1 << 16):x}"
    return rng.choice([v4, v6, f"{v4}, {v4}", f"{v6}, {v4}", "unknown", f"{v4},{v4},{v4}"])


def spoofed_headers():
    """Other headers that name a client address; the proxy passes them on as they are."""
    ip = spoofed_forwarded_for().split(",")[0]
    return {
        "X_Forwarded_For": ip,  # the same WSGI variable, if a server let it through
        "X-Real-IP": ip,
        "Forwarded": f"for={ip}",
        "Client-IP": ip,
    }


def start_of_a_window(period, needed_seconds):
    """Wait, if need be, until a fresh window has `needed_seconds` left."""
    left = period - time.time() % period
    if left < needed_seconds:
        time.sleep(left + 0.5)


def until_refused(send, limit):
    """Send requests until the first 429 (at most limit + 5); returns how many
    were allowed and the refusal."""
    for allowed in range(limit + 5):
        response = send(allowed)
        if response.status == 429:
            return allowed, response
        assert response.status < 400 or response.status == 404, (response.status, response.body)
    pytest.fail(f"no 429 after {limit + 5} requests")


def test_a_random_forwarded_for_per_request_gets_no_new_bucket(site, figure):
    rule = RULES["read"]
    proxy = Proxy(site, client_ip=fresh_client_ip())
    start_of_a_window(rule.period, needed_seconds=40)

    def send(n):
        return proxy.get(
            "/api/v1/models/compilers",
            headers=spoofed_headers(),
            forwarded_for=spoofed_forwarded_for(),
        )

    allowed, refused = until_refused(send, rule.anonymous)
    figure("anonymous reads allowed before 429, new spoofed client address headers each", allowed)
    assert allowed == rule.anonymous
    assert int(refused.header("Retry-After")) > 0
    assert json.loads(refused.body)["error"] == "rate_limited"
    # The bucket is the client's real address (the proxy's entry): another one is fine.
    assert proxy.get("/api/v1/models/compilers", client_ip=fresh_client_ip()).status == 200


def test_many_api_keys_from_one_address_meet_the_per_ip_cap(site, figure):
    rule = RULES["infer"]
    # Enough accounts that no one of them reaches its own limit first.
    users = [UserFactory() for _ in range(rule.ip // rule.user + 3)]
    tokens = [ApiKey.create_for(user=user, name=f"key{i}")[1] for i, user in enumerate(users)]
    proxy = Proxy(site, client_ip=fresh_client_ip())
    start_of_a_window(rule.period, needed_seconds=45)

    def send(n):
        # A missing program: the call is counted, then answered 404 at once.
        return proxy.request(
            "POST",
            "/api/v1/infer",
            body=json.dumps({"program_id": "no-such-program", "input": "hi"}),
            headers={"X-API-Key": tokens[n % len(tokens)], "Content-Type": "application/json"},
            forwarded_for=spoofed_forwarded_for(),
        )

    allowed, refused = until_refused(send, rule.ip)
    figure(f"infer calls allowed before 429 with {len(tokens)} API keys from one IP", allowed)
    assert allowed == rule.ip
    assert refused.header("X-RateLimit-Limit") == str(rule.ip)
    # The same keys from another address are not refused.
    other = Proxy(site, client_ip=fresh_client_ip())
    again = other.request(
        "POST",
        "/api/v1/infer",
        body=json.dumps({"program_id": "no-such-program", "input": "hi"}),
        headers={"X-API-Key": tokens[0], "Content-Type": "application/json"},
    )
    assert again.status == 404


def test_guessing_api_keys_with_spoofed_forwarded_for_is_cut_off(site, figure):
    rule = RULES["bad_key"]
    proxy = Proxy(site, client_ip=fresh_client_ip())
    start_of_a_window(rule.period, needed_seconds=30)

    def send(n):
        return proxy.get(
            "/api/v1/auth/me",
            headers={"X-API-Key": f"paw_guess{rng.getrandbits(64):x}"},
            forwarded_for=spoofed_forwarded_for(),
        )

    refused_at = None
    for n in range(rule.ip + 5):
        response = send(n)
        if response.status == 429:
            refused_at = n
            break
        assert response.status == 401, response.body
    figure("wrong API keys answered 401 before 429", refused_at)
    assert refused_at == rule.ip
