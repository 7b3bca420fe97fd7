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

``infer`` has three sets of rules, and a compiler snapshot pins the one it uses:
1 knows choices and spans; 2 adds shapes, and spans that start after a space
when every example's does; 3 (bundle version 5) adds

- ``fixed``: a span may also be one of a few fixed answers the examples give
  where the input holds none (``NONE``, ``N/A``, ``unknown``);
- ``words``: the answer is built from the input's words, reordered or recased
  (``john smith`` -> ``Smith, John``, a title -> its slug): each of its words
  is one of the input's (case-insensitively), with anything else between;
- ``max_bytes``: no answer is longer than the longest the examples show, with
  a margin, and an answer that goes round in a loop (a few words, or a piece
  of a word, said over and over) ends after its first round.

Rules 4 (bundle version 6) add ``copied`` to shapes: the digit groups of a
layout that every example with that layout copies from its input, as a number
(``Sep 30th, 2025`` -> ``2025-09-30``: the year and the day, not the month
read off "Sep"). Such a group must then be a number of the input, zero-padded
to the group's width, so a program cannot write ``03`` for "30"; a group with
no such number in the input is left free.

Pure Python on bytes (UTF-8), no llama.cpp: a token may end inside a
multi-byte character, and a byte prefix is still a prefix.
"""

import dataclasses
import re

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
WORDS = "words"
KINDS = (*KINDS, WORDS)
RULES = (1, 2, 3, 4)
# Rules 3: fixed answers beside spans (few, short, each at most this share of answers),
MAX_FIXED = 3
MAX_FIXED_CHARS = 20
MAX_FIXED_SHARE = 0.5
# the length bound (the longest example answer plus a half, at least this many
# bytes more), and how often a word or a short piece may repeat in a row.
MIN_LENGTH_MARGIN = 8
MAX_ANSWER_BYTES = 4096
MAX_REPEATS = 3
MAX_REPEAT_WORDS = 8
MAX_REPEAT_UNIT = 16
_EDGE_PUNCTUATION = b".,;:!?\"'()[]{}<>*-"


class ConstraintError(ValueError):
    """A constraint description that is not one this module writes."""


@dataclasses.dataclass(frozen=True)
class OutputConstraint:
    kind: str = FREE
    choices: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    start: str = "word"  # spans only
    fixed: tuple[str, ...] = ()  # spans only: whole answers allowed besides a span (rules 3)
    max_bytes: int = 0  # the longest answer, in UTF-8 bytes, stripped; 0: no bound (rules 3)
    # Shapes only, one entry per shape: its digit groups (0-based) copied from the input
    # as numbers (rules 4).
    copied: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConstraintError(f"output kind must be one of {', '.join(KINDS)}")
        if self.fixed and self.kind != SPAN:
            raise ConstraintError("fixed answers go with the span kind only")
        if len(self.fixed) > MAX_FIXED or len(set(self.fixed)) != len(self.fixed):
            raise ConstraintError(f"at most {MAX_FIXED} distinct fixed answers")
        for answer in self.fixed:
            if not isinstance(answer, str) or not 0 < len(answer) <= MAX_FIXED_CHARS:
                raise ConstraintError(f"each fixed answer is 1 to {MAX_FIXED_CHARS} chars")
            if answer != answer.strip():
                raise ConstraintError("fixed answers are stripped")
        if (
            not isinstance(self.max_bytes, int)
            or isinstance(self.max_bytes, bool)
            or not 0 <= self.max_bytes <= MAX_ANSWER_BYTES
        ):
            raise ConstraintError(f"max_bytes is a whole number from 0 to {MAX_ANSWER_BYTES}")
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
        if self.copied:
            if len(self.copied) != len(self.shapes):
                raise ConstraintError("copied has one list of digit groups per shape")
            for shape, groups in zip(self.shapes, self.copied, strict=True):
                count = len(_groups(shape.encode()))
                if (
                    not isinstance(groups, tuple)
                    or not all(isinstance(g, int) and not isinstance(g, bool) for g in groups)
                    or list(groups) != sorted(set(groups))
                    or any(not 0 <= g < count for g in groups)
                ):
                    raise ConstraintError(
                        "copied lists each shape's digit groups by index, ascending, once each"
                    )
            if not any(self.copied):
                raise ConstraintError("copied names at least one digit group")
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
        """Anything goes: decoding needs no guide."""
        return self.kind == FREE and not self.max_bytes

    @property
    def needs_rules_4(self) -> bool:
        """Whether it uses what rules 4 added (and so needs bundle version 6)."""
        return bool(self.copied)

    @property
    def needs_rules_3(self) -> bool:
        """Whether it uses what rules 3 added (and so needs bundle version 5)."""
        return self.kind == WORDS or bool(self.fixed) or bool(self.max_bytes)

    def to_dict(self) -> dict:
        if self.kind == CHOICE:
            out = {"kind": CHOICE, "choices": list(self.choices)}
        elif self.kind == SHAPE:
            out = {"kind": SHAPE, "shapes": list(self.shapes)}
        else:
            out = {"kind": self.kind}
        if self.start != "word":
            out["start"] = self.start
        if self.fixed:
            out["fixed"] = list(self.fixed)
        if self.max_bytes:
            out["max_bytes"] = self.max_bytes
        if self.copied:
            out["copied"] = [list(groups) for groups in self.copied]
        return out

    @classmethod
    def from_dict(cls, raw) -> "OutputConstraint":
        """The constraint a ``to_dict`` wrote; ``ConstraintError`` for anything else
        (bundles come from strangers). An empty dict is ``free``."""
        if not isinstance(raw, dict):
            raise ConstraintError("an output constraint is a JSON object")
        if not raw:
            return cls()
        known = {"kind", "choices", "shapes", "start", "fixed", "max_bytes", "copied"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConstraintError(f"unknown keys {', '.join(unknown)}")
        choices = raw.get("choices", [])
        shapes = raw.get("shapes", [])
        fixed = raw.get("fixed", [])
        copied = raw.get("copied", [])
        if not all(isinstance(v, list) for v in (choices, shapes, fixed, copied, *copied)):
            raise ConstraintError("choices, shapes, fixed and copied must be lists")
        return cls(
            kind=raw.get("kind"),
            choices=tuple(choices),
            shapes=tuple(shapes),
            start=raw.get("start", "word"),
            fixed=tuple(fixed),
            max_bytes=raw.get("max_bytes", 0),
            copied=tuple(tuple(groups) for groups in copied),
        )

    def describe(self) -> str:
        """One line for people: what the program's answers are held to."""
        bound = f", at most {self.max_bytes} bytes" if self.max_bytes else ""
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == SPAN:
            after = ", starting after a space" if self.start == "space" else ""
            fixed = " or " + ", ".join(self.fixed) if self.fixed else ""
            return "a span copied from the input" + after + fixed + bound
        if self.kind == SHAPE:
            copies = ", numbers copied from the input" if self.copied else ""
            return "digits laid out as " + " or ".join(self.shapes) + copies + bound
        if self.kind == WORDS:
            return "the input's own words, in any order and case" + bound
        return "free text" + bound


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
    if rules >= 4:
        found = _infer_3(examples, answers)
        if found.kind == SHAPE:
            return dataclasses.replace(found, copied=_copied_groups(examples, found.shapes))
        return found
    if rules >= 3:
        return _infer_3(examples, answers)
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


