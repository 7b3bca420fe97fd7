"""The adapter writer and the validator for untrusted adapter files.

These need the base GGUF's header (read with gguf-py) but never load a model;
the tests that run adapters in llama.cpp are in test_interpreter.py.
"""

import re
import struct

import gguf
import numpy as np
import pytest

from compiler.gguf_adapter import (
    MAX_ADAPTER_BYTES,
    MAX_RANK,
    PROJECTIONS,
    AdapterError,
    inspect_lora_gguf,
    write_lora_gguf,
)

# (inputs, outputs) of SmolLM2-135M's projections.
DIMS = {
    "attn_q": (576, 576),
    "attn_k": (576, 192),
    "attn_v": (576, 192),
    "attn_output": (576, 576),
    "ffn_gate": (576, 1536),
    "ffn_up": (576, 1536),
    "ffn_down": (1536, 576),
}


def lora(layers=(28, 29), rank=32, seed=0, projections=PROJECTIONS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in layers:
        for proj in projections:
            n_in, n_out = DIMS[proj]
            tensors[f"blk.{i}.{proj}.weight.lora_a"] = rng.standard_normal((rank, n_in), np.float32)
            tensors[f"blk.{i}.{proj}.weight.lora_b"] = rng.standard_normal(
                (n_out, rank), np.float32
            )
    return tensors


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

ADAPTER_FIELDS = {"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": 32.0}


def raw_gguf(path, tensors, *, arch="llama", fields=ADAPTER_FIELDS):
    """Write any GGUF, valid or not, without the writer's own checks."""
    writer = gguf.GGUFWriter(path, arch=arch)
    for key, value in fields.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def small_lora(**kwargs):
    return {k: v.astype(np.float16) for k, v in lora(layers=(29,), **kwargs).items()}


def test_the_valid_baseline_passes(tmp_path, base_gguf):
    assert (
        inspect_lora_gguf(raw_gguf(tmp_path / "ok.gguf", small_lora()), base=base_gguf).rank == 32
    )


def malformed_files(tmp_path):
    """(description, path, expected message) for a corpus of broken adapters."""
    good = small_lora()
    ok_path = raw_gguf(tmp_path / "ok.gguf", good)
    ok_bytes = ok_path.read_bytes()
    cases = []

    def file(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def bad(name, message, tensors=good, **kwargs):
        cases.append((name, raw_gguf(tmp_path / f"{name}.gguf", tensors, **kwargs), message))

    cases += [
        ("empty", file("empty", b""), "bad magic or truncated"),
        ("not gguf", file("junk", b"PK\x03\x04" + bytes(100)), "bad magic"),
        ("header only", file("header", ok_bytes[:20]), "truncated header"),
        ("truncated half", file("half", ok_bytes[: len(ok_bytes) // 2]), "past the end|readable"),
        ("truncated tail", file("tail", ok_bytes[:-7]), "past the end|readable"),
        ("bad version", file("v9", ok_bytes[:4] + struct.pack("<I", 9) + ok_bytes[8:]), "version"),
        (
            "absurd tensor count",
            file("count", ok_bytes[:8] + struct.pack("<Q", 1 << 60) + ok_bytes[16:]),
            "claims",
        ),
        (
            "absurd field count",
            file("kv", ok_bytes[:16] + struct.pack("<Q", 1 << 40) + ok_bytes[24:]),
            "metadata fields",
        ),
        (
            "zero tensors",
            file("zero", ok_bytes[:8] + struct.pack("<Q", 0) + ok_bytes[16:]),
            "claims 0 tensors",
        ),
    ]
    bad("model not adapter", "general.type", fields={**ADAPTER_FIELDS, "general.type": "model"})
    bad("no general.type", "general.type", fields=without(ADAPTER_FIELDS, "general.type"))
    bad("wrong arch", "architecture", arch="gemma3")
    bad("control vector", "adapter.type", fields={**ADAPTER_FIELDS, "adapter.type": "cvec"})
    bad("no alpha", "alpha", fields=without(ADAPTER_FIELDS, "adapter.lora.alpha"))
    bad("alpha as int", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": 32})
    bad("negative alpha", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": -1.0})
    bad("nan alpha", "alpha", fields={**ADAPTER_FIELDS, "adapter.lora.alpha": float("nan")})
    bad("missing lora_b", "has no lora_b", without(good, "blk.29.attn_q.weight.lora_b"))
    bad("missing lora_a", "has no lora_a", without(good, "blk.29.ffn_up.weight.lora_a"))
    wrong_in = {**good, "blk.29.attn_q.weight.lora_a": np.zeros((32, 577), np.float16)}
    bad("wrong input dim", "do not fit", wrong_in)
    wrong_out = {**good, "blk.29.attn_k.weight.lora_b": np.zeros((576, 32), np.float16)}
    bad("k sized like q", "do not fit", wrong_out)
    transposed = {**good, "blk.29.attn_v.weight.lora_a": np.zeros((576, 32), np.float16)}
    bad("transposed lora_a", "do not fit", transposed)
    pair_rank = {**good, "blk.29.attn_v.weight.lora_b": np.zeros((192, 16), np.float16)}
    bad("pair rank mismatch", "rank", pair_rank)
    mixed = {
        **good,
        "blk.29.attn_v.weight.lora_a": np.zeros((16, 576), np.float16),
        "blk.29.attn_v.weight.lora_b": np.zeros((192, 16), np.float16),
    }
    bad("ranks disagree", "disagree", mixed)
    big = lora(layers=(29,), rank=MAX_RANK + 1, projections=("attn_v",))
    bad("rank too big", "outside", {k: v.astype(np.float16) for k, v in big.items()})
    bad("layer 30", "base model lacks", {k.replace("blk.29", "blk.30"): v for k, v in good.items()})
    bad(
        "foreign tensor",
        "unexpected tensor",
        {**good, "token_embd.weight": np.zeros((8, 576), np.float16)},
    )
    bad(
        "3-d tensor",
        "do not fit",
        {**good, "blk.29.attn_q.weight.lora_a": np.zeros((1, 32, 576), np.float16)},
    )
    ints = {**good, "blk.29.attn_q.weight.lora_a": np.zeros((32, 576), np.int32)}
    bad("integer tensor", "unsupported type", ints)
    nan = dict(good)
    nan["blk.29.ffn_down.weight.lora_b"] = nan["blk.29.ffn_down.weight.lora_b"].copy()
    nan["blk.29.ffn_down.weight.lora_b"][3, 3] = np.nan
    bad("nan weight", "NaN", nan)
    return cases


def test_inspect_refuses_a_corpus_of_malformed_adapters(tmp_path, base_gguf):
    failures = []
    for name, path, message in malformed_files(tmp_path):
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
    huge = tmp_path / "huge.gguf"
    with huge.open("wb") as f:
        f.write(b"GGUF")
        f.truncate(MAX_ADAPTER_BYTES + 1)  # sparse
    with pytest.raises(AdapterError, match="over the"):
        inspect_lora_gguf(huge, base=base_gguf)
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
