"""Output constraints: read off a spec's examples, kept as JSON, enforced byte by byte."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pawhub.constraint import (
    CHOICE,
    FREE,
    SHAPE,
    SPAN,
    WORDS,
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
    [
        OutputConstraint(),
        OutputConstraint(SPAN),
        OutputConstraint(CHOICE, ("a", "b c")),
        OutputConstraint(SHAPE, shapes=("###-###-####", "(###) ###-####")),
        OutputConstraint(SPAN, start="space"),
    ],
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
        ({"kind": CHOICE, "choices": "ab"}, "must be lists"),
        ({"kind": CHOICE, "choices": [" a", "b"]}, "stripped"),
        ({"kind": CHOICE, "choices": ["", "b"]}, "1 to 200"),
        ({"kind": CHOICE, "choices": [None, "b"]}, "1 to 200"),
        ({"kind": CHOICE, "choices": ["a", "a"]}, "distinct"),
        ({"kind": CHOICE, "choices": [str(i) for i in range(33)]}, "at most 32"),
        ({"kind": FREE, "pattern": ".*"}, "unknown keys pattern"),
        ({"kind": SHAPE}, "shapes go with"),
        ({"kind": SPAN, "start": "line"}, "start is one of"),
        ({"kind": FREE, "start": "space"}, "for spans only"),
        ({"kind": SPAN, "shapes": ["#"]}, "shapes go with"),
        ({"kind": SHAPE, "shapes": "#"}, "must be lists"),
        ({"kind": SHAPE, "shapes": ["#a#"]}, "ASCII punctuation"),
        ({"kind": SHAPE, "shapes": ["#1#"]}, "ASCII punctuation"),
        ({"kind": SHAPE, "shapes": [" ##"]}, "ASCII punctuation"),
        ({"kind": SHAPE, "shapes": ["--"]}, "ASCII punctuation"),
        ({"kind": SHAPE, "shapes": ["#", "#"]}, "distinct"),
        ({"kind": SHAPE, "shapes": ["#" * (i + 1) for i in range(5)]}, "at most 4"),
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


PHONES = [
    ("(415) 867-2391", "415-867-2391"),
    ("Call me at 212.904.3318 after 5pm.", "212-904-3318"),
    ("+1 646 273 0954", "646-273-0954"),
    ("phone: 3127408861", "312-740-8861"),
]


def test_digit_layouts_make_a_shape_when_asked():
    assert infer(PHONES, rules=2) == OutputConstraint(SHAPE, shapes=("###-###-####",))
    # Older snapshots never infer it: their programs keep their behaviour.
    assert infer(PHONES).is_free
    # Each layout seen twice on average, like labels; letters are not a layout.
    assert infer([("a", "1-2"), ("b", "33-4"), ("c", "5-6")], rules=2).is_free
    assert infer([("a", "12 kg"), ("b", "34 kg")], rules=2).is_free
    # Labels and spans come first.
    assert infer([("a", "1"), ("b", "2"), ("c", "1"), ("d", "2")], rules=2).kind == CHOICE
    assert infer([("call 555-1234", "555-1234"), ("or 555-9876", "555-9876")], rules=2).kind == SPAN


def test_shape_guide_holds_to_the_layout():
    guide = Guide(OutputConstraint(SHAPE, shapes=("###-###-####", "####")), "anything")
    assert guide.allows(b" 41") and guide.allows(b"415-8") and guide.allows(b"4158")
    assert not guide.allows(b"415 ") and not guide.allows(b"41a") and not guide.allows(b"41589")
    assert guide.may_end(b"415-867-2391") and guide.may_end(b" 2391 ")
    assert not guide.may_end(b"415-867-239") and not guide.may_end(b"415-867-23911")
    assert "###-###-####" in OutputConstraint(SHAPE, shapes=("###-###-####",)).describe()


EMAILS = [
    ("Contact: support@brightlane.io", "support@brightlane.io"),
    (
        "Hi, this is Priya (priya.raman@uni-heidelberg.de) from the lab.",
        "priya.raman@uni-heidelberg.de",
    ),
    ("For invoices write to billing@northwind.co.uk.", "billing@northwind.co.uk"),
]


def test_spans_that_start_after_a_space_when_every_example_does():
    assert infer(EMAILS, rules=2) == OutputConstraint(SPAN, start="space")
    assert infer(EMAILS) == OutputConstraint(SPAN)
    # One answer starts inside a piece ("us" of "plus-us"): plain spans.
    assert infer([*EMAILS, ("plus-us ok", "us")], rules=2) == OutputConstraint(SPAN)


def test_a_span_starting_after_a_space_skips_the_middle_of_a_piece():
    text = "Please use accounts.payable@meridian-health.org or (ann@x.io) now"
    guide = Guide(OutputConstraint(SPAN, start="space"), text)
    assert guide.allows(b" accounts.pay") and guide.may_end(b"ann@x.io")
    assert guide.may_end(b"Please use") and guide.may_end(b"now")
    # A word boundary, but not where a piece starts.
    assert not guide.allows(b"payable") and not guide.allows(b"meridian")
    assert not guide.may_end(b"x.io")
    # The word-boundary span allows them.
    assert Guide(OutputConstraint(SPAN), text).may_end(b"x.io")
    assert "after a space" in OutputConstraint(SPAN, start="space").describe()


def test_unknown_inference_rules_are_refused():
    with pytest.raises(ValueError, match="rules is one of"):
        infer(EMAILS, rules=5)


# Rules 3 (bundle version 5): fixed answers beside spans, the input's words, a length bound.

ORDER_IDS = [
    ("Where is order A-1042? It has been a week.", "A-1042"),
    ("I never got my parcel, order B-2210.", "B-2210"),
    ("Hi, just saying thanks for the quick reply!", "NONE"),
    ("Order C-0007 arrived damaged.", "C-0007"),
    ("Can I change the delivery address for Z-9001?", "Z-9001"),
    ("How do I reset my password?", "NONE"),
    ("Refund for K-3333 please", "K-3333"),
    ("Package for order M-4545 is late", "M-4545"),
]


def test_spans_with_a_rare_fixed_answer_allow_exactly_that_union():
    constraint = infer(ORDER_IDS, rules=3)
    assert (constraint.kind, constraint.fixed) == (SPAN, ("NONE",))
    assert constraint.max_bytes == len("A-1042") + 8
    guide = Guide(constraint, "Is my order D-5151 on its way?")
    assert guide.may_end(b" D-5151") and guide.may_end(b"NONE")
    assert guide.allows(b" NO") and not guide.may_end(b"NO")
    # Neither an answer seen in training nor a span the input lacks.
    assert not guide.allows(b"A-1042") and not guide.allows(b"D-5152")
    assert not guide.may_end(b"N/A")
    # Rules 1 and 2 see the same examples as free text, as before.
    assert infer(ORDER_IDS) == infer(ORDER_IDS, rules=2) == OutputConstraint(FREE)


def test_too_many_fixed_answers_are_no_span():
    examples = [(f"thing {i}", "NONE" if i % 2 else f"{i}") for i in range(1, 9)]
    examples[1] = ("thing 2", "N/A")
    examples[3] = ("nothing here", "unknown")
    examples[5] = ("thing 6", "none")  # four distinct fixed answers, half the set
    assert infer(examples, rules=3).kind == FREE


NAMES = [
    ("john smith", "Smith, John"),
    ("MARIA garcia lopez", "Garcia Lopez, Maria"),
    ("li wei", "Wei, Li"),
    ("anna-lena berg", "Berg, Anna-Lena"),
]


def test_answers_built_from_the_inputs_words_keep_to_them():
    constraint = infer(NAMES, rules=3)
    assert constraint.kind == WORDS
    guide = Guide(constraint, "peter van dyke")
    assert guide.may_end(b"Van Dyke, Peter") and guide.may_end(b"dyke peter")
    assert guide.allows(b"Van Dy") and not guide.may_end(b"Van Dy")
    assert guide.allows(b"Dyke, ") and guide.allows(b"Dyke,")
    # A word seen only in training answers, or none of the input's, is not one.
    assert not guide.allows(b"Smith") and not guide.allows(b"Dyke, John")
    assert not guide.may_end(b", ")


def test_a_slug_is_built_from_the_inputs_words():
    slugs = [
        ("My First Post", "my-first-post"),
        ("Hello, World!", "hello-world"),
        ("Ten Tips for Better Sleep", "ten-tips-for-better-sleep"),
    ]
    constraint = infer(slugs, rules=3)
    assert constraint.kind == WORDS
    assert Guide(constraint, "Why Cats Purr").may_end(b"why-cats-purr")
    assert not Guide(constraint, "Why Cats Purr").allows(b"why-dogs")


def test_every_rules_3_answer_is_bounded_by_the_longest_example():
    rewritten = [("2024/03/05", "2024-03-05"), ("5 March 2024", "2024-03-05"), ("x", "y z")]
    constraint = infer(rewritten, rules=3)
    assert (constraint.kind, constraint.max_bytes) == (FREE, 18)
    assert not constraint.is_free  # decoding needs a guide for the bound
    guide = Guide(constraint, "anything at all")
    assert guide.allows(b" abcdefghijklmnopqr") and not guide.allows(b"abcdefghijklmnopqrs")
    long = [("a", "x" * 40), ("b", "y" * 40)]
    assert infer(long, rules=3).max_bytes == 60  # a half over the longest
    # Labels need no bound; spans and shapes get one.
    assert infer(URGENCY, rules=3) == infer(URGENCY, rules=2)
    assert infer(DESTINATIONS, rules=3) == OutputConstraint(SPAN, start="space", max_bytes=17)


@pytest.mark.parametrize(
    ("answer", "settled"),
    [
        (b" dog dog dog dog", "dog"),
        (b"dog dog dog", None),
        (b"b.b.b.b.", "b."),
        (b"na na na na na", "na na"),
        (b"hahahaha", "ha"),
        (b"10000000", None),  # digits may repeat: a number, not a loop
        (b"1 1 1 1", None),
        (b"ha ha ha", None),
        (b"hello there,\n\nhello there,\nhello there, \nHello there.", "hello there,"),
        (b"Smith, John Smith, John Smith, John Smith, John", "Smith, John"),
    ],
)
def test_a_degenerate_repetition_ends_after_its_first_round(answer, settled):
    guide = Guide(OutputConstraint(max_bytes=200), "")
    assert guide.settled(answer) == settled
    # Only rules 3 constraints (with a bound) stop loops: older programs decode as before.
    assert Guide(OutputConstraint(SPAN), answer.decode()).settled(answer) is None


def test_rules_3_fields_round_trip_and_are_checked():
    constraint = OutputConstraint(SPAN, start="space", fixed=("NONE", "N/A"), max_bytes=30)
    raw = constraint.to_dict()
    assert raw == {"kind": SPAN, "start": "space", "fixed": ["NONE", "N/A"], "max_bytes": 30}
    assert OutputConstraint.from_dict(raw) == constraint
    assert OutputConstraint.from_dict({"kind": WORDS, "max_bytes": 9}).kind == WORDS
    # What rules 1 and 2 wrote reads the same, with no rules 3 fields.
    assert OutputConstraint(SPAN).to_dict() == {"kind": SPAN}
    for bad in [
        {"kind": CHOICE, "choices": ["a", "b"], "fixed": ["NONE"]},
        {"kind": SPAN, "fixed": ["a", "b", "c", "d"]},
        {"kind": SPAN, "fixed": [" NONE"]},
        {"kind": SPAN, "fixed": "NONE"},
        {"kind": SPAN, "max_bytes": -1},
        {"kind": SPAN, "max_bytes": True},
        {"kind": SPAN, "max_bytes": "30"},
        {"kind": FREE, "max_bytes": 10**6},
    ]:
        with pytest.raises(ConstraintError):
            OutputConstraint.from_dict(bad)


def test_whitespace_cannot_pad_a_bounded_answer_forever():
    guide = Guide(OutputConstraint(max_bytes=5), "")
    assert guide.allows(b"  hello") and not guide.allows(b"hello ")
    assert guide.may_end(b"hello  ")


DATES = [
    ("Due: Sep 30th, 2025", "2025-09-30"),
    ("The meeting is on 17 January 2023.", "2023-01-17"),
    ("Invoice date: 2022/12/01", "2022-12-01"),
    ("born on the 2nd of August 1990", "1990-08-02"),
]


def test_rules_4_hold_the_digit_groups_every_example_copies_to_the_inputs_numbers():
    constraint = infer(DATES, rules=4)
    # The year and the day are copied in every example; the month is read off a name.
    assert constraint == dataclasses.replace(infer(DATES, rules=3), copied=((0, 2),))
    assert "numbers copied from the input" in constraint.describe()
    guide = Guide(constraint, "Due by 30 November 2024")
    assert guide.may_end(b"2024-11-30")
    # "30" written as "03" (its digits copied in the wrong order) is refused on the way.
    assert guide.allows(b"2024-11-3") and not guide.allows(b"2024-11-0")
    assert not guide.may_end(b"2024-11-03") and not guide.allows(b"2025")
    # The month is free; a single digit is zero-padded to its group's width.
    assert Guide(constraint, "July 4 1976").may_end(b"1976-07-04")
    assert not Guide(constraint, "July 4 1976").allows(b"1976-07-41")
    # A group with nothing in the input to copy is left free: the guide never dead-ends.
    assert Guide(constraint, "the first of May").may_end(b"2020-05-01")
    # A stranger's run of digits longer than Python converts is no trouble.
    huge = Guide(constraint, "9" * 10_000 + " on 3 May 2021")
    assert huge.may_end(b"2021-05-03") and not huge.allows(b"9999")
    # Older rules never infer it: their programs keep their behaviour.
    assert infer(DATES, rules=3).copied == ()
    # A layout seen once says nothing about which of its groups are copies.
    layouts = [("x12y", "12"), ("x34y", "34"), ("x56y", "56"), ("p7q8", "7-8")]
    assert infer(layouts, rules=4).copied == ((0,), ())


@given(st.lists(st.tuples(st.integers(1, 28), st.integers(1, 12), st.integers(1900, 2099))))
def test_every_rules_4_example_answer_passes_its_inferred_guide(dates):
    examples = [(f"{d}.{m}.{y}", f"{y}-{m:02d}-{d:02d}") for d, m, y in dates]
    constraint = infer(examples, rules=4)
    for text, answer in examples:
        guide = Guide(constraint, text)
        encoded = answer.encode()
        assert guide.may_end(encoded), (constraint, text, answer)
        assert all(guide.allows(encoded[:i]) for i in range(len(encoded) + 1))


def test_rules_4_fields_round_trip_and_are_checked():
    constraint = OutputConstraint(SHAPE, shapes=("####-##-##", "##:##"), copied=((0, 2), ()))
    raw = constraint.to_dict()
    assert raw["copied"] == [[0, 2], []]
    assert OutputConstraint.from_dict(raw) == constraint
    assert "copied" not in OutputConstraint(SHAPE, shapes=("##",)).to_dict()
    for bad in [
        {"kind": SHAPE, "shapes": ["##"], "copied": [[1]]},
        {"kind": SHAPE, "shapes": ["##"], "copied": [[0, 0]]},
        {"kind": SHAPE, "shapes": ["##-##"], "copied": [[1, 0]]},
        {"kind": SHAPE, "shapes": ["##"], "copied": [[True]]},
        {"kind": SHAPE, "shapes": ["##"], "copied": [[]]},
        {"kind": SHAPE, "shapes": ["##", "#"], "copied": [[0]]},
        {"kind": SHAPE, "shapes": ["##"], "copied": [0]},
        {"kind": SPAN, "copied": [[0]]},
    ]:
        with pytest.raises(ConstraintError):
            OutputConstraint.from_dict(bad)
