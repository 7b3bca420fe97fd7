"""Local (username + password) accounts as a person uses them in a browser."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.browser.conftest import expect_signed_in_as, expect_signed_out, sign_out
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
User = get_user_model()
PHONE = {"width": 390, "height": 844}


def sign_in(page, username, password):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_sign_up_sign_out_and_sign_in_again(page):
    page.goto("/")
    page.get_by_role("main").get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Email (optional)").fill("grace@example.com")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect_signed_in_as(page, "grace")
    assert User.objects.get(username="grace").email == "grace@example.com"

    sign_out(page)
    page.locator(".site-header").get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect_signed_in_as(page, "grace")


def test_a_bad_sign_in_shows_the_errors_beside_the_fields(page):
    UserFactory(username="grace")
    sign_in(page, "grace", "")

    password = page.get_by_label("Password")
    # The message sits in the field's own block, right under the input.
    error = password.locator("xpath=..").locator(".errorlist")
    expect(error).to_have_text("This field is required.")
    field_box, error_box = password.bounding_box(), error.bounding_box()
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 16
    expect(page.get_by_label("Username")).to_have_value("grace")

    password.fill("not-the-password")
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page.locator(".errorlist.nonfield")).to_contain_text("not correct")
    expect(page.get_by_label("Username")).to_have_value("grace")
    expect_signed_out(page)


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_every_label_on_the_account_forms_names_a_field(page, path):
    page.goto(path)
    orphans = page.evaluate(
        """() => [...document.querySelectorAll("main label")]
            .filter((label) => !label.control).map((label) => label.textContent.trim())"""
    )
    assert orphans == []


def assert_fits_the_width(page):
    overflow = page.evaluate(
        """() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"""
    )
    assert overflow[0] <= overflow[1], f"{page.url} scrolls sideways: {overflow}"
    for element in page.locator("input:visible, button:visible, .button:visible").all():
        box = element.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], element


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/"])
def test_pages_fit_a_phone_screen(page, path):
    page.set_viewport_size(PHONE)
    page.goto(path)
    assert_fits_the_width(page)


def test_the_signed_in_header_fits_a_phone_screen(page):
    # GitHub logins run to 39 characters.
    UserFactory(username="a-rather-long-github-login-of-39-chars1")
    page.set_viewport_size(PHONE)
    sign_in(page, "a-rather-long-github-login-of-39-chars1", PASSWORD)
    expect(page.locator(".site-header summary")).to_be_visible()
    assert_fits_the_width(page)
    page.locator(".site-header summary").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport(ratio=1)
