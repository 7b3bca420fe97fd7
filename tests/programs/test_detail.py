"""The program page, its names and versions, and what people do there:
vote, add cases, report."""

import pytest
from django.urls import reverse

from programs import services
from programs.models import Case, Program, Report, Vote
from tests.factories import ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGN_IN = reverse("account_login")


def as_who(client, who, *, owner, other_user, staff):
    if who != "anonymous":
        client.force_login({"owner": owner, "other": other_user, "staff": staff}[who])
    return client


# (anonymous, other user, owner, staff)
PAGE_MATRIX = {
    "public": (200, 200, 200, 200),
    "private": (404, 404, 200, 200),
    "hidden": (404, 404, 200, 200),
    "compiling": (200, 200, 200, 200),
}


@pytest.mark.parametrize("kind", PAGE_MATRIX)
@pytest.mark.parametrize("who", ["anonymous", "other", "owner", "staff"])
def test_program_page_access_matrix(client, user, other_user, staff, kind, who):
    program = ProgramFactory(
        owner=user,
        is_public=kind != "private",
        is_hidden=kind == "hidden",
        hidden_reason="Spam" if kind == "hidden" else "",
        status="compiling" if kind == "compiling" else "ready",
    )
    services.alias_point(user=user, slug="urgency", program=program)
    as_who(client, who, owner=user, other_user=other_user, staff=staff)
    expected = PAGE_MATRIX[kind][["anonymous", "other", "owner", "staff"].index(who)]
    for path in (
        f"/p/{program.id}/",
        f"/{user.username}/urgency/",
        f"/{user.username}/urgency@v1/",
    ):
        assert client.get(path).status_code == expected, path


def test_hidden_program_tells_its_owner_why(client, user):
    program = ProgramFactory(owner=user, is_hidden=True, hidden_reason="Looks like spam")
    client.force_login(user)
    page = client.get(program.get_absolute_url()).content.decode()
    assert "Hidden by the moderators: Looks like spam" in page
    assert "Only you and the moderators" in page


def test_program_page_shows_everything_about_it(client, user):
    program = ProgramFactory(
        owner=user,
        name="Urgency triage",
        pseudo_program="Read the message. Say urgent, normal or low.",
        example_count=40,
        selfcheck_accuracy=0.9,
        heldout_accuracy=0.8,
        heldout_count=10,
        adapter_size=3_000_000,
        adapter_sha256="a" * 64,
        bundle_size=3_100_000,
        bundle_sha256="b" * 64,
        output_constraint={"kind": "choice", "choices": ["urgent", "normal", "low"]},
        tags=["support"],
    )
    services.alias_point(user=user, slug="urgency", program=program)
    page = client.get(program.get_absolute_url()).content.decode()
    for expected in [
        "Urgency triage",
        f"{user.username}/urgency@v1",
        program.spec.splitlines()[0],
        "Read the message. Say urgent",
        program.compiler_snapshot,
        "27/30 (90 %) exact on its training examples",
        "8/10 (80 %) exact on 10 unseen examples",
        "95 % interval 49–95 %",
        "One of urgent, normal, low",
        "a" * 64,
        "b" * 64,
        f"/p/{program.id}/download/bundle/",
        f"/p/{program.id}/download/adapter/",
        # "Use it": the official SDK (remotely: a label program) and pawhub, by name.
        f'paw.function("{user.username}/urgency", remote=True)',
        f'pawhub run {user.username}/urgency "your input here"',
        'id="try-it"',
        'id="votes"',
        'id="cases"',
        "Report this program",
        'href="/hub/?tag=support"',
    ]:
        assert expected in page, expected


@pytest.mark.parametrize(
    ("agreement", "expected", "remote"),
    [
        (0.75, "30/40 (75 %)", True),  # the SDK misses some: run it here, or guided
        (1.0, "40/40 (100 %)", False),  # the SDK gives the hub's answers: run it locally
        (None, "not measured for this program", True),  # compiled before it was measured
    ],
)
def test_use_it_reports_the_sdks_measured_agreement(client, user, agreement, expected, remote):
    program = ProgramFactory(
        owner=user,
        example_count=40,
        heldout_count=10,
        sdk_agreement=agreement,
        output_constraint={"kind": "span"},
    )
    page = client.get(program.get_absolute_url()).content.decode()
    usage = page[page.index('id="usage-title"') : page.index("From <code>pawhub</code>")]
    assert expected in usage
    assert (f'paw.function("{program.id}", remote=True)' in usage) is remote
    assert (f'paw run {program.id} "your input here" --remote' in usage) is remote
    assert (f'logits_processor=pawhub.guided("{program.id}")' in usage) is (agreement == 0.75)


