"""More training examples, derived from the spec's own ones.

A dozen examples teach a 135M-parameter model the examples rather than the
task: trained on them as they are, a date program answered "2025-09-30" (an
answer it was shown) for every new date in 2025, and a phone program gave back
a number it had seen. The compiler therefore also trains on rewrites of each
example that keep its meaning and change what could be memorized:

- **answer swap** (spans): when every answer is copied out of its input (the
  ``span`` output constraint), an example's answer is replaced, in the input and
  as the answer, by another example's answer. Each context is seen with several
  answers and each answer in several contexts, so what is learned is where to
  copy from, not what to say.
- **digit renewal**: digits the answer copies from the input -- the same digits
  in the same order (``(415) 867-2391`` -> ``415-867-2391``), or a number of
  the same value (``March 5, 2024`` -> ``2024-03-05``: the 5 and the 2024) --
  get fresh random digits in both. Digits the answer does not copy (the 03
  read off "March") stay as they are.

Label examples (the ``choice`` constraint) are never rewritten: a label says
something about its whole input. A rewrite only ever changes text the answer
copies, so it cannot change what a copying task's answer should be; a task
whose answer *selects* among the input's numbers (the largest, say) is the
case it can get wrong, and its held-out score shows it. Deterministic for a
seed.
"""

import random
import re

from pawhub.constraint import CHOICE, SPAN, Guide, OutputConstraint, infer

_DIGIT_RUN = re.compile(r"[0-9]+")
# A window of copied digits shorter than this is too likely to be a coincidence.
_MIN_WINDOW_DIGITS = 4


def derive(examples: list[tuple[str, str]], *, variants: int, seed: int) -> list[tuple[str, str]]:
    """``examples`` followed by up to ``variants`` rewrites of each, in order.

    An example that no rewrite applies to gets none; duplicates are dropped.
    """
    examples = [(i, o.strip()) for i, o in examples]
    if variants <= 0 or not examples:
        return examples
    kind = infer(examples).kind
    if kind == CHOICE:
        return examples
    rng = random.Random(seed)
    answers = list(dict.fromkeys(o for _, o in examples)) if kind == SPAN else []
    pad_widths = padded_widths(examples)
    seen = set(examples)
    derived = []
    for input_text, output_text in examples:
        for _ in range(variants):
            new = _rewrite(input_text, output_text, answers, pad_widths, rng)
            if new is not None and new not in seen:
                seen.add(new)
                derived.append(new)
    return examples + derived


def _rewrite(input_text, output_text, answers, pad_widths, rng):
    new_input, new_output = input_text, output_text
    if answers:
        swapped = swap_answer(new_input, new_output, answers, rng)
        if swapped is not None:
            new_input, new_output = swapped
    renewed = renew_digits(new_input, new_output, rng, pad_widths)
    if renewed is not None:
        new_input, new_output = renewed
    if (new_input, new_output) == (input_text, output_text):
        return None
    return new_input, new_output


def swap_answer(input_text, answer, answers, rng):
    """The example with ``answer`` replaced by another of ``answers`` wherever it
    occurs as whole words; None when it does not occur so or no other answer fits."""
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)")
    if not pattern.search(input_text):
        return None
    candidates = [
        other
        for other in answers
        # The new answer must not be in the input already: it would be there twice.
        if other != answer and other not in input_text
    ]
    rng.shuffle(candidates)
    for other in candidates:
        new_input = pattern.sub(lambda _match, other=other: other, input_text)
        if Guide(OutputConstraint(SPAN), new_input).may_end(other.encode()):
            return new_input, other
    return None


def renew_digits(input_text, output_text, rng, pad_widths=frozenset()):
    """The example with the digits its answer copies from its input made new, or
    None when the answer copies none."""
    window = _copied_window(input_text, output_text)
    if window is not None:
        return _renew_window(input_text, output_text, window, rng)
    return _renew_numbers(input_text, output_text, rng, pad_widths)


def _digits(text):
    """(digit string, position in text of each digit)."""
    positions = [k for k, ch in enumerate(text) if ch.isdigit() and ch.isascii()]
    return "".join(text[k] for k in positions), positions


def _copied_window(input_text, output_text):
    """Where in the input's digits the answer's digits occur, in order, exactly once."""
    out_digits, _ = _digits(output_text)
    in_digits, _ = _digits(input_text)
    if len(out_digits) < _MIN_WINDOW_DIGITS:
        return None
    start = in_digits.find(out_digits)
    if start < 0 or in_digits.find(out_digits, start + 1) >= 0:
        return None
    return start


def _renew_window(input_text, output_text, start, rng):
    out_digits, out_positions = _digits(output_text)
    _, in_positions = _digits(input_text)
    fresh = _fresh_digits(out_digits, rng)
    new_input, new_output = list(input_text), list(output_text)
    for k, digit in enumerate(fresh):
        new_input[in_positions[start + k]] = digit
        new_output[out_positions[k]] = digit
    return "".join(new_input), "".join(new_output)


def _renew_numbers(input_text, output_text, rng, pad_widths=frozenset()):
    """Numbers of the answer whose value is one number of the input (and no other
    number of either) get a fresh value in both, the answer keeping its padding.

    Where the spec zero-pads numbers to a width (``pad_widths``: "5" -> "05"),
    a fresh value for that width may be shorter than the old one, so the
    padding is seen on more than the few examples that needed it.
    """
    in_runs = list(_DIGIT_RUN.finditer(input_text))
    out_runs = list(_DIGIT_RUN.finditer(output_text))
    in_values = [int(m.group()) for m in in_runs]
    out_values = [int(m.group()) for m in out_runs]
    input_edits, output_edits = [], []
    for out_run, value in zip(out_runs, out_values, strict=True):
        if out_values.count(value) != 1 or in_values.count(value) != 1:
            continue  # ambiguous: which number is the copy?
        in_run = in_runs[in_values.index(value)]
        width = len(out_run.group())
        digits = in_run.group()
        if width in pad_widths and len(digits) <= width:
            digits = "1" * rng.randint(1, width)  # only its length matters
        new_value = _fresh_digits(digits, rng)
        input_edits.append((in_run.span(), new_value))
        output_edits.append((out_run.span(), new_value.zfill(width)))
    if not output_edits:
        return None
    return _apply(input_text, input_edits), _apply(output_text, output_edits)


def padded_widths(examples) -> frozenset[int]:
    """The widths the examples' answers zero-pad copied numbers to."""
    widths = set()
    for input_text, output_text in examples:
        in_values = [int(m.group()) for m in _DIGIT_RUN.finditer(input_text)]
        for out_run in _DIGIT_RUN.finditer(output_text):
            digits = out_run.group()
            padded = len(digits) > 1 and digits.startswith("0") and int(digits) > 0
            if padded and in_values.count(int(digits)) == 1:
                widths.add(len(digits))
    return frozenset(widths)


def _fresh_digits(digits: str, rng) -> str:
    """As many random digits; ones that did not start with 0 do not now."""
    fresh = [str(rng.randrange(10)) for _ in digits]
    if digits[0] != "0":
        fresh[0] = str(rng.randrange(1, 10))
    return "".join(fresh)


def _apply(text, edits):
    for (start, end), replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text
