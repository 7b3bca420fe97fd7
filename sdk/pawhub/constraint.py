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
  boundaries (every example's answer is one); with ``start="space"``, it
  also starts where a space-separated piece of the input does, after a space
  and any punctuation (``(ann@x.io)``: ``ann@x.io``, never ``x.io``);
- ``shape``: the answer is digits laid out like one of ``shapes``
  (``###-###-####``: ``#`` is a digit, anything else itself), when every
  answer is digits and punctuation in a few layouts, each used at least twice
  on average;
- ``free``: anything (every other spec, and programs from before constraints).

``infer`` has two sets of rules, and a compiler snapshot pins the one it uses:
1 knows choices and spans; 2 adds shapes, and spans that start after a space
when every example's does.

Pure Python on bytes (UTF-8), no llama.cpp: a token may end inside a
multi-byte character, and a byte prefix is still a prefix.
"""

import dataclasses

FREE = "free"
CHOICE = "choice"
SPAN = "span"
SHAPE = "shape"
KINDS = (FREE, CHOICE, SPAN, SHAPE)
MAX_CHOICES = 32
MAX_CHOICE_CHARS = 200
MAX_SHAPES = 4
DIGIT = "#"  # in a shape: any digit
_DIGIT_BYTE = ord(DIGIT)
SPAN_STARTS = ("word", "space")  # where a span may start: any word, or after a space
RULES = (1, 2)


class ConstraintError(ValueError):
    """A constraint description that is not one this module writes."""


@dataclasses.dataclass(frozen=True)
class OutputConstraint:
    kind: str = FREE
    choices: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    start: str = "word"  # spans only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConstraintError(f"output kind must be one of {', '.join(KINDS)}")
        if (self.kind == CHOICE) != bool(self.choices):
            raise ConstraintError("choices go with the choice kind, and only with it")
        if (self.kind == SHAPE) != bool(self.shapes):
            raise ConstraintError("shapes go with the shape kind, and only with it")
        if self.start not in SPAN_STARTS or (self.start != "word" and self.kind != SPAN):
            raise ConstraintError(f"start is one of {', '.join(SPAN_STARTS)}, for spans only")
        if len(self.shapes) > MAX_SHAPES or len(set(self.shapes)) != len(self.shapes):
            raise ConstraintError(f"at most {MAX_SHAPES} distinct shapes")
        for shape in self.shapes:
            if not isinstance(shape, str) or not 0 < len(shape) <= MAX_CHOICE_CHARS:
                raise ConstraintError(f"each shape is a string of 1 to {MAX_CHOICE_CHARS} chars")
            if shape != _shape_of(shape.replace(DIGIT, "0")):
                raise ConstraintError(
                    f"a shape is {DIGIT!r} for each digit and ASCII punctuation or spaces "
                    "between, with no spaces at its ends"
                )
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
        if self.kind == SHAPE:
            return {"kind": SHAPE, "shapes": list(self.shapes)}
        out = {"kind": self.kind}
        if self.start != "word":
            out["start"] = self.start
        return out

    @classmethod
    def from_dict(cls, raw) -> "OutputConstraint":
        """The constraint a ``to_dict`` wrote; ``ConstraintError`` for anything else
        (bundles come from strangers). An empty dict is ``free``."""
        if not isinstance(raw, dict):
            raise ConstraintError("an output constraint is a JSON object")
        if not raw:
            return cls()
        unknown = sorted(set(raw) - {"kind", "choices", "shapes", "start"})
        if unknown:
            raise ConstraintError(f"unknown keys {', '.join(unknown)}")
        choices = raw.get("choices", [])
        shapes = raw.get("shapes", [])
        if not isinstance(choices, list) or not isinstance(shapes, list):
            raise ConstraintError("choices and shapes must be lists")
        return cls(
            kind=raw.get("kind"),
            choices=tuple(choices),
            shapes=tuple(shapes),
            start=raw.get("start", "word"),
        )

    def describe(self) -> str:
        """One line for people: what the program's answers are held to."""
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == SPAN:
            after = ", starting after a space" if self.start == "space" else ""
            return "a span copied from the input" + after
        if self.kind == SHAPE:
            return "digits laid out as " + " or ".join(self.shapes)
        return "free text"


def infer(examples: list[tuple[str, str]], *, rules: int = 1) -> OutputConstraint:
    """The tightest constraint every example's answer fits, by ``rules`` (``RULES``)."""
    if rules not in RULES:
        raise ValueError(f"rules is one of {RULES}")
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
        if rules >= 2 and all(
            _occurs(answer.encode(), text.encode(), whole=True, start="space")
            for (text, _), answer in zip(examples, answers, strict=True)
        ):
            return OutputConstraint(SPAN, start="space")
        return OutputConstraint(SPAN)
    if rules >= 2 and answers:
        layouts = list(dict.fromkeys(_shape_of(answer) for answer in answers))
        if None not in layouts and len(layouts) <= MAX_SHAPES and 2 * len(layouts) <= len(answers):
            return OutputConstraint(SHAPE, shapes=tuple(layouts))
    return OutputConstraint()


def _shape_of(answer: str) -> str | None:
    """``answer`` with each digit as ``#``, if it is digits with ASCII punctuation or
    spaces between (and not only those); None otherwise."""
    if not answer or answer != answer.strip() or len(answer) > MAX_CHOICE_CHARS:
        return None
    shape = []
    for ch in answer:
        if "0" <= ch <= "9":
            shape.append(DIGIT)
        elif ch.isascii() and not ch.isalnum() and ch != DIGIT and ch.isprintable():
            shape.append(ch)
        else:
            return None
    return "".join(shape) if DIGIT in shape else None


def _fits(text: bytes, shape: bytes, *, whole: bool) -> bool:
    """Whether ``text`` is (``whole``) or begins (otherwise) an answer of ``shape``."""
    if len(text) > len(shape) or (whole and len(text) != len(shape)):
        return False
    return all(
        (48 <= byte <= 57) if want == _DIGIT_BYTE else byte == want
        for byte, want in zip(text, shape, strict=False)
    )


class Guide:
    """Which answers are still valid, for one call's input, as decoding goes on.

    ``answer`` is the bytes decoded so far, leading whitespace included (a
    first token often starts with a space); the answer is compared stripped.
    """

    def __init__(self, constraint: OutputConstraint, input_text: str):
        self.constraint = constraint
        self._source = input_text.encode()
        self._choices = [choice.encode() for choice in constraint.choices]
        self._shapes = [shape.encode() for shape in constraint.shapes]

    def allows(self, answer: bytes) -> bool:
        """Whether ``answer`` can still grow into a valid answer."""
        text = answer.lstrip()
        if not text:
            return True
        if self.constraint.kind == CHOICE:
            return any(choice.startswith(text) for choice in self._choices)
        if self.constraint.kind == SPAN:
            return _occurs(text, self._source, whole=False, start=self.constraint.start)
        if self.constraint.kind == SHAPE:
            return any(_fits(text, shape, whole=False) for shape in self._shapes)
        return True

    def may_end(self, answer: bytes) -> bool:
        """Whether ``answer`` is a whole valid answer."""
        text = answer.strip()
        if not text:
            return False
        if self.constraint.kind == CHOICE:
            return text in self._choices
        if self.constraint.kind == SPAN:
            return _occurs(text, self._source, whole=True, start=self.constraint.start)
        if self.constraint.kind == SHAPE:
            return any(_fits(text, shape, whole=True) for shape in self._shapes)
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


def _occurs(text: bytes, source: bytes, *, whole: bool, start: str = "word") -> bool:
    """Whether ``text`` occurs in ``source`` starting at a word boundary (with
    ``start="space"``: the start of a space-separated piece, after any punctuation)
    and, if ``whole``, ending at one."""
    at = source.find(text)
    while at >= 0:
        end = at + len(text)
        starts_word = _starts_piece(source, at) if start == "space" else _starts_word(source, at)
        ends_word = end == len(source) or not _is_word_byte(source[end])
        if starts_word and (ends_word or not whole):
            return True
        at = source.find(text, at + 1)
    return False


def _starts_word(source: bytes, at: int) -> bool:
    return at == 0 or not _is_word_byte(source[at - 1])


def _starts_piece(source: bytes, at: int) -> bool:
    """Whether ``at`` starts a word that is the first of its space-separated piece:
    only punctuation, if anything, lies between it and the space (or start) before."""
    if not _starts_word(source, at):
        return False
    before = at
    while before > 0 and not _is_word_byte(source[before - 1]):
        if chr(source[before - 1]).isspace():
            return True
        before -= 1
    return before == 0
