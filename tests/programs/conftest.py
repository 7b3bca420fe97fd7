import pytest

from tests.factories import ProgramFactory


@pytest.fixture(autouse=True)
def uncached_gallery(settings):
    # Tests read the gallery's context; test_hub tests the cache itself.
    settings.HUB_CACHE_SECONDS = 0


@pytest.fixture
def program(db, user):
    """A ready public program owned by `user`."""
    return ProgramFactory(owner=user, name="Urgency triage", tags=["support", "triage"])


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client
