"""Training examples derived from a spec's own: they keep each example's meaning."""

import re

from hypothesis import given
from hypothesis import strategies as st

from compiler.augment import derive, renew_digits, swap_answer
from pawhub.constraint import SPAN, Guide, OutputConstraint

LABELS = [
    ("The site is down for everyone", "urgent"),
    ("How do I change my avatar?", "low"),
    ("Export cuts off column 3", "normal"),
    ("Payments fail right now", "urgent"),
    ("Love the new look", "low"),
    ("My invoice 2024-11 shows the wrong VAT", "normal"),
]
CITIES = [
    ("Flight from Atlanta to Boston tomorrow.", "Boston"),
    ("We're driving down to San Diego.", "San Diego"),
    ("Train to Edinburgh from London.", "Edinburgh"),
    ("Heading to Nairobi in March.", "Nairobi"),
]
PHONES = [
    ("(415) 867-2391", "415-867-2391"),
    ("phone: 3127408861", "312-740-8861"),
    ("Office: 404.226.7189, ext. 12", "404-226-7189"),
    ("+1 646 273 0954", "646-273-0954"),
]
DATES = [
    ("March 5, 2024", "2024-03-05"),
    ("Invoice date: 2022/12/01", "2022-12-01"),
    ("December 25th, 2023 at 6 pm", "2023-12-25"),
    ("On 1 January 2020", "2020-01-01"),
]


def digits(text):
    return re.sub(r"\D", "", text)


def test_originals_come_first_and_unchanged():
    derived = derive(PHONES, variants=3, seed=0)
    assert derived[: len(PHONES)] == PHONES
    assert len(derived) == 4 * len(PHONES)
    assert len(set(derived)) == len(derived)


def test_no_variants_means_the_examples_as_they_are():
    assert derive(PHONES, variants=0, seed=0) == PHONES


def test_the_same_seed_gives_the_same_examples():
    assert derive(CITIES, variants=3, seed=7) == derive(CITIES, variants=3, seed=7)
    assert derive(CITIES, variants=3, seed=7) != derive(CITIES, variants=3, seed=8)


def test_labels_are_never_rewritten():
    # Their digits and words say something about the whole input.
    assert derive(LABELS, variants=5, seed=0) == LABELS


def test_answers_swap_between_contexts():
    derived = derive(CITIES, variants=3, seed=0)[len(CITIES) :]
    assert derived, "every city example can take another example's city"
    answers = {answer for _, answer in CITIES}
    for input_text, answer in derived:
        assert answer in answers
        assert Guide(OutputConstraint(SPAN), input_text).may_end(answer.encode())
        # The original context, with only the answer changed.
        assert any(
            input_text == original.replace(old, answer) for original, old in CITIES if old != answer
        )


def test_a_swap_never_puts_the_answer_in_twice():
    # "Boston" is already in this input: swapping it in would make two candidates.
    assert (
        swap_answer("Fly from Boston to Denver", "Denver", ["Denver", "Boston"], _Fixed()) is None
    )


def test_phone_digits_are_renewed_in_both_places():
    for (input_text, answer), (new_input, new_answer) in zip(
        PHONES, derive(PHONES, variants=1, seed=0)[len(PHONES) :], strict=True
    ):
        assert new_answer != answer
        # Same shape: only digits changed, and the answer still copies the input's digits.
        assert re.sub(r"\d", "#", new_input) == re.sub(r"\d", "#", input_text)
        assert re.sub(r"\d", "#", new_answer) == re.sub(r"\d", "#", answer)
        assert digits(new_answer) in digits(new_input)
    # Digits the answer does not copy stay: the extension, the country code.
    office = derive(PHONES, variants=1, seed=0)[len(PHONES) + 2][0]
    assert office.endswith(", ext. 12")


def test_numbers_copied_by_value_are_renewed_with_their_padding():
    new_input, new_answer = renew_digits("March 5, 2024", "2024-03-05", _Fixed(7))
    # The day and the year are copies; the month comes from "March" and stays.
    assert new_input == "March 7, 7777"
    assert new_answer == "7777-03-07"


def test_numbers_that_are_not_copies_stay():
    new_input, new_answer = renew_digits("December 25th, 2023 at 6 pm", "2023-12-25", _Fixed(4))
    assert new_input == "December 44th, 4444 at 6 pm"
    assert new_answer == "4444-12-44"


def test_ambiguous_numbers_are_left_alone():
    # Which 1 in "2020-01-01" is the day? Neither is touched; only the year is.
    assert renew_digits("On 1 January 2020", "2020-01-01", _Fixed(3)) == (
        "On 1 January 3333",
        "3333-01-01",
    )
    assert renew_digits("no digits here", "none", _Fixed(3)) is None


class _Fixed:
    """A stand-in for random.Random that always draws ``digit``."""

    def __init__(self, digit=5):
        self.digit = digit

    def randrange(self, start, stop=None):
        return self.digit

    def shuffle(self, items):
        pass


words = st.text(alphabet="abcdefghij ", min_size=1, max_size=12).map(str.strip).filter(bool)


@given(
    st.lists(
        st.tuples(words, st.from_regex(r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8})?", fullmatch=True)),
        min_size=2,
        max_size=8,
    ),
    st.integers(0, 3),
)
def test_span_examples_stay_spans(rows, seed):
    examples = [(f"{before} {answer} {before}.", answer) for before, answer in rows]
    for input_text, answer in derive(examples, variants=2, seed=seed):
        assert Guide(OutputConstraint(SPAN), input_text).may_end(answer.encode())


@given(
    st.from_regex(r"[a-z ]{0,10}[0-9]{3}[ .-]?[0-9]{3}[ .-]?[0-9]{4}[a-z ]{0,10}", fullmatch=True)
)
def test_phone_like_copies_stay_copies(input_text):
    answer = "-".join((digits(input_text)[:3], digits(input_text)[3:6], digits(input_text)[6:]))
    renewed = renew_digits(input_text, answer, __import__("random").Random(0))
    assert renewed is not None
    new_input, new_answer = renewed
    assert digits(new_answer) == digits(new_input)
