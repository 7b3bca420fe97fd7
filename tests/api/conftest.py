"""Fixtures for the REST API tests: callers of each kind and no real compiles."""

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import ApiKey
from compiler import services
from paw_site import limits

API = "/api/v1"
SPEC = (
    "Classify a support message by urgency.\n"
    "Examples:\n"
    "Input: server down\nOutput: urgent\n\n"
    "Input: where is my invoice\nOutput: low\n"
)


@pytest.fixture(autouse=True)
def fresh_limits(monkeypatch):
    """Rate-limit counters live in the cache; every test starts with none, in
    the middle of a window that does not roll over while it runs."""
    monkeypatch.setattr(limits, "clock", lambda: 1_800_000_030.0)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def no_enqueue(monkeypatch):
    """Record what would be sent to the broker: API tests run no worker."""
    sent = []
    monkeypatch.setattr(services, "enqueue", sent.append)
    return sent


def key_client(user, name="test"):
    """A client that authenticates with a fresh API key of `user`."""
    key, token = ApiKey.create_for(user=user, name=name)
    client = Client(headers={"X-API-Key": token})
    client.api_key, client.token = key, token
    return client


@pytest.fixture
def anon():
    return Client()


@pytest.fixture
def as_user(user):
    return key_client(user)


@pytest.fixture
def as_other(other_user):
    return key_client(other_user)


@pytest.fixture
def as_staff(staff):
    return key_client(staff)


def assert_error(response, status, error=None):
    """The one error shape, with the request id matching the header."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    # 404s also carry `detail` (for the PAW SDK), saying "not found".
    extra = {"detail"} if status == 404 else set()
    assert set(body) == {"error", "message", "details", "request_id"} | extra
    if status == 404:
        assert "not found" in body["detail"].lower()
    assert body["request_id"] == response["X-Request-ID"]
    assert body["message"] and "Traceback" not in body["message"]
    if error:
        assert body["error"] == error, body
    return body