def test_compiling_program_page_links_the_compile_and_offers_no_download(client):
    program = ProgramFactory(status=Program.Status.COMPILING)
    page = client.get(program.get_absolute_url()).content.decode()
    assert "still compiling" in page and "/download/" not in page


def test_unknown_program_and_names_are_404(client, user):
    assert client.get("/p/0000000000/").status_code == 404
    assert client.get(f"/{user.username}/nothing/").status_code == 404
    assert client.get("/nothing-here/").status_code == 404


# --- names and versions -----------------------------------------------------------


def test_versions_resolve_by_url_and_the_slash_may_be_encoded(client, user):
    v1 = ProgramFactory(owner=user, name="First")
    v2 = ProgramFactory(owner=user, name="Second")
    services.alias_point(user=user, slug="urgency", program=v1)
    services.alias_point(user=user, slug="urgency", program=v2)
    assert client.get(f"/{user.username}/urgency/").context["program"] == v2
    assert client.get(f"/{user.username}%2Furgency/").context["program"] == v2
    assert client.get(f"/{user.username}/urgency@v1/").context["program"] == v1
    page = client.get(f"/{user.username}/urgency@v1/").content.decode()
    assert f"/{user.username}/urgency@v2/" in page and "latest" in page
    assert client.get(f"/{user.username}/urgency@v3/").status_code == 404


def test_official_names_resolve_bare(client, program, staff):
    services.program_publish(program=program, actor=staff, slug="urgency")
    assert client.get("/urgency/").context["program"] == program
    assert client.get("/urgency@v1/").context["program"] == program


def test_reserved_words_are_never_taken_for_names(client):
    # /hub/ and friends are the site's own; a user called "api" cannot shadow /api/...
    assert client.get("/hub/").context.get("program") is None
    assert client.get("/api/whatever/").status_code == 404


def test_owner_names_the_program_from_its_page(client, user, program):
    client.force_login(user)
    response = client.post(reverse("program_alias", args=[program.id]), {"slug": "urgency"})
    assert response.status_code == 302
    assert response["Location"] == f"/{user.username}/urgency@v1/"
    newer = ProgramFactory(owner=user)
    response = client.post(reverse("program_alias", args=[newer.id]), {"slug": "urgency"})
    assert response["Location"] == f"/{user.username}/urgency@v2/"


def test_naming_errors_show_beside_the_field(client, user, program):
    client.force_login(user)
    response = client.post(reverse("program_alias", args=[program.id]), {"slug": "Bad Name!"})
    assert response.status_code == 400
    assert "lowercase letters" in response.content.decode()
    response = client.post(reverse("program_alias", args=[program.id]), {"slug": "admin"})
    assert "reserved" in response.content.decode()


@pytest.mark.parametrize("who, status", [("anonymous", 302), ("other", 403), ("staff", 403)])
def test_only_the_owner_names_a_program(client, user, other_user, staff, program, who, status):
    as_who(client, who, owner=user, other_user=other_user, staff=staff)
    response = client.post(reverse("program_alias", args=[program.id]), {"slug": "mine"})
    assert response.status_code == status
    if who == "anonymous":
        assert response["Location"].startswith(SIGN_IN)


def test_owner_sees_the_naming_form_and_others_do_not(client, user, other_user, program):
    assert "Name it" not in client.get(program.get_absolute_url()).content.decode()
    client.force_login(other_user)
    assert "Name it" not in client.get(program.get_absolute_url()).content.decode()
    client.force_login(user)
    assert "Name it" in client.get(program.get_absolute_url()).content.decode()


# --- voting ------------------------------------------------------------------------


def test_vote_with_a_plain_form(client, other_user, program):
    client.force_login(other_user)
    url = reverse("program_vote", args=[program.id])
    response = client.post(url, {"value": "1"})
    assert response.status_code == 302 and response["Location"] == program.get_absolute_url()
    program.refresh_from_db()
    assert program.score == 1
    page = client.get(program.get_absolute_url()).content.decode()
    assert 'aria-pressed="true"' in page


