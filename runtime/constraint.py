"""What a program's answer may be, read off its spec's examples.

Examples often say more than the instruction does. When every answer is one of
a few labels, the program is a classifier; when every answer is a piece of its
input copied out whole words, it is an extractor. The compiler records that as
the program's output constraint (``infer``) and the interpreter decodes within
it: at each step it takes the most likely token that keeps the answer valid
(``Guide``). A 135M-parameter model that means "Florence" but spells
"Florenzo", or answers "B Boston", is held to the text it was given, and a
label answer stops as soon as only one label fits.

Kinds:

- ``choice``: the answer is one of ``choices`` (the examples' distinct answers,
  when each is used at least twice on average);
- ``span``: the answer is a span of the input that starts and ends at word
  boundaries (every example's answer is one);
- ``free``: anything (every other spec, and programs from before constraints).

Pure Python on bytes (UTF-8), no llama.cpp: a token may end inside a
multi-byte character, and a byte prefix is still a prefix.
"""

import dataclasses

FREE = "free"
CHOICE = "choice"
SPAN = "span"
KINDS = (FREE, CHOICE, SPAN)
MAX_CHOICES = 32
MAX_CHOICE_CHARS = 200


class ConstraintError(ValueError):
    """A constraint description that is not one this module writes."""


@dataclasses.dataclass(frozen=True)
class OutputConstraint:
    kind: str = FREE
    choices: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConstraintError(f"output kind must be one of {', '.join(KINDS)}")
        if (self.kind == CHOICE) != bool(self.choices):
            raise ConstraintError("choices go with the choice kind, and only with it")
        if len(self.choices) > MAX_CHOICES:
            raise ConstraintError(f"at most {MAX_CHOICES} choices")
        for choice in self.choices:
            if not isinstance(choice, str) or not 0 < len(choice) <= MAX_CHOICE_CHARS:
                raise ConstraintError(f"each choice is a string of 1 to {MAX_CHOICE_CHARS} chars")
            if choice != choice.strip():
                raise ConstraintError("choices are stripped")
        if len(set(self.choices)) != len(self.choices):
            raise ConstraintError("choices must be distinct")

    @property
    def is_free(self) -> bool:
        return self.kind == FREE

    def to_dict(self) -> dict:
        if self.kind == CHOICE:
            return {"kind": CHOICE, "choices": list(self.choices)}
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, raw) -> "OutputConstraint":
        """The constraint a ``to_dict`` wrote; ``ConstraintError`` for anything else
        (bundles come from strangers). An empty dict is ``free``."""
        if not isinstance(raw, dict):
            raise ConstraintError("an output constraint is a JSON object")
        if not raw:
            return cls()
        unknown = sorted(set(raw) - {"kind", "choices"})
        if unknown:
            raise ConstraintError(f"unknown keys {', '.join(unknown)}")
        choices = raw.get("choices", [])
        if not isinstance(choices, list):
            raise ConstraintError("choices must be a list")
        return cls(kind=raw.get("kind"), choices=tuple(choices))

    def describe(self) -> str:
        """One line for people: what the program's answers are held to."""
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == SPAN:
            return "a span copied from the input"
        return "free text"


def infer(examples: list[tuple[str, str]]) -> OutputConstraint:
    """The tightest constraint every example's answer fits."""
    answers = [output.strip() for _, output in examples]
    distinct = list(dict.fromkeys(answers))  # in the order the spec uses them
    if (
        2 <= len(distinct) <= MAX_CHOICES
        and 2 * len(distinct) <= len(answers)
        and all(0 < len(answer) <= MAX_CHOICE_CHARS for answer in distinct)
    ):
        return OutputConstraint(CHOICE, tuple(distinct))
    if answers and all(
        answer and _occurs(answer.encode(), text.encode(), whole=True)
        for (text, _), answer in zip(examples, answers, strict=True)
    ):
        return OutputConstraint(SPAN)
    return OutputConstraint()


class Guide:
    """Which answers are still valid, for one call's input, as decoding goes on.

    ``answer`` is the bytes decoded so far, leading whitespace included (a
    first token often starts with a space); the answer is compared stripped.
    """

    def __init__(self, constraint: OutputConstraint, input_text: str):
        self.constraint = constraint
        self._source = input_text.encode()
        self._choices = [choice.encode() for choice in constraint.choices]

    def allows(self, answer: bytes) -> bool:
        """Whether ``answer`` can still grow into a valid answer."""
        text = answer.lstrip()
        if not text:
            return True
        if self.constraint.kind == CHOICE:
            return any(choice.startswith(text) for choice in self._choices)
        if self.constraint.kind == SPAN:
            return _occurs(text, self._source, whole=False)
        return True

    def may_end(self, answer: bytes) -> bool:
        """Whether ``answer`` is a whole valid answer."""
        text = answer.strip()
        if not text:
            return False
        if self.constraint.kind == CHOICE:
            return text in self._choices
        if self.constraint.kind == SPAN:
            return _occurs(text, self._source, whole=True)
        return True

    def settled(self, answer: bytes) -> str | None:
        """The answer, once only one is left that ``answer`` can grow into (choices
        only): decoding stops there instead of spending tokens on the rest of it."""
        if self.constraint.kind != CHOICE:
            return None
        text = answer.lstrip()
        if not text:
            return None
        left = [choice for choice in self._choices if choice.startswith(text)]
        return left[0].decode() if len(left) == 1 else None


def _is_word_byte(byte: int) -> bool:
    # Bytes of non-ASCII characters count as word characters: a span never splits one.
    return byte >= 0x80 or chr(byte).isalnum()


def _occurs(text: bytes, source: bytes, *, whole: bool) -> bool:
    """Whether ``text`` occurs in ``source`` starting at a word boundary (and, if
    ``whole``, ending at one)."""
    start = source.find(text)
    while start >= 0:
        end = start + len(text)
        starts_word = start == 0 or not _is_word_byte(source[start - 1])
        ends_word = end == len(source) or not _is_word_byte(source[end])
        if starts_word and (ends_word or not whole):
            return True
        start = source.find(text, start + 1)
    return False
