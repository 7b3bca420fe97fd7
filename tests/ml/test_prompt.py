import pytest

from compiler.pseudo import MAX_EXAMPLES, pseudo_program
from pawhub.prompt import INPUT_PLACEHOLDER, PromptError, prompt_template, render, split

EXAMPLES = [
    ("The server is down", "high"),
    ("Server down again", "high"),
    ("Add dark mode?", "low"),
    ("Exports are slow", "medium"),
    ("Typo on the pricing page", "low"),
]


def test_template_is_the_chatml_user_turn_with_one_placeholder():
    template = prompt_template("Task: echo the input")
    assert template.count(INPUT_PLACEHOLDER) == 1
    assert template.startswith("<|im_start|>system\n")
    assert (
        "<|im_start|>user\n[PSEUDO_PROGRAM]\nTask: echo the input\n[END_PSEUDO_PROGRAM]" in template
    )
    # Format 2 (the default): the user turn ends right after the input.
    assert template.endswith("[INPUT]\n{INPUT_PLACEHOLDER}<|im_end|>\n<|im_start|>assistant\n")


def test_format_1_closes_the_input_with_a_tag():
    # Programs compiled by the snapshots before format 2 keep running with their own format.
    template = prompt_template("Task: echo the input", 1)
    assert template.endswith(
        "[INPUT]\n{INPUT_PLACEHOLDER}\n[END_INPUT]<|im_end|>\n<|im_start|>assistant\n"
    )
    assert template.replace("\n[END_INPUT]", "") == prompt_template("Task: echo the input", 2)


def test_an_unknown_format_is_refused():
    with pytest.raises(PromptError, match="unknown prompt format 3"):
        prompt_template("Task: echo the input", 3)


def test_render_puts_the_input_in_place_once():
    template = prompt_template("Task: echo the input")
    text = render(template, "hello {INPUT_PLACEHOLDER}")
    assert "[INPUT]\nhello {INPUT_PLACEHOLDER}<|im_end|>" in text
    assert text.count(INPUT_PLACEHOLDER) == 1  # the input's own text is not re-expanded


def test_pseudo_program_may_not_carry_a_placeholder():
    with pytest.raises(PromptError):
        prompt_template(f"Task: {INPUT_PLACEHOLDER}")


@pytest.mark.parametrize(
    "template", ["no placeholder", "{INPUT_PLACEHOLDER} twice {INPUT_PLACEHOLDER}"]
)
def test_split_needs_exactly_one_placeholder(template):
    with pytest.raises(PromptError):
        split(template)


def test_pseudo_program_format():
    text = pseudo_program("  Classify the\n urgency.  ", EXAMPLES)
    assert text.splitlines() == [
        "Task: Classify the urgency.",
        "",
        "Examples:",
        "Input: The server is down",
        "Output: high",
        "Input: Add dark mode?",
        "Output: low",
        "Input: Exports are slow",
        "Output: medium",
    ]


def test_pseudo_program_is_deterministic_and_short():
    assert pseudo_program("Task", EXAMPLES) == pseudo_program("Task", list(EXAMPLES))
    assert pseudo_program("Task", EXAMPLES * 10).count("Input:") == MAX_EXAMPLES


def test_pseudo_program_skips_overlong_examples_and_needs_a_task():
    long_example = ("x" * 1000, "y")
    assert "xxx" not in pseudo_program("Task", [long_example, ("short", "ok")])
    assert pseudo_program("Task", []) == "Task: Task"
    with pytest.raises(ValueError):
        pseudo_program("   ", EXAMPLES)
