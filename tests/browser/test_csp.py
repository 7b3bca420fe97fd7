"""The pages under their Content-Security-Policy in chromium: every page a
person reaches, and what htmx does on them, runs without one violation
(the browser reports each as a `securitypolicyviolation` event and a console
error), and the htmx behaviour that used an inline handler still works."""

import pytest
from playwright.sync_api import expect

from accounts.models import ApiKey
from tests.browser.test_hub import ready_program, sign_in
from tests.factories import ProgramFactory, StaffFactory
from tests.reliability.conftest import figure  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs in every page before its own scripts (Playwright injects it past the CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile}:${event.lineNumber} (${event.sample})`
  );
});
"""


@pytest.fixture
def watched(page, figure):  # noqa: F811 (the imported fixture)
    """The page, recording CSP violations and console errors of every document it loads."""
    page.add_init_script(RECORD_VIOLATIONS)
    seen = {"violations": [], "console": [], "pages": 0}

    def console(message):
        if message.type == "error":
            seen["console"].append(f"{page.url}: {message.text}")

    page.on("console", console)

    def collect():
        seen["violations"] += [
            f"{page.url}: {v}" for v in page.evaluate("window.__cspViolations || []")
        ]
        seen["pages"] += 1

    page.collect = collect
    yield page
    figure("pages and interactions checked in chromium", seen["pages"])
    figure("CSP violations", len(seen["violations"]))
    csp_errors = [line for line in seen["console"] if "Content Security Policy" in line]
    figure("CSP console errors", len(csp_errors))
    assert not seen["violations"], "\n".join(seen["violations"])
    assert not csp_errors, "\n".join(csp_errors)


def visit(page, path):
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.collect()


def test_no_page_violates_the_content_security_policy(watched):
    page = watched
    staff = StaffFactory(username="mod")
    program = ready_program(owner=staff, name="Urgency triage", tags=["support"])
    broken = ProgramFactory(owner=staff, name="No files")  # "Try it" answers 503
    ApiKey.create_for(user=staff, name="laptop")

    for path in ("/", "/hub/", program.get_absolute_url(), "/accounts/signup/", "/api/v1/docs"):
        visit(page, path)
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()
    page.collect()

    # htmx: the gallery's live search.
    visit(page, "/hub/")
    page.get_by_label("Search").fill("urgency")
    expect(page).to_have_url("/hub/?q=urgency&tag=&sort=")
    page.collect()

    # An error answer is swapped into the "Try it" box (this was an inline handler).
    visit(page, broken.get_absolute_url())
    box = page.locator("#try-it")
    box.get_by_label("Input").fill("hello")
    box.get_by_role("button", name="Run").click()
    expect(box.get_by_role("alert")).to_contain_text("files are missing")
    assert page.url.endswith(broken.get_absolute_url())
    page.collect()

    visit(page, "/accounts/login/")
    sign_in(page, "mod")
    expect(page.locator(".site-header .menu-name")).to_have_text("mod")
    page.collect()
    # htmx: the compile form's rows and its spec preview.
    visit(page, "/compile/")
    page.get_by_label("Description").fill("Label a support message as urgent or not.")
    page.get_by_role("button", name="+ Add an example").click()
    expect(page.get_by_label("Input 3")).to_be_visible()
    expect(page.locator("#spec-preview")).to_contain_text("urgent or not")
    page.collect()
    visit(page, "/settings/")
    page.locator("#api-keys").get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-api-key")).to_be_visible()
    page.collect()
    for path in ("/compile/jobs/", "/moderation/", "/admin/", "/admin/programs/program/"):
        visit(page, path)
