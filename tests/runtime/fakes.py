"""A stand-in for the runtime queue, for tests of the site's side of a call."""

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeoutError as ResultTimeout

from runtime import tasks


class FakePending:
    """What `run_program.apply_async` returns: a result that is ready (or never)."""

    def __init__(self, state="SUCCESS", result=None, *, never=False):
        self.state, self.result, self.never = state, result, never
        self.forgotten = False
        self.id = "fake-task-id"
        self.backend = self  # what the async wait polls: get_task_meta(id)

    def get_task_meta(self, task_id):
        if self.never:
            return {"status": "PENDING", "result": None}
        return {"status": self.state, "result": self.result}

    def get(self, timeout=None, propagate=True, interval=0.5):
        if self.never:
            raise ResultTimeout("The operation timed out.")
        return self.result

    def forget(self):
        self.forgotten = True


class FakeQueue:
    """Answers every call with `answer(program_id, input, max_tokens, temperature)`."""

    def __init__(self, monkeypatch):
        self.sent = []
        self.answer = lambda program_id, text, max_tokens, temperature: FakePending(
            result={"output": f"echo: {text}", "tokens_generated": 3, "latency_ms": 42.4}
        )
        monkeypatch.setattr(tasks.run_program, "apply_async", self.apply_async)

    def apply_async(self, args, expires=None, **options):
        self.sent.append({"args": args, "expires": expires, **options})
        return self.answer(*args)

    def reply(self, pending):
        self.answer = lambda *args: pending


WORKER_LOST = FakePending("FAILURE", WorkerLostError("Worker exited prematurely: signal 9"))
