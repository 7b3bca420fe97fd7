"""Write LoRA adapters as GGUF for llama.cpp (the layout and vetting: ``pawhub.adapter``).

llama.cpp's own converter cannot write quantized adapters, so we write them
with gguf-py.
"""

from pathlib import Path

import gguf
import numpy as np

from pawhub.adapter import N_HEAD, N_KV_HEAD, PROJECTIONS, QUANTS, TENSOR_NAME, permute_rope_rows

# Base architectures an adapter can be written for (the base GGUF's general.architecture).
ARCHS = ("llama", "gemma3")


def write_lora_gguf(
    path: Path | str,
    lora_tensors: dict[str, np.ndarray],
    *,
    rank: int,
    alpha: float,
    quant: str = "Q4_0",
    n_head: int = N_HEAD,
    n_kv_head: int = N_KV_HEAD,
    arch: str = "llama",
) -> None:
    """Write ``lora_tensors`` (GGUF names -> float arrays in Hugging Face row order)
    for a base of architecture ``arch``.

    Q4_0 and Q8_0 quantize in blocks of 32 along a row; a tensor whose rows do
    not split into blocks (a ``lora_b`` with rank 16, say) is written as F16.
    Only ``llama`` permutes the q and k rows: llama.cpp's converter permutes
    those base weights for that architecture alone (``gemma3`` keeps them).
    """
    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {', '.join(QUANTS)}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}")
    qtype = QUANTS[quant]
    block_size = gguf.GGML_QUANT_SIZES[qtype][0]
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    # Sorted by layer, then projection: the file's layout follows the model's.
    order = {}
    for name in lora_tensors:
        match = TENSOR_NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"not a LoRA tensor name: {name!r}")
        order[name] = (int(match.group(1)), PROJECTIONS.index(match.group(2)), match.group(3))
    for name in sorted(order, key=order.get):
        _, proj_index, half = order[name]
        proj = PROJECTIONS[proj_index]
        data = np.asarray(lora_tensors[name], dtype=np.float32)
        rank_axis = 0 if half == "a" else 1
        if data.ndim != 2 or data.shape[rank_axis] != rank:
            raise ValueError(
                f"{name} has shape {data.shape}, expected rank {rank} on axis {rank_axis}"
            )
        if arch == "llama" and half == "b" and proj in ("attn_q", "attn_k"):
            data = permute_rope_rows(data, n_head if proj == "attn_q" else n_kv_head)
        tensor_type = qtype if data.shape[1] % block_size == 0 else gguf.GGMLQuantizationType.F16
        writer.add_tensor(name, gguf.quants.quantize(data, tensor_type), raw_dtype=tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
