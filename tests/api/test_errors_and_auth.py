"""The error contract, request ids, auth (key, session + CSRF) and the docs."""

import re

import pytest
from django.test import Client

from accounts.models import ApiKey

from .conftest import API, SPEC, assert_error

pytestmark = pytest.mark.django_db


def test_unknown_route_is_a_json_404(anon):
    body = assert_error(anon.get(f"{API}/no/such/thing"), 404, "not_found")
    assert body["details"] is None


def test_wrong_method_is_a_json_405_with_allow(anon):
    response = anon.put(f"{API}/compile/async", {}, content_type="application/json")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_crash_is_a_json_500_without_details(anon, monkeypatch):
    from compiler import registry

    def broken():
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(registry, "compilers", broken)
    response = anon.get(f"{API}/models/compilers")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.content.decode() and body["details"] is None


def test_request_id_is_echoed_when_sane_and_made_otherwise(anon):
    sane = anon.get(f"{API}/models/compilers", headers={"X-Request-ID": "client-req-0001"})
    assert sane["X-Request-ID"] == "client-req-0001"
    for bad in ("x", "a b c d e f g h", "<script>alert(1)</script>", "z" * 200):
        response = anon.get(f"{API}/models/compilers", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    # Every response of the site has one, not only the API's.
    assert re.fullmatch(r"[0-9a-f]{32}", anon.get("/")["X-Request-ID"])


def test_signed_in_endpoint_is_401_for_anonymous(anon):
    assert_error(anon.get(f"{API}/auth/me"), 401, "unauthorized")


@pytest.mark.parametrize("token", ["paw_nonsense", "garbage", "paw_" + "a" * 300])
def test_unknown_key_is_401_even_where_anonymous_is_fine(anon, token):
    response = anon.get(f"{API}/models/compilers", headers={"X-API-Key": token})
    assert_error(response, 401, "invalid_api_key")


def test_revoked_key_is_401(user):
    key, token = ApiKey.create_for(user=user, name="old")
    key.revoke()
    client = Client(headers={"X-API-Key": token})
    assert_error(client.get(f"{API}/auth/me"), 401, "invalid_api_key")
    assert_error(
        client.post(f"{API}/compile/async", {"spec": SPEC}, content_type="application/json"), 401
    )


def test_me_with_a_key_and_with_the_session(as_user, user, client):
    body = as_user.get(f"{API}/auth/me").json()
    assert body == {
        "id": user.pk,
        "username": user.username,
        "display_name": user.username,
        "avatar_url": "",
        "is_staff": False,
        "auth": "api_key",
        "api_key": {"name": "test", "prefix": as_user.api_key.prefix},
    }
    client.force_login(user)
    assert client.get(f"{API}/auth/me").json()["auth"] == "session"


def test_session_writes_need_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/settings/")  # sets the csrftoken cookie
    post = {
        "path": f"{API}/compile/async",
        "data": {"spec": SPEC},
        "content_type": "application/json",
    }
    assert_error(browser.post(**post), 403, "csrf_failed")
    token = browser.cookies["csrftoken"].value
    response = browser.post(**post, headers={"X-CSRFToken": token})
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_anonymous_writes_need_no_csrf_token():
    # No session, no ambient authority: nothing for CSRF to protect.
    response = Client(enforce_csrf_checks=True).post(
        f"{API}/compile/async", {"spec": SPEC}, content_type="application/json"
    )
    assert response.status_code == 202


def test_a_key_wins_over_the_session(user, other_user):
    _, token = ApiKey.create_for(user=other_user, name="k")
    browser = Client(enforce_csrf_checks=True, headers={"X-API-Key": token})
    browser.force_login(user)
    assert browser.get(f"{API}/auth/me").json()["username"] == other_user.username
    # A key needs no CSRF token: it is never sent by a browser on its own.
    response = browser.post(f"{API}/compile/async", {"spec": SPEC}, content_type="application/json")
    assert response.status_code == 202


def test_docs_page_uses_no_cdn(anon):
    page = anon.get(f"{API}/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        assert anon.get(asset).status_code == 200, asset


def test_openapi_document(anon):
    doc = anon.get(f"{API}/openapi.json").json()
    assert doc["info"]["title"] == "PAW Hub API"
    assert {"/api/v1/compile", "/api/v1/health", "/api/v1/auth/me"} <= set(doc["paths"])
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    # Anonymous calls are allowed on compile: an empty requirement is listed.
    assert {} in doc["paths"]["/api/v1/compile"]["post"]["security"]
    assert {} not in doc["paths"]["/api/v1/auth/me"]["get"]["security"]


def test_docs_page_carries_the_csrf_token_for_session_calls(user, client):
    client.force_login(user)
    html = client.get(f"{API}/docs").content.decode()
    assert 'data-api-csrf="true"' in html
    assert re.search(r'data-csrf-token="[A-Za-z0-9]{32,}"', html)


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("get", f"{API}/programs", {"q": "a\x00b"}),
        ("get", f"{API}/programs", {"tag": "\x00"}),
        ("post", f"{API}/compile/async", {"spec": SPEC + "\x00"}),
        ("post", f"{API}/compile/async", {"spec": SPEC, "name": "\x00"}),
    ],
)
def test_null_characters_are_422_not_a_database_error(anon, method, path, data):
    if method == "get":
        response = anon.get(path, data)
    else:
        response = anon.post(path, data, content_type="application/json")
    body = assert_error(response, 422, "validation_error")
    assert "Null characters" in body["message"]
