"""Property-based checks of the whole API against its own OpenAPI document:
bounded random requests, no 500s, every answer's status, content type and body
as documented."""

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey
from compiler import services as compile_services
from paw_site import limits
from paw_site.limits import Rule
from tests.factories import UserFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Bounded for CI; raise it for a deeper run: SCHEMATHESIS_MAX_EXAMPLES=500 pytest ...
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", 25))


# Loaded through the WSGI app itself, so the document tested is the one served.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_test_connection():
    """As Django's test client does: keep the test's connection (and its
    transaction) open across requests instead of closing it after each."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def roomy_limits(monkeypatch):
    """Limits high enough that random requests explore more than the 429 path."""
    big = Rule(anonymous=10**6, user=10**6, ip=10**6, period=60)
    monkeypatch.setattr(limits, "RULES", dict.fromkeys(limits.RULES, big))
    monkeypatch.setattr(
        compile_services, "CONCURRENT_COMPILES", {"anonymous": 10**6, "user": 10**6}
    )


@pytest.fixture
def key_headers(db):
    _, token = ApiKey.create_for(user=UserFactory(), name="schemathesis")
    return {"X-API-Key": token}


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.django_db
@schema.parametrize()
@HYPOTHESIS
def test_anonymous_calls_conform_to_the_schema(case, roomy_limits):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@HYPOTHESIS
def test_signed_in_calls_conform_to_the_schema(case, key_headers, roomy_limits):
    case.call_and_validate(headers=key_headers, checks=CHECKS)
