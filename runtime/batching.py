"""Runtime calls batched into one multi-LoRA ``generate`` (GPU hosts, vLLM).

With ``PAW_RUNTIME_ENGINE=vllm`` a runtime worker runs with a thread pool
(``make run-gpu``): each Celery task thread hands its call to the process's one
``BatchRunner`` and waits. A single batching thread takes every call waiting at
that moment (calls of different programs alike) and decodes them in one
``Engine.generate`` -- one ``LoRARequest`` per program, each within its own
output constraint -- while the calls that arrive meanwhile queue up for the
next one. Under load the batches grow on their own; an idle worker answers a
lone call at once.

``BatchRunner.run`` has the interpreter's signature and results
(``pawhub.interpreter.Interpreter.run``), so the runtime's tasks do not care
which engine answers. llama.cpp stays the default (``PAW_RUNTIME_ENGINE``).
"""

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from pawhub.calls import DEFAULT_MAX_TOKENS, RunResult, RunTimeout, check_request
from pawhub.constraint import OutputConstraint

log = logging.getLogger(__name__)
# A batch larger than this waits for the next generate (vLLM schedules within it anyway).
MAX_BATCH = 256


class BatchRunner:
    """Calls from many threads, answered in batches by ``engine.generate``."""

    def __init__(self, engine, *, max_batch: int = MAX_BATCH, start: bool = True):
        self.engine = engine
        self.max_batch = max_batch
        self.batches: list[int] = []  # sizes of the batches run so far (for benchmarks)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="paw-batcher", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start answering (``start=False`` lets a benchmark queue a whole batch first)."""
        self._thread.start()

    def run(
        self,
        template: str,
        input_text: str,
        *,
        adapter: Path | str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        timeout_s: float | None = None,
        constraint: OutputConstraint | None = None,
    ) -> RunResult:
        """Decode one call in the next batch and wait for its answer (``RunTimeout``
        past ``timeout_s``: the batch still decodes it, the answer is dropped)."""
        started = time.perf_counter()
        future = self.submit(
            template,
            input_text,
            adapter=adapter,
            max_tokens=max_tokens,
            temperature=temperature,
            constraint=constraint,
        )
        try:
            completion = future.result(timeout=timeout_s)
        except FutureTimeout as exc:
            raise RunTimeout(f"the program ran longer than {timeout_s:g} s") from exc
        return RunResult(
            output=completion.text,
            tokens_generated=completion.tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def submit(
        self,
        template: str,
        input_text: str,
        *,
        adapter: Path | str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        constraint: OutputConstraint | None = None,
    ) -> Future:
        """Queue one call for the next batch; its ``compiler.engines.Completion`` comes
        in the future."""
        from compiler.engines import Request

        check_request(input_text, max_tokens=max_tokens, temperature=temperature)
        request = Request(
            template,
            input_text,
            Path(adapter) if adapter is not None else None,
            max_tokens,
            constraint or OutputConstraint(),
            temperature=temperature,
        )
        future: Future = Future()
        self._queue.put((request, future))
        return future

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]  # wait for a call
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.batches.append(len(batch))
            try:
                completions = self.engine.generate([request for request, _ in batch])
            except Exception:
                if len(batch) == 1:
                    self._fail(batch)
                    continue
                # One bad call (a broken adapter) must not fail the others: each on its own.
                log.warning("a batch of %d calls failed; running them one by one", len(batch))
                for one in batch:
                    try:
                        (completion,) = self.engine.generate([one[0]])
                    except Exception:
                        self._fail([one])
                    else:
                        one[1].set_result(completion)
                continue
            for (_, future), completion in zip(batch, completions, strict=True):
                future.set_result(completion)

    @staticmethod
    def _fail(batch) -> None:
        import sys

        exc = sys.exc_info()[1]
        log.warning("a call failed: %r", exc)
        for _, future in batch:
            future.set_exception(exc)


_shared: BatchRunner | None = None
_shared_lock = threading.Lock()


def shared_runner(model_cache: Path | str) -> BatchRunner:
    """The process's one batch runner on its one vLLM engine (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            from compiler.engines.vllm import shared_engine

            _shared = BatchRunner(shared_engine(model_cache))
        return _shared
