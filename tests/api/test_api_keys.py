"""API keys: made on /settings/, shown once, stored hashed, listed, revocable."""

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from tests.factories import UserFactory

from .conftest import API, assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def create_key(client, name="laptop"):
    response = client.post(reverse("api_key_create"), {"name": name})
    assert response.status_code == 200
    page = response.content.decode()
    token = re.search(r'id="new-api-key"[^>]*>([^<]+)<', page)[1]
    return response, token


def test_key_is_shown_once_and_stored_hashed(signed_in, user):
    response, token = create_key(signed_in)
    assert "no-store" in response["Cache-Control"]
    key = user.api_keys.get()
    assert key.name == "laptop" and token.startswith(key.prefix)
    assert key.secret_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ApiKey.objects.values_list())
    # The settings page lists it by name and prefix, never the token again.
    page = signed_in.get(reverse("account_settings")).content.decode()
    assert "laptop" in page and key.prefix in page and token not in page
    assert "never" in page  # not used yet


def test_key_authenticates_and_records_its_use(signed_in, user):
    _, token = create_key(signed_in)
    response = Client().get(f"{API}/auth/me", headers={"X-API-Key": token})
    assert response.status_code == 200
    assert response.json()["username"] == user.username
    assert response.json()["api_key"] == {"name": "laptop", "prefix": token[:12]}
    assert user.api_keys.get().last_used_at is not None
    page = signed_in.get(reverse("account_settings")).content.decode()
    assert "ago" in page


def test_revoking_asks_first_then_stops_the_key(signed_in, user):
    _, token = create_key(signed_in)
    key = user.api_keys.get()
    confirm = signed_in.get(reverse("api_key_revoke", args=[key.pk]))
    assert confirm.status_code == 200 and b"Revoke key" in confirm.content
    assert user.api_keys.get().is_active  # a GET changes nothing
    response = signed_in.post(reverse("api_key_revoke", args=[key.pk]))
    assert response.status_code == 302
    assert not user.api_keys.get().is_active
    assert_error(Client().get(f"{API}/auth/me", headers={"X-API-Key": token}), 401)
    # Already revoked: nothing left to revoke.
    assert signed_in.post(reverse("api_key_revoke", args=[key.pk])).status_code == 404


def test_keys_are_private_to_their_owner(signed_in):
    other_key, _ = ApiKey.create_for(user=UserFactory(), name="theirs")
    assert signed_in.get(reverse("api_key_revoke", args=[other_key.pk])).status_code == 404
    assert signed_in.post(reverse("api_key_revoke", args=[other_key.pk])).status_code == 404
    assert other_key.__class__.objects.get(pk=other_key.pk).is_active


def test_key_pages_need_sign_in(client, user):
    key, _ = ApiKey.create_for(user=user, name="k")
    for url in (reverse("api_key_create"), reverse("api_key_revoke", args=[key.pk])):
        response = client.post(url, {"name": "x"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_name_is_required_and_active_keys_are_capped(signed_in, user):
    response = signed_in.post(reverse("api_key_create"), {"name": ""})
    assert "new-api-key" not in response.content.decode() and not user.api_keys.exists()
    for i in range(ApiKey.MAX_ACTIVE_PER_USER):
        ApiKey.create_for(user=user, name=f"k{i}")
    response = signed_in.post(reverse("api_key_create"), {"name": "one more"})
    assert "revoke one first" in response.content.decode()
    assert user.api_keys.count() == ApiKey.MAX_ACTIVE_PER_USER


def test_inactive_users_keys_stop_working(user):
    _, token = ApiKey.create_for(user=user, name="k")
    user.is_active = False
    user.save()
    assert_error(Client().get(f"{API}/auth/me", headers={"X-API-Key": token}), 401)
