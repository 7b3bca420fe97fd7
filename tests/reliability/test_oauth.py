"""Sign in with GitHub cannot be turned against the site: a callback whose
`state` this session was never given is refused before the code is redeemed,
and a GitHub account never takes over a local account through its email.

Django's test client plays the browser; the site's callback view talks to the
fake GitHub over real HTTP (tests/fake_github.py, shared with the browser tests).
"""

from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import PASSWORD, UserFactory
from tests.fake_github import fake_github_fixture, fake_github_server_fixture  # noqa: F401

pytestmark = pytest.mark.django_db
User = get_user_model()
LOGIN = "/accounts/github/login/"


@pytest.fixture
def github(fake_github, settings, monkeypatch):
    """The site configured for the fake GitHub, as GITHUB_URL would configure it
    (allauth reads that setting once, at import, so its URLs are set here)."""
    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {
            "APP": {"client_id": fake_github.client_id, "secret": fake_github.client_secret},
            "SCOPE": ["read:user", "user:email"],
        }
    }
    web, api = fake_github.url, f"{fake_github.url}/api/v3"
    monkeypatch.setattr(GitHubOAuth2Adapter, "authorize_url", f"{web}/login/oauth/authorize")
    monkeypatch.setattr(GitHubOAuth2Adapter, "access_token_url", f"{web}/login/oauth/access_token")
    monkeypatch.setattr(GitHubOAuth2Adapter, "profile_url", f"{api}/user")
    monkeypatch.setattr(GitHubOAuth2Adapter, "emails_url", f"{api}/user/emails")
    # The site's calls to GitHub go straight to the fake, never through a proxy.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return fake_github


def start_sign_in(client, github, github_user):
    """Press "Sign in with GitHub" and "Authorize"; returns the callback URL
    GitHub sends the browser back to (not yet opened)."""
    github.next_user = github_user
    response = client.post(LOGIN)
    assert response.status_code == 302, response.content[:500]
    assert response["Location"].startswith(github.url), response["Location"]
    return github.approve_url(response["Location"])


def signed_in_user(client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def refused(response):
    return response.status_code in (200, 400, 401, 403) and "Sign-in failed" in response.text


def test_the_fake_flow_signs_in_when_nothing_is_forged(client, github, figure):
    """The control: without forgery the same steps do sign in, so the refusals
    below are refusals and not a broken flow."""
    callback = start_sign_in(client, github, github.user(id=31, login="octo", email="o@gh.test"))
    response = client.get(callback)

    assert response.status_code == 302, response.text[:500]
    assert signed_in_user(client).username == "octo"
    assert len(github.token_requests) == 1
    figure("honest callback", f"HTTP {response.status_code}, signed in as octo")


def test_a_forged_state_is_refused_before_the_code_is_redeemed(client, github, figure):
    github.tamper_state = True
    callback = start_sign_in(client, github, github.user(id=9, login="mallory"))
    forged = parse_qs(urlsplit(callback).query)["state"][0]
    assert forged.startswith("forged-")

    response = client.get(callback)

    assert refused(response), (response.status_code, response.text[:500])
    assert signed_in_user(client) is None
    assert github.token_requests == []
    assert not User.objects.exists()
    figure(
        "forged state",
        f"HTTP {response.status_code}, code redemptions {len(github.token_requests)}, "
        f"users {User.objects.count()}",
    )


def test_a_callback_from_another_browser_is_refused(client, github, figure):
    """Login CSRF: the attacker's genuine code and state, opened in the victim's
    browser, must not sign the victim in as the attacker; not even when the
    victim has a sign-in of their own under way (their state is not this one)."""
    attacker = Client()
    callback = start_sign_in(attacker, github, github.user(id=666, login="mallory"))

    fresh = client.get(callback)
    start_sign_in(client, github, github.user(id=1, login="victim"))  # victim's own pending state
    pending = client.get(callback)

    for response in (fresh, pending):
        assert refused(response), (response.status_code, response.text[:500])
    assert signed_in_user(client) is None
    assert github.token_requests == []
    assert not SocialAccount.objects.exists()
    figure(
        "foreign callback",
        f"HTTP {fresh.status_code} without a pending sign-in, {pending.status_code} with one; "
        f"code redemptions {len(github.token_requests)}",
    )


def test_a_callback_cannot_be_replayed(client, github, figure):
    callback = start_sign_in(client, github, github.user(id=5, login="once"))
    assert client.get(callback).status_code == 302
    client.post("/accounts/logout/")

    again = client.get(callback)

    assert refused(again), (again.status_code, again.text[:500])
    assert signed_in_user(client) is None
    assert len(github.token_requests) == 1
    figure(
        "replayed callback", f"HTTP {again.status_code}, redemptions {len(github.token_requests)}"
    )


def _same_email(local):
    return local.email


def _other_case(local):
    return local.email.upper()


def _secondary_address(local):
    # An address the local account holds besides its main one.
    EmailAddress.objects.create(user=local, email="ada.old@example.com", verified=True)
    return "ada.old@example.com"


@pytest.mark.parametrize(
    "github_email", [_same_email, _other_case, _secondary_address], ids=lambda f: f.__name__[1:]
)
def test_a_github_email_of_a_local_user_does_not_take_over_that_account(
    client, github, github_email, figure
):
    local = UserFactory(username="ada", email="ada@example.com", display_name="Ada L")
    email = github_email(local)
    # The fake GitHub reports the address as primary and verified.
    callback = start_sign_in(client, github, github.user(id=7, login="ada", email=email))

    response = client.get(callback)

    newcomer = signed_in_user(client)
    assert newcomer is not None and newcomer.pk != local.pk, response.text[:500]
    account = SocialAccount.objects.get(uid="7")
    assert account.user_id == newcomer.pk
    assert newcomer.email == ""  # the address stays with the account that had it
    assert not EmailAddress.objects.filter(user=newcomer).exists()
    local.refresh_from_db()
    assert (local.username, local.email, local.display_name) == ("ada", "ada@example.com", "Ada L")
    assert local.check_password(PASSWORD)
    assert not local.socialaccount_set.exists()
    figure(
        f"GitHub email {email!r}",
        f"signed in as new user {newcomer.username!r} (pk {newcomer.pk}), "
        f"local 'ada' (pk {local.pk}) untouched, users {User.objects.count()}",
    )
