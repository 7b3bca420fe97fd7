"""The hub as a new user meets it in chromium: browse and search the gallery,
open a program, vote, add a case, report it, download it; then a moderator
hides it and it leaves the gallery."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from programs import services
from tests.browser.conftest import sign_out
from tests.factories import PASSWORD, ProgramFactory, StaffFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BUNDLE = b"PK\x05\x06" + b"\x00" * 18  # an empty ZIP: enough to download


def sign_in(page, username):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def ready_program(**fields):
    program = ProgramFactory(**fields)
    folder = Path(settings.MEDIA_ROOT) / "programs" / program.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "program.paw").write_bytes(BUNDLE)
    program.bundle_path = f"programs/{program.id}/program.paw"
    program.bundle_size = len(BUNDLE)
    program.bundle_sha256 = hashlib.sha256(BUNDLE).hexdigest()
    program.save()
    return program


def test_a_visitor_finds_judges_and_downloads_a_program_then_a_moderator_hides_it(page):
    ada = UserFactory(username="ada")
    urgency = ready_program(
        owner=ada,
        name="Urgency triage",
        spec="Label help-desk messages as urgent, normal or low.",
        tags=["support"],
    )
    services.alias_point(user=ada, slug="urgency", program=urgency)
    ready_program(owner=ada, name="Invoice totals", spec="Extract the total from an invoice.")
    UserFactory(username="grace")
    StaffFactory(username="mod")

    # Browse and search: the list swaps in place and the URL follows.
    page.goto("/hub/")
    results = page.locator("#results")
    expect(results.get_by_role("link", name="Invoice totals")).to_be_visible()
    page.get_by_label("Search").fill("urgent")
    expect(results.get_by_role("link", name="Invoice totals")).to_have_count(0)
    expect(page).to_have_url("/hub/?q=urgent&tag=&sort=")
    results.get_by_role("link", name="Urgency triage").click()
    expect(page).to_have_url("/ada/urgency/")

    # Voting signs an anonymous visitor in and brings them back.
    page.get_by_role("button", name="Vote up").click()
    expect(page).to_have_url(f"/accounts/login/?next=/p/{urgency.id}/")
    sign_in(page, "grace")
    expect(page).to_have_url(f"/p/{urgency.id}/")
    page.get_by_role("button", name="Vote up").click()
    expect(page.get_by_label("Score")).to_have_text("1")
    expect(page.get_by_role("button", name="Vote up")).to_have_attribute("aria-pressed", "true")

    # A case, then a report.
    # Within the cases section: the Try it box above has an "Input" field too.
    cases = page.locator("#cases")
    cases.get_by_text("Add a case").click()
    cases.get_by_label("Input").fill("printer on fire")
    cases.get_by_label("Expected output").fill("urgent")
    cases.get_by_label("Type").select_option("edge_case")
    cases.get_by_role("button", name="Add case").click()
    expect(page.get_by_text("your case was added")).to_be_visible()
    expect(page.locator(".case-group-edge_case")).to_contain_text("printer on fire")

    page.get_by_text("Report this program").click()
    page.get_by_label("Spam or advertising").check()
    page.get_by_role("button", name="Send report").click()
    expect(page.get_by_text("the moderators will look at your report")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download .paw bundle").click()
    assert download.value.suggested_filename == f"urgency-{urgency.id[:8]}.paw"
    assert Path(download.value.path()).read_bytes() == BUNDLE

    # The moderator hides it from the queue; the gallery no longer lists it.
    sign_out(page)
    page.goto("/moderation/")
    sign_in(page, "mod")
    report = page.locator(".report-item", has_text="Urgency triage")
    expect(report).to_contain_text("Spam or advertising")
    report.get_by_placeholder("Why (the author sees this)").fill("Spam links")
    report.get_by_role("button", name="Hide").click()
    expect(page.get_by_text("Urgency triage is hidden.")).to_be_visible()
    page.goto("/hub/")
    expect(page.locator("#results").get_by_role("link", name="Invoice totals")).to_be_visible()
    expect(page.locator("#results").get_by_role("link", name="Urgency triage")).to_have_count(0)
