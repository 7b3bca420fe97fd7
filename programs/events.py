"""What the programs app announces to the apps above it, which it must not import.

The layers run one way: programs (the catalogue) < compiler < runtime < api, the
web views and the commands on top (tests/test_layers.py). When something here
needs work from an app above -- a new case to check by running the program --
it sends a signal that app connects to when Django starts.
"""

from django.dispatch import Signal

# Sent inside the transaction that added the case; `case` is the new Case.
case_submitted = Signal()
