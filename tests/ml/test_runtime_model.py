"""The runtime's Q8_0 copy of the base model: made once, atomically, and faithful."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from pawhub.interpreter import Interpreter
from pawhub.model import (
    RUNTIME_QUANT,
    base_model_path,
    base_model_sha256,
    extra_buffer_types_usable,
    load_llama,
    runtime_model_path,
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def file_type(path) -> int:
    field = gguf.GGUFReader(path).fields["general.file_type"]
    return int(field.parts[field.data[0]][0])


def test_the_copy_is_made_once_named_by_its_source_and_readable(tmp_path):
    path = runtime_model_path(tmp_path)
    assert path.parent == tmp_path
    assert base_model_sha256()[:16] in path.name
    assert file_type(path) == gguf.LlamaFileType.MOSTLY_Q8_0 and RUNTIME_QUANT == "Q8_0"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # No partial file is left beside it, and a second call reuses it as it is.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    made = path.stat().st_mtime_ns
    assert runtime_model_path(tmp_path) == path
    assert path.stat().st_mtime_ns == made


def test_model_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    assert runtime_model_path().parent == tmp_path / "models"


def test_the_interpreter_runs_the_copy_by_default(interpreter):
    assert interpreter.model_path == runtime_model_path()
    assert interpreter.model_path != base_model_path()


def test_the_copy_answers_as_the_shipped_base_does(interpreter, trained_adapter, urgency):
    """Same adapter, same prompts: the Q8_0 copy and the shipped Q4_1 file agree."""
    shipped = Interpreter(base_model_path())
    try:
        inputs = [text for text, _ in urgency.train + urgency.held_out]
        template = trained_adapter.template

        def outputs(runner):
            return [
                runner.run(template, x, adapter=trained_adapter.q4_0, max_tokens=8).output
                for x in inputs
            ]

        copy, original = outputs(interpreter), outputs(shipped)
    finally:
        shipped.close()
    agreement = sum(a == b for a, b in zip(copy, original, strict=True)) / len(inputs)
    expected = dict(urgency.train + urgency.held_out)
    hits = [
        sum(o == expected[x] for o, x in zip(out, inputs, strict=True)) for out in (copy, original)
    ]
    print(f"\nQ8_0 copy vs shipped Q4_1: {agreement:.0%} same; exact match {hits} of {len(inputs)}")
    assert agreement >= 0.9
    assert hits[0] >= hits[1] - 1


def test_a_failed_copy_leaves_nothing_behind(tmp_path, monkeypatch):
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", lambda *args: 1)
    with pytest.raises(RuntimeError, match="could not write"):
        runtime_model_path(tmp_path)
    assert os.listdir(tmp_path) == []


def test_extra_buffer_types_are_left_out_on_a_cpu_with_amx():
    # llama.cpp's AMX buffer type segfaults on the first evaluation (llama.cpp #20824).
    assert not extra_buffer_types_usable(b"CPU : AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | ")
    assert extra_buffer_types_usable(b"CPU : AVX2 = 1 | FMA = 1 | REPACK = 1 | ")


def test_a_model_loaded_here_evaluates_without_crashing():
    # In its own process: on an AMX CPU, loading with the defaults killed the process.
    code = (
        "from pawhub.model import base_model_path, load_llama\n"
        "llm = load_llama(base_model_path(), n_ctx=256, n_threads=2, verbose=False)\n"
        "llm.eval(llm.tokenize(b'Hello there, how are you today?'))\n"
        "print('evaluated', llm.n_tokens)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "evaluated" in done.stdout


def test_load_llama_sets_its_parameters_for_one_load_only(monkeypatch):
    import llama_cpp.llama_cpp as bindings

    defaults = bindings.llama_model_default_params
    monkeypatch.setattr("pawhub.model.extra_buffer_types_usable", lambda: False)
    llm = load_llama(base_model_path(), n_ctx=256, n_threads=1, verbose=False)
    assert llm.model_params.use_extra_bufts is False
    assert bindings.llama_model_default_params is defaults
    assert defaults().use_extra_bufts is True
    llm.close()