def _infer_3(examples, answers) -> OutputConstraint:
    """Rules 3 past choices: rules 2's kinds, spans with fixed answers beside them,
    answers built from the input's words; every one with a length bound."""
    longest = max((len(answer.encode()) for answer in answers), default=0)
    bound = min(MAX_ANSWER_BYTES, longest + max(MIN_LENGTH_MARGIN, longest // 2))
    found = infer(examples, rules=2)
    if found.kind != FREE or not answers:
        return dataclasses.replace(found, max_bytes=bound)
    spans = [
        (text, answer)
        for (text, _), answer in zip(examples, answers, strict=True)
        if answer and _occurs(answer.encode(), text.encode(), whole=True)
    ]
    others = [
        answer
        for (text, _), answer in zip(examples, answers, strict=True)
        if (text, answer) not in spans
    ]
    fixed = tuple(dict.fromkeys(others))
    if (
        len(spans) >= 2
        and len(others) <= MAX_FIXED_SHARE * len(answers)
        and len(fixed) <= MAX_FIXED
        and all(0 < len(answer) <= MAX_FIXED_CHARS for answer in fixed)
    ):
        start = "word"
        if all(_occurs(a.encode(), t.encode(), whole=True, start="space") for t, a in spans):
            start = "space"
        return OutputConstraint(SPAN, start=start, fixed=fixed, max_bytes=bound)
    if all(
        _words_of(answer.encode()) and _words_of(answer.encode()) <= _words_of(text.encode())
        for (text, _), answer in zip(examples, answers, strict=True)
    ):
        return OutputConstraint(WORDS, max_bytes=bound)
    return OutputConstraint(max_bytes=bound)


def _copied_groups(examples, shapes) -> tuple[tuple[int, ...], ...]:
    """Per shape, the digit groups that every example with that layout copies from
    its input as a number; () when no shape has one."""
    copied = []
    for shape in shapes:
        # (the answer, the input's numbers) of each example with this layout
        laid_out = [
            (a.strip().encode(), _numbers(t.encode()))
            for t, a in examples
            if _shape_of(a.strip()) == shape
        ]
        if len(laid_out) < 2:
            copied.append(())
            continue
        copied.append(
            tuple(
                k
                for k, (start, end) in enumerate(_groups(shape.encode()))
                if all(_value(a[start:end]) in numbers for a, numbers in laid_out)
            )
        )
    return tuple(copied) if any(copied) else ()


def _groups(shape: bytes) -> list[tuple[int, int]]:
    """Where ``shape``'s digit groups (runs of ``#``) start and end."""
    return [m.span() for m in re.finditer(rb"#+", shape)]


def _numbers(text: bytes) -> set[bytes]:
    """The values of the runs of ASCII digits in ``text`` (see ``_value``)."""
    return {_value(run) for run in re.findall(rb"[0-9]+", text)}


def _value(digits: bytes) -> bytes:
    """A run of digits without its leading zeros: its value, with no int() of a
    stranger's input (whose length Python caps)."""
    return digits.lstrip(b"0") or b"0"


def _words_of(text: bytes) -> set[bytes]:
    """The words of ``text`` (runs of word bytes), lowercased (ASCII)."""
    return {word.lower() for word in _split_words(text)}


def _loop_end(text: bytes) -> int | None:
    """If ``text`` ends in a degenerate repetition -- a run of up to
    MAX_REPEAT_WORDS words (compared without case and edge punctuation), or a
    piece of one word, with a letter in it, said more than MAX_REPEATS times in a
    row -- where its first round ends; None otherwise."""
    spans = [(m.start(), m.end()) for m in re.finditer(rb"\S+", text)]
    words = [text[a:b].lower().strip(_EDGE_PUNCTUATION) for a, b in spans]
    times = MAX_REPEATS + 1
    for period in range(1, MAX_REPEAT_WORDS + 1):
        if len(words) < period * times:
            break
        cycle = words[-period:]
        if not any(_has_letter(word) for word in cycle):
            continue
        if all(
            words[len(words) - (k + 1) * period : len(words) - k * period] == cycle
            for k in range(1, times)
        ):
            return spans[len(words) - times * period + period - 1][1]
    if spans:
        start, end = spans[-1]
        word = text[start:end]
        for unit in range(2, MAX_REPEAT_UNIT + 1):
            if len(word) < unit * times:
                break
            piece = word[-unit:]
            if _has_letter(piece) and word.endswith(piece * times):
                return end - unit * (times - 1)
    return None


def _has_letter(text: bytes) -> bool:
    return any(byte >= 0x80 or chr(byte).isalpha() for byte in text)


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


def _padded(source: bytes, width: int) -> frozenset[bytes]:
    """The numbers of ``source`` written in ``width`` digits, zero-padded."""
    return frozenset(n.rjust(width, b"0") for n in _numbers(source) if len(n) <= width)


def _copies_fit(text: bytes, copies, *, whole: bool) -> bool:
    """Whether each copied digit group ``text`` has reached is (``whole``: each
    one is) one of its numbers, or so far the start of one."""
    for start, end, padded in copies:
        if start >= len(text):
            return not whole
        part = text[start:end]
        if len(part) == end - start:
            if part not in padded:
                return False
        elif not any(number.startswith(part) for number in padded):
            return False
    return True


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
        self._fixed = [answer.encode() for answer in constraint.fixed]
        self._words = _words_of(self._source) if constraint.kind == WORDS else set()
        # Per shape: (start, end, the numbers it may be) for each copied digit group.
        copied = constraint.copied or tuple(() for _ in self._shapes)
        self._copies = [
            [
                (start, end, padded)
                for k, (start, end) in enumerate(_groups(shape))
                if k in groups
                # A group with nothing to copy is left free: a guide never dead-ends.
                and (padded := _padded(self._source, end - start))
            ]
            for shape, groups in zip(self._shapes, copied, strict=True)
        ]

    def allows(self, answer: bytes) -> bool:
        """Whether ``answer`` can still grow into a valid answer."""
        text = answer.lstrip()
        if not text:
            return True
        bound = self.constraint.max_bytes
        # Trailing whitespace counts: else whitespace tokens could pad it forever.
        if bound and len(text) > bound:
            return False
        if self.constraint.kind == CHOICE:
            return any(choice.startswith(text) for choice in self._choices)
        if self.constraint.kind == SPAN:
            return _occurs(text, self._source, whole=False, start=self.constraint.start) or any(
                answer.startswith(text) for answer in self._fixed
            )
        if self.constraint.kind == SHAPE:
            return any(
                _fits(text, shape, whole=False) and _copies_fit(text, copies, whole=False)
                for shape, copies in zip(self._shapes, self._copies, strict=True)
            )
        if self.constraint.kind == WORDS:
            return self._from_words(text, whole=False)
        return True

    def may_end(self, answer: bytes) -> bool:
        """Whether ``answer`` is a whole valid answer."""
        text = answer.strip()
        if not text:
            return False
        if self.constraint.kind == CHOICE:
            return text in self._choices
        if self.constraint.kind == SPAN:
            return (
                _occurs(text, self._source, whole=True, start=self.constraint.start)
                or text in self._fixed
            )
        if self.constraint.kind == SHAPE:
            return any(
                _fits(text, shape, whole=True) and _copies_fit(text, copies, whole=True)
                for shape, copies in zip(self._shapes, self._copies, strict=True)
            )
        if self.constraint.kind == WORDS:
            return self._from_words(text, whole=True)
        return True

    def _from_words(self, text: bytes, *, whole: bool) -> bool:
        """Whether each word of ``text`` is one of the input's; unless ``whole``, the
        last may be the start of one."""
        words = [w.lower() for w in _split_words(text)]
        if not words:
            return not whole  # punctuation so far: a word may follow
        ends_in_word = _is_word_byte(text[-1])
        done, last = (words, None) if whole or not ends_in_word else (words[:-1], words[-1])
        if not all(word in self._words for word in done):
            return False
        return last is None or any(word.startswith(last) for word in self._words)

    def settled(self, answer: bytes) -> str | None:
        """The answer, once only one is left that ``answer`` can grow into (choices),
        or once it goes round in a loop (rules 3: cut after its first round):
        decoding stops there instead of spending tokens on the rest of it."""
        if self.constraint.max_bytes and self.constraint.kind != CHOICE:
            end = _loop_end(answer)
            if end is not None and self.may_end(answer[:end]):
                return answer[:end].decode("utf-8", errors="replace").strip()
        if self.constraint.kind != CHOICE:
            return None
        text = answer.lstrip()
        if not text:
            return None
        left = [choice for choice in self._choices if choice.startswith(text)]
        return left[0].decode() if len(left) == 1 else None


def _split_words(text: bytes) -> list[bytes]:
    words, word = [], bytearray()
    for byte in text:
        if _is_word_byte(byte):
            word.append(byte)
        elif word:
            words.append(bytes(word))
            word.clear()
    if word:
        words.append(bytes(word))
    return words


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
