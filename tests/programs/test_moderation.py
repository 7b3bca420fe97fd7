"""The moderator queue and every moderator action: who may do it, what it
does, and that it is logged."""

import pytest
from django.urls import reverse

from programs import services
from programs.models import Alias, ModerationAction, Program, Report
from tests.factories import ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGN_IN = reverse("account_login")
WHO = ["anonymous", "user", "owner", "staff"]


@pytest.fixture
def reported(program, other_user):
    return services.report_submit(program=program, reporter=other_user, reason="spam", note="ads")


def sign_in(client, who, *, owner, staff):
    others = {"user": UserFactory(), "owner": owner, "staff": staff}
    if who != "anonymous":
        client.force_login(others[who])


def action_requests(program, report):
    """(url, data, check) for every moderator action; check(program) says it happened."""
    hidden_before = ProgramFactory(owner=program.owner, is_hidden=True)
    banned = UserFactory(is_active=False)
    return {
        "queue": (reverse("moderation"), None, None),
        "resolve": (
            reverse("moderation_resolve", args=[report.pk]),
            {"reason": "looked fine"},
            lambda: Report.objects.get(pk=report.pk).status == "resolved",
        ),
        "hide": (
            reverse("moderation_hide", args=[program.pk]),
            {"reason": "spam"},
            lambda: Program.objects.get(pk=program.pk).is_hidden,
        ),
        "unhide": (
            reverse("moderation_unhide", args=[hidden_before.pk]),
            {"reason": "appeal"},
            lambda: not Program.objects.get(pk=hidden_before.pk).is_hidden,
        ),
        "ban": (
            reverse("moderation_ban", args=[program.owner.pk]),
            {"reason": "spam ring"},
            lambda: not type(program.owner).objects.get(pk=program.owner.pk).is_active,
        ),
        "unban": (
            reverse("moderation_unban", args=[banned.pk]),
            {"reason": "appeal"},
            lambda: type(banned).objects.get(pk=banned.pk).is_active,
        ),
        "publish": (
            reverse("moderation_publish", args=[program.pk]),
            {"slug": "urgency"},
            lambda: Alias.objects.filter(owner=None, slug="urgency", program=program).exists(),
        ),
    }


ACTIONS = ["queue", "resolve", "hide", "unhide", "ban", "unban", "publish"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", WHO)
def test_moderation_access_matrix(client, program, reported, staff, user, action, who):
    path, data, happened = action_requests(program, reported)[action]
    sign_in(client, who, owner=user, staff=staff)
    response = client.get(path) if data is None else client.post(path, data)
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(SIGN_IN)
    elif who in ("user", "owner"):
        assert response.status_code == 403
    else:
        assert response.status_code == (200 if data is None else 302)
    if happened:
        assert happened() == (who == "staff")
        assert ModerationAction.objects.exists() == (who == "staff")


@pytest.mark.parametrize("action", ACTIONS[1:])
def test_moderator_actions_refuse_get(client, program, reported, staff, action):
    client.force_login(staff)
    path, _, _ = action_requests(program, reported)[action]
    assert client.get(path).status_code == 405


def test_queue_lists_open_reports_hidden_programs_bans_and_the_log(
    client, program, reported, staff
):
    client.force_login(staff)
    page = client.get(reverse("moderation")).content.decode()
    assert "Open reports" in page and program.title in page and "ads" in page
    client.post(reverse("moderation_hide", args=[program.pk]), {"reason": "Spam links"})
    client.post(reverse("moderation_resolve", args=[reported.pk]), {"reason": "hid it"})
    page = client.get(reverse("moderation")).content.decode()
    assert "No open reports" in page
    assert "Spam links" in page  # hidden programs table and the log
    assert "Hid a program" in page and "Resolved a report" in page


def test_hidden_program_leaves_the_gallery_and_returns(client, program, staff):
    client.force_login(staff)
    client.post(reverse("moderation_hide", args=[program.pk]), {"reason": "Spam"})
    client.logout()
    assert program.title not in client.get("/hub/").content.decode()
    assert client.get(program.get_absolute_url()).status_code == 404
    client.force_login(staff)
    client.post(reverse("moderation_unhide", args=[program.pk]), {})
    client.logout()
    assert program.title in client.get("/hub/").content.decode()


def test_hiding_needs_a_reason(client, program, staff):
    client.force_login(staff)
    response = client.post(
        reverse("moderation_hide", args=[program.pk]), {"reason": " "}, follow=True
    )
    assert "Say why" in response.content.decode()
    assert not Program.objects.get(pk=program.pk).is_hidden


def test_ban_signs_the_user_out_and_hides_their_programs(client, program, user, staff):
    client.force_login(user)
    assert client.get("/settings/").status_code == 200
    staff_client = type(client)()
    staff_client.force_login(staff)
    staff_client.post(reverse("moderation_ban", args=[user.pk]), {"reason": "spam ring"})
    assert client.get("/settings/").status_code == 302  # their session no longer signs them in
    assert not Program.objects.listed().filter(owner=user).exists()
    log = ModerationAction.objects.get()
    assert (log.actor, log.action, log.target_user) == (staff, "ban", user)
    assert "spam ring" in log.reason


def test_publish_puts_the_program_under_a_bare_name(client, program, staff):
    client.force_login(staff)
    response = client.post(reverse("moderation_publish", args=[program.pk]), {"slug": "urgency"})
    assert response["Location"] == "/urgency@v1/"
    assert client.get("/urgency/").context["program"] == program
    bad = client.post(
        reverse("moderation_publish", args=[program.pk]), {"slug": "Not OK"}, follow=True
    )
    assert "lowercase letters" in bad.content.decode()


def test_next_must_stay_on_the_site(client, program, staff):
    client.force_login(staff)
    response = client.post(
        reverse("moderation_hide", args=[program.pk]),
        {"reason": "x", "next": "https://evil.example/"},
    )
    assert response["Location"] == program.get_absolute_url()


def test_staff_see_moderation_tools_on_the_program_page(client, program, staff, user):
    client.force_login(user)
    assert (
        "Publish into the official namespace"
        not in client.get(program.get_absolute_url()).content.decode()
    )
    client.force_login(staff)
    page = client.get(program.get_absolute_url()).content.decode()
    assert "Publish into the official namespace" in page and f"Ban {user.username}" in page
