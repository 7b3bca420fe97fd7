"""The deterministic pseudo-program: a task line plus a few of the spec's examples.

It becomes the fixed part of every prompt the program sees, in training and at
inference, so it is kept short: each of its tokens is paid on every training
step and on every call.
"""

import re

MAX_EXAMPLES = 3
MAX_TASK_CHARS = 400
# Longer examples cost more prompt than they teach; the adapter sees them all anyway.
MAX_EXAMPLE_CHARS = 300


def pseudo_program(task: str, examples: list[tuple[str, str]]) -> str:
    """``Task: ...`` and up to ``MAX_EXAMPLES`` examples, chosen to show distinct outputs first."""
    lines = [f"Task: {task_line(task)}"]
    chosen = _choose_examples(examples)
    if chosen:
        lines += ["", "Examples:"]
        for input_text, output_text in chosen:
            lines += [f"Input: {input_text.strip()}", f"Output: {output_text.strip()}"]
    return "\n".join(lines)


def task_line(task: str) -> str:
    """The task as one line of at most ``MAX_TASK_CHARS``."""
    line = re.sub(r"\s+", " ", task).strip()[:MAX_TASK_CHARS].rstrip()
    if not line:
        raise ValueError("the task description is empty")
    return line


def _choose_examples(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """In spec order, one example per distinct output first, then the rest.

    For a classifier this shows as many labels as fit, which helps the base
    model more than three examples of the same label would.
    """
    short = [
        (i, o)
        for i, o in examples
        if i.strip() and len(i.strip()) + len(o.strip()) <= MAX_EXAMPLE_CHARS
    ]
    seen_outputs: set[str] = set()
    first_per_output, others = [], []
    for example in short:
        output = example[1].strip()
        if output in seen_outputs:
            others.append(example)
        else:
            seen_outputs.add(output)
            first_per_output.append(example)
    return (first_per_output + others)[:MAX_EXAMPLES]
