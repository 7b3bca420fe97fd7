"""Sign in with GitHub, end to end: the browser clicks through the site and a
fake GitHub, and the site exchanges the code and reads the profile itself."""

from urllib.parse import urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.browser.conftest import expect_signed_in_as, expect_signed_out, sign_out
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
User = get_user_model()


def authorize_on_github(page, github, github_user):
    """From the site's sign-in page to the "Authorize" click on GitHub."""
    github.next_user = github_user
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Sign in with GitHub").click()
    expect(page.get_by_role("heading", name=f"Authorize {github.client_id}")).to_be_visible()
    page.get_by_role("button", name="Authorize").click()


def test_github_sign_in_creates_a_user_from_the_github_profile(page, fake_github):
    octocat = fake_github.user(
        id=583231, login="octocat", name="The Octocat", email="octocat@example.com"
    )

    authorize_on_github(page, fake_github, octocat)

    expect_signed_in_as(page, "octocat")
    assert urlsplit(page.url).path == "/"
    expect(page.locator(".site-header img.avatar")).to_have_attribute("src", octocat["avatar_url"])
    account = SocialAccount.objects.select_related("user").get(provider="github")
    assert account.uid == "583231"
    user = account.user
    assert user.username == "octocat"
    assert user.avatar_url == octocat["avatar_url"]
    assert user.display_name == "The Octocat"
    assert user.github_url == octocat["html_url"]
    assert user.email == "octocat@example.com"
    # The site sent a state to GitHub and redeemed the code once, with its secret.
    assert fake_github.authorize_requests[0]["state"]
    assert len(fake_github.token_requests) == 1


def test_signing_in_again_with_the_same_github_id_finds_the_same_user(page, fake_github):
    authorize_on_github(page, fake_github, fake_github.user(id=1001, login="hopper"))
    expect_signed_in_as(page, "hopper")
    sign_out(page)

    # Same GitHub account, renamed since: the numeric id is what identifies it.
    authorize_on_github(page, fake_github, fake_github.user(id=1001, login="grace-hopper"))

    expect_signed_in_as(page, "hopper")
    assert User.objects.count() == 1
    account = SocialAccount.objects.get()
    assert (account.uid, account.user.username) == ("1001", "hopper")


def test_github_login_equal_to_a_local_username_gets_a_new_account(page, fake_github):
    local = UserFactory(username="octocat", email="cat@local.example", display_name="Local Cat")

    authorize_on_github(
        page,
        fake_github,
        fake_github.user(id=42, login="octocat", name="GitHub Cat", email="gh@example.com"),
    )

    account = SocialAccount.objects.select_related("user").get(uid="42")
    assert account.user.pk != local.pk
    assert account.user.username != "octocat"
    expect_signed_in_as(page, account.user.username)
    assert User.objects.count() == 2
    local.refresh_from_db()
    assert (local.email, local.display_name, local.avatar_url) == (
        "cat@local.example",
        "Local Cat",
        "",
    )
    assert local.check_password(PASSWORD)
    assert not local.socialaccount_set.exists()


def test_github_email_equal_to_a_local_users_email_does_not_take_over_that_account(
    page, fake_github
):
    local = UserFactory(username="ada", email="ada@example.com")

    # The fake GitHub reports this address as primary and verified.
    authorize_on_github(
        page, fake_github, fake_github.user(id=7, login="ada-gh", email="ada@example.com")
    )

    expect_signed_in_as(page, "ada-gh")
    account = SocialAccount.objects.select_related("user").get(uid="7")
    assert account.user.pk != local.pk
    assert account.user.email == ""  # the address stays with the account that had it
    local.refresh_from_db()
    assert local.email == "ada@example.com"
    assert not local.socialaccount_set.exists()


def test_a_callback_with_a_forged_state_is_refused(page, fake_github):
    # GitHub hands back a genuine code, but with a state this browser never got.
    fake_github.tamper_state = True

    authorize_on_github(page, fake_github, fake_github.user(id=9, login="mallory"))

    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    expect_signed_out(page)
    assert fake_github.token_requests == []  # the code was never redeemed
    assert not User.objects.exists()
    page.goto("/")
    expect_signed_out(page)


def test_a_callback_started_in_another_browser_is_refused(browser, live_site, page, fake_github):
    """Login CSRF: an attacker runs the flow with their own GitHub account, keeps
    the callback URL (a genuine code and state) and makes the victim's browser open it."""
    attacker = browser.new_context(base_url=live_site).new_page()
    callback_urls = []

    def keep_callback_url(route):
        # GitHub's answer to "Authorize" is the redirect to the callback: read
        # it instead of following it.
        response = route.fetch(max_redirects=0)
        callback_urls.append(response.headers["location"])
        route.fulfill(status=200, body="kept")

    attacker.route(f"{fake_github.url}/login/oauth/authorize", keep_callback_url)
    authorize_on_github(attacker, fake_github, fake_github.user(id=666, login="mallory"))
    expect(attacker.get_by_text("kept")).to_be_visible()
    attacker.context.close()

    page.goto(callback_urls[0])

    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    expect_signed_out(page)
    assert fake_github.token_requests == []  # the code was never redeemed
    assert not User.objects.exists()
