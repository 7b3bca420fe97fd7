"""A small fake GitHub on localhost: the OAuth web flow (authorize page,
code-for-token exchange) and the two API calls allauth's GitHub provider makes.

GitHub itself is the one thing the tests cannot reach. The browser tests send
a real browser through it; the reliability tests drive the same flow with
Django's test client (`FakeGitHub.approve_url`). Import the fixtures
(`fake_github_server_fixture`, `fake_github_fixture`) into a conftest or test
module to use them.
"""

import html
import json
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest


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

    def approve_url(self, authorize_url):
        """What a browser does with the site's redirect to GitHub: open the
        authorize page, click "Authorize", and return the callback URL GitHub
        redirects back to (not followed)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        with opener.open(f"{self.url}/login/oauth/authorize?{urlencode(query)}", timeout=10):
            pass  # the page a person would read before clicking
        form = {name: query.get(name, "") for name in ("client_id", "redirect_uri", "state")}
        try:
            opener.open(f"{self.url}/login/oauth/authorize", urlencode(form).encode(), timeout=10)
        except urllib.error.HTTPError as redirect:
            if redirect.code == 302:
                return redirect.headers["Location"]
            raise
        raise AssertionError("GitHub did not redirect back to the site")

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx then surfaces as an HTTPError carrying its Location


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


# Named apart from their fixtures so that importing them (which is how a
# conftest or test module uses them) shadows no test's argument.
@pytest.fixture(scope="package", name="fake_github_server")
def fake_github_server_fixture():
    github = FakeGitHub().start()
    yield github
    github.stop()


@pytest.fixture(name="fake_github")
def fake_github_fixture(fake_github_server):
    """The fake GitHub, with no user chosen and no codes or tokens left over."""
    fake_github_server.reset()
    yield fake_github_server
    fake_github_server.reset()
