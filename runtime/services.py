"""Running programs for the site: "Try it", ``POST /infer`` and case checks.

The web process never loads llama.cpp: it sends the call to the `runtime`
queue and waits, for at most ``RUNTIME_WAIT_SECONDS``, for a worker's answer.
Every way a call can fail ends in ``RunError``, whose ``code`` and ``status``
the web view and the API both turn into an answer, and whose message is
written for the person who asked.
"""

from billiard.exceptions import WorkerLostError
from celery import states
from celery.exceptions import TimeoutError as ResultTimeout
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from pawhub.calls import DEFAULT_MAX_TOKENS, RunLimitError, RunResult, check_request

from . import tasks

# HTTP status for each RunError code; the API sends the code as its `error`.
STATUSES = {
    "invalid_request": 422,
    "input_too_long": 422,
    "not_ready": 409,
    "busy": 503,
    "worker_lost": 503,
    "timeout": 503,
    "unavailable": 503,
    "broken_program": 503,
}
RETRY_AFTER_SECONDS = 5


class RunError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUSES[code]


def program_run(
    *, program, input_text, max_tokens=DEFAULT_MAX_TOKENS, temperature=0.0
) -> RunResult:
    """Run `program` on `input_text` in a runtime worker and wait for the answer.
    Finding the program (and who may run it) is the caller's job."""
    try:
        check_request(input_text, max_tokens=max_tokens, temperature=temperature)
    except RunLimitError as exc:
        raise RunError("invalid_request", f"{str(exc).capitalize()}.") from exc
    if program.status == program.Status.COMPILING:
        raise RunError("not_ready", "This program is still compiling; try it once it is ready.")
    if not program.is_ready:
        raise RunError("not_ready", "This program did not compile, so it cannot run.")
    if not program.adapter_path:
        raise RunError("broken_program", "This program's files are missing, so it cannot run.")
    wait = settings.RUNTIME_WAIT_SECONDS
    try:
        pending = tasks.run_program.apply_async(
            (program.pk, input_text, max_tokens, temperature), expires=wait
        )
    except BrokerError as exc:
        raise RunError("unavailable", "Programs cannot run right now; try again later.") from exc
    try:
        answer = pending.get(timeout=wait, interval=0.05, propagate=False)
    except ResultTimeout as exc:
        raise RunError(
            "busy",
            f"No runtime worker answered within {wait} s: they are busy or down. "
            "Try again in a moment.",
        ) from exc
    state = pending.state
    pending.forget()
    if state == states.SUCCESS and "error" in answer:
        raise RunError(answer["error"], answer["message"])
    if state == states.SUCCESS:
        return RunResult(**answer)
    if isinstance(answer, WorkerLostError):
        raise RunError(
            "worker_lost",
            "The runtime worker stopped while running this input. Try again: "
            "a fresh worker takes over.",
        )
    if state == states.REVOKED:
        raise RunError("busy", "The runtime workers were too busy to start this call in time.")
    raise RunError("unavailable", "The program could not run this time; try again.")


def case_check_on_commit(*, case):
    """Check `case` with the program once the transaction that added it commits."""
    transaction.on_commit(lambda: tasks.check_case.delay(case.pk))
