"""Run programs on llama.cpp: one loaded base model, adapters hot-swapped per call.

A ``Llama`` object is not safe to use from two threads at once (concurrent use
crashes the process), so every call holds one lock; a process scales by
running more processes, each with its own ``Interpreter``.

Prefix cache. A program's prompt is head + input + tail (``pawhub.prompt.split``),
and the head (system turn and pseudo-program) is the same on every call. Its
keys and values are computed once and kept, so a call only processes its
input and the short tail. The head is computed with the program's adapter
applied (a LoRA on the k/v projections changes them), so a cached head belongs
to one (adapter, head) pair. Two levels:

- the context itself: a call to the program that ran last keeps the head's KV
  where it is and drops everything after it (no copy at all);
- ``PrefixCache``: llama.cpp's per-sequence state of the head (only its KV
  cells, ~23 KB a token for SmolLM2, so ~3 MB for a typical head), an LRU
  bounded by total bytes; switching programs restores it in about a millisecond.

Greedy decoding is deterministic, and restoring the exact KV of the head gives
the same answer as evaluating the whole prompt (tests/runtime checks this).

Guided decoding. A program whose answers are held to an output constraint
(``pawhub.constraint``: one of its labels, or a span of the input) is decoded
token by token here instead of by llama.cpp's sampler: each step takes the most
likely token whose text keeps the answer valid, and a label answer ends as soon
as one label is left, without decoding the rest of it or the end of turn.
"""

import collections
import ctypes
import os
import threading
import time
from pathlib import Path

import llama_cpp
import numpy as np

from pawhub.adapter import inspect_lora_gguf
from pawhub.calls import (  # noqa: F401 (the bounds are part of this module's interface)
    DEFAULT_MAX_TOKENS,
    MAX_INPUT_CHARS,
    MAX_TOKENS_LIMIT,
    RunLimitError,
    RunResult,
    RunTimeout,
    check_request,
)
from pawhub.constraint import Guide, OutputConstraint
from pawhub.cores import available_cores
from pawhub.guided import Vocabulary, allowed_tokens
from pawhub.model import load_llama, runtime_model_path
from pawhub.prompt import split

DEFAULT_N_CTX = 2048
# ~1 s of prompt processing on 2 cores: how often a long prompt checks the clock.
EVAL_CHUNK_TOKENS = 128
# Each loaded adapter holds its weights in memory (~2-6 MB for r=32 Q4_0).
DEFAULT_MAX_CACHED_ADAPTERS = 8
# ~80 program heads of ~140 tokens; a worker's memory is dominated by this and the model.
DEFAULT_PREFIX_CACHE_BYTES = 256 * 1024 * 1024
HEAD_TOKENS_CACHED = 256


class AdapterLoadError(RuntimeError):
    """llama.cpp refused an adapter that passed validation."""


