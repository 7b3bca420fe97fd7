"""The site as production runs it, for the tests that speak plain HTTP to it.

`production_site()` starts gunicorn with the production settings of
tests/test_deploy_check.py behind one trusted proxy (TRUSTED_PROXY_COUNT=1,
BEHIND_HTTPS_PROXY=true), hashed static files collected first. `Proxy` plays
the TLS-terminating front server: it sets Host and X-Forwarded-Proto, and
appends the address it got the request from to whatever X-Forwarded-For the
client sent, as nginx's `$proxy_add_x_forwarded_for` does.
"""

import contextlib
import functools
import http.client
import subprocess
import sys
from dataclasses import dataclass
from email.message import Message
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from tests.conftest import REPO, child_env, site_process
from tests.factories import PASSWORD
from tests.test_deploy_check import PRODUCTION

HOST = PRODUCTION["ALLOWED_HOSTS"]
ORIGIN = f"https://{HOST}"
# One proxy in front: the only X-Forwarded-For entry believed is the last one.
PRODUCTION_BEHIND_PROXY = {
    **PRODUCTION,
    # 127.0.0.1 too, or the readiness check (and only it) would get a 400.
    "ALLOWED_HOSTS": f"{HOST},127.0.0.1",
    "CSRF_TRUSTED_ORIGINS": ORIGIN,
    "TRUSTED_PROXY_COUNT": "1",
}


@functools.cache
def collected_static() -> Path:
    """`collectstatic` with hashed names, once per test session (into the same
    folder each time: it only copies what changed)."""
    root = Path(settings.VAR_DIR) / "test-static"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO,
        env=child_env(**PRODUCTION_BEHIND_PROXY, STATIC_ROOT=root),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root


@contextlib.contextmanager
def production_site(log_path, **env):
    """Base URL of gunicorn serving the test database with production settings."""
    with site_process(
        log_path,
        "/api/v1/health",
        without=["DJANGO_ALLOW_ASYNC_UNSAFE"],
        ready_headers={"Host": HOST, "X-Forwarded-Proto": "https"},
        STATIC_ROOT=collected_static(),
        WHITENOISE_USE_FINDERS="false",
        **{**PRODUCTION_BEHIND_PROXY, **env},
    ) as url:
        yield url


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def cookies(self) -> SimpleCookie:
        jar = SimpleCookie()
        for line in self.headers.get_all("Set-Cookie") or []:
            jar.load(line)
        return jar

    def text(self) -> str:
        return self.body.decode()


class Proxy:
    """The front server between a client at `client_ip` and the site at `site_url`.
    Redirects are returned, never followed."""

    def __init__(self, site_url, *, client_ip="198.51.100.7", https=True):
        self.address = urlsplit(site_url).netloc
        self.client_ip = client_ip
        self.https = https

    def request(self, method, path, *, headers=None, body=None, client_ip=None, forwarded_for=None):
        """`forwarded_for` is an X-Forwarded-For the client itself sent (spoofed)."""
        sent = {"Host": HOST, **(headers or {})}
        real_ip = client_ip or self.client_ip
        sent["X-Forwarded-For"] = f"{forwarded_for}, {real_ip}" if forwarded_for else real_ip
        if self.https:
            sent["X-Forwarded-Proto"] = "https"
        connection = http.client.HTTPConnection(self.address, timeout=60)
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)


def sign_in(proxy, username, password=PASSWORD):
    """Sign in through the login form as a browser would; returns the Cookie
    header to send next and the two responses (login page, login POST). The
    user's password must be hashed with a hasher the site has (not the tests'
    fast MD5 one)."""
    page = proxy.get("/accounts/login/")
    assert page.status == 200
    csrf = page.cookies()["csrftoken"].value
    answer = proxy.request(
        "POST",
        "/accounts/login/",
        body=urlencode({"login": username, "password": password, "csrfmiddlewaretoken": csrf}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
            "Origin": ORIGIN,
            "Referer": f"{ORIGIN}/accounts/login/",
        },
    )
    assert answer.status == 302, answer.text()[-2000:]
    session = answer.cookies()["sessionid"].value
    return f"csrftoken={csrf}; sessionid={session}", page, answer
