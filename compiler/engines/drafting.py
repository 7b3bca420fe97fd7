"""Drafting a pseudo-program's task line with the engine's own model.

The model is asked to rewrite the author's task as one short instruction, and
only that line is taken from it: the pseudo-program around it (``Task:``
prefix, examples section, format) stays the deterministic one, so a draft can
never break the prompt format. A draft that is not one clean line of
instruction is refused, and the caller falls back to the deterministic
pseudo-program.

(Tried on SmolLM2-135M: shown the examples too, it mostly answered them instead
of describing the task; asked for the task alone, with the answer begun as
"Instruction:", it gives a usable line for about half of the specs tried.)
"""

import re

from compiler.pseudo import MAX_TASK_CHARS
from pawhub.prompt import INPUT_PLACEHOLDER, chat_template

DRAFT_MAX_TOKENS = 32
MIN_DRAFT_WORDS = 3
MAX_DRAFT_WORDS = 40
INSTRUCTION = "Rewrite this task as one short, clear instruction.\n\n"
ANSWER_START = "Instruction:"  # the assistant's answer begins with it; the model goes on
# Lines a draft may start with that are not part of the instruction itself.
_LABEL = re.compile(r"^(instruction|task|answer)\s*:\s*", re.IGNORECASE)
# Text that belongs to the prompt format or to an example, never to a task line.
_FORBIDDEN = re.compile(
    r"\[/?(PSEUDO_PROGRAM|END_PSEUDO_PROGRAM|INPUT|END_INPUT)\]|<\||\{INPUT_PLACEHOLDER\}"
    r"|\b(input|output)\s*:",
    re.IGNORECASE,
)


def drafting_template() -> str:
    """The prompt that asks for a task line; its input is the author's task."""
    return chat_template(INSTRUCTION + INPUT_PLACEHOLDER) + ANSWER_START


def drafted_task_line(
    text: str, *, truncated: bool, examples: list[tuple[str, str]] = ()
) -> str | None:
    """The task line in a model's draft, or None when the draft is unusable."""
    text = text.strip()
    if truncated and "\n" not in text:
        return None  # the first line itself was cut off
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    line = _LABEL.sub("", lines[0]).strip().strip("\"'*` ").strip()
    line = re.sub(r"\s+", " ", line)
    if not MIN_DRAFT_WORDS <= len(line.split()) <= MAX_DRAFT_WORDS or len(line) > MAX_TASK_CHARS:
        return None
    if _FORBIDDEN.search(line):
        return None
    # A line that quotes an example's input answers the example, it does not state the task.
    if any(len(x.strip()) >= 8 and x.strip().lower() in line.lower() for x, _ in examples):
        return None
    return line
