"""LoRA adapters as GGUF for llama.cpp: their layout, and vetting a file before llama.cpp loads it.

The layout llama.cpp expects (llama-adapter.cpp), which the compiler writes
(``compiler.gguf_adapter``) and every reader checks:

- metadata ``general.type = adapter``, ``adapter.type = lora``,
  ``adapter.lora.alpha``; the effective scale is ``alpha / rank``, as in PEFT;
- per projection two tensors, ``blk.{i}.{proj}.weight.lora_a`` with torch shape
  (rank, in) and ``.lora_b`` with torch shape (out, rank);
- the rows of q and k ``lora_b`` permuted exactly as llama.cpp's converter
  permutes the q/k base weights for the llama architecture. Without it the
  adapter still loads but rotary embeddings pair the wrong dimensions.
"""

import dataclasses
import functools
import math
import re
import struct
from pathlib import Path

import gguf
import numpy as np

# The seven projections PEFT adapts, by their llama.cpp names.
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
QUANTS = {
    "F16": gguf.GGMLQuantizationType.F16,
    "Q8_0": gguf.GGMLQuantizationType.Q8_0,
    "Q4_0": gguf.GGMLQuantizationType.Q4_0,
}
# SmolLM2-135M: 9 query heads, 3 key/value heads.
N_HEAD = 9
N_KV_HEAD = 3

# Limits for untrusted files. An r=32 all-projection adapter is ~20 MB in F16.
MAX_ADAPTER_BYTES = 64 * 1024 * 1024
MAX_RANK = 256
MAX_ALPHA = 4096.0
MAX_KV_FIELDS = 64
_ACCEPTED_TYPES = {
    gguf.GGMLQuantizationType.F32,
    gguf.GGMLQuantizationType.F16,
    gguf.GGMLQuantizationType.Q8_0,
    gguf.GGMLQuantizationType.Q4_0,
}
TENSOR_NAME = re.compile(r"blk\.(\d+)\.(" + "|".join(PROJECTIONS) + r")\.weight\.lora_([ab])")


class AdapterError(ValueError):
    """An adapter file that is not a LoRA adapter for the base model; the message says why."""


@dataclasses.dataclass(frozen=True)
class AdapterSummary:
    rank: int
    alpha: float
    quant: str  # tensor types present, e.g. "Q4_0" or "F16+Q4_0"
    tensor_count: int


