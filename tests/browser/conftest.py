"""Browser tests: a real site process, a fake GitHub, and Debian's chromium.

The site runs as a gunicorn subprocess on the test database, configured
through its environment exactly as in production, with GITHUB_URL pointing at
a fake GitHub served from this process (allauth reads its GitHub URLs at
import time, so they cannot be changed from inside the test process).
Tests that use the site need committed data: mark them
`django_db(transaction=True)`.
"""

import html
import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO, site_process

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


class FakeGitHub:
    """github.com as allauth's GitHub provider sees it: the OAuth web flow
    (authorize page, code-for-token exchange) and the two API calls.

    A test picks who signs in next with `next_user = fake_github.user(...)`.
    """

    client_id = "paw-hub-test-client"
    client_secret = "paw-hub-test-secret"

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGitHubHandler)
        self.httpd.daemon_threads = True
        self.httpd.github = self
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.next_user = None
        # Redirect back with a state the site never issued (a forged callback).
        self.tamper_state = False
        self.codes = {}  # code -> {"user", "redirect_uri"}; single use
        self.tokens = {}  # access token -> user
        self.authorize_requests = []  # query of each authorize page shown
        self.token_requests = []  # form of each code-for-token exchange

    def user(self, *, id, login, name="", email=""):
        """A GitHub profile as GET /user returns it."""
        return {
            "id": id,
            "login": login,
            "name": name or None,
            "email": email or None,
            "avatar_url": f"{self.url}/avatars/{id}.svg",
            "html_url": f"{self.url}/{login}",
            "type": "User",
        }

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _FakeGitHubHandler(BaseHTTPRequestHandler):
    @property
    def github(self):
        return self.server.github

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/login/oauth/authorize":
            self.authorize_page(query)
        elif url.path == "/api/v3/user":
            if user := self.authenticated_user():
                self.send_json(200, user)
        elif url.path == "/api/v3/user/emails":
            if user := self.authenticated_user():
                emails = [{"email": user["email"], "primary": True, "verified": True}]
                self.send_json(200, emails if user["email"] else [])
        elif url.path.startswith("/avatars/"):
            svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1" fill="#2da44e"/></svg>'  # noqa: E501
            self.send(200, "image/svg+xml", svg)
        else:
            self.send(404, "text/plain", b"not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path == "/login/oauth/authorize":
            self.approve(form)
        elif self.path == "/login/oauth/access_token":
            self.exchange_code(form)
        else:
            self.send(404, "text/plain", b"not found")

    def authorize_page(self, query):
        github = self.github
        github.authorize_requests.append(query)
        if query.get("client_id") != github.client_id or not query.get("redirect_uri"):
            return self.send(400, "text/plain", b"unknown client_id or no redirect_uri")
        if github.next_user is None:
            return self.send(500, "text/plain", b"the test did not choose a GitHub user")
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "state")
        )
        page = f"""<!doctype html><title>Authorize application</title>
            <h1>Authorize {html.escape(query["client_id"])}</h1>
            <p>Signed in to GitHub as <b>{html.escape(github.next_user["login"])}</b>.
            The application asks for: {html.escape(query.get("scope", ""))}.</p>
            <form method="post" action="/login/oauth/authorize">{hidden}
            <button type="submit">Authorize</button></form>"""
        self.send(200, "text/html; charset=utf-8", page.encode())

    def approve(self, form):
        github = self.github
        code = secrets.token_hex(10)
        with github.lock:
            github.codes[code] = {"user": github.next_user, "redirect_uri": form["redirect_uri"]}
        state = "forged-" + secrets.token_hex(8) if github.tamper_state else form["state"]
        separator = "&" if "?" in form["redirect_uri"] else "?"
        location = form["redirect_uri"] + separator + urlencode({"code": code, "state": state})
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def exchange_code(self, form):
        github = self.github
        github.token_requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (
            github.client_id,
            github.client_secret,
        ):
            return self.send_json(401, {"error": "incorrect_client_credentials"})
        with github.lock:
            grant = github.codes.pop(form.get("code"), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return self.send_json(400, {"error": "bad_verification_code"})
            token = "gho_" + secrets.token_hex(16)
            github.tokens[token] = grant["user"]
        self.send_json(200, {"access_token": token, "token_type": "bearer", "scope": "read:user"})

    def authenticated_user(self):
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        user = self.github.tokens.get(token) if scheme.lower() in ("token", "bearer") else None
        if user is None:
            self.send_json(401, {"message": "Bad credentials"})
        return user

    def send_json(self, status, data):
        self.send(status, "application/json", json.dumps(data).encode())

    def send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="package")
def fake_github_server():
    github = FakeGitHub().start()
    yield github
    github.stop()


@pytest.fixture
def fake_github(fake_github_server):
    """The fake GitHub, with no user chosen and no codes or tokens left over."""
    fake_github_server.reset()
    yield fake_github_server
    fake_github_server.reset()


@pytest.fixture(scope="package")
def live_site(django_db_setup, fake_github_server, tmp_path_factory):
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
