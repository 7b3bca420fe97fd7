"""Output constraints on vLLM, and the runtime's multi-LoRA batch runner on it.

The vLLM engine decodes a constrained request within its constraint by the same
rules as the llama.cpp runtime (compiler.engines.guided), so on one adapter the
two engines give the same answers wherever their logits rank tokens alike; and
the runtime's batch runner sends calls of several programs to it as one
generate. Kept short: vLLM on CPU with LoRA decodes a few tokens a second."""

import pytest

from compiler.engines import Request
from compiler.pseudo import pseudo_program
from pawhub.constraint import Guide, OutputConstraint
from pawhub.prompt import prompt_template

LABELS = OutputConstraint("choice", ("urgent", "normal"))
TICKETS = [
    ("The server is down and nobody can work", "urgent"),
    ("Please update my mailing address", "normal"),
    ("Payment system rejects every card", "urgent"),
    ("How do I change my avatar?", "normal"),
]
CITY = prompt_template(
    pseudo_program("Extract the city from the sentence.", [("I flew to Paris in May.", "Paris")]),
    2,
)
PHONE = prompt_template(
    pseudo_program("Write the phone number in the text.", [("Call 555 123 4567", "555-123-4567")]),
    2,
)


@pytest.fixture(scope="module")
def urgency(train_adapter):
    pseudo = pseudo_program("Label the support ticket as urgent or normal.", TICKETS[:2])
    return prompt_template(pseudo, 2), train_adapter("urgency", TICKETS, pseudo)


@pytest.fixture(scope="module")
def llama_cpp():
    from pawhub.interpreter import Interpreter

    interpreter = Interpreter()
    yield interpreter
    interpreter.close()


def test_constrained_answers_follow_the_guide_as_on_llama_cpp(engine, urgency, llama_cpp, figures):
    import time

    template, adapter = urgency
    requests = [
        Request(template, "Checkout crashes for every customer", adapter, 8, LABELS),
        Request(template, "Can I get last month's invoice?", adapter, 8, LABELS),
        Request(template, "The database was wiped overnight", None, 8, LABELS),
        Request(CITY, "We moved from Berlin to Lisbon.", None, 12, OutputConstraint("span")),
        Request(
            PHONE,
            "Ring me at 212 555 0199 tomorrow",
            None,
            16,
            OutputConstraint("shape", shapes=("###-###-####",)),
        ),
        # A free request in the same batch is left alone.
        Request(template, "Checkout crashes for every customer", adapter, 6),
    ]
    started = time.perf_counter()
    answers = engine.generate(requests)
    figures["6 mixed guided/free requests"] = time.perf_counter() - started

    for request, answer in zip(requests[:5], answers[:5], strict=True):
        # Whole valid answers, never cut short: labels settle in a token or two.
        assert Guide(request.constraint, request.input).may_end(answer.text.encode()), answer
        assert not answer.truncated
    (free,) = engine.generate([requests[5]])
    assert answers[5].text == free.text  # a guided neighbour changes nothing

    same = [
        answer.text
        == llama_cpp.run(
            r.template, r.input, adapter=r.adapter, max_tokens=r.max_tokens, constraint=r.constraint
        ).output
        for r, answer in zip(requests, answers, strict=True)
    ]
    # The labels and the span decide in their first tokens: the same on both engines.
    # (Copied digits on the bare base model may differ: fp32 here, Q4 there.)
    assert same[:4] == [True] * 4, same
    figures["agreeing with llama.cpp (of 6)"] = sum(same)


def test_the_batch_runner_answers_several_programs_in_one_generate(engine, urgency, llama_cpp):
    from runtime.batching import BatchRunner

    template, adapter = urgency
    runner = BatchRunner(engine, start=False)
    calls = [
        (template, "Everything is on fire", adapter, LABELS),
        (CITY, "She grew up in Oslo and lives in Rome.", None, OutputConstraint("span")),
        (template, "What are your opening hours?", adapter, LABELS),
        (template, "What are your opening hours?", None, LABELS),
    ]
    futures = [runner.submit(t, x, adapter=a, max_tokens=10, constraint=c) for t, x, a, c in calls]
    runner.start()
    answers = [f.result(timeout=600) for f in futures]
    assert runner.batches == [len(calls)]  # one generate, a LoRA per program
    for (t, x, a, c), answer in zip(calls, answers, strict=True):
        assert answer.text == llama_cpp.run(t, x, adapter=a, max_tokens=10, constraint=c).output
    # Through the interpreter's interface, as the runtime's tasks call it.
    result = runner.run(template, "Nobody can log in", adapter=adapter, constraint=LABELS)
    assert result.output in LABELS.choices and result.tokens_generated >= 1
