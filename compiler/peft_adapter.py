"""A program's adapter as a PEFT folder, for engines that load PEFT adapters (vLLM).

The folder is made from the adapter GGUF itself, dequantized: an engine that
scores it computes with exactly the weights llama.cpp will run, not with the
float weights training produced before quantization.
"""

import json
import re
from pathlib import Path

from safetensors.numpy import save_file

from pawhub.adapter import read_lora_gguf
from pawhub.model import BASE_MODEL_ID

# llama.cpp projection name -> the module inside a Hugging Face llama decoder layer.
HF_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GGUF_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.weight\.lora_([ab])")


def write_peft_adapter(gguf_path: Path | str, directory: Path | str) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` for the adapter GGUF
    at ``gguf_path`` (one that passed ``inspect_lora_gguf``) into ``directory``."""
    tensors, alpha = read_lora_gguf(gguf_path)
    state, layers, modules, ranks = {}, set(), set(), set()
    for name, values in tensors.items():
        layer, proj, half = _GGUF_NAME.fullmatch(name).groups()
        module = HF_MODULES[proj]
        key = f"base_model.model.model.layers.{layer}.{module}.lora_{half.upper()}.weight"
        state[key] = values
        layers.add(int(layer))
        modules.add(module.rsplit(".", 1)[1])
        ranks.add(values.shape[0] if half == "a" else values.shape[1])
    (rank,) = ranks  # inspect_lora_gguf already refused mixed ranks
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": BASE_MODEL_ID,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": sorted(modules),
        "layers_to_transform": sorted(layers),
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return directory
