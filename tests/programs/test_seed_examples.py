import pytest
from django.core.management import call_command

from compiler import services
from programs.models import Alias, Program

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue", sent.append)
    return sent


def test_first_start_compiles_official_examples_and_the_gallery_shows_them(
    client, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_examples")
    official = Program.objects.filter(owner__isnull=True)
    assert official.count() == 3 and len(sent) == 3
    assert set(Alias.objects.filter(owner__isnull=True).values_list("slug", flat=True)) == {
        "urgency",
        "sentiment",
        "iso-date",
    }
    page = client.get("/hub/").content.decode()
    assert "Example programs being compiled" in page
    assert "Support message urgency" in page


def test_seeding_again_starts_no_new_work(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_examples")
        call_command("seed_examples")
    assert len(sent) == 3
    assert Alias.objects.count() == 3


def test_ready_examples_leave_the_compiling_list(client, sent):
    call_command("seed_examples")
    Program.objects.update(status="ready")
    assert "Example programs being compiled" not in client.get("/hub/").content.decode()
