"""The quality benchmark's task set (benchmarks/data/) is well formed; no model needed."""

import json
from collections import Counter
from pathlib import Path

import pytest

from compiler.spec import merge_spec, validate_spec

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
TASK_FILES = sorted(DATA.glob("*.json"))
KINDS = {"labels", "extraction", "normalization"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


LABEL_FILES = [path for path in TASK_FILES if load(path)["kind"] == "labels"]


def test_at_least_six_tasks_covering_every_kind():
    tasks = [load(path) for path in TASK_FILES]
    assert len(tasks) >= 6
    assert {task["kind"] for task in tasks} == KINDS
    names = [task["name"] for task in tasks]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda path: path.stem)
def test_task_file(path):
    task = load(path)
    assert task["name"] == path.stem
    assert task["kind"] in KINDS
    description = task["description"].strip()
    assert description and "\n" not in description

    train = [tuple(pair) for pair in task["train"]]
    held_out = [tuple(pair) for pair in task["held_out"]]
    assert len(train) == 16
    assert len(held_out) >= 30
    for pair in train + held_out:
        assert len(pair) == 2
        assert all(isinstance(side, str) and side.strip() == side and side for side in pair)

    train_inputs = Counter(x for x, _ in train)
    held_out_inputs = Counter(x for x, _ in held_out)
    assert max(train_inputs.values()) == 1, "duplicate training input"
    assert max(held_out_inputs.values()) == 1, "duplicate held-out input"
    assert not set(train_inputs) & set(held_out_inputs), "held-out input also in training"


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda path: path.stem)
def test_task_spec_validates_and_carries_exactly_the_training_examples(path):
    task = load(path)
    train = [tuple(pair) for pair in task["train"]]
    parsed = validate_spec(merge_spec(task["description"], train))
    assert parsed.task == task["description"]
    assert parsed.examples == train
    assert parsed.hints == []


@pytest.mark.parametrize("path", LABEL_FILES, ids=lambda path: path.stem)
def test_label_tasks_hold_out_every_label_they_train(path):
    task = load(path)
    train_labels = {y for _, y in task["train"]}
    held_out_labels = Counter(y for _, y in task["held_out"])
    assert set(held_out_labels) == train_labels
    # No label dominates: always answering one label scores well under the target.
    assert max(held_out_labels.values()) / sum(held_out_labels.values()) < 0.5
