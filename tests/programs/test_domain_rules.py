"""Issue 18: the rules the routers and views held now live in programs/."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from programs import services
from programs.models import Program
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db


def test_program_update_keeps_a_public_program_public(user):
    program = ProgramFactory(owner=user)
    with pytest.raises(ValidationError) as error:
        services.program_update(program=program, actor=user, public=False)
    assert error.value.code == "stays_public"
    program.refresh_from_db()
    assert program.is_public


def test_program_update_is_the_authors_only(user, other_user):
    program = ProgramFactory(owner=user)
    with pytest.raises(PermissionDenied):
        services.program_update(program=program, actor=other_user, name="Mine now")


def test_program_update_renames_and_retags(user):
    program = ProgramFactory(owner=user, tags=["old"])
    services.program_update(program=program, actor=user, name="New", tags=["A", "b", "a"])
    program.refresh_from_db()
    assert program.name == "New"
    assert sorted(t.name for t in program.tags.all()) == ["a", "b"]


def test_the_tag_rule_is_the_services(user):
    with pytest.raises(ValidationError):
        services.tags_named(["not a tag!"])


def test_the_hub_and_the_api_list_use_one_filter(client):
    for score, tag in [(3, "support"), (9, "support"), (5, "other")]:
        ProgramFactory(score=score, tags=[tag])
    expected = list(Program.objects.listed().gallery(tag="Support").values_list("pk", flat=True))
    assert len(expected) == 2
    api = Client().get("/api/v1/programs", {"tag": "Support"}).json()
    assert [p["id"] for p in api["programs"]] == expected
    hub = client.get("/hub/", {"tag": "support"})
    assert [p.pk for p in hub.context["page"]] == expected
