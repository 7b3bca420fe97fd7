"""The rules behind voting, naming, cases, reports and moderation (services)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError

from programs import services
from programs.models import Alias, Case, ModerationAction, Program, Report, Vote
from tests.factories import ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- voting ---------------------------------------------------------------------


def test_vote_up_then_same_again_removes_it(program, other_user):
    assert services.vote_toggle(user=other_user, program=program, value=1).score == 1
    outcome = services.vote_toggle(user=other_user, program=program, value=1)
    assert (outcome.score, outcome.value) == (0, 0)
    assert not Vote.objects.exists()


def test_vote_the_other_way_replaces_it(program, other_user):
    services.vote_toggle(user=other_user, program=program, value=1)
    outcome = services.vote_toggle(user=other_user, program=program, value=-1)
    assert (outcome.score, outcome.value) == (-1, -1)
    assert Vote.objects.get().value == -1
    program.refresh_from_db()
    assert program.score == -1


def test_score_is_the_sum_of_votes(program):
    for value in (1, 1, 1, -1):
        services.vote_toggle(user=UserFactory(), program=program, value=value)
    program.refresh_from_db()
    assert program.score == 2


def test_vote_value_must_be_plus_or_minus_one(program, other_user):
    with pytest.raises(ValidationError):
        services.vote_toggle(user=other_user, program=program, value=2)


def test_anonymous_cannot_vote(program):
    with pytest.raises(PermissionDenied):
        services.vote_toggle(user=AnonymousUser(), program=program, value=1)


def test_database_refuses_a_second_vote_row(program, other_user):
    Vote.objects.create(user=other_user, program=program, value=1)
    with pytest.raises(IntegrityError):
        Vote.objects.create(user=other_user, program=program, value=-1)


# --- naming ---------------------------------------------------------------------


def test_owner_names_a_program_and_it_resolves(program, user):
    alias, created = services.alias_point(user=user, slug="urgency", program=program)
    assert created and alias.version == 1
    for name in (
        f"{user.username}/urgency",
        f"{user.username}%2Furgency",
        f"{user.username}%2furgency",
        f"{user.username}/urgency@v1",
    ):
        assert services.alias_resolve(name=name, user=AnonymousUser()).program == program


def test_repointing_adds_a_version_and_old_versions_keep_resolving(program, user):
    services.alias_point(user=user, slug="urgency", program=program)
    newer = ProgramFactory(owner=user)
    alias, created = services.alias_point(user=user, slug="urgency", program=newer)
    assert created and alias.version == 2
    anyone = AnonymousUser()
    assert services.alias_resolve(name=f"{user.username}/urgency", user=anyone).program == newer
    assert services.alias_resolve(name=f"{user.username}/urgency@v2", user=anyone).program == newer
    assert (
        services.alias_resolve(name=f"{user.username}/urgency@v1", user=anyone).program == program
    )
    with pytest.raises(Alias.DoesNotExist):
        services.alias_resolve(name=f"{user.username}/urgency@v3", user=anyone)


def test_pointing_a_name_at_its_current_program_changes_nothing(program, user):
    services.alias_point(user=user, slug="urgency", program=program)
    alias, created = services.alias_point(user=user, slug="urgency", program=program)
    assert not created and alias.version == 1 and Alias.objects.count() == 1


@pytest.mark.parametrize(
    "slug", ["a", "x" * 51, "-urgent", "urgent-", "Urgent", "ur_gent", "ur gent", "hub", "admin"]
)
def test_bad_slugs_are_refused(program, user, slug):
    with pytest.raises(ValidationError) as error:
        services.alias_point(user=user, slug=slug, program=program)
    assert "slug" in error.value.message_dict


@pytest.mark.parametrize("slug", ["ab", "x" * 50, "urgency-v2", "2fa"])
def test_good_slugs_are_accepted(program, user, slug):
    assert services.alias_point(user=user, slug=slug, program=program)[1]


def test_only_the_author_names_a_program(program, other_user, staff):
    for someone in (other_user, staff, AnonymousUser()):
        with pytest.raises(PermissionDenied):
            services.alias_point(user=someone, slug="mine", program=program)


def test_names_are_per_namespace(program, user, other_user):
    services.alias_point(user=user, slug="urgency", program=program)
    theirs = ProgramFactory(owner=other_user)
    alias, _ = services.alias_point(user=other_user, slug="urgency", program=theirs)
    assert alias.version == 1


def test_bare_names_resolve_in_the_official_namespace(program, user, staff):
    services.alias_point(user=user, slug="urgency", program=program)
    with pytest.raises(Alias.DoesNotExist):
        services.alias_resolve(name="urgency", user=AnonymousUser())
    services.program_publish(program=program, actor=staff, slug="urgency")
    alias = services.alias_resolve(name="urgency", user=AnonymousUser())
    assert alias.is_official and alias.program == program and alias.name == "urgency"


def test_private_and_hidden_programs_resolve_only_for_who_may_see_them(user, other_user, staff):
    private = ProgramFactory(owner=user, is_public=False)
    services.alias_point(user=user, slug="secret", program=private)
    name = f"{user.username}/secret"
    assert services.alias_resolve(name=name, user=user).program == private
    assert services.alias_resolve(name=name, user=staff).program == private
    for someone in (other_user, AnonymousUser()):
        with pytest.raises(Alias.DoesNotExist):
            services.alias_resolve(name=name, user=someone)


@pytest.mark.parametrize("name", ["", "/", "a/b/c", "user/UPPER", "slug@v0", "slug@2", "x/y@vx"])
def test_malformed_names_do_not_resolve(name):
    with pytest.raises(Alias.DoesNotExist):
        services.alias_resolve(name=name, user=AnonymousUser())


def test_failed_programs_cannot_be_named(user):
    failed = ProgramFactory(owner=user, status=Program.Status.FAILED)
    with pytest.raises(ValidationError):
        services.alias_point(user=user, slug="broken", program=failed)


# --- cases and reports --------------------------------------------------------------


def test_case_submit_validates_like_the_form(program, other_user):
    case = services.case_submit(
        program=program,
        author=other_user,
        input="printer on fire",
        expected="urgent",
        type="edge_case",
        note="smoke",
    )
    assert case.passed is None and case.actual_output == ""
    with pytest.raises(ValidationError) as error:
        services.case_submit(
            program=program, author=other_user, input="", expected="x", type="nonsense"
        )
    assert {"input", "type"} <= set(error.value.message_dict)
    assert Case.objects.count() == 1


def test_cases_wait_for_a_compiled_program(user):
    compiling = ProgramFactory(owner=user, status=Program.Status.COMPILING)
    with pytest.raises(ValidationError):
        services.case_submit(
            program=compiling, author=user, input="a", expected="b", type="success"
        )


def test_reporting_again_updates_the_open_report(program, other_user):
    first = services.report_submit(program=program, reporter=other_user, reason="spam")
    again = services.report_submit(
        program=program, reporter=other_user, reason="harmful", note="worse than spam"
    )
    assert first.pk == again.pk and again.reason == "harmful"
    assert Report.objects.count() == 1
    with pytest.raises(ValidationError):
        services.report_submit(program=program, reporter=other_user, reason="meh")


# --- moderation ----------------------------------------------------------------------


def test_moderation_needs_staff(program, user, other_user):
    report = services.report_submit(program=program, reporter=other_user, reason="spam")
    for someone in (user, other_user, AnonymousUser()):
        with pytest.raises(PermissionDenied):
            services.program_hide(program=program, actor=someone, reason="x")
        with pytest.raises(PermissionDenied):
            services.program_unhide(program=program, actor=someone)
        with pytest.raises(PermissionDenied):
            services.report_resolve(report=report, actor=someone)
        with pytest.raises(PermissionDenied):
            services.user_ban(user=user, actor=someone, reason="x")
        with pytest.raises(PermissionDenied):
            services.user_unban(user=user, actor=someone)
        with pytest.raises(PermissionDenied):
            services.program_publish(program=program, actor=someone, slug="urgency")
    assert not ModerationAction.objects.exists()


def test_hide_and_unhide_are_logged_with_why(program, staff):
    with pytest.raises(ValidationError):
        services.program_hide(program=program, actor=staff, reason="  ")
    services.program_hide(program=program, actor=staff, reason="Spam")
    assert not Program.objects.listed().filter(pk=program.pk).exists()
    services.program_unhide(program=program, actor=staff, reason="Appeal upheld")
    assert Program.objects.listed().filter(pk=program.pk).exists()
    log = list(ModerationAction.objects.order_by("created_at").values_list("action", "reason"))
    assert log == [("hide", "Spam"), ("unhide", "Appeal upheld")]


def test_ban_deactivates_and_hides_every_program(user, staff):
    programs = ProgramFactory.create_batch(3, owner=user)
    assert services.user_ban(user=user, actor=staff, reason="Spam ring") == 3
    user.refresh_from_db()
    assert not user.is_active
    assert not Program.objects.listed().filter(owner=user).exists()
    assert all(
        p.hidden_reason.startswith("Author banned")
        for p in Program.objects.filter(pk__in=[p.pk for p in programs])
    )
    action = ModerationAction.objects.get()
    assert (action.action, action.actor, action.target_user) == ("ban", staff, user)
    services.user_unban(user=user, actor=staff, reason="Cleared")
    user.refresh_from_db()
    assert user.is_active


def test_moderators_cannot_ban_moderators(staff):
    with pytest.raises(PermissionDenied):
        services.user_ban(user=UserFactory(is_staff=True), actor=staff, reason="x")


def test_resolving_a_report_twice_is_refused(program, other_user, staff):
    report = services.report_submit(program=program, reporter=other_user, reason="spam")
    services.report_resolve(report=report, actor=staff, resolution="Hid it")
    report.refresh_from_db()
    assert (report.status, report.resolved_by) == ("resolved", staff)
    with pytest.raises(ValidationError):
        services.report_resolve(report=report, actor=staff)
    assert ModerationAction.objects.get().report == report


def test_publish_twice_adds_an_official_version(program, staff, user):
    services.program_publish(program=program, actor=staff, slug="urgency")
    newer = ProgramFactory(owner=user)
    alias = services.program_publish(program=newer, actor=staff, slug="urgency")
    assert alias.version == 2 and alias.owner is None
    assert ModerationAction.objects.filter(action="publish").count() == 2


def test_hidden_or_private_programs_are_not_published(user, staff):
    for program in (
        ProgramFactory(owner=user, is_public=False),
        ProgramFactory(owner=user, is_hidden=True),
    ):
        with pytest.raises(ValidationError):
            services.program_publish(program=program, actor=staff, slug="nope")
