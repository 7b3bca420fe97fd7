"""The reliability suite (issue #8): every test measures something and prints it.

`figure("what", value)` prints one line `FIGURE test_name: what = value` straight
to the terminal (even under pytest's capture), so a CI log shows the numbers.
"""

import pytest


@pytest.fixture
def figure(request, capsys):
    def report(what, value):
        with capsys.disabled():
            print(f"\nFIGURE {request.node.name}: {what} = {value}", flush=True)

    return report


@pytest.fixture(scope="module")
def site(django_db_setup, tmp_path_factory):
    """URL of the site as production runs it (tests/reliability/production.py), one
    per test module."""
    from tests.reliability.production import production_site

    with production_site(tmp_path_factory.mktemp("site") / "gunicorn.log") as url:
        yield url
