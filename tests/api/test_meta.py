"""GET /models/compilers and GET /health."""

import pytest
from celery import Celery

from api.routers import meta
from compiler import registry

from .conftest import API, assert_error

pytestmark = pytest.mark.django_db


def test_compilers(anon):
    response = anon.get(f"{API}/models/compilers")
    assert response.status_code == 200
    # Wrapped in {"compilers": [...]}, the shape the PAW SDK reads.
    assert response.json() == {
        "compilers": [
            {
                "name": "paw-smollm2-135m",
                "description": registry.resolve("paw-smollm2-135m").description,
                "default": True,
                "latest_snapshot": "paw-smollm2-135m-20261206",
            }
        ]
    }
    assert int(response["X-RateLimit-Remaining"]) < int(response["X-RateLimit-Limit"])


def test_health_ok(anon):
    response = anon.get(f"{API}/health")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "model": "ok"},
    }


def test_health_503_when_the_broker_is_down(anon, monkeypatch):
    # A real connection attempt to a port nothing listens on, bounded by the timeout.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")  # Celery prefers the env
    # Not the current app: shared tasks sent later in the session must keep ours.
    down = Celery("down", broker="redis://127.0.0.1:9/0", set_as_current=False)
    monkeypatch.setattr(meta, "celery_app", down)
    body = assert_error(anon.get(f"{API}/health"), 503, "unavailable")
    assert body["details"]["checks"] == {"database": "ok", "broker": "unavailable", "model": "ok"}


def test_health_503_when_the_model_file_is_missing(anon, monkeypatch, tmp_path):
    monkeypatch.setattr(meta, "base_model_path", lambda: tmp_path / "gone.gguf")
    body = assert_error(anon.get(f"{API}/health"), 503)
    assert body["details"]["checks"]["model"] == "unavailable"


def test_health_503_when_the_database_is_down(anon, monkeypatch):
    def down():
        raise OSError("connection refused")

    monkeypatch.setitem(meta.CHECKS, "database", down)
    response = anon.get(f"{API}/health")
    assert_error(response, 503)
    assert response.json()["details"]["checks"]["database"] == "unavailable"
    assert response["Retry-After"] == "30"
