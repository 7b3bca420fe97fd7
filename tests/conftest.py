"""Shared fixtures: users, and real processes (a celery worker, a live site) that
talk to the same test database and broker as the test itself."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import StaffFactory, UserFactory

REPO = Path(__file__).resolve().parent.parent
# tests/vllm run in their own environment (`make test-vllm`): vLLM pins a
# transformers that clashes with ours, so this suite must not even collect them.
collect_ignore = ["vllm"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Factories make many users; PBKDF2 for each one would be most of a test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url():
    """DATABASE_URL of the test database pytest-django created, for child processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def child_env(**extra):
    """Environment for a child process of the site: same settings, test database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="paw_site.settings",
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_RESULT_BACKEND=settings.CELERY_RESULT_BACKEND,
        PAW_VAR_DIR=str(settings.VAR_DIR),
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@contextlib.contextmanager
def site_process(log_path, ready_path, without=(), gunicorn_args=(), ready_headers=None, **env):
    """The site under gunicorn with uvicorn workers (ASGI, as in the Procfile) on
    the test database; yields
    its base URL once `ready_path` answers (asked with `ready_headers`, e.g. a
    proxy's Host and X-Forwarded-Proto), and stops it on exit. `without`
    names variables of this process the site must not inherit; `gunicorn_args`
    come last, so they override the defaults."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The site is reached, and reaches local fakes, directly: never through a proxy.
    env = child_env(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **env)
    for name in without:
        env.pop(name, None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "paw_site.asgi", "--bind", f"127.0.0.1:{port}"]
            + ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1"]
            + ["--access-logfile", "-", *gunicorn_args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(proc, url + ready_path, log_path, ready_headers or {})
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_serving(proc, ready_url, log_path, headers, timeout=60):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the site exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with opener.open(urllib.request.Request(ready_url, headers=headers), timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"the site did not answer in {timeout}s:\n{log_path.read_text()[-3000:]}")


class WorkerProcess:
    """A real `celery worker` subprocess consuming every queue."""

    def __init__(self, log_path, queues="default,compile,runtime,runtime_checks", **env):
        self.log_path = log_path
        self.queues = queues
        self.env = env
        self.proc = None

    def start(self, timeout=90, *, purge=True):
        """Start and wait until it runs tasks. `purge` empties its queues first
        (messages left by earlier tests); a test of what the broker kept says no."""
        celery = [sys.executable, "-m", "celery", "-A", "paw_site"]
        env = child_env(**self.env)
        if purge:
            subprocess.run(
                [*celery, "purge", "-f", "-Q", self.queues], cwd=REPO, env=env, capture_output=True
            )
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                *celery,
                "worker",
                "-Q",
                self.queues,
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "--hostname",
                f"test-{os.getpid()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        from paw_site.celery import app
        from paw_site.tasks import ping

        deadline = time.monotonic() + timeout
        # Through the worker's own broker, which a test may have pointed elsewhere.
        with app.connection_for_write(self.env.get("CELERY_BROKER_URL")) as connection:
            result = ping.apply_async(connection=connection)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early; see {self.log_path}")
            if result.ready():
                result.get()
                return
            time.sleep(0.25)
        raise TimeoutError(f"celery worker not ready after {timeout}s; see {self.log_path}")

    def kill(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real worker for the test module (module scope, so the workers of two
    modules never compete for the same queue). Tests that use it need committed
    data: mark them `django_db(transaction=True)`."""
    worker = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS `weed mini`, tests/s3.py) for the whole session."""
    from tests.s3 import seaweed_s3

    folder = tmp_path_factory.mktemp("s3")
    with seaweed_s3(folder, folder / "weed.log") as server:
        yield server


@pytest.fixture
def s3_storage(settings, s3_server, tmp_path):
    """Artifacts in the real S3 server for this test, under a fresh key prefix;
    returns the environment a child process of the site needs for the same."""
    location = f"t-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = {**settings.STORAGES, "default": s3_server.storage_settings(location)}
    settings.ARTIFACT_CACHE_DIR = tmp_path / "artifact-cache"
    return s3_server.storage_env(location)
