"""The Django admin for the hub's models: pages load with filters and search,
and hiding there is logged like on the moderation page."""

import pytest
from django.urls import reverse

from programs import services
from programs.models import ModerationAction, Program
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db

MODELS = ["program", "tag", "alias", "vote", "case", "report", "moderationaction"]


@pytest.mark.parametrize("model", MODELS)
def test_changelists_filter_and_search(client, staff, program, other_user, model):
    services.alias_point(user=program.owner, slug="urgency", program=program)
    services.vote_toggle(user=other_user, program=program, value=1)
    services.case_submit(
        program=program, author=other_user, input="a", expected="b", type="success"
    )
    report = services.report_submit(program=program, reporter=other_user, reason="spam")
    services.report_resolve(report=report, actor=staff)
    client.force_login(staff)
    url = reverse(f"admin:programs_{model}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "urgency"}).status_code == 200


def test_program_change_page_and_hiding_is_logged(client, staff):
    program = ProgramFactory()
    client.force_login(staff)
    url = reverse("admin:programs_program_change", args=[program.pk])
    assert client.get(url).status_code == 200
    client.post(
        reverse("admin:programs_program_changelist"),
        {"action": "unhide", "_selected_action": [program.pk]},
    )
    Program.objects.filter(pk=program.pk).update(is_hidden=True)
    client.post(
        reverse("admin:programs_program_changelist"),
        {"action": "unhide", "_selected_action": [program.pk]},
    )
    assert not Program.objects.get(pk=program.pk).is_hidden
    assert ModerationAction.objects.get().action == "unhide"


def test_admin_is_for_staff_only(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:programs_program_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