class PrefixCache:
    """KV states of prompt heads by (adapter, head), least recently used first,
    bounded by their total size in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._states: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: tuple) -> bytes | None:
        state = self._states.get(key)
        if state is None:
            self.misses += 1
            return None
        self.hits += 1
        self._states.move_to_end(key)
        return state

    def put(self, key: tuple, state: bytes) -> None:
        if len(state) > self.max_bytes:
            return
        if key in self._states:
            self.bytes -= len(self._states.pop(key))
        self._states[key] = state
        self.bytes += len(state)
        while self.bytes > self.max_bytes:
            _, evicted = self._states.popitem(last=False)
            self.bytes -= len(evicted)


class Interpreter:
    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        max_cached_adapters: int = DEFAULT_MAX_CACHED_ADAPTERS,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
    ):
        """``model_path`` defaults to the runtime's copy of the base
        (``pawhub.model.runtime_model_path``). ``prefix_cache_bytes=0`` turns the
        prefix cache off: every call then evaluates its whole prompt (the
        benchmark's and the tests' reference)."""
        self.model_path = Path(model_path) if model_path else runtime_model_path()
        n_threads = n_threads or available_cores()
        self._llm = load_llama(
            self.model_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
        self._n_vocab = self._llm.n_vocab()
        self._vocabulary = Vocabulary(self._llm)  # token bytes and ends, for guided decoding
        self._heads: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        self._rng = np.random.default_rng()
        self._lock = threading.Lock()
        self._max_cached_adapters = max_cached_adapters
        # (resolved path, mtime_ns, size) -> llama.cpp adapter handle, least recently used first.
        self._adapters: collections.OrderedDict[tuple, llama_cpp.llama_adapter_lora_p] = (
            collections.OrderedDict()
        )
        self._active_adapter: tuple | None = None  # the key of the adapter set on the context
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        # (adapter key, head) whose KV fills the context's first cells, if any.
        self._resident: tuple | None = None
        self._deadline: float | None = None  # time.monotonic() value of the current call

    def run(
        self,
        template: str,
        input_text: str,
        *,
        adapter: Path | str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        timeout_s: float | None = None,
        constraint: OutputConstraint | None = None,
    ) -> RunResult:
        """Decode the answer to ``input_text`` (greedy unless ``temperature`` > 0);
        ``adapter=None`` runs the bare base model, ``constraint`` holds the answer
        to the program's output constraint (``pawhub.constraint``). Raises
        ``RunLimitError`` for a request out of bounds and ``RunTimeout`` past
        ``timeout_s`` seconds."""
        check_request(input_text, max_tokens=max_tokens, temperature=temperature)
        head, tail = split(template)
        guide = None if constraint is None or constraint.is_free else Guide(constraint, input_text)
        with self._lock:
            started = time.perf_counter()
            if timeout_s is not None:
                self._deadline = time.monotonic() + timeout_s
            try:
                prompt = self._prompt(head, input_text, tail, adapter, max_tokens)
                if guide is None:
                    generated = self._generate(prompt, max_tokens, temperature)
                    text = self._llm.detokenize(generated)
                    tokens_generated = len(generated)
                else:
                    text, tokens_generated = self._decode_guided(
                        prompt, guide, max_tokens, temperature
                    )
            except BaseException as exc:
                # Whatever the context holds now is not a known head any more.
                self._resident = None
                if self._deadline is not None and time.monotonic() > self._deadline:
                    raise RunTimeout(f"the program ran longer than {timeout_s:g} s") from exc
                raise
            finally:
                self._deadline = None
            latency_ms = (time.perf_counter() - started) * 1000
        return RunResult(
            output=text.decode("utf-8", errors="replace").strip(),
            tokens_generated=tokens_generated,
            latency_ms=latency_ms,
        )

    def _prompt(self, head, input_text, tail, adapter, max_tokens) -> list[int]:
        """Set up the context for a call (the adapter on, the head's KV in place,
        a long prompt evaluated but for its last piece); that last piece, for the
        decoding to evaluate."""
        head_tokens, suffix = self._prompt_pieces(head, input_text, tail)
        prompt_length = len(head_tokens) + len(suffix)
        if prompt_length + max_tokens > self._llm.n_ctx():
            raise RunLimitError(
                f"the prompt ({prompt_length} tokens) plus max_tokens ({max_tokens}) "
                f"exceeds the context of {self._llm.n_ctx()} tokens"
            )
        adapter_key = self._use_adapter(adapter)
        if self.prefix_cache.max_bytes:
            self._restore_head((adapter_key, head), head_tokens)
            prompt = suffix
        else:
            self._llm.reset()
            prompt = head_tokens + suffix
        # A long prompt (and a long head, in _restore_head) goes in pieces so the
        # deadline is checked between them. (llama.cpp's abort callback would check
        # it inside a decode, but a Python callback there runs thousands of times a
        # call and doubled its cost.)
        while len(prompt) > EVAL_CHUNK_TOKENS:
            self._llm.eval(prompt[:EVAL_CHUNK_TOKENS])
            prompt = prompt[EVAL_CHUNK_TOKENS:]
            self._check_deadline()
        return prompt

    def _generate(self, prompt, max_tokens, temperature) -> list[int]:
        generated: list[int] = []
        # reset=False: the context already holds exactly what precedes `prompt`.
        tokens = self._llm.generate(prompt, temp=temperature, repeat_penalty=1.0, reset=False)
        for token in tokens:
            if self._vocabulary.is_end(token):
                break
            generated.append(token)
            if len(generated) >= max_tokens:
                break
            self._check_deadline()
        return generated

    def _decode_guided(self, prompt, guide: Guide, max_tokens, temperature) -> tuple[bytes, int]:
        """Decode the answer within ``guide``: at each step the most likely token
        (or one sampled, with ``temperature``) among those that keep the answer
        valid; the end of turn only once the answer is whole. Returns the answer's
        bytes and how many tokens were decoded for it."""
        answer, decoded = b"", 0
        self._llm.eval(prompt)
        while True:
            token = self._next_allowed(guide, answer, temperature)
            if token is None:  # the answer is whole
                return answer, decoded
            answer += self._vocabulary.piece(token)
            decoded += 1
            settled = guide.settled(answer)
            if settled is not None:
                return settled.encode(), decoded
            if decoded >= max_tokens:
                return answer, decoded
            self._check_deadline()
            self._llm.eval([token])

    def _next_allowed(self, guide: Guide, answer: bytes, temperature: float) -> int | None:
        """The next token within ``guide``, or None to end the answer here."""
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._llm.ctx, -1), shape=(self._n_vocab,)
        )
        greedy = temperature <= 0
        allowed = allowed_tokens(
            guide,
            answer,
            logits,
            piece=self._vocabulary.piece,
            is_end=self._vocabulary.is_end,
            first=greedy,
        )
        if not allowed:
            return None
        if greedy:
            token = allowed[0]
        else:
            weights = np.exp((logits[allowed] - logits[allowed].max()) / temperature)
            token = allowed[int(self._rng.choice(len(allowed), p=weights / weights.sum()))]
        return None if self._vocabulary.is_end(token) else token

    def _restore_head(self, key: tuple, head_tokens: list[int]) -> None:
        """Leave the context holding exactly the KV of ``head_tokens`` under ``key``."""
        llm = self._llm
        if self._resident == key:
            # The program that ran last: its head is still there; the next eval
            # drops the cells after it.
            self.prefix_cache.hits += 1
            llm.n_tokens = len(head_tokens)
            return
        self._resident = None
        llm.reset()
        state = self.prefix_cache.get(key)
        if state is not None:
            # Empty every cell without zeroing the buffers: zeroing the whole context's
            # KV (~47 MB) took 6 of a swap's 10 ms.
            llama_cpp.llama_memory_clear(llm._ctx.memory, False)
            # llama.cpp only reads the state: point at the bytes, no copy.
            source = ctypes.cast(ctypes.c_char_p(state), ctypes.POINTER(ctypes.c_uint8))
            if llama_cpp.llama_state_seq_set_data(llm.ctx, source, len(state), 0) != len(state):
                raise RuntimeError("llama.cpp could not restore a cached prompt head")
            llm.input_ids[: len(head_tokens)] = head_tokens
            llm.n_tokens = len(head_tokens)
        else:
            for start in range(0, len(head_tokens), EVAL_CHUNK_TOKENS):
                llm.eval(head_tokens[start : start + EVAL_CHUNK_TOKENS])
                self._check_deadline()
            self.prefix_cache.put(key, self._sequence_state())
        self._resident = key

    def _sequence_state(self) -> bytes:
        size = llama_cpp.llama_state_seq_get_size(self._llm.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self._llm.ctx, buffer, size, 0)
        return bytes(buffer[:written])

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise RunTimeout("past the deadline")  # run() words it for the caller

    def prompt_tokens(self, template: str, input_text: str) -> list[int]:
        """The token ids a call feeds llama.cpp; training must produce the same ids."""
        head, tail = split(template)
        with self._lock:
            head_tokens, suffix = self._prompt_pieces(head, input_text, tail)
            return head_tokens + suffix

    def _prompt_pieces(self, head: str, input_text: str, tail: str) -> tuple[list[int], list[int]]:
        """The head's tokens, and the input's followed by the tail's."""
        suffix = self._tokenize(input_text, special=False) + self._tokenize(tail, special=True)
        return self._head_tokens(head), suffix

    def _head_tokens(self, head: str) -> list[int]:
        """The head's tokens, remembered for the recent heads (tokenizing one
        costs ~1 ms, a tenth of a warm call)."""
        tokens = self._heads.get(head)
        if tokens is None:
            tokens = self._heads[head] = self._tokenize(head, special=True)
            if len(self._heads) > HEAD_TOKENS_CACHED:
                self._heads.popitem(last=False)
        else:
            self._heads.move_to_end(head)
        return tokens

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        # The input is plain text (special=False): an input that contains
        # <|im_end|> cannot end the user turn early.
        return self._llm.tokenize(text.encode(), add_bos=False, special=special)

    def _use_adapter(self, adapter: Path | str | None) -> tuple | None:
        """Set ``adapter`` on the context (a no-op when it is already set); its key."""
        if adapter is None:
            if self._active_adapter is not None:
                llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
                self._active_adapter = None
            return None
        key, handle = self._load_adapter(Path(adapter))
        if key == self._active_adapter:
            return key
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
        # Scale 1: llama.cpp multiplies by the file's alpha / rank itself, as PEFT does.
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(self._llm.ctx, handles, 1, scales) != 0:
            raise AdapterLoadError(f"llama.cpp could not apply the adapter {adapter}")
        self._active_adapter = key
        return key

    def _load_adapter(self, path: Path) -> tuple[tuple, llama_cpp.llama_adapter_lora_p]:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return key, self._adapters[key]
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
            self._active_adapter = None
            while len(self._adapters) > self._max_cached_adapters:
                _, evicted = self._adapters.popitem(last=False)
                llama_cpp.llama_adapter_lora_free(evicted)
        return key, handle

    def close(self) -> None:
        """Free the adapters and the model now rather than at garbage collection."""
        with self._lock:
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            for handle in self._adapters.values():
                llama_cpp.llama_adapter_lora_free(handle)
            self._adapters.clear()
            self._active_adapter = self._resident = None
            self._llm.close()


_shared: Interpreter | None = None
_shipped: Interpreter | None = None
_shared_lock = threading.Lock()


def shared_interpreter() -> Interpreter:
    """The process's one interpreter, loaded on first use (in a Celery worker,
    after the fork: a llama.cpp context must never be shared across a fork).

    ``RUNTIME_THREADS`` in the environment sets its threads (default: every
    core this process may use). With several runtime processes on one machine
    give each its share: llama.cpp's threads spin while they wait for each
    other, so threads beyond the free cores slow every call down."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Interpreter(n_threads=int(os.environ.get("RUNTIME_THREADS") or 0) or None)
        return _shared


def shipped_interpreter() -> Interpreter:
    """The process's interpreter on the shipped base file itself (Q4_1, as the
    official PAW SDK runs a program locally, where the runtime runs its Q8_0
    copy), loaded on first use with the runtime's threads: what measures how
    often the SDK's free decoding gives a program's constrained answers."""
    global _shipped
    with _shared_lock:
        if _shipped is None:
            from pawhub.model import base_model_path

            _shipped = Interpreter(
                base_model_path(),
                n_threads=int(os.environ.get("RUNTIME_THREADS") or 0) or None,
                prefix_cache_bytes=32 * 1024 * 1024,
            )
        return _shipped