def test_vote_with_htmx_returns_the_widget(client, other_user, program):
    client.force_login(other_user)
    url = reverse("program_vote", args=[program.id])
    fragment = client.post(url, {"value": "-1"}, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 200 and body.lstrip().startswith('<form id="votes"')
    assert (
        '<output class="score" title="Score: up votes minus down votes" aria-label="Score">-1<'
        in body
    )
    again = client.post(url, {"value": "-1"}, headers={"HX-Request": "true"}).content.decode()
    assert 'aria-label="Score">0<' in again and not Vote.objects.exists()


def test_anonymous_voters_sign_in_and_come_back(client, program):
    url = reverse("program_vote", args=[program.id])
    response = client.post(url, {"value": "1"})
    assert response.status_code == 302
    assert response["Location"] == f"{SIGN_IN}?next={program.get_absolute_url()}"
    htmx = client.post(url, {"value": "1"}, headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == f"{SIGN_IN}?next={program.get_absolute_url()}"
    assert not Vote.objects.exists()


def test_bad_vote_values_and_get_are_refused(client, other_user, program):
    client.force_login(other_user)
    url = reverse("program_vote", args=[program.id])
    assert client.post(url, {"value": "5"}).status_code == 400
    assert client.post(url, {}).status_code == 400
    assert client.get(url).status_code == 405


@pytest.mark.parametrize("who, status", [("anonymous", 404), ("other", 404), ("staff", 302)])
def test_no_voting_on_programs_you_cannot_see(client, user, other_user, staff, who, status):
    private = ProgramFactory(owner=user, is_public=False)
    as_who(client, who, owner=user, other_user=other_user, staff=staff)
    response = client.post(reverse("program_vote", args=[private.id]), {"value": "1"})
    assert response.status_code == status


# --- cases ----------------------------------------------------------------------------

CASE = {"input": "printer on fire", "expected": "urgent", "type": "edge_case", "note": "fire!"}


def test_signed_in_users_add_cases_listed_by_type(client, other_user, program):
    client.force_login(other_user)
    response = client.post(reverse("program_case", args=[program.id]), CASE)
    assert response.status_code == 302 and response["Location"].endswith("#cases")
    ProgramFactory()  # someone else's program's cases stay there
    services.case_submit(
        program=program, author=other_user, input="hi", expected="low", type="success"
    )
    page = client.get(program.get_absolute_url()).content.decode()
    edge = page.index("Edge case <span")
    assert (
        page.index("Works <span") < page.index("hi</code>") < page.index("Limitation <span") < edge
    )
    assert edge < page.index("printer on fire") and "fire!" in page


def test_case_form_errors_show_beside_fields(client, other_user, program):
    client.force_login(other_user)
    response = client.post(reverse("program_case", args=[program.id]), CASE | {"input": ""})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    fragment = client.post(
        reverse("program_case", args=[program.id]),
        CASE | {"type": "x"},
        headers={"HX-Request": "true"},
    )
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="cases"') and "Select a valid choice" in body
    assert not Case.objects.exists()


def test_case_with_htmx_returns_the_updated_list(client, other_user, program):
    client.force_login(other_user)
    fragment = client.post(
        reverse("program_case", args=[program.id]), CASE, headers={"HX-Request": "true"}
    )
    body = fragment.content.decode()
    assert "printer on fire" in body and "your case was added" in body


@pytest.mark.parametrize("path_name", ["program_case", "program_report"])
def test_anonymous_visitors_sign_in_to_add_cases_or_report(client, program, path_name):
    response = client.post(reverse(path_name, args=[program.id]), CASE | {"reason": "spam"})
    assert response["Location"] == f"{SIGN_IN}?next={program.get_absolute_url()}"
    assert not Case.objects.exists() and not Report.objects.exists()


# --- reports ------------------------------------------------------------------------------


def test_report_with_reason_and_note(client, other_user, program):
    client.force_login(other_user)
    url = reverse("program_report", args=[program.id])
    response = client.post(url, {"reason": "spam", "note": "ads in outputs"})
    assert response.status_code == 302
    report = Report.objects.get()
    assert (report.reason, report.note, report.reporter) == ("spam", "ads in outputs", other_user)
    fragment = client.post(url, {"reason": "harmful"}, headers={"HX-Request": "true"})
    assert "moderators will look" in fragment.content.decode()
    assert Report.objects.get().reason == "harmful"
    bad = client.post(url, {"reason": "boring"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()


def test_page_queries_stay_flat_with_many_cases(
    client, user, program, django_assert_max_num_queries
):
    services.alias_point(user=user, slug="urgency", program=program)
    client.force_login(user)
    for i in range(2):
        services.case_submit(
            program=program, author=UserFactory(), input=f"in {i}", expected="x", type="success"
        )
    with django_assert_max_num_queries(20) as few:
        client.get(program.get_absolute_url())
    for i in range(20):
        services.case_submit(
            program=program,
            author=UserFactory(),
            input=f"more {i}",
            expected="x",
            type="limitation",
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(program.get_absolute_url())
