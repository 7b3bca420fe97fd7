"""The interpreter's prefix cache: same answers as without it, less work per call,
bounded memory; and the per-call bounds (timeout, temperature)."""

import itertools

import llama_cpp
import pytest

from pawhub.calls import RunLimitError, RunTimeout
from pawhub.interpreter import Interpreter, PrefixCache
from pawhub.prompt import split
from tests.runtime.conftest import INPUTS

MAX_TOKENS = 6


def answers(interpreter, calls):
    return [
        (r.output, r.tokens_generated)
        for r in (
            interpreter.run(template, text, adapter=adapter, max_tokens=MAX_TOKENS)
            for template, adapter, text in calls
        )
    ]


@pytest.mark.slow  # ~40 s on 2 quiet cores: most calls evaluate the whole prompt
def test_outputs_with_and_without_the_cache_are_identical(reference, adapters, templates):
    # Every input under every (program, adapter) pair, in an order that switches
    # adapter and head on every call, then again in another order.
    programs = list(itertools.product(templates, [*adapters, None]))
    calls = [(t, a, x) for x in INPUTS for t, a in programs]
    expected = dict(zip(calls, answers(reference, calls), strict=True))
    again = [(t, a, x) for t, a in reversed(programs) for x in INPUTS]
    cached = Interpreter()
    try:
        assert answers(cached, calls + again) == [expected[c] for c in calls + again]
        # Each (head, adapter) was computed once, then restored or kept.
        assert cached.prefix_cache.misses == len(cached.prefix_cache) == len(programs)
    finally:
        cached.close()
    # The adapters matter, so a head computed under one is never valid for another.
    by_adapter = {
        adapter: tuple(out for (_, a, _), out in expected.items() if a == adapter)
        for adapter in [*adapters, None]
    }
    assert len(set(by_adapter.values())) == 3


def test_a_warm_call_evaluates_only_its_input(interpreter, adapters, templates):
    template, adapter, text = templates[0], adapters[0], "Nobody can log in right now"
    interpreter.run(template, text, adapter=adapter, max_tokens=1)
    head, tail = split(template)
    suffix = interpreter._tokenize(text, special=False) + interpreter._tokenize(tail, special=True)
    ctx = interpreter._llm.ctx
    for other in (templates[1], template):  # from another program's head and from its own
        interpreter.run(other, "hi", adapter=adapters[1], max_tokens=1)
        before = llama_cpp.llama_perf_context(ctx).n_p_eval
        interpreter.run(template, text, adapter=adapter, max_tokens=1)
        evaluated = llama_cpp.llama_perf_context(ctx).n_p_eval - before
        assert evaluated == len(suffix) < len(interpreter._tokenize(head, special=True))


def test_the_cache_is_bounded_by_bytes(reference, adapters, templates):
    small = Interpreter(prefix_cache_bytes=4 * 1024 * 1024)  # room for one or two heads
    try:
        calls = [(t, a, "Nobody can log in") for t in templates for a in adapters] * 2
        assert answers(small, calls) == answers(reference, calls[:4]) * 2
        assert len(small.prefix_cache) < 4
        assert 0 < small.prefix_cache.bytes <= small.prefix_cache.max_bytes
    finally:
        small.close()


def test_prefix_cache_evicts_least_recently_used_by_bytes():
    cache = PrefixCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # now b is the least recently used
    cache.put("c", b"1234")
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), cache.bytes) == (b"1234", b"1234", 8)
    cache.put("too big", b"x" * 11)
    assert cache.get("too big") is None and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 2)


def test_a_call_past_its_timeout_stops_and_the_next_one_is_right(
    interpreter, reference, adapters, templates
):
    long_input = INPUTS[-1] * 3
    with pytest.raises(RunTimeout, match="longer than"):
        interpreter.run(templates[0], long_input, adapter=adapters[0], timeout_s=0.001)
    calls = [(templates[0], adapters[0], x) for x in (long_input, INPUTS[0])]
    assert answers(interpreter, calls) == answers(reference, calls)


@pytest.mark.parametrize("temperature", [-0.1, 2.5])
def test_temperature_is_bounded(interpreter, templates, temperature):
    with pytest.raises(RunLimitError, match="temperature"):
        interpreter.run(templates[0], "hi", temperature=temperature)


def test_sampling_with_a_temperature_runs(interpreter, templates, adapters):
    result = interpreter.run(templates[0], "hi", adapter=adapters[0], temperature=0.8, max_tokens=4)
    assert 1 <= result.tokens_generated <= 4
