"""Celery tasks of the `runtime` queue: run a program on an input, check a case.

Each worker process keeps one interpreter warm (``shared_interpreter``), loaded
in a thread right after the fork so the first call does not pay for it.

``run_program`` answers someone who is waiting ("Try it", ``POST /infer``), so
unlike the compile tasks it is acknowledged early (``acks_late=False``): a call
whose worker died mid-way is reported to its caller as failed, never run again
for a caller who has given up. The caller also sends it with a short expiry,
so a call still queued when its caller stops waiting is dropped unrun.
It returns a plain dict, the result or ``{"error": code, "message": ...}``.
"""

import dataclasses
import logging
import threading

from celery import current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from pawhub.adapter import AdapterError
from pawhub.calls import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT, RunLimitError, RunTimeout
from pawhub.prompt import PromptError
from programs.artifacts import artifact_local_path
from programs.models import Case, Program

log = logging.getLogger(__name__)
RUNTIME_QUEUE = "runtime"
CHECKS_QUEUE = "runtime_checks"  # case checks, on their own worker
# A call may first wait for the model to load and its prompt head to be computed.
SOFT_TIME_LIMIT = settings.RUNTIME_CALL_TIMEOUT_SECONDS + 15
HARD_TIME_LIMIT = SOFT_TIME_LIMIT + 10


# The web process imports this module to send the tasks; llama.cpp (pawhub.interpreter)
# is only imported where they run.


@worker_process_init.connect
def warm_up(**kwargs):
    consumed = current_app.amqp.queues.consume_from
    if RUNTIME_QUEUE in consumed or CHECKS_QUEUE in consumed:
        threading.Thread(target=interpreter, name="warm-up", daemon=True).start()


@worker_ready.connect
def warm_up_vllm(**kwargs):
    # A vLLM runtime worker runs a thread pool (no process init): its one engine
    # starts (~30 s) when the worker is ready, not in its first call's time limit.
    if settings.PAW_RUNTIME_ENGINE == "vllm" and RUNTIME_QUEUE in (
        current_app.amqp.queues.consume_from
    ):
        threading.Thread(target=interpreter, name="warm-up", daemon=True).start()


def interpreter():
    """What runs programs in this process: llama.cpp's shared interpreter, or with
    ``PAW_RUNTIME_ENGINE=vllm`` the vLLM batch runner (``runtime.batching``); both
    have the same ``run``."""
    if settings.PAW_RUNTIME_ENGINE == "vllm":
        from runtime.batching import shared_runner

        return shared_runner(settings.MODEL_CACHE_DIR)
    from pawhub.interpreter import shared_interpreter

    return shared_interpreter()


class ProgramUnavailable(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def run(program, input_text, *, max_tokens, temperature=0.0):
    """Run a ready `program` in this process; ProgramUnavailable says why not."""
    from pawhub.interpreter import AdapterLoadError

    if not program.is_ready or not program.adapter_path:
        raise ProgramUnavailable("not_ready", "This program is not ready to run.")
    try:
        return interpreter().run(
            program.prompt_template,
            input_text,
            # A real file for llama.cpp: from remote storage, a copy cached by sha256.
            adapter=artifact_local_path(program.adapter_path, sha256=program.adapter_sha256),
            max_tokens=max_tokens,
            temperature=temperature,
            timeout_s=settings.RUNTIME_CALL_TIMEOUT_SECONDS,
            constraint=program.constraint,
        )
    except RunLimitError as exc:
        raise ProgramUnavailable("input_too_long", f"The input is too long: {exc}.") from exc
    except (RunTimeout, SoftTimeLimitExceeded) as exc:
        raise ProgramUnavailable(
            "timeout",
            f"The program ran longer than {settings.RUNTIME_CALL_TIMEOUT_SECONDS} s and was "
            "stopped; try a shorter input or fewer tokens.",
        ) from exc
    except (OSError, AdapterError, AdapterLoadError, PromptError) as exc:
        log.exception("program %s cannot run", program.pk)
        raise ProgramUnavailable(
            "broken_program", "This program's files cannot be run; the admins have been told."
        ) from exc


@shared_task(acks_late=False, soft_time_limit=SOFT_TIME_LIMIT, time_limit=HARD_TIME_LIMIT)
def run_program(program_id, input_text, max_tokens=DEFAULT_MAX_TOKENS, temperature=0.0):
    program = Program.objects.filter(pk=program_id).first()
    if program is None:
        return {"error": "not_ready", "message": "This program no longer exists."}
    try:
        result = run(program, input_text, max_tokens=max_tokens, temperature=temperature)
    except ProgramUnavailable as exc:
        return {"error": exc.code, "message": str(exc)}
    return dataclasses.asdict(result)


@shared_task(
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=HARD_TIME_LIMIT,
)
def check_case(case_id):
    """Run a case's input and store what the program said and whether it is
    the expected output (exact match after stripping, as the compiler's self-check).
    Idempotent: a checked case is left as it is."""
    case = Case.objects.select_related("program").filter(pk=case_id).first()
    if case is None or case.checked_at is not None:
        return
    # Long enough for any answer that could equal the expected one.
    max_tokens = min(MAX_TOKENS_LIMIT, max(DEFAULT_MAX_TOKENS, len(case.expected)))
    try:
        actual = run(case.program, case.input, max_tokens=max_tokens).output
    except ProgramUnavailable as exc:
        if exc.code != "input_too_long":
            # Not the program's answer (not ready, too slow, broken): leave it unchecked.
            log.warning("case %s not checked: %s", case_id, exc)
            return
        actual = ""
    Case.objects.filter(pk=case.pk, checked_at__isnull=True).update(
        actual_output=actual, passed=actual == case.expected.strip(), checked_at=timezone.now()
    )
