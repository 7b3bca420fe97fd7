import pytest

from tests.factories import ProgramFactory


@pytest.fixture
def program(db, user):
    """A ready public program owned by `user`."""
    return ProgramFactory(owner=user, name="Urgency triage", tags=["support", "triage"])


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client
