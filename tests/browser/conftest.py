"""Browser tests: a real site process, a fake GitHub, and Debian's chromium.

The site runs as a gunicorn subprocess on the test database, configured
through its environment exactly as in production, with GITHUB_URL pointing at
a fake GitHub served from this process (allauth reads its GitHub URLs at
import time, so they cannot be changed from inside the test process).
Tests that use the site need committed data: mark them
`django_db(transaction=True)`.
"""

import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO, site_process
from tests.fake_github import fake_github_fixture, fake_github_server_fixture  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-results"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="package")
def site_cache_dir(tmp_path_factory):
    """The cache the live site and this process share (see ``shared_cache``)."""
    return tmp_path_factory.mktemp("site_cache")


@pytest.fixture(autouse=True)
def shared_cache(settings, site_cache_dir):
    """This process and the live site use one cache, emptied before each test.

    With a cache of its own, the site kept serving a gallery page it cached in
    an earlier test (of a database since flushed): the programs this process
    saves make the cached pages stale only in the cache they share."""
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(site_cache_dir),
        }
    }
    cache.clear()


@pytest.fixture(scope="package")
def live_site(django_db_setup, fake_github_server, site_cache_dir, tmp_path_factory):
    """Base URL of the site running under gunicorn on the test database.

    Package-scoped so it starts once for the browser tests and stops before
    the test database is dropped.
    """
    log_path = tmp_path_factory.mktemp("live_site") / "gunicorn.log"
    with site_process(
        log_path,
        "/accounts/login/",
        without=[ASYNC_UNSAFE],  # only ever meant for this process (see `browser`)
        DEBUG="false",
        CACHE_URL=f"filecache://{site_cache_dir}",
        SECRET_KEY="browser-tests-" + secrets.token_hex(24),
        ALLOWED_HOSTS="127.0.0.1",
        ACCOUNT_ALLOW_SIGNUP="true",
        GITHUB_URL=fake_github_server.url,
        GITHUB_CLIENT_ID=fake_github_server.client_id,
        GITHUB_CLIENT_SECRET=fake_github_server.client_secret,
    ) as url:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "/accounts/login/", timeout=10) as response:
            if "Sign in with GitHub" not in response.read().decode():
                raise RuntimeError("the site started without the GitHub app configured")
        yield url


@pytest.fixture(scope="package")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("PAW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PAW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, and
    # Django then refuses ORM calls (SynchronousOnlyOperation), including the
    # flush after each test. The test code is plain synchronous code, so the
    # check is lifted while the browser is open.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv(ASYNC_UNSAFE, "true")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.browser_test_failed = True
    return report


@pytest.fixture
def page(browser, live_site, request):
    """A fresh browser tab (own cookies) whose relative URLs go to the live site.
    A failing test leaves a screenshot in test-results/."""
    context = browser.new_context(base_url=live_site)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    if getattr(request.node, "browser_test_failed", False):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()


# What a person sees in the header, for tests of both sign-in paths.


def expect_signed_in_as(page, username):
    expect(page.locator(".site-header .menu-name")).to_have_text(username)


def expect_signed_out(page):
    expect(page.locator(".site-header").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator(".site-header .menu")).to_have_count(0)


def sign_out(page):
    page.locator(".site-header summary").click()
    page.locator(".site-header").get_by_role("button", name="Sign out").click()
    expect_signed_out(page)


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """Keep the real hashers here: the live site (its own process, real settings)
    must be able to check the passwords these tests create."""
