"""Rate limits: per user/key and per client IP, the real IP behind trusted proxies."""

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory

from api import ratelimit
from compiler import services as compile_services
from compiler.models import CompileJob
from paw_site import limits
from paw_site.limits import Rule

from .conftest import API, SPEC, assert_error, key_client

pytestmark = pytest.mark.django_db


def spec(n):
    return SPEC + f"\nInput: case {n}\nOutput: low\n"


def compile_(client, n, **headers):
    return client.post(
        f"{API}/compile/async", {"spec": spec(n)}, content_type="application/json", headers=headers
    )


def finish_all_jobs():
    CompileJob.objects.update(status=CompileJob.Status.FAILED)


@pytest.fixture
def tight(monkeypatch):
    """Small limits so a test can reach them in a few requests."""
    rules = dict(limits.RULES)
    rules["compile"] = Rule(anonymous=3, user=4, ip=6, period=3600)
    rules["read"] = Rule(anonymous=5, user=5, ip=8, period=60)
    monkeypatch.setattr(limits, "RULES", rules)
    return rules


def test_anonymous_compiles_per_hour_and_spoofed_forwarded_for_does_not_help(tight):
    client = Client()
    remaining = []
    for n in range(3):
        response = compile_(client, n, X_Forwarded_For=f"203.0.113.{n}")
        assert response.status_code == 202
        remaining.append(int(response["X-RateLimit-Remaining"]))
        finish_all_jobs()
    assert remaining == [2, 1, 0]
    response = compile_(client, 99, X_Forwarded_For="198.51.100.7")
    body = assert_error(response, 429, "rate_limited")
    assert 0 < int(response["Retry-After"]) <= 3600
    assert response["X-RateLimit-Remaining"] == "0" and response["X-RateLimit-Limit"] == "3"
    assert body["details"]["scope"] == "compile"
    assert CompileJob.objects.count() == 3
    # Another real address has its own allowance.
    assert compile_(Client(REMOTE_ADDR="192.0.2.50"), 100).status_code == 202


def test_behind_a_trusted_proxy_the_proxys_entry_is_the_client(tight, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")  # the proxy; the client is what it appended
    for n in range(3):
        spoof = f"203.0.113.{n}, 1.2.3.{n}"  # client-sent entries, then the proxy's
        response = compile_(proxy, n, X_Forwarded_For=f"{spoof}, 198.51.100.7")
        assert response.status_code == 202
        finish_all_jobs()
    assert set(CompileJob.objects.values_list("client_ip", flat=True)) == {"198.51.100.7"}
    assert_error(compile_(proxy, 3, X_Forwarded_For="9.9.9.9, 198.51.100.7"), 429)
    # A different client behind the same proxy is not affected.
    assert compile_(proxy, 4, X_Forwarded_For="198.51.100.8").status_code == 202


def test_many_keys_of_one_user_share_the_users_allowance(tight, user):
    for n in range(4):
        assert compile_(key_client(user, f"k{n}"), n).status_code == 202
        finish_all_jobs()
    assert_error(compile_(key_client(user, "fresh"), 9), 429, "rate_limited")


def test_many_users_keys_from_one_ip_hit_the_ip_cap(tight):
    from tests.factories import UserFactory

    statuses = []
    for _ in range(9):
        client = key_client(UserFactory())  # a new account and key every time
        statuses.append(client.get(f"{API}/models/compilers").status_code)
    assert statuses == [200] * 8 + [429]


def test_anonymous_one_compile_at_a_time(no_enqueue):
    client = Client()
    first = compile_(client, 1)
    assert first.status_code == 202
    response = compile_(client, 2)
    body = assert_error(response, 429, "too_many_compiles")
    assert body["details"] == {"concurrent_limit": 1}
    assert int(response["Retry-After"]) > 0
    # Someone else (another address) may compile meanwhile.
    assert compile_(Client(REMOTE_ADDR="192.0.2.9"), 3).status_code == 202
    CompileJob.objects.filter(pk=first.json()["job_id"]).update(status="ready")
    assert compile_(client, 2).status_code == 202


def test_signed_in_two_compiles_at_a_time(user):
    client = key_client(user)
    assert compile_(client, 1).status_code == 202
    assert compile_(client, 2).status_code == 202
    assert_error(compile_(client, 3), 429, "too_many_compiles")
    # The same user's other key shares the slots.
    assert_error(compile_(key_client(user, "other"), 3), 429, "too_many_compiles")


def test_joining_a_running_compile_needs_a_free_slot_too(no_enqueue):
    assert compile_(Client(), 1).status_code == 202
    assert_error(compile_(Client(), 1), 429, "too_many_compiles")


def test_reads_are_limited_per_caller(tight):
    client = Client()
    codes = [client.get(f"{API}/models/compilers").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


@pytest.mark.parametrize(
    "trusted, forwarded, remote, expected",
    [
        (0, "1.1.1.1", "10.0.0.1", "10.0.0.1"),
        (1, "1.1.1.1", "10.0.0.1", "1.1.1.1"),
        (1, "6.6.6.6, 1.1.1.1", "10.0.0.1", "1.1.1.1"),
        (2, "6.6.6.6, 1.1.1.1, 10.0.0.9", "10.0.0.1", "1.1.1.1"),
        (2, "1.1.1.1", "10.0.0.1", "1.1.1.1"),  # fewer hops than proxies
        (1, "", "10.0.0.1", "10.0.0.1"),
        (1, "not-an-ip", "10.0.0.1", "10.0.0.1"),
        (1, "2001:db8::1", "10.0.0.1", "2001:db8::1"),
    ],
)
def test_client_ip(settings, trusted, forwarded, remote, expected):
    settings.TRUSTED_PROXY_COUNT = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert ratelimit.client_ip(request) == expected


def test_ipv6_addresses_share_their_64():
    assert ratelimit.ip_bucket("2001:db8:1:2:aaaa::1") == ratelimit.ip_bucket("2001:db8:1:2::ff")
    assert ratelimit.ip_bucket("2001:db8:1:3::1") != ratelimit.ip_bucket("2001:db8:1:2::1")
    assert ratelimit.ip_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert ratelimit.ip_bucket("") == ""


def test_guessing_keys_is_limited_per_ip():
    client = Client()
    codes = [
        client.get(f"{API}/models/compilers", headers={"X-API-Key": f"paw_guess{n}"}).status_code
        for n in range(31)
    ]
    assert codes == [401] * 30 + [429]
    # Other addresses are not affected.
    other = Client(REMOTE_ADDR="192.0.2.77")
    assert other.get(f"{API}/models/compilers", headers={"X-API-Key": "paw_x"}).status_code == 401


def test_compile_requests_of_one_caller_take_turns(monkeypatch, user):
    """While one compile request of a caller holds its slot, the next waits,
    then gives up with a 429 rather than racing it for the last free slot."""
    monkeypatch.setattr(compile_services, "SLOT_WAIT_SECONDS", 0.2)
    cache.add(f"compile-slot:user:{user.pk}", 1, timeout=30)  # a request in flight
    response = compile_(key_client(user), 1)
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "1"
    assert not CompileJob.objects.exists()
    cache.delete(f"compile-slot:user:{user.pk}")
    assert compile_(key_client(user), 1).status_code == 202
