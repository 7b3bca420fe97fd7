"""One spec string (the product decision: the compile API takes ONE spec).

The web form's structured fields are merged into one documented format by
`merge_spec`, and `parse_spec` recovers task, examples and hints from that
format and from reasonable free text. Both the form and the API validate
through `validate_spec`.

The format::

    <description, any number of lines>

    Examples:
    Input: <input>
    Output: <output>

    Input: <a multi-line input
      continues on lines indented by two spaces>
    Output: <output>

    Hints:
    - <hint>

Free text is understood too: `Input:`/`Output:` pairs anywhere, and
`x -> y` (or `x => y`, `x → y`) lines.
"""

import re
from dataclasses import dataclass, field

SPEC_MIN_CHARS = 10
SPEC_MAX_CHARS = 16000
MAX_EXAMPLES = 64
MIN_EXAMPLES = 2
MAX_HINTS = 20

EXAMPLES_HEADER = "Examples:"
HINTS_HEADER = "Hints:"
CONTINUATION = "  "
_ARROW = re.compile(r"^(?P<x>.+?)\s+(?:->|=>|→)\s+(?P<y>.+)$")
_LABEL = re.compile(r"^(?P<label>input|output)\s*:\s?(?P<rest>.*)$", re.IGNORECASE)


class SpecError(ValueError):
    """A spec that cannot be compiled; the message is meant for the author."""


@dataclass
class ParsedSpec:
    task: str
    examples: list[tuple[str, str]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def normalize_spec(spec: str) -> str:
    """The form a spec is identified by: unified newlines, no trailing spaces."""
    lines = spec.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _one_value(label: str, value: str) -> list[str]:
    # Blank lines inside a value are dropped: a blank line separates examples.
    first, *rest = [line.rstrip() for line in value.strip().split("\n") if line.strip()]
    return [f"{label}: {first}", *(CONTINUATION + line for line in rest)]


def merge_spec(description: str, examples=(), hints=()) -> str:
    """Build the one spec string from the compile form's structured fields."""
    parts = [normalize_spec(description)]
    # A row needs both sides; the form reports half-filled rows beside them.
    rows = [(x.strip(), y.strip()) for x, y in examples if x.strip() and y.strip()]
    if rows:
        lines = [EXAMPLES_HEADER]
        for i, (x, y) in enumerate(rows):
            if i:
                lines.append("")
            lines += _one_value("Input", x) + _one_value("Output", y)
        parts.append("\n".join(lines))
    hint_lines = [" ".join(h.split()) for h in hints if h.strip()]
    if hint_lines:
        parts.append("\n".join([HINTS_HEADER, *(f"- {h}" for h in hint_lines)]))
    return normalize_spec("\n\n".join(p for p in parts if p))


def split_arrow(line: str) -> tuple[str, str] | None:
    """(input, output) of an `input -> output` line; None for any other line."""
    match = _ARROW.match(line.strip())
    return (match["x"], match["y"]) if match else None


def parse_spec(spec: str) -> ParsedSpec:
    """Recover task, examples and hints from a merged spec or free text."""
    task_lines: list[str] = []
    examples: list[tuple[str, str]] = []
    hints: list[str] = []
    pending_input: list[str] | None = None  # lines of an Input: awaiting its Output:
    current: list[str] | None = None  # the value that continuation lines extend
    section = "task"

    for raw in normalize_spec(spec).split("\n"):
        if raw.startswith(CONTINUATION) and current is not None:
            current.append(raw[len(CONTINUATION) :])
            continue
        line = raw.strip()
        current = None
        if line == EXAMPLES_HEADER:
            section = "examples"
            continue
        if line == HINTS_HEADER:
            section = "hints"
            continue
        if section == "hints" and line.startswith("- "):
            hints.append(line[2:].strip())
            continue
        label = _LABEL.match(line)
        if label and label["label"].lower() == "input":
            pending_input = current = [label["rest"]]
            continue
        if label and pending_input is not None:  # an Output: answering the pending Input:
            output = [label["rest"]]
            examples.append((pending_input, output))
            pending_input = None
            current = output
            continue
        arrow = _ARROW.match(line)
        if arrow and section != "hints":
            examples.append(([arrow["x"]], [arrow["y"]]))
            continue
        if section == "task" and pending_input is None:
            task_lines.append(raw)

    pairs = [("\n".join(x).strip(), "\n".join(y).strip()) for x, y in examples]
    return ParsedSpec(
        task=normalize_spec("\n".join(task_lines)),
        examples=[(x, y) for x, y in pairs if x and y],
        hints=hints,
    )


def validate_spec(spec: str) -> ParsedSpec:
    """The one validation both the compile form and the API use."""
    spec = normalize_spec(spec)
    if len(spec) < SPEC_MIN_CHARS:
        raise SpecError(f"The spec is too short: write at least {SPEC_MIN_CHARS} characters.")
    if len(spec) > SPEC_MAX_CHARS:
        raise SpecError(f"The spec is {len(spec)} characters long; the limit is {SPEC_MAX_CHARS}.")
    parsed = parse_spec(spec)
    if not parsed.task:
        raise SpecError("Describe the task in a sentence or two before the examples.")
    if len(parsed.examples) < MIN_EXAMPLES:
        raise SpecError(
            f"The spec needs at least {MIN_EXAMPLES} examples, as 'Input: …' / 'Output: …' "
            f"pairs or 'input -> output' lines; found {len(parsed.examples)}."
        )
    if len(parsed.examples) > MAX_EXAMPLES:
        raise SpecError(f"At most {MAX_EXAMPLES} examples; found {len(parsed.examples)}.")
    return parsed
