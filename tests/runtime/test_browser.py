"""What only a browser shows: the "Try it" box answers in place (htmx), and an
error answer (a 4xx/5xx status) is swapped in too, not dropped by htmx."""

import pytest
from playwright.sync_api import expect

from tests.factories import ProgramFactory
from tests.runtime.conftest import URGENCY_INPUTS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def page_factory(site):
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is missing (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are plain synchronous code (see tests/browser/conftest.py).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        contexts = []

        def new_page():
            contexts.append(browser.new_context(base_url=site))
            contexts[-1].set_default_timeout(30_000)
            return contexts[-1].new_page()

        yield new_page
        for context in contexts:
            context.close()
        browser.close()


def test_try_it_answers_in_place(runtime_worker, page_factory, compiled_program, local_outputs):
    page = page_factory()
    page.goto(compiled_program.get_absolute_url())
    box = page.locator("#try-it")
    for text in URGENCY_INPUTS[:2]:
        box.get_by_label("Input").fill(text)
        box.get_by_role("button", name="Run").click()
        # The worker may still be loading the model: a generous wait.
        expect(box.locator(".try-it-result output")).to_have_text(
            local_outputs[text], timeout=120_000
        )
        expect(box.get_by_label("Input")).to_have_value(text)
    expect(box.locator(".try-it-result")).to_contain_text(" ms")
    assert page.url.endswith(compiled_program.get_absolute_url())  # no page load


def test_an_error_answer_is_shown_in_the_box(runtime_worker, page_factory):
    program = ProgramFactory()  # ready, but its adapter is missing: a 503
    page = page_factory()
    page.goto(program.get_absolute_url())
    box = page.locator("#try-it")
    box.get_by_label("Input").fill("hello")
    box.get_by_role("button", name="Run").click()
    expect(box.get_by_role("alert")).to_contain_text("files are missing", timeout=30_000)
