"""The quality benchmark's task set (benchmarks/data/) is well formed; no model needed."""

import json
from collections import Counter
from pathlib import Path

import pytest

from compiler.spec import merge_spec, validate_spec

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
TASK_FILES = sorted(DATA.glob("*.json"))
KINDS = {"labels", "extraction", "none_span", "normalization", "rule", "multilingual"}
SPLITS = {"dev", "test"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


LABEL_FILES = [path for path in TASK_FILES if load(path)["kind"] == "labels"]


def test_tasks_cover_every_kind_and_both_splits():
    tasks = [load(path) for path in TASK_FILES]
    assert len(tasks) >= 24
    assert {task["kind"] for task in tasks} == KINDS
    assert {task["split"] for task in tasks} == SPLITS
    # The test split has a task of every kind but plain extraction (all tuned on before).
    test_kinds = {task["kind"] for task in tasks if task["split"] == "test"}
    assert test_kinds >= KINDS - {"extraction"}
    names = [task["name"] for task in tasks]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda path: path.stem)
def test_task_file(path):
    task = load(path)
    assert task["name"] == path.stem
    assert task["kind"] in KINDS
    assert task["split"] in SPLITS
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
    # Imbalanced is fine, but always answering one label scores well under the target.
    assert max(held_out_labels.values()) / sum(held_out_labels.values()) < 0.75


NONE_WORDS = {"NONE", "N/A", "unknown"}
NONE_FILES = [path for path in TASK_FILES if load(path)["kind"] == "none_span"]


@pytest.mark.parametrize("path", NONE_FILES, ids=lambda path: path.stem)
def test_none_tasks_answer_a_span_of_the_input_or_none(path):
    task = load(path)
    nones = {y for _, y in task["train"] + task["held_out"] if y in NONE_WORDS}
    assert len(nones) == 1, "one word for 'none' a task"
    for part in ("train", "held_out"):
        answers = [y for _, y in task[part]]
        assert 0 < sum(y in nones for y in answers) < len(answers) / 2, part
        for x, y in task[part]:
            assert y in nones or y in x


def test_the_summary_gives_each_split_and_kind_a_mean_over_seeds_with_its_spread():
    import sys

    sys.path.insert(0, str(DATA.parent))
    from quality import split_summary

    def result(name, kind, split, seed, em):
        modes = {"compiled": em, "zero_shot": 0.0, "prompt_only": 0.5}
        return {
            "name": name,
            "kind": kind,
            "split": split,
            "seed": seed,
            "scores": {mode: {"em": value} for mode, value in modes.items()},
        }

    results = [
        result("a", "labels", "dev", 0, 1.0),
        result("b", "rule", "dev", 0, 0.5),
        result("a", "labels", "dev", 1, 0.8),
        result("b", "rule", "dev", 1, 0.3),
        result("c", "rule", "test", 0, 0.6),
        result("c", "rule", "test", 1, 0.4),
    ]
    summary = split_summary(results)
    # dev: seed 0 mean 0.75, seed 1 mean 0.55.
    assert summary["dev"]["all"] == {"mean": 0.65, "min": 0.55, "max": 0.75, "seeds": 2, "tasks": 2}
    assert summary["dev"]["by_kind"]["labels"]["mean"] == 0.9
    assert summary["dev"]["prompt_only"] == 0.5
    assert summary["test"]["by_kind"] == {
        "rule": {"mean": 0.5, "min": 0.4, "max": 0.6, "seeds": 2, "tasks": 1}
    }
