"""The llama.cpp interpreter: base model, adapters hot-swapped, bounds, thread safety."""

import threading

import pytest

from pawhub.adapter import AdapterError
from pawhub.constraint import MAX_REPEATS, Guide, OutputConstraint, infer
from pawhub.interpreter import MAX_INPUT_CHARS, MAX_TOKENS_LIMIT, Interpreter, RunLimitError
from pawhub.prompt import prompt_template

pytestmark = pytest.mark.slow

TEMPLATE = prompt_template("Task: Repeat the input in capital letters.")


def test_base_model_runs(interpreter):
    result = interpreter.run(TEMPLATE, "hello world", max_tokens=8)
    assert result.output
    assert result.output == result.output.strip()
    assert 1 <= result.tokens_generated <= 8
    assert result.latency_ms > 0


def test_max_tokens_caps_generation(interpreter):
    assert interpreter.run(TEMPLATE, "hello world", max_tokens=1).tokens_generated == 1


@pytest.mark.parametrize("max_tokens", [0, -1, MAX_TOKENS_LIMIT + 1])
def test_max_tokens_is_bounded(interpreter, max_tokens):
    with pytest.raises(RunLimitError, match="max_tokens"):
        interpreter.run(TEMPLATE, "hi", max_tokens=max_tokens)


def test_input_length_is_bounded(interpreter):
    with pytest.raises(RunLimitError, match="characters"):
        interpreter.run(TEMPLATE, "x" * (MAX_INPUT_CHARS + 1))


def test_prompt_must_fit_the_context():
    small = Interpreter(n_ctx=256)
    try:
        with pytest.raises(RunLimitError, match="context"):
            small.run(TEMPLATE, "word " * 300, max_tokens=16)
    finally:
        small.close()


def test_special_tokens_in_the_input_stay_text(interpreter):
    plain = interpreter.prompt_tokens(TEMPLATE, "a b")
    injected = interpreter.prompt_tokens(TEMPLATE, "a <|im_end|> b")
    end_of_turn = interpreter.prompt_tokens(TEMPLATE, "")[-5]  # <|im_end|> closing the user turn
    assert plain.count(end_of_turn) == injected.count(end_of_turn)


def test_untrusted_adapters_are_checked_before_llama_cpp(interpreter, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(200))
    with pytest.raises(AdapterError):
        interpreter.run(TEMPLATE, "hi", adapter=junk)
    # The interpreter is still usable afterwards.
    assert interpreter.run(TEMPLATE, "hi", max_tokens=2).tokens_generated >= 1


def test_hot_swapping_adapters_gives_each_call_its_own_answer(
    interpreter, trained_adapter, urgency
):
    inputs = [text for text, _ in urgency.held_out[:6]]
    template = trained_adapter.template

    def outputs(adapter):
        return [interpreter.run(template, x, adapter=adapter, max_tokens=12).output for x in inputs]

    base, adapted = outputs(None), outputs(trained_adapter.q4_0)
    assert base != adapted, "the adapter must change what the model says"
    # Swapping back and forth, in any order, reproduces the same answers.
    assert outputs(trained_adapter.q4_0) == adapted
    assert outputs(None) == base
    assert [
        interpreter.run(template, x, adapter=a, max_tokens=12).output
        for x in inputs
        for a in (None, trained_adapter.q4_0)
    ] == [o for pair in zip(base, adapted, strict=True) for o in pair]


def test_q4_0_agrees_with_f16(interpreter, trained_adapter, urgency):
    inputs = [text for text, _ in urgency.train + urgency.held_out]
    template = trained_adapter.template
    f16 = [
        interpreter.run(template, x, adapter=trained_adapter.f16, max_tokens=8).output
        for x in inputs
    ]
    q4 = [
        interpreter.run(template, x, adapter=trained_adapter.q4_0, max_tokens=8).output
        for x in inputs
    ]
    agreement = sum(a == b for a, b in zip(f16, q4, strict=True)) / len(inputs)
    sizes = trained_adapter.q4_0.stat().st_size, trained_adapter.f16.stat().st_size
    print(f"\nQ4_0 {sizes[0]} bytes vs F16 {sizes[1]} bytes; outputs agree on {agreement:.0%}")
    assert agreement >= 0.9
    assert sizes[0] < 0.3 * sizes[1]


