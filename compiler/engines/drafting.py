"""Drafting a pseudo-program's task line with the engine's own model.

The model is shown the deterministic pseudo-program (the author's task and a
few examples) and asked for one line of instruction. Only that line is taken
from the model: the pseudo-program around it (``Task:`` line, examples
section, format) stays the deterministic one, so a draft can never break the
prompt format. A draft that is not one clean line of instruction is refused,
and the caller falls back to the deterministic pseudo-program.
"""

import re

from compiler.pseudo import MAX_TASK_CHARS
from runtime.prompt import INPUT_PLACEHOLDER, chat_template

DRAFT_MAX_TOKENS = 48
MIN_DRAFT_WORDS = 3
INSTRUCTION = (
    "Here is a task with examples. Write one short instruction that tells an assistant "
    "what to do with an input to produce the output. Reply with the instruction only.\n\n"
)
# Lines a draft may start with that are not part of the instruction itself.
_LABEL = re.compile(r"^(instruction|task|answer)\s*:\s*", re.IGNORECASE)
# Text that belongs to the prompt format or to an example, never to a task line.
_FORBIDDEN = re.compile(
    r"\[/?(PSEUDO_PROGRAM|END_PSEUDO_PROGRAM|INPUT|END_INPUT)\]|<\||\{INPUT_PLACEHOLDER\}"
    r"|\b(input|output)\s*:",
    re.IGNORECASE,
)


def drafting_template() -> str:
    """The prompt that asks for a task line; its input is the deterministic pseudo-program."""
    return chat_template(INSTRUCTION + INPUT_PLACEHOLDER)


def drafted_task_line(text: str, *, truncated: bool) -> str | None:
    """The task line in a model's draft, or None when the draft is unusable."""
    if truncated:
        return None  # cut off mid-sentence
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    line = _LABEL.sub("", lines[0]).strip().strip("\"'*` ").strip()
    line = re.sub(r"\s+", " ", line)
    if len(line.split()) < MIN_DRAFT_WORDS or len(line) > MAX_TASK_CHARS:
        return None
    if _FORBIDDEN.search(line):
        return None
    return line
