"""Many examples at once on the compile form, in chromium: pasted and uploaded
rows arrive by htmx (multipart, the box swapped out of band) and reach the
spec preview."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_hub import sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_paste_and_upload_become_rows_and_reach_the_preview(page):
    UserFactory(username="ada")
    page.goto("/accounts/login/")
    sign_in(page, "ada")
    page.goto("/compile/")
    page.get_by_label("Description").fill("Classify a support message by urgency.")
    page.get_by_label("Input 1").fill("printer on fire")
    page.get_by_label("Output 1").fill("urgent")

    page.get_by_text("Paste or upload many examples").click()
    page.get_by_label("Paste examples").fill(
        "Nobody can log in, the whole site is down -> urgent\nWhere is my invoice? -> low\n"
    )
    page.get_by_role("button", name="Add these examples").click()
    expect(page.get_by_role("status").filter(has_text="Added 2 examples")).to_be_visible()
    expect(page.get_by_label("Input 2")).to_have_value("Nobody can log in, the whole site is down")
    expect(page.get_by_label("Output 3")).to_have_value("low")
    expect(page.get_by_label("Paste examples")).to_have_value("")
    expect(page.locator("#spec-preview")).to_contain_text("Input: Where is my invoice?")
    assert page.url.endswith("/compile/")  # swapped in place, nothing else reloaded

    page.get_by_text("Paste or upload many examples").click()
    page.get_by_label("Or upload a file").set_input_files(
        files=[
            {
                "name": "more.tsv",
                "mimeType": "text/tab-separated-values",
                "buffer": b"input\toutput\nPayments fail right now\turgent\n",
            }
        ]
    )
    page.get_by_role("button", name="Add these examples").click()
    expect(page.get_by_label("Input 4")).to_have_value("Payments fail right now")
    expect(page.locator("#spec-preview")).to_contain_text("Payments fail right now")

    # An error stays beside the box, which stays open; the rows are kept.
    page.get_by_text("Paste or upload many examples").click()
    page.get_by_label("Paste examples").fill("a -> b\nnot an example")
    page.get_by_role("button", name="Add these examples").click()
    expect(page.locator("#bulk-import")).to_contain_text("Line 2: expected 'input -> output'.")
    expect(page.get_by_label("Paste examples")).to_be_visible()
    expect(page.get_by_label("Input 4")).to_have_value("Payments fail right now")

    # The preview follows the rows after a swap, not before it (it re-read the
    # old rows while the response was still on its way).
    page.get_by_role("button", name="Remove example 1").click()
    expect(page.get_by_label("Input 1")).to_have_value("Nobody can log in, the whole site is down")
    expect(page.locator("#spec-preview")).not_to_contain_text("printer on fire")