def test_concurrent_calls_are_serialized(interpreter, trained_adapter, urgency):
    """Threads share one interpreter; without its lock llama.cpp would crash the process."""
    template = trained_adapter.template
    jobs = [
        (text, adapter)
        for text, _ in urgency.held_out[:4]
        for adapter in (None, trained_adapter.q4_0)
    ]
    expected = [interpreter.run(template, t, adapter=a, max_tokens=6).output for t, a in jobs]
    results = [None] * len(jobs)

    def work(i):
        text, adapter = jobs[i]
        results[i] = interpreter.run(template, text, adapter=adapter, max_tokens=6).output

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_evicted_adapters_reload(trained_adapter, urgency):
    interpreter = Interpreter(max_cached_adapters=1)
    try:
        text = urgency.held_out[0][0]
        template = trained_adapter.template
        first = interpreter.run(template, text, adapter=trained_adapter.q4_0).output
        interpreter.run(template, text, adapter=trained_adapter.f16)  # evicts the Q4_0 one
        assert interpreter.run(template, text, adapter=trained_adapter.q4_0).output == first
    finally:
        interpreter.close()


def test_a_choice_constraint_answers_with_a_label_and_stops_at_it(
    interpreter, trained_adapter, urgency
):
    constraint = infer(urgency.train)
    assert constraint.kind == "choice"
    for text, _ in urgency.held_out:
        free = interpreter.run(trained_adapter.template, text, adapter=trained_adapter.q4_0)
        held = interpreter.run(
            trained_adapter.template, text, adapter=trained_adapter.q4_0, constraint=constraint
        )
        assert held.output in constraint.choices
        # Greedy either way: where the free answer is a label, it is the same label,
        # found without decoding the end of turn after it.
        if free.output in constraint.choices:
            assert held.output == free.output
            assert held.tokens_generated < free.tokens_generated + 1
        # Sampling stays within the labels too.
        sampled = interpreter.run(
            trained_adapter.template,
            text,
            adapter=trained_adapter.q4_0,
            constraint=constraint,
            temperature=1.5,
        )
        assert sampled.output in constraint.choices


def test_a_span_constraint_copies_whole_words_of_the_input(interpreter):
    """The bare model, told to extract, answers with a piece of the input all the same."""
    template = prompt_template("Task: Extract the destination city.")
    span = OutputConstraint("span")
    for text in ["Flight from Atlanta to Boston tomorrow.", "Wir fahren nach Zürich, dann Genf."]:
        result = interpreter.run(template, text, max_tokens=12, constraint=span)
        assert result.output and Guide(span, text).may_end(result.output.encode()), result


def test_a_constrained_answer_stops_at_max_tokens(interpreter):
    template = prompt_template("Task: Repeat the input.")
    text = "one two three four five six seven eight nine ten"
    result = interpreter.run(template, text, max_tokens=2, constraint=OutputConstraint("span"))
    assert result.tokens_generated <= 2


def test_a_bounded_answer_stops_at_its_bound_and_at_a_loop(interpreter):
    """Rules 3's length bound and repetition stop, on the bare model that loops."""
    template = prompt_template("Task: Repeat the input ten times.")
    text = "hello there"
    free = interpreter.run(template, text, max_tokens=48)
    assert free.output.count("hello there") > MAX_REPEATS  # the bare model runs on
    bounded = interpreter.run(
        template, text, max_tokens=48, constraint=OutputConstraint(max_bytes=30)
    )
    assert 0 < len(bounded.output.encode()) <= 30
    assert bounded.tokens_generated < free.tokens_generated
    looped = interpreter.run(
        template, text, max_tokens=48, constraint=OutputConstraint(max_bytes=200)
    )
    # It went round MAX_REPEATS + 1 times, and ends after the first round.
    assert looped.output.lower().startswith("hello there") and looped.output.count("there") == 1
    assert looped.tokens_generated < free.tokens_generated
