"""A program's figures read as what they are: k/n, an interval, "rough" when few."""

import pytest

from programs.scores import ROUGH_BELOW, Score, wilson_interval
from tests.factories import ProgramFactory, UserFactory


@pytest.mark.parametrize(
    ("correct", "total", "low", "high"),
    [
        # Reference values (Wilson score interval, z = 1.96).
        (8, 10, 0.4902, 0.9433),
        (16, 16, 0.8064, 1.0),
        (0, 4, 0.0, 0.4899),
        (2, 4, 0.1500, 0.8500),
        (27, 30, 0.7438, 0.9654),
    ],
)
def test_wilson_interval_matches_reference_values(correct, total, low, high):
    got_low, got_high = wilson_interval(correct, total)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_narrows_as_the_count_grows():
    widths = [wilson_interval(3 * n, 4 * n) for n in (1, 2, 8, 32)]
    spans = [high - low for low, high in widths]
    assert spans == sorted(spans, reverse=True)


def test_score_from_a_stored_accuracy():
    score = Score.from_accuracy(0.75, 4)
    assert (score.correct, score.total, str(score)) == (3, 4, "3/4 (75 %)")
    assert score.is_rough and score.is_low
    assert not Score(9, 10).is_low
    assert score.interval == (30, 96)
    assert Score.from_accuracy(None, 4) is None
    assert Score.from_accuracy(1.0, 0) is None
    assert not Score(8, ROUGH_BELOW).is_rough


@pytest.mark.django_db
def test_sixteen_of_sixteen_reads_as_such_not_as_one(client):
    program = ProgramFactory(example_count=16, selfcheck_accuracy=1.0)
    page = client.get(program.get_absolute_url()).content.decode()
    assert "16/16 (100 %) exact on its training examples" in page
    assert "none held out: fewer than 8 examples" in page


@pytest.mark.django_db
def test_a_score_on_four_held_out_is_called_rough(client):
    program = ProgramFactory(
        example_count=16, selfcheck_accuracy=1.0, heldout_accuracy=0.5, heldout_count=4
    )
    page = client.get(program.get_absolute_url()).content.decode()
    assert "12/12 (100 %) exact on its training examples" in page
    assert "2/4 (50 %) exact on 4 unseen examples" in page
    assert "95 % interval 15–85 %" in page
    assert "<strong>rough</strong>: fewer than 8 held out" in page


@pytest.mark.django_db
def test_a_firm_score_is_not_called_rough(client):
    program = ProgramFactory(
        example_count=40, selfcheck_accuracy=1.0, heldout_accuracy=1.0, heldout_count=10
    )
    page = client.get(program.get_absolute_url()).content.decode()
    assert "10/10 (100 %) exact on 10 unseen examples" in page
    assert "<strong>rough</strong>" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accuracy", "held", "suggested"),
    [(0.5, 4, True), (1.0, 4, True), (0.7, 10, True), (0.9, 10, False), (None, 0, True)],
)
def test_the_owner_is_offered_a_recompile_with_more_examples(client, accuracy, held, suggested):
    program = ProgramFactory(
        example_count=40, selfcheck_accuracy=1.0, heldout_accuracy=accuracy, heldout_count=held
    )
    link = f"/compile/?from={program.id}"
    client.force_login(program.owner)
    assert (link in client.get(program.get_absolute_url()).content.decode()) is suggested
    client.force_login(UserFactory())
    assert link not in client.get(program.get_absolute_url()).content.decode()
