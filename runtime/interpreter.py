"""Run programs on llama.cpp: one loaded base model, adapters hot-swapped per call.

A ``Llama`` object is not safe to use from two threads at once (concurrent use
crashes the process), so every call holds one lock; a process scales by
running more processes, each with its own ``Interpreter``.
"""

import collections
import ctypes
import dataclasses
import os
import threading
import time
from pathlib import Path

import llama_cpp

from compiler.gguf_adapter import inspect_lora_gguf
from runtime.model import base_model_path
from runtime.prompt import split

MAX_TOKENS_LIMIT = 512
MAX_INPUT_CHARS = 8000
DEFAULT_N_CTX = 2048
# Each loaded adapter holds its weights in memory (~5 MB for r=32 Q4_0).
DEFAULT_MAX_CACHED_ADAPTERS = 8


class RunLimitError(ValueError):
    """A request outside the interpreter's bounds (input too long, too many tokens)."""


class AdapterLoadError(RuntimeError):
    """llama.cpp refused an adapter that passed validation."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    output: str
    tokens_generated: int
    latency_ms: float


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Interpreter:
    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        max_cached_adapters: int = DEFAULT_MAX_CACHED_ADAPTERS,
    ):
        self.model_path = Path(model_path) if model_path else base_model_path()
        n_threads = n_threads or available_cores()
        self._llm = llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._lock = threading.Lock()
        self._max_cached_adapters = max_cached_adapters
        # (resolved path, mtime_ns, size) -> llama.cpp adapter handle, least recently used first.
        self._adapters: collections.OrderedDict[tuple, llama_cpp.llama_adapter_lora_p] = (
            collections.OrderedDict()
        )

    def run(
        self,
        template: str,
        input_text: str,
        *,
        adapter: Path | str | None = None,
        max_tokens: int = 64,
    ) -> RunResult:
        """Greedy-decode the answer to ``input_text``; ``adapter=None`` runs the bare base model."""
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise RunLimitError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
        if len(input_text) > MAX_INPUT_CHARS:
            raise RunLimitError(f"the input is longer than {MAX_INPUT_CHARS} characters")
        with self._lock:
            started = time.perf_counter()
            prompt = self._prompt_tokens(template, input_text)
            if len(prompt) + max_tokens > self._llm.n_ctx():
                raise RunLimitError(
                    f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_tokens}) "
                    f"exceeds the context of {self._llm.n_ctx()} tokens"
                )
            self._use_adapter(adapter)
            # Start from an empty KV cache on every call: a reused prefix would make
            # the output depend on the previous call (and be wrong across adapters).
            self._llm.reset()
            generated: list[int] = []
            for token in self._llm.generate(prompt, temp=0.0, repeat_penalty=1.0):
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    break
                generated.append(token)
                if len(generated) >= max_tokens:
                    break
            text = self._llm.detokenize(generated).decode("utf-8", errors="replace")
            latency_ms = (time.perf_counter() - started) * 1000
        return RunResult(
            output=text.strip(), tokens_generated=len(generated), latency_ms=latency_ms
        )

    def prompt_tokens(self, template: str, input_text: str) -> list[int]:
        """The token ids a call feeds llama.cpp; training must produce the same ids."""
        with self._lock:
            return self._prompt_tokens(template, input_text)

    def _prompt_tokens(self, template: str, input_text: str) -> list[int]:
        head, tail = split(template)
        return (
            self._llm.tokenize(head.encode(), add_bos=False, special=True)
            + self._llm.tokenize(input_text.encode(), add_bos=False, special=False)
            + self._llm.tokenize(tail.encode(), add_bos=False, special=True)
        )

    def _use_adapter(self, adapter: Path | str | None) -> None:
        if adapter is None:
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            return
        handle = self._load_adapter(Path(adapter))
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
        # Scale 1: llama.cpp multiplies by the file's alpha / rank itself, as PEFT does.
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(self._llm.ctx, handles, 1, scales) != 0:
            raise AdapterLoadError(f"llama.cpp could not apply the adapter {adapter}")

    def _load_adapter(self, path: Path) -> llama_cpp.llama_adapter_lora_p:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return self._adapters[key]
        # Adapters may come from strangers: llama.cpp only sees files that pass validation.
        inspect_lora_gguf(path, base=self.model_path)
        handle = llama_cpp.llama_adapter_lora_init(self._llm.model, str(path).encode())
        if not handle:
            raise AdapterLoadError(f"llama.cpp could not load the adapter {path}")
        self._adapters[key] = handle
        if len(self._adapters) > self._max_cached_adapters:
            # The evicted adapter may be the one still set on the context; detach
            # it before freeing (the caller sets the new one right after).
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            while len(self._adapters) > self._max_cached_adapters:
                _, evicted = self._adapters.popitem(last=False)
                llama_cpp.llama_adapter_lora_free(evicted)
        return handle

    def close(self) -> None:
        """Free the adapters and the model now rather than at garbage collection."""
        with self._lock:
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            for handle in self._adapters.values():
                llama_cpp.llama_adapter_lora_free(handle)
            self._adapters.clear()
            self._llm.close()
