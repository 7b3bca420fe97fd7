"""Session fixtures for the model-side tests: the real base model, one trained adapter.

Building the Hugging Face folder and training take tens of seconds, so each
happens once per session and the slow tests share the results.
"""

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

# Nothing here may reach a model hub; everything comes from installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).parent / "data"


@dataclasses.dataclass(frozen=True)
class Task:
    description: str
    train: list[tuple[str, str]]
    held_out: list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class TrainedAdapter:
    template: str
    tensors: dict
    rank: int
    alpha: float
    f16: Path
    q4_0: Path
    train_seconds: float


def load_task(name: str) -> Task:
    raw = json.loads((DATA / f"{name}.json").read_text())
    return Task(
        description=raw["task"],
        train=[tuple(pair) for pair in raw["train"]],
        held_out=[tuple(pair) for pair in raw["held_out"]],
    )


@pytest.fixture(scope="session")
def urgency() -> Task:
    return load_task("urgency")


@pytest.fixture(scope="session")
def base_gguf() -> Path:
    from pawhub.model import base_model_path

    return base_model_path()


@pytest.fixture(scope="session")
def hf_base_dir(tmp_path_factory) -> Path:
    from compiler.training import ensure_base_hf_dir

    return ensure_base_hf_dir(tmp_path_factory.mktemp("hf") / "SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def interpreter():
    from pawhub.interpreter import Interpreter

    interpreter = Interpreter()
    yield interpreter
    interpreter.close()


@pytest.fixture(scope="session")
def trained_adapter(hf_base_dir, urgency, tmp_path_factory) -> TrainedAdapter:
    """The urgency task compiled with the default parameters, written as F16 and Q4_0."""
    from compiler.gguf_adapter import write_lora_gguf
    from compiler.pseudo import pseudo_program
    from compiler.training import TrainingParams, fit_lora
    from pawhub.prompt import prompt_template

    params = TrainingParams()
    pseudo = pseudo_program(urgency.description, urgency.train)
    started = time.perf_counter()
    tensors = fit_lora(
        base_dir=hf_base_dir, pairs=urgency.train, pseudo_program=pseudo, params=params
    )
    train_seconds = time.perf_counter() - started
    out = tmp_path_factory.mktemp("adapter")
    paths = {}
    for quant in ("F16", "Q4_0"):
        paths[quant] = out / f"urgency-{quant}.gguf"
        write_lora_gguf(paths[quant], tensors, rank=params.rank, alpha=params.alpha, quant=quant)
    return TrainedAdapter(
        template=prompt_template(pseudo),
        tensors=tensors,
        rank=params.rank,
        alpha=params.alpha,
        f16=paths["F16"],
        q4_0=paths["Q4_0"],
        train_seconds=train_seconds,
    )
