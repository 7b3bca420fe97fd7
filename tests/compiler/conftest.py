import pytest

from compiler import services


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def no_enqueue(monkeypatch):
    """Record what would be sent to the broker; these tests run no worker."""
    sent = []
    monkeypatch.setattr(services, "enqueue", sent.append)
    return sent
