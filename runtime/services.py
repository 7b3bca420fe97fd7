"""Running programs for the site: "Try it", ``POST /infer`` and case checks.

The web process never loads llama.cpp: it sends the call to the `runtime`
queue and waits, for at most ``RUNTIME_WAIT_SECONDS``, for a worker's answer.
Under ASGI the views await ``program_run_async``, which holds no thread while it
waits, so the site keeps serving pages: with a Redis result store it awaits the
message the worker publishes on the result's key (subscribed before the call is
sent); with the embedded default's file store it looks for the result's file
every few milliseconds (a stat); else it polls the result store with
``asyncio.sleep`` in between. Case
checks go to their own queue (``runtime_checks``), so a burst of cases never
waits in front of a person's run.
With a ``caller``, a run counts against the caller's run quota and holds one
of its few concurrent-run slots (paw_site.limits).
Every way a call can fail ends in ``RunError``, whose ``code`` and ``status``
the web view and the API both turn into an answer, and whose message is
written for the person who asked.
"""

import asyncio
import os
import time
from contextlib import nullcontext

from asgiref.sync import sync_to_async
from billiard.exceptions import WorkerLostError
from celery import states
from celery.exceptions import TimeoutError as ResultTimeout
from celery.utils import uuid
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from paw_site import limits
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
# How often a waiting run looks for its answer: first often (a warm run on a
# small program takes tens of ms), then less, up to the longest interval.
POLL_FIRST_SECONDS = 0.005
POLL_MAX_SECONDS = 0.02
# With a pushed answer, the store is still read this often, in case a message is lost.
PUSHED_POLL_SECONDS = 0.5
# A result stored in a file is looked for this often (a stat, in the event loop).
WATCH_SECONDS = 0.002


class RunError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUSES[code]


def _check(program, input_text, max_tokens, temperature):
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


def _send(program, input_text, max_tokens, temperature, task_id=None):
    # A task id given beforehand: the id whose result channel the caller listens on.
    options = {"task_id": task_id} if task_id else {}
    try:
        return tasks.run_program.apply_async(
            (program.pk, input_text, max_tokens, temperature),
            expires=settings.RUNTIME_WAIT_SECONDS,
            **options,
        )
    except BrokerError as exc:
        raise RunError("unavailable", "Programs cannot run right now; try again later.") from exc


def _busy():
    return RunError(
        "busy",
        f"No runtime worker answered within {settings.RUNTIME_WAIT_SECONDS} s: they are busy "
        "or down. Try again in a moment.",
    )


def _outcome(pending, state, answer) -> RunResult:
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


def program_run(
    *, program, input_text, max_tokens=DEFAULT_MAX_TOKENS, temperature=0.0, caller=None
) -> RunResult:
    """Run `program` on `input_text` in a runtime worker and wait for the answer
    (this thread waits: for scripts and sync callers; views await
    `program_run_async`). Finding the program (and who may run it) is the caller's job."""
    _check(program, input_text, max_tokens, temperature)
    if caller is not None:
        limits.hit("infer", caller)
    with limits.concurrent("run", caller) if caller is not None else nullcontext():
        pending = _send(program, input_text, max_tokens, temperature)
        try:
            answer = pending.get(
                timeout=settings.RUNTIME_WAIT_SECONDS, interval=POLL_FIRST_SECONDS, propagate=False
            )
        except ResultTimeout as exc:
            raise _busy() from exc
        return _outcome(pending, pending.state, answer)


def _poll(pending):
    """(state, result) once the task is done, else None. One read of the result
    store (a file, or a Redis GET)."""
    meta = pending.backend.get_task_meta(pending.id)
    if meta["status"] in states.READY_STATES:
        return meta["status"], meta["result"]
    return None


class _Polled:
    """Waiting on a result store that is only read: a growing interval between reads."""

    def __init__(self):
        self.interval = POLL_FIRST_SECONDS

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        pass

    async def wait(self):
        await asyncio.sleep(self.interval)
        self.interval = min(self.interval * 1.5, POLL_MAX_SECONDS)


class _Pushed:
    """Waiting on the Redis result store's message: Celery's Redis backend publishes
    each result on its key's channel as it stores it. Subscribed before the task is
    sent, so the message cannot come first; the store is still read every
    PUSHED_POLL_SECONDS in case a message is lost (a reconnect)."""

    def __init__(self, url, channel):
        import redis.asyncio

        self._client = redis.asyncio.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channel = channel

    async def __aenter__(self):
        from redis.exceptions import RedisError

        try:
            await self._pubsub.subscribe(self._channel)
        except RedisError as exc:
            await self._client.aclose()
            raise RunError(
                "unavailable", "Programs cannot run right now; try again later."
            ) from exc
        return self

    async def __aexit__(self, *exc):
        await self._pubsub.aclose()
        await self._client.aclose()

    async def wait(self):
        await self._pubsub.get_message(timeout=PUSHED_POLL_SECONDS)


class _Watched(_Polled):
    """Waiting on the embedded default's file result store (paw_site.broker): the
    result's file appears whole, at a known path, so looking for it is one stat;
    it is read once it is there, or every PUSHED_POLL_SECONDS anyway."""

    def __init__(self, path):
        self._path = path

    async def wait(self):
        deadline = time.monotonic() + PUSHED_POLL_SECONDS
        while not os.path.exists(self._path) and time.monotonic() < deadline:
            await asyncio.sleep(WATCH_SECONDS)


def _result_backend():
    return tasks.run_program.backend


def _waiter(task_id):
    backend = _result_backend()
    url = settings.CELERY_RESULT_BACKEND
    if url.startswith(("redis://", "rediss://")):
        return _Pushed(url, backend.get_key_for_task(task_id).decode())
    if hasattr(backend, "result_path"):
        return _Watched(backend.result_path(task_id))
    return _Polled()


async def program_run_async(
    *, program, input_text, max_tokens=DEFAULT_MAX_TOKENS, temperature=0.0, caller=None
) -> RunResult:
    """`program_run` for async views: the wait for the worker's answer holds no
    thread (an awaited Redis message, or an `asyncio.sleep` loop over the result
    store). `program` is already loaded (its fields are read, no query is made)."""
    _check(program, input_text, max_tokens, temperature)
    if caller is not None:
        await sync_to_async(limits.hit, thread_sensitive=False)("infer", caller)
    slot = limits.concurrent("run", caller) if caller is not None else nullcontext()
    await sync_to_async(slot.__enter__, thread_sensitive=False)()
    try:
        task_id = uuid()
        async with _waiter(task_id) as waiter:
            pending = await sync_to_async(_send, thread_sensitive=False)(
                program, input_text, max_tokens, temperature, task_id
            )
            deadline = time.monotonic() + settings.RUNTIME_WAIT_SECONDS
            poll = sync_to_async(_poll, thread_sensitive=False)
            while True:
                await waiter.wait()
                done = await poll(pending)
                if done is not None:
                    state, answer = done
                    return await sync_to_async(_outcome, thread_sensitive=False)(
                        pending, state, answer
                    )
                if time.monotonic() > deadline:
                    raise _busy()
    finally:
        await sync_to_async(slot.__exit__, thread_sensitive=False)(None, None, None)


def case_check_on_commit(*, case):
    """Check `case` with the program once the transaction that added it commits."""
    transaction.on_commit(lambda: tasks.check_case.delay(case.pk))
