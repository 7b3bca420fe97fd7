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
