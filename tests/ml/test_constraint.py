"""Output constraints: read off a spec's examples, kept as JSON, enforced byte by byte."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.constraint import (
    CHOICE,
    FREE,
    SPAN,
    ConstraintError,
    Guide,
    OutputConstraint,
    infer,
)

URGENCY = [
    ("The site is down for everyone", "urgent"),
    ("How do I change my avatar?", "low"),
    ("Export cuts off a column", "normal"),
    ("Payments fail right now", "urgent"),
    ("Love the new look", "low"),
    ("My invoice shows the wrong VAT", "normal"),
]
DESTINATIONS = [
    ("Flight from Atlanta to Boston tomorrow.", "Boston"),
    ("We're driving down to San Diego.", "San Diego"),
    ("Train to Edinburgh from London.", "Edinburgh"),
]


def test_a_few_labels_used_again_and_again_make_a_choice():
    assert infer(URGENCY) == OutputConstraint(CHOICE, ("urgent", "low", "normal"))


def test_answers_copied_out_of_their_inputs_make_a_span():
    assert infer(DESTINATIONS) == OutputConstraint(SPAN)


@pytest.mark.parametrize(
    "examples",
    [
        [("2024/03/05", "2024-03-05"), ("5 March 2024", "2024-03-05")],  # rewritten, not copied
        [("hello", "HELLO"), ("bye", "BYE")],
        # Part of a word is not a span: "ship" out of "shipping" would be a guess.
        [("free shipping", "ship"), ("big deal", "deal")],
        [("a b", "yes"), ("c d", "no")],  # two labels seen once each: too few to be a set
        [("x", "same"), ("y", "same"), ("z", "same")],  # one label is no choice
    ],
)
def test_everything_else_is_free(examples):
    assert infer(examples) == OutputConstraint(FREE)


def test_labels_beat_spans_and_answers_are_stripped():
    examples = [("yes it is", " yes"), ("no way", "no "), ("yes sir", "yes"), ("no", "no")]
    assert infer(examples) == OutputConstraint(CHOICE, ("yes", "no"))


@pytest.mark.parametrize(
    "constraint",
    [OutputConstraint(), OutputConstraint(SPAN), OutputConstraint(CHOICE, ("a", "b c"))],
)
def test_json_round_trip(constraint):
    assert OutputConstraint.from_dict(constraint.to_dict()) == constraint


def test_an_empty_object_is_free():
    assert OutputConstraint.from_dict({}).is_free


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("span", "JSON object"),
        ({"kind": "regex"}, "kind must be one of"),
        ({"kind": CHOICE}, "choices go with"),
        ({"kind": SPAN, "choices": ["a"]}, "choices go with"),
        ({"kind": CHOICE, "choices": "ab"}, "must be a list"),
        ({"kind": CHOICE, "choices": [" a", "b"]}, "stripped"),
        ({"kind": CHOICE, "choices": ["", "b"]}, "1 to 200"),
        ({"kind": CHOICE, "choices": [None, "b"]}, "1 to 200"),
        ({"kind": CHOICE, "choices": ["a", "a"]}, "distinct"),
        ({"kind": CHOICE, "choices": [str(i) for i in range(33)]}, "at most 32"),
        ({"kind": FREE, "pattern": ".*"}, "unknown keys pattern"),
    ],
)
def test_malformed_constraints_are_refused(raw, message):
    with pytest.raises(ConstraintError, match=message):
        OutputConstraint.from_dict(raw)


def test_choice_guide():
    guide = Guide(OutputConstraint(CHOICE, ("urgent", "normal", "low")), "anything")
    assert guide.allows(b"") and guide.allows(b" ") and guide.allows(b" urg")
    assert not guide.allows(b"urgently") and not guide.allows(b"high")
    assert guide.may_end(b" low") and not guide.may_end(b"lo") and not guide.may_end(b"")
    # One label left: decoding can stop.
    assert guide.settled(b"u") == "urgent" and guide.settled(b"") is None


def test_choice_guide_waits_while_labels_share_a_start():
    guide = Guide(OutputConstraint(CHOICE, ("yes", "yes please")), "x")
    assert guide.settled(b"yes") is None
    assert guide.settled(b"yes ") == "yes please"


def test_span_guide_holds_to_whole_words_of_the_input():
    guide = Guide(OutputConstraint(SPAN), "Flight from Atlanta to Boston, then Rome.")
    assert guide.allows(b" Bos") and guide.allows(b"Boston, then")
    assert not guide.allows(b"oston")  # starts inside a word
    assert not guide.allows(b"Bostonian") and not guide.allows(b"Florenzo")
    assert guide.may_end(b"Boston") and guide.may_end(b"Rome")
    assert not guide.may_end(b"Bost")  # ends inside a word
    assert guide.settled(b"Boston") is None


def test_span_guide_counts_non_ascii_characters_as_letters():
    guide = Guide(OutputConstraint(SPAN), "Wir fahren nach Zürich.")
    zurich = "Zürich".encode()
    assert guide.allows(zurich[:2])  # a token may end inside a character
    assert guide.may_end(zurich)
    assert not guide.may_end(zurich[:2])


def test_free_guide_allows_anything():
    guide = Guide(OutputConstraint(), "x")
    assert guide.allows(b"whatever") and guide.may_end(b"whatever")
    assert guide.settled(b"whatever") is None


@given(
    st.lists(st.text(min_size=1, max_size=20).map(str.strip).filter(bool), min_size=1),
)
def test_every_example_answer_passes_its_inferred_guide(answers):
    """Whatever the inference picks, the spec's own answers stay reachable."""
    examples = [(f"say {answer} now", answer) for answer in answers]
    constraint = infer(examples)
    for text, answer in examples:
        guide = Guide(constraint, text)
        encoded = answer.encode()
        assert guide.may_end(encoded), (constraint, text, answer)
        assert all(guide.allows(encoded[:i]) for i in range(len(encoded) + 1))
