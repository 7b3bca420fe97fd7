"""The runtime's batch runner (runtime.batching), on the real llama.cpp engine: calls
from many threads are answered in batches, each as the interpreter alone answers it.
The vLLM engine under it, in one multi-LoRA generate, is in tests/vllm."""

import threading
import time

import pytest

from compiler.engines.llamacpp import LlamaCppEngine
from pawhub.calls import DEFAULT_MAX_TOKENS, RunLimitError, RunTimeout
from pawhub.constraint import OutputConstraint
from runtime.batching import BatchRunner

pytestmark = pytest.mark.slow

LABELS = OutputConstraint("choice", ("urgent", "normal", "low"))


class HeldEngine(LlamaCppEngine):
    """The real engine, whose first batch waits until ``waiting`` more calls queue:
    the load that makes batches grow, without timing luck."""

    def __init__(self, runner_box, waiting):
        self.runner_box, self.waiting, self.sizes = runner_box, waiting, []

    def generate(self, requests):
        if not self.sizes:
            deadline = time.monotonic() + 60
            while self.runner_box[0]._queue.qsize() < self.waiting:
                assert time.monotonic() < deadline, "the calls never queued"
                time.sleep(0.01)
        self.sizes.append(len(requests))
        return super().generate(requests)


def run_all(runner, calls):
    results = [None] * len(calls)

    def call(i, kwargs):
        try:
            results[i] = runner.run(**kwargs)
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads[:1]:
        t.start()
    time.sleep(0.2)  # the first call is taken alone; the others queue behind it
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    return results


def test_calls_of_several_programs_are_batched_and_answered_as_alone(
    adapters, templates, reference
):
    box = [None]
    engine = HeldEngine(box, waiting=5)
    runner = box[0] = BatchRunner(engine)
    urgency, capitals = templates
    calls = [
        {"template": urgency, "input_text": "Nobody can log in", "adapter": adapters[0]},
        {"template": urgency, "input_text": "Nobody can log in", "adapter": adapters[1]},
        {"template": capitals, "input_text": "hello there", "adapter": adapters[0]},
        {"template": urgency, "input_text": "Invoice copy?", "adapter": None},
        {
            "template": urgency,
            "input_text": "Invoice copy?",
            "adapter": adapters[1],
            "constraint": LABELS,
        },
        {"template": capitals, "input_text": "ok", "adapter": None, "max_tokens": 4},
    ]
    results = run_all(runner, calls)
    assert engine.sizes == [1, 5] and runner.batches == [1, 5]
    for call, result in zip(calls, results, strict=True):
        alone = reference.run(
            call["template"],
            call["input_text"],
            adapter=call["adapter"],
            max_tokens=call.get("max_tokens", DEFAULT_MAX_TOKENS),
            constraint=call.get("constraint"),
        )
        assert (result.output, result.tokens_generated) == (alone.output, alone.tokens_generated)
    assert results[4].output in LABELS.choices


def test_a_broken_call_fails_alone(adapters, templates, tmp_path):
    box = [None]
    engine = HeldEngine(box, waiting=2)
    runner = box[0] = BatchRunner(engine)
    urgency, _ = templates
    missing = tmp_path / "gone.gguf"
    calls = [
        {"template": urgency, "input_text": "first", "adapter": adapters[0], "max_tokens": 4},
        {"template": urgency, "input_text": "second", "adapter": missing, "max_tokens": 4},
        {"template": urgency, "input_text": "third", "adapter": adapters[1], "max_tokens": 4},
    ]
    first, broken, third = run_all(runner, calls)
    assert isinstance(broken, OSError)
    assert first.output and third.output  # answered, one by one after the failed batch
    assert engine.sizes[:2] == [1, 2]


def test_bounds_and_the_deadline_hold(adapters, templates):
    box = [None]
    engine = HeldEngine(box, waiting=1)
    runner = box[0] = BatchRunner(engine)
    urgency, _ = templates
    with pytest.raises(RunLimitError):
        runner.run(urgency, "x", max_tokens=0)
    # The engine holds its first batch until a second call queues: this one waits past it.
    with pytest.raises(RunTimeout):
        runner.run(urgency, "slow", adapter=adapters[0], max_tokens=4, timeout_s=0.5)
    # The batch still runs once another call comes, and answers it.
    assert runner.run(urgency, "next", adapter=adapters[0], max_tokens=4).output
