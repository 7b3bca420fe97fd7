"""The compile form, job pages and the submit/join/cache/cancel rules (no worker)."""

import pytest
from django.urls import reverse

from compiler import services
from compiler.models import CompileJob
from programs.models import Program
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SPEC = "Classify a support message by urgency.\nserver down -> urgent\nwhere is my invoice -> low\n"


def form_data(rows, action="compile", **fields):
    data = {
        "description": "Classify a support message by urgency.",
        "hints": "",
        "compiler": "paw-smollm2-135m",
        "name": "Urgency",
        "tags": "support, triage",
        "is_public": "on",
        "action": action,
        "examples-TOTAL_FORMS": str(len(rows)),
        "examples-INITIAL_FORMS": "0",
        "examples-MIN_NUM_FORMS": "1",
        "examples-MAX_NUM_FORMS": "64",
    }
    for i, (x, y) in enumerate(rows):
        data[f"examples-{i}-input"] = x
        data[f"examples-{i}-output"] = y
    data.update(fields)
    return data


def test_compile_page_needs_sign_in(client):
    response = client.get(reverse("compile"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_compile_page_shows_three_example_rows(signed_in):
    page = signed_in.get(reverse("compile")).content.decode()
    assert page.count('name="examples-') >= 6
    assert 'name="examples-2-input"' in page and 'name="examples-3-input"' not in page


def test_add_row_without_js_keeps_everything_typed(signed_in):
    rows = [("server down", "urgent")]
    response = signed_in.post(reverse("compile"), form_data(rows, action="add", name="Keep me"))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="examples-1-input"' in page
    assert "server down" in page and 'value="Keep me"' in page
    assert "errorlist" not in page


def test_add_row_with_htmx_returns_only_the_rows(signed_in):
    response = signed_in.post(
        reverse("compile"), form_data([("a", "b")], action="add"), HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="example-rows">')
    assert "<html" not in page and 'name="examples-1-input"' in page
    assert response["HX-Trigger-After-Swap"] == "rows-changed"
    assert "HX-Request" in response["Vary"]


def test_remove_row_shifts_the_rows_below(signed_in):
    rows = [("alpha", "1"), ("bravo", "2"), ("charlie", "3")]
    page = signed_in.post(reverse("compile"), form_data(rows, action="remove-1")).content.decode()
    assert "bravo" not in page
    assert 'name="examples-1-input"' in page and "charlie" in page
    assert 'name="examples-2-input"' not in page


def test_preview_merges_the_spec(signed_in):
    rows = [("server down", "urgent")]
    response = signed_in.post(reverse("compile_preview"), form_data(rows, hints="one word"))
    page = response.content.decode()
    assert "Input: server down" in page and "- one word" in page and "<html" not in page


def test_spec_errors_are_shown_beside_the_examples(signed_in, no_enqueue):
    response = signed_in.post(reverse("compile"), form_data([("server down", "urgent")]))
    assert response.status_code == 200
    assert "at least 2 examples" in response.content.decode()
    assert not no_enqueue and not Program.objects.exists()


def test_a_half_filled_row_is_an_error_on_that_row(signed_in, no_enqueue):
    rows = [("server down", "urgent"), ("invoice", "")]
    page = signed_in.post(reverse("compile"), form_data(rows)).content.decode()
    assert "Give both an input and its output" in page
    assert not no_enqueue


def test_submit_creates_program_and_job_and_enqueues_after_commit(
    signed_in, user, no_enqueue, django_capture_on_commit_callbacks
):
    rows = [("server down", "urgent"), ("invoice question", "low")]
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(reverse("compile"), form_data(rows))
    job = CompileJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert no_enqueue == [job]
    program = job.program
    assert (program.owner, program.name, program.status) == (user, "Urgency", "compiling")
    assert sorted(program.tags.values_list("name", flat=True)) == ["support", "triage"]
    assert len(program.id) == 20 and "Input: server down" in program.spec


def test_same_spec_while_compiling_joins_the_running_job(user, other_user, no_enqueue):
    first = services.compile_submit(spec=SPEC, owner=user)
    second = services.compile_submit(spec=SPEC, owner=other_user)
    assert second.joined and second.job == first.job
    assert CompileJob.objects.count() == 1


def test_same_spec_when_ready_is_a_cache_hit(user, no_enqueue):
    first = services.compile_submit(spec=SPEC, owner=user)
    Program.objects.filter(pk=first.program.pk).update(status="ready")
    again = services.compile_submit(spec=SPEC + "\n\n", owner=user)  # same after normalizing
    assert again.cache_hit and again.job is None and again.program.pk == first.program.pk


def test_private_programs_never_collide_across_owners(user, other_user, no_enqueue):
    mine = services.compile_submit(spec=SPEC, owner=user, is_public=False)
    theirs = services.compile_submit(spec=SPEC, owner=other_user, is_public=False)
    public = services.compile_submit(spec=SPEC, owner=other_user)
    assert len({mine.program.pk, theirs.program.pk, public.program.pk}) == 3


def test_a_failed_program_compiles_again(user, no_enqueue):
    first = services.compile_submit(spec=SPEC, owner=user)
    services.job_fail(first.job.pk, "boom")
    again = services.compile_submit(spec=SPEC, owner=user)
    assert again.job != first.job and again.program.status == "compiling"


def test_unknown_compiler_names_the_known_ones(user):
    from compiler.registry import UnknownCompiler

    with pytest.raises(UnknownCompiler, match="Known compilers: paw-smollm2-135m"):
        services.compile_submit(spec=SPEC, owner=user, compiler="gpt-17")


def test_job_page_and_its_polling_fragment(client, user, no_enqueue):
    job = services.compile_submit(spec=SPEC, owner=user).job
    page = client.get(job.get_absolute_url()).content.decode()
    assert 'hx-trigger="every 2s"' in page and 'http-equiv="refresh"' in page
    fragment = client.get(job.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<section id="job-status"') and "<html" not in fragment


def test_finished_job_page_stops_polling(client, user, no_enqueue):
    job = services.compile_submit(spec=SPEC, owner=user).job
    services.job_fail(job.pk, "The spec needs work.")
    page = client.get(job.get_absolute_url()).content.decode()
    assert "every 2s" not in page and "The spec needs work." in page


@pytest.mark.parametrize(
    "who, status", [("anonymous", 302), ("other", 403), ("owner", 200), ("staff", 200)]
)
def test_cancel_access(client, user, other_user, staff, no_enqueue, who, status):
    job = services.compile_submit(spec=SPEC, owner=user).job
    actor = {"anonymous": None, "other": other_user, "owner": user, "staff": staff}[who]
    if actor:
        client.force_login(actor)
    url = reverse("compile_job_cancel", args=[job.id])
    assert client.get(url).status_code == status
    client.post(url)
    job.refresh_from_db()
    assert (job.status == "cancelled") == (status == 200)


def test_private_program_jobs_are_404_to_others(client, user, other_user, no_enqueue):
    job = services.compile_submit(spec=SPEC, owner=user, is_public=False).job
    client.force_login(other_user)
    assert client.get(job.get_absolute_url()).status_code == 404
    assert client.get(job.program.get_absolute_url()).status_code == 404
    client.force_login(user)
    assert client.get(job.get_absolute_url()).status_code == 200


def test_my_jobs_lists_only_mine(client, user, no_enqueue):
    services.compile_submit(spec=SPEC, owner=user, name="Mine")
    services.compile_submit(spec=SPEC + "\nup -> down", owner=UserFactory(), name="Theirs")
    client.force_login(user)
    page = client.get(reverse("my_jobs")).content.decode()
    assert "Mine" in page and "Theirs" not in page


def test_a_hidden_program_is_no_cache_hit_for_others(user, other_user, no_enqueue):
    from compiler.spec import SpecError

    first = services.compile_submit(spec=SPEC, owner=user)
    Program.objects.filter(pk=first.program.pk).update(status="ready", is_hidden=True)
    with pytest.raises(SpecError, match="removed by moderators"):
        services.compile_submit(spec=SPEC, owner=other_user)
    assert services.compile_submit(spec=SPEC, owner=user).cache_hit  # the owner sees why
