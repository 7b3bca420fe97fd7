"""The adapter writer and the validator for untrusted adapter files.

These need the base GGUF's header (read with gguf-py) but never load a model;
the tests that run adapters in llama.cpp are in test_interpreter.py.
"""

import re

import gguf
import numpy as np
import pytest

from compiler.gguf_adapter import write_lora_gguf
from pawhub.adapter import AdapterError, inspect_lora_gguf
from tests.ml.corpus import (
    DIMS,
    lora,
    malformed_adapters,
    oversized_adapter,
    raw_gguf,
    small_lora,
)


def read_back(path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(path)
    return {
        t.name: gguf.quants.dequantize(t.data, t.tensor_type).reshape(
            tuple(reversed(t.shape.tolist()))
        )
        for t in reader.tensors
    }


def test_f16_round_trip_and_qk_permutation(tmp_path):
    tensors = lora()
    path = tmp_path / "a.gguf"
    write_lora_gguf(path, tensors, rank=32, alpha=16.0, quant="F16")
    back = read_back(path)
    assert back.keys() == tensors.keys()
    for name, original in tensors.items():
        expected = original
        if name.endswith(("attn_q.weight.lora_b", "attn_k.weight.lora_b")):
            # llama.cpp interleaves each head's two rotary halves: HF row
            # head*64 + half*32 + i becomes GGUF row head*64 + 2*i + half.
            n_head = original.shape[0] // 64
            hf = original.reshape(n_head, 2, 32, -1)
            expected = np.stack([hf[:, 0], hf[:, 1]], axis=2).reshape(original.shape)
        np.testing.assert_allclose(back[name], expected, rtol=1e-3, atol=1e-3)
    reader = gguf.GGUFReader(path)
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == 16.0
    assert reader.get_field("general.architecture").contents() == "llama"


def test_gemma3_adapters_keep_the_hugging_face_row_order(tmp_path):
    # llama.cpp's converter permutes q/k for the llama architecture only.
    tensors = lora(projections=("attn_q", "attn_k"))
    path = tmp_path / "a.gguf"
    write_lora_gguf(path, tensors, rank=32, alpha=32.0, quant="F16", arch="gemma3")
    back = read_back(path)
    for name, original in tensors.items():
        np.testing.assert_allclose(back[name], original, rtol=1e-3, atol=1e-3)
    assert gguf.GGUFReader(path).get_field("general.architecture").contents() == "gemma3"


def test_inspect_wants_the_base_models_architecture(tmp_path):
    # A stand-in gemma3 base: the projection weights of two layers, nothing else.
    base = tmp_path / "base.gguf"
    weights = {
        name.removesuffix(".lora_a"): np.zeros((DIMS[proj][1], DIMS[proj][0]), np.float16)
        for name in lora(layers=(0, 1))
        if name.endswith(".lora_a") and (proj := name.split(".")[2])
    }
    raw_gguf(base, weights, arch="gemma3", fields={})
    adapter = tmp_path / "a.gguf"
    write_lora_gguf(adapter, lora(layers=(1,)), rank=32, alpha=32.0, quant="Q4_0", arch="gemma3")
    assert inspect_lora_gguf(adapter, base=base).tensor_count == 14
    write_lora_gguf(adapter, lora(layers=(1,)), rank=32, alpha=32.0, quant="Q4_0")
    with pytest.raises(AdapterError, match="architecture must be 'gemma3'"):
        inspect_lora_gguf(adapter, base=base)


@pytest.mark.parametrize(("quant", "min_corr"), [("Q4_0", 0.99), ("Q8_0", 0.9999)])
def test_quantized_round_trip_is_close(tmp_path, quant, min_corr):
    tensors = lora(projections=("attn_v", "ffn_down"))
    path = tmp_path / "a.gguf"
    write_lora_gguf(path, tensors, rank=32, alpha=32.0, quant=quant)
    back = read_back(path)
    for name, original in tensors.items():
        assert np.corrcoef(back[name].ravel(), original.ravel())[0, 1] > min_corr


def test_q4_0_sizes(tmp_path):
    tensors = lora(layers=range(30))
    sizes = {}
    for quant in ("F16", "Q4_0"):
        write_lora_gguf(tmp_path / quant, tensors, rank=32, alpha=32.0, quant=quant)
        sizes[quant] = (tmp_path / quant).stat().st_size
    # 4.5 bits per weight against 16.
    assert sizes["Q4_0"] < 0.3 * sizes["F16"]


def test_ranks_that_do_not_fill_a_block_fall_back_to_f16(tmp_path, base_gguf):
    path = tmp_path / "a.gguf"
    write_lora_gguf(path, lora(rank=8), rank=8, alpha=8.0, quant="Q4_0")
    types = {t.name.rsplit(".", 1)[1]: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types == {"lora_a": "Q4_0", "lora_b": "F16"}
    assert inspect_lora_gguf(path, base=base_gguf).quant == "F16+Q4_0"


def test_writer_refuses_wrong_names_and_ranks(tmp_path):
    with pytest.raises(ValueError, match="not a LoRA tensor name"):
        write_lora_gguf(tmp_path / "a", {"token_embd.weight": np.zeros((4, 4))}, rank=4, alpha=4)
    with pytest.raises(ValueError, match="expected rank"):
        write_lora_gguf(tmp_path / "a", lora(rank=16), rank=32, alpha=32)
    with pytest.raises(ValueError, match="quant"):
        write_lora_gguf(tmp_path / "a", lora(), rank=32, alpha=32, quant="Q2_K")
    with pytest.raises(ValueError, match="arch"):
        write_lora_gguf(tmp_path / "a", lora(), rank=32, alpha=32, arch="qwen3")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("quant", ["F16", "Q8_0", "Q4_0"])
def test_inspect_accepts_what_the_writer_writes(tmp_path, base_gguf, quant):
    path = tmp_path / "a.gguf"
    write_lora_gguf(path, lora(), rank=32, alpha=64.0, quant=quant)
    summary = inspect_lora_gguf(path, base=base_gguf)
    assert (summary.rank, summary.alpha, summary.quant, summary.tensor_count) == (
        32,
        64.0,
        quant,
        28,
    )


# --- The validator against malformed files -------------------------------------------


def test_the_valid_baseline_passes(tmp_path, base_gguf):
    assert (
        inspect_lora_gguf(raw_gguf(tmp_path / "ok.gguf", small_lora()), base=base_gguf).rank == 32
    )


def test_inspect_refuses_a_corpus_of_malformed_adapters(tmp_path, base_gguf):
    failures = []
    for name, path, message in malformed_adapters(tmp_path):
        try:
            inspect_lora_gguf(path, base=base_gguf)
        except AdapterError as exc:
            if not re.search(message, str(exc)):
                failures.append(f"{name}: wrong reason: {exc}")
        except Exception as exc:  # anything but AdapterError is a crash
            failures.append(f"{name}: crashed with {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{name}: accepted")
    assert not failures, "\n".join(failures)


def test_inspect_refuses_oversized_files_and_symlinks(tmp_path, base_gguf):
    with pytest.raises(AdapterError, match="over the"):
        inspect_lora_gguf(oversized_adapter(tmp_path / "huge.gguf"), base=base_gguf)
    link = tmp_path / "link.gguf"
    link.symlink_to(raw_gguf(tmp_path / "ok.gguf", small_lora()))
    with pytest.raises(AdapterError, match="regular file"):
        inspect_lora_gguf(link, base=base_gguf)


def test_inspect_survives_random_corruption(tmp_path, base_gguf):
    """Flipped bytes anywhere give AdapterError or a clean pass, never a crash."""
    data = bytearray(raw_gguf(tmp_path / "ok.gguf", small_lora(rank=4)).read_bytes())
    rng = np.random.default_rng(0)
    path = tmp_path / "fuzz.gguf"
    for _ in range(200):
        corrupted = bytearray(data)
        # Bias towards the header and metadata, where parsing decisions are made.
        limit = len(data) if rng.random() < 0.3 else min(len(data), 2048)
        for offset in rng.integers(0, limit, size=int(rng.integers(1, 8))):
            corrupted[offset] = int(rng.integers(0, 256))
        path.write_bytes(bytes(corrupted))
        try:
            inspect_lora_gguf(path, base=base_gguf)
        except AdapterError:
            pass
