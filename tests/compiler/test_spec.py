"""merge_spec / parse_spec: the one spec format, and free text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.spec import (
    SPEC_MAX_CHARS,
    SpecError,
    merge_spec,
    normalize_spec,
    parse_spec,
    validate_spec,
)

# Text a person would type in one field: printable, no line breaks.
line = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)
# Multi-line example values: lines joined by newlines.
value = st.lists(line, min_size=1, max_size=3).map("\n".join)


def is_plain_description_line(text):
    parsed = parse_spec(text)
    return not parsed.examples and parsed.task == normalize_spec(text) and not parsed.hints


description = (
    st.lists(line, min_size=1, max_size=3)
    .map("\n".join)
    .filter(lambda d: is_plain_description_line(d) and d.strip() not in ("Examples:", "Hints:"))
)
hint = line.filter(lambda h: h.strip())


@settings(max_examples=300, deadline=None)
@given(
    description,
    st.lists(st.tuples(value, value), min_size=0, max_size=6),
    st.lists(hint, max_size=4),
)
def test_merge_then_parse_round_trips(desc, examples, hints):
    parsed = parse_spec(merge_spec(desc, examples, hints))
    assert parsed.task == normalize_spec(desc)
    assert parsed.examples == [(x.strip(), y.strip()) for x, y in examples]
    assert parsed.hints == [" ".join(h.split()) for h in hints]


@settings(max_examples=200, deadline=None)
@given(description, st.lists(st.tuples(value, value), max_size=4), st.lists(hint, max_size=3))
def test_merge_is_a_fixed_point_of_its_own_parse(desc, examples, hints):
    spec = merge_spec(desc, examples, hints)
    again = parse_spec(spec)
    assert merge_spec(again.task, again.examples, again.hints) == spec


def test_the_documented_format():
    spec = merge_spec(
        "Classify a support message by urgency.",
        [("The server is down!", "urgent"), ("Where is the invoice?\nThanks", "normal")],
        ["Answer with one word"],
    )
    assert spec == (
        "Classify a support message by urgency.\n\n"
        "Examples:\n"
        "Input: The server is down!\n"
        "Output: urgent\n\n"
        "Input: Where is the invoice?\n"
        "  Thanks\n"
        "Output: normal\n\n"
        "Hints:\n"
        "- Answer with one word"
    )


def test_free_text_with_arrows_and_labels():
    parsed = parse_spec(
        "Turn dates into ISO format.\n"
        "March 3, 2024 -> 2024-03-03\n"
        "1 Jan 1999 → 1999-01-01\n"
        "input: 12/25/2020\n"
        "output: 2020-12-25\n"
    )
    assert parsed.task == "Turn dates into ISO format."
    assert parsed.examples == [
        ("March 3, 2024", "2024-03-03"),
        ("1 Jan 1999", "1999-01-01"),
        ("12/25/2020", "2020-12-25"),
    ]


def test_empty_and_half_filled_rows_are_skipped_when_merging():
    rows = [("", ""), ("a", "b"), ("c", " "), ("", "d")]
    assert parse_spec(merge_spec("Task here.", rows)).examples == [("a", "b")]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("short", "too short"),
        ("x" * (SPEC_MAX_CHARS + 1), "limit is 16000"),
        ("Classify messages by urgency, please.", "at least 2 examples"),
        ("Input: a\nOutput: b\nInput: c\nOutput: d", "Describe the task"),
    ],
)
def test_malformed_specs_get_a_clear_error(spec, message):
    with pytest.raises(SpecError, match=message):
        validate_spec(spec)


def test_a_good_spec_validates():
    parsed = validate_spec("Say the opposite word.\nhot -> cold\nup -> down\n")
    assert parsed.examples == [("hot", "cold"), ("up", "down")]
