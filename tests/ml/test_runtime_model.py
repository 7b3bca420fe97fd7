"""The runtime's Q8_0 copy of the base model: made once, atomically, and faithful."""

import os
import stat

import gguf
import pytest

from runtime.interpreter import Interpreter
from runtime.model import RUNTIME_QUANT, base_model_path, base_model_sha256, runtime_model_path

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
