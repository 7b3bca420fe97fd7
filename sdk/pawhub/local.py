"""Run a downloaded ``.paw`` bundle on this machine: no Django, no database, no network.

    import pawhub

    program = pawhub.load("support-urgency.paw")
    print(program.run("Nobody can log in since this morning").output)

The bundle is validated (``pawhub.bundle.read_bundle``: ZIP limits, meta.json,
the prompt template) and its adapter vetted against the installed base model
(``inspect_lora_gguf``) when it is loaded, so a bad bundle fails there with a
``BundleError`` that says why, before anything of it reaches llama.cpp.
"""

import os
import tempfile
import weakref
from pathlib import Path

from pawhub.adapter import AdapterError, inspect_lora_gguf
from pawhub.bundle import ADAPTER, BundleError, BundleMeta, read_bundle
from pawhub.calls import DEFAULT_MAX_TOKENS, RunResult
from pawhub.interpreter import Interpreter, shared_interpreter
from pawhub.model import base_model_path, base_model_sha256


class LocalProgram:
    """A program read from a bundle, run on this process's interpreter."""

    def __init__(self, path: Path | str, *, interpreter: Interpreter | None = None):
        bundle = read_bundle(path)
        if bundle.meta.base_model_sha256 != base_model_sha256():
            raise BundleError(
                f"the bundle was compiled for another base model ({bundle.meta.base_model_id}, "
                f"sha256 {bundle.meta.base_model_sha256[:12]}…) than the one installed"
            )
        self.meta: BundleMeta = bundle.meta
        self.prompt_template = bundle.prompt_template
        self.pseudo_program = bundle.pseudo_program
        # llama.cpp loads adapters from files: a private copy, removed with this object.
        fd, name = tempfile.mkstemp(prefix="paw-adapter-", suffix=".gguf")
        with os.fdopen(fd, "wb") as f:
            f.write(bundle.adapter)
        self.adapter_path = Path(name)
        self._remove_adapter = weakref.finalize(self, self.adapter_path.unlink, missing_ok=True)
        try:
            base = interpreter.model_path if interpreter else base_model_path()
            inspect_lora_gguf(self.adapter_path, base=base)
        except AdapterError as exc:
            self.close()
            raise BundleError(f"{ADAPTER}: {exc}") from exc
        self._interpreter = interpreter

    def run(
        self,
        input_text: str,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        timeout_s: float | None = None,
    ) -> RunResult:
        interpreter = self._interpreter or shared_interpreter()
        return interpreter.run(
            self.prompt_template,
            input_text,
            adapter=self.adapter_path,
            max_tokens=max_tokens,
            temperature=temperature,
            timeout_s=timeout_s,
            constraint=self.meta.constraint,
        )

    def close(self) -> None:
        self._remove_adapter()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def load(path: Path | str, *, interpreter: Interpreter | None = None) -> LocalProgram:
    """Read and check the bundle at ``path``; ``BundleError`` says what is wrong with it."""
    return LocalProgram(path, interpreter=interpreter)
