"""pawhub.guided: a program's output constraint as llama.cpp logits processors.

The official PAW SDK decodes a local program with its own loop over llama-cpp-python
(`Llama.sample(temp=0, logits_processor=...)` one token at a time, stopping at the
end-of-sequence token). The same loop here, given `Guided`'s processors, must give
exactly the interpreter's constrained answers. (tests/sdk runs the SDK itself.)
"""

import pytest

from pawhub.constraint import Guide, OutputConstraint
from pawhub.guided import Guided, Vocabulary
from pawhub.model import load_llama
from pawhub.prompt import prompt_template

pytestmark = pytest.mark.slow

CASES = [
    (
        "Task: Extract the destination city.",
        OutputConstraint("span"),
        ["Flight from Atlanta to Boston tomorrow.", "Wir fahren nach Zürich, dann Genf."],
    ),
    (
        "Task: Is the sentence positive or negative? Answer positive or negative.",
        OutputConstraint("choice", choices=("positive", "negative", "mixed")),
        ["I loved every minute of it.", "The food was cold and the staff rude."],
    ),
    (
        "Task: Write the phone number in the message as ###-###-####.",
        OutputConstraint("shape", shapes=("###-###-####",)),
        ["Call me at 212 555 0199 after six.", "My number: (415) 555-2671."],
    ),
]


@pytest.fixture(scope="module")
def llm(interpreter):
    """A second llama.cpp model on the interpreter's file, driven as the SDK drives it."""
    llm = load_llama(interpreter.model_path, n_ctx=2048, verbose=False)
    yield llm
    llm.close()


def sdk_style(llm, prompt, processors, max_tokens=48):
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(max_tokens):
        token = llm.sample(temp=0, logits_processor=processors)
        if token == llm.token_eos():
            break
        out.append(token)
        llm.eval([token])
    return llm.detokenize(out).decode("utf-8", errors="replace").strip()


@pytest.mark.parametrize(("task", "constraint", "inputs"), CASES, ids=["span", "choice", "shape"])
def test_the_sdks_loop_with_guided_processors_gives_the_interpreters_answers(
    interpreter, llm, task, constraint, inputs
):
    template = prompt_template(task)
    guided = Guided(constraint, Vocabulary(llm))
    for text in inputs:
        expected = interpreter.run(template, text, max_tokens=48, constraint=constraint).output
        prompt = interpreter.prompt_tokens(template, text)
        answer = sdk_style(llm, prompt, guided(text))
        assert answer == expected, (text, answer, expected)
        assert Guide(constraint, text).may_end(answer.encode())
        # Without them, the same loop is the SDK's free decoding: the constraint is what
        # made the difference wherever the free answer is not a valid one.
        free = sdk_style(llm, prompt, None)
        if not Guide(constraint, text).may_end(free.encode()):
            assert free != answer


def test_a_free_program_needs_no_processor():
    assert Guided(OutputConstraint())("anything") is None