def permute_rope_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf `LlamaModel.permute`: Hugging Face stores each
    # head's rotary halves as [first half | second half]; GGUF interleaves them.
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute_rope_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of ``permute_rope_rows``: GGUF's interleaved rows back to Hugging Face order."""
    return (
        weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def read_lora_gguf(
    path: Path | str, *, n_head: int = N_HEAD, n_kv_head: int = N_KV_HEAD
) -> tuple[dict[str, np.ndarray], float]:
    """An adapter's tensors as float32 in Hugging Face row order, and its alpha.

    The inverse of ``write_lora_gguf`` up to its quantization: what comes back
    is exactly what llama.cpp computes with. Only for a file that passed
    ``inspect_lora_gguf``.
    """
    reader = gguf.GGUFReader(path, "r")
    alpha = _float_field(reader, gguf.Keys.Adapter.LORA_ALPHA)
    tensors = {}
    for tensor in reader.tensors:
        match = TENSOR_NAME.fullmatch(tensor.name)
        if match is None:
            raise AdapterError(f"unexpected tensor {tensor.name!r}")
        rows, columns = int(tensor.shape[1]), int(tensor.shape[0])  # ne is innermost first
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        values = np.asarray(values, dtype=np.float32).reshape(rows, columns)
        proj, half = match.group(2), match.group(3)
        if half == "b" and proj in ("attn_q", "attn_k"):
            values = unpermute_rope_rows(values, n_head if proj == "attn_q" else n_kv_head)
        tensors[tensor.name] = values
    return tensors, alpha


def inspect_lora_gguf(path: Path | str, *, base: Path | str) -> AdapterSummary:
    """Validate an untrusted adapter against the base GGUF before llama.cpp sees it.

    Raises ``AdapterError`` for anything llama.cpp could choke on or that would
    not be a LoRA for ``base``: bad header, wrong type or architecture, unknown
    or unpaired tensors, shapes that do not fit the base, absurd sizes, or
    non-finite weights.
    """
    path = Path(path)
    base_arch, base_shapes = _base_facts(str(base))
    if path.is_symlink() or not path.is_file():
        raise AdapterError("the adapter is not a regular file")
    size = path.stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise AdapterError(f"the adapter is {size} bytes, over the {MAX_ADAPTER_BYTES} limit")
    _check_header_counts(path, max_tensors=2 * len(base_shapes))
    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as exc:  # gguf-py raises many types on malformed input
        raise AdapterError(f"not a readable GGUF file: {exc}") from exc

    if base_arch is None or _string_field(reader, gguf.Keys.General.ARCHITECTURE) != base_arch:
        raise AdapterError(f"general.architecture must be {base_arch!r}, the base model's")
    if _string_field(reader, gguf.Keys.General.TYPE) != "adapter":
        raise AdapterError("general.type must be 'adapter'")
    if _string_field(reader, gguf.Keys.Adapter.TYPE) != "lora":
        raise AdapterError("adapter.type must be 'lora'")
    alpha = _float_field(reader, gguf.Keys.Adapter.LORA_ALPHA)
    if not (math.isfinite(alpha) and 0 < alpha <= MAX_ALPHA):
        raise AdapterError(f"adapter.lora.alpha must be in (0, {MAX_ALPHA}], got {alpha}")

    halves: dict[str, dict[str, gguf.ReaderTensor]] = {}
    for tensor in reader.tensors:
        match = TENSOR_NAME.fullmatch(tensor.name)
        if match is None:
            raise AdapterError(f"unexpected tensor {tensor.name!r}")
        weight = tensor.name.rsplit(".", 1)[0]
        if weight not in base_shapes:
            raise AdapterError(f"{tensor.name!r} adapts {weight!r}, which the base model lacks")
        if tensor.tensor_type not in _ACCEPTED_TYPES:
            raise AdapterError(f"{tensor.name!r} has unsupported type {tensor.tensor_type.name}")
        if tensor.data_offset + tensor.n_bytes > size:
            raise AdapterError(f"{tensor.name!r} data lies past the end of the file")
        halves.setdefault(weight, {})[match.group(3)] = tensor
    if not halves:
        raise AdapterError("the adapter holds no LoRA tensors")

    ranks = set()
    for weight, pair in sorted(halves.items()):
        if set(pair) != {"a", "b"}:
            missing = "lora_b" if "a" in pair else "lora_a"
            raise AdapterError(f"{weight} has no {missing}")
        n_in, n_out = base_shapes[weight]
        a_shape, b_shape = _ne(pair["a"]), _ne(pair["b"])
        # ne order (innermost first): lora_a is [in, rank], lora_b is [rank, out].
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != n_in or b_shape[1] != n_out:
            raise AdapterError(
                f"{weight}: lora_a {a_shape} / lora_b {b_shape} do not fit a base weight "
                f"of {n_in} inputs and {n_out} outputs"
            )
        if a_shape[1] != b_shape[0]:
            raise AdapterError(f"{weight}: lora_a rank {a_shape[1]} != lora_b rank {b_shape[0]}")
        ranks.add(a_shape[1])
    if len(ranks) != 1:
        raise AdapterError(f"tensors disagree on the rank: {sorted(ranks)}")
    rank = ranks.pop()
    if not 1 <= rank <= MAX_RANK:
        raise AdapterError(f"rank {rank} is outside 1..{MAX_RANK}")

    for tensor in reader.tensors:
        try:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except Exception as exc:
            raise AdapterError(f"{tensor.name!r} data cannot be decoded: {exc}") from exc
        if not np.isfinite(values).all():
            raise AdapterError(f"{tensor.name!r} holds NaN or infinite values")

    return AdapterSummary(
        rank=rank,
        alpha=alpha,
        quant="+".join(sorted({t.tensor_type.name for t in reader.tensors})),
        tensor_count=len(reader.tensors),
    )


def _check_header_counts(path: Path, *, max_tensors: int) -> None:
    # gguf-py trusts the header's counts and walks them in Python; refusing
    # absurd counts up front keeps a crafted header from costing us time.
    with path.open("rb") as f:
        header = f.read(24)
    if len(header) < 24 or header[:4] != b"GGUF":
        raise AdapterError("not a GGUF file (bad magic or truncated header)")
    version, n_tensors, n_kv = struct.unpack("<IQQ", header[4:])
    if version not in (2, 3):
        raise AdapterError(f"unsupported GGUF version {version}")
    if not 0 < n_tensors <= max_tensors:
        raise AdapterError(f"the header claims {n_tensors} tensors; at most {max_tensors} fit")
    if n_kv > MAX_KV_FIELDS:
        raise AdapterError(f"the header claims {n_kv} metadata fields; at most {MAX_KV_FIELDS}")


def _ne(tensor: gguf.ReaderTensor) -> tuple[int, ...]:
    return tuple(int(n) for n in tensor.shape)


def _string_field(reader: gguf.GGUFReader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or field.types != [gguf.GGUFValueType.STRING]:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def _float_field(reader: gguf.GGUFReader, key: str) -> float:
    field = reader.get_field(key)
    if field is None or field.types != [gguf.GGUFValueType.FLOAT32]:
        raise AdapterError(f"{key} must be a float32")
    return float(field.parts[field.data[0]][0])


@functools.lru_cache(maxsize=4)
def _base_facts(base: str) -> tuple[str | None, dict[str, tuple[int, int]]]:
    """The base GGUF's ``general.architecture`` (``llama`` for SmolLM2) and its
    projections' shapes, ``blk.{i}.{proj}.weight`` -> (inputs, outputs), from one read."""
    reader = gguf.GGUFReader(base, "r")
    shapes = {}
    for tensor in reader.tensors:
        stem, _, suffix = tensor.name.rpartition(".")
        if suffix == "weight" and re.fullmatch(r"blk\.\d+\.(" + "|".join(PROJECTIONS) + ")", stem):
            shapes[tensor.name] = (int(tensor.shape[0]), int(tensor.shape[1]))
    return _string_field(reader, gguf.Keys.General.ARCHITECTURE), shapes
