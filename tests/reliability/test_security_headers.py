"""Security headers and cookies on real responses of gunicorn with production
settings behind a TLS-terminating proxy, and pages a strict Content-Security-Policy
can serve: no inline script, event handler, `javascript:` URL or inline style."""

import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from accounts.models import ApiKey
from tests.factories import ProgramFactory, StaffFactory, UserFactory
from tests.reliability.production import (
    ORIGIN,
    PRODUCTION_BEHIND_PROXY,
    Proxy,
    sign_in,
)
from tests.test_deploy_check import PRODUCTION, manage

pytestmark = pytest.mark.django_db(transaction=True)

ONE_YEAR = 31536000


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """Real hashers: the site (its own process) checks the passwords made here."""


def csp_directives(header):
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_check_deploy_is_clean_with_production_settings(db, figure):
    for settings in (PRODUCTION, PRODUCTION_BEHIND_PROXY):
        result = manage("check", "--deploy", "--fail-level", "WARNING", **settings)
        output = result.stdout + result.stderr
        found = re.search(r"identified (\d+) issues?", output)
        issues = int(found.group(1)) if found else 0
        figure("check --deploy issues", issues)
        assert result.returncode == 0 and issues == 0, output
        assert "no issues" in result.stdout


def test_https_responses_carry_hsts_csp_nosniff_and_referrer_policy(site, figure):
    proxy = Proxy(site)
    program = ProgramFactory()
    paths = ["/", "/hub/", program.get_absolute_url(), "/compile/", "/accounts/login/"]
    paths += ["/api/v1/docs", "/api/v1/health", "/admin/login/", "/no-such-page/"]
    for path in paths:
        response = proxy.get(path)
        assert response.status in (200, 302, 404), (path, response.status)
        assert response.header("Strict-Transport-Security") == (
            f"max-age={ONE_YEAR}; includeSubDomains; preload"
        ), path
        assert response.header("X-Content-Type-Options") == "nosniff", path
        assert response.header("Referrer-Policy") == "same-origin", path
        assert response.header("X-Frame-Options") == "DENY", path
        policy = response.header("Content-Security-Policy")
        assert policy, f"{path}: no Content-Security-Policy"
        directives = csp_directives(policy)
        scripts = directives.get("script-src", directives.get("default-src"))
        assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
        assert directives["object-src"] == ["'none'"]
        assert directives["base-uri"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
    figure("pages with every security header", f"{len(paths)}/{len(paths)}")
    figure("Content-Security-Policy", policy)


def test_plain_http_is_redirected_to_https_without_hsts(site, figure):
    response = Proxy(site, https=False).get("/hub/?page=2")
    assert response.status == 301
    assert response.header("Location") == f"{ORIGIN}/hub/?page=2"
    # HSTS over plain HTTP means nothing (and Django rightly leaves it out).
    assert response.header("Strict-Transport-Security") is None
    figure("plain HTTP answer", f"{response.status} -> {response.header('Location')}")


def test_session_and_csrf_cookies_are_secure(site, figure):
    user = UserFactory()
    _, page, answer = sign_in(Proxy(site), user.username)
    csrf = page.cookies()["csrftoken"]
    session = answer.cookies()["sessionid"]
    assert csrf["secure"] and session["secure"]
    assert session["httponly"]
    assert session["samesite"] == csrf["samesite"] == "Lax"
    figure("csrftoken flags", f"secure={csrf['secure']} samesite={csrf['samesite']}")
    figure(
        "sessionid flags",
        f"secure={session['secure']} httponly={session['httponly']} samesite={session['samesite']}",
    )


class InlineCode(HTMLParser):
    """What a strict CSP (script-src and style-src without 'unsafe-inline' or
    'unsafe-eval') would block on a page, and what htmx would have to eval."""

    DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}
    URL_ATTRIBUTES = {"href", "src", "action", "formaction"}

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and "src" not in attrs:
            if attrs.get("type") not in self.DATA_SCRIPT_TYPES:
                self.found.append(f"inline <script> {attrs}")
        if tag == "style":
            self.found.append("inline <style>")
        for name, value in attrs.items():
            value = value or ""
            bare = name.removeprefix("data-")
            if re.fullmatch(r"on[a-z]+", name) or bare.startswith("hx-on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            elif name == "style":
                self.found.append(f"<{tag} style={value!r}>")
            elif name in self.URL_ATTRIBUTES and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
            elif bare in ("hx-vals", "hx-headers", "hx-vars") and "js:" in value:
                self.found.append(f"<{tag} {name}={value!r}> (evaluated)")
            elif bare == "hx-trigger" and "[" in value:
                self.found.append(f"<{tag} {name}={value!r}> (filter is evaluated)")


def inline_code(html):
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_pages_have_no_inline_scripts_handlers_or_styles(site, figure):
    """Every page a person reaches, signed out, signed in and as staff."""
    owner = UserFactory()
    staff = StaffFactory()
    program = ProgramFactory(owner=owner, name="Urgency triage")
    ProgramFactory(owner=owner, name="Private one", is_public=False)
    ApiKey.create_for(user=owner, name="laptop")
    anonymous = Proxy(site)
    owner_cookie, *_ = sign_in(anonymous, owner.username)
    staff_cookie, *_ = sign_in(anonymous, staff.username)
    pages = {
        None: [
            "/",
            "/hub/",
            "/hub/?q=urgency",
            program.get_absolute_url(),
            f"/u/{owner.username}/",
            "/accounts/login/",
            "/accounts/signup/",
            "/api/v1/docs",
            "/no-such-page/",
        ],
        owner_cookie: [
            "/",
            program.get_absolute_url(),
            "/settings/",
            "/compile/jobs/",
            "/compile/",
            "/accounts/logout/",
        ],
        staff_cookie: ["/moderation/", "/admin/", "/admin/accounts/user/", "/admin/programs/"],
    }
    found, checked = [], 0
    for cookie, paths in pages.items():
        for path in paths:
            response = anonymous.get(path, headers={"Cookie": cookie} if cookie else {})
            assert response.status in (200, 404), (path, response.status)
            assert response.header("Content-Type").startswith("text/html"), path
            found += [f"{path}: {item}" for item in inline_code(response.text())]
            checked += 1
    # The one page that shows a new API key is the answer to the form that makes it.
    csrf = owner_cookie.split(";")[0].removeprefix("csrftoken=")
    created = anonymous.request(
        "POST",
        "/settings/api-keys/",
        body=urlencode({"name": "ci", "csrfmiddlewaretoken": csrf}),
        headers={
            "Cookie": owner_cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": ORIGIN,
            "Referer": f"{ORIGIN}/settings/",
        },
    )
    assert created.status == 200 and 'id="new-api-key"' in created.text()
    found += [f"new API key page: {item}" for item in inline_code(created.text())]
    checked += 1
    figure("HTML pages checked", checked)
    figure("inline scripts, handlers and styles found", len(found))
    assert not found, "\n".join(found)


def test_the_checker_finds_inline_code():
    """The page check above is not vacuous."""
    assert len(inline_code('<script>x()</script><a href="javascript:x()" onclick="y()">')) == 3
    assert len(inline_code('<p style="color:red" hx-on::after-swap="z()">')) == 2
    assert not inline_code('<script src="/s.js"></script><script type="application/json">{}')
