"""The GPU engine: vLLM with multi-LoRA, one ``LLM`` per worker process.

vLLM is imported here and nowhere else, and only when the engine is made:
the CPU default never needs it installed. It runs on the Hugging Face copy
of the very base GGUF llama.cpp runs (``compiler.training.ensure_base_hf_dir``),
and scores each program's adapter from its GGUF, dequantized into a PEFT
folder (``compiler.peft_adapter``): the weights checked are the ones shipped.

A batch goes to vLLM as one ``generate`` call, each request with its own
``LoRARequest``, so the self-check and held-out examples of a program (and
the sets of several programs) are decoded together. A request with an output
constraint is decoded within it by the logits processor of
``compiler.engines.vllm_guided``, which applies ``pawhub.constraint.Guide``
step for step as the llama.cpp runtime does (``compiler.engines.guided``), so
a batch mixes guided and free requests, and programs, freely. The same engine
serves the runtime's calls on GPU hosts (``runtime.batching``).

The engine core runs inside the worker process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``
unless the environment says otherwise): a Celery pool process that is killed at
its hard time limit then takes the engine with it instead of leaving an
orphaned engine process holding the GPU, and no process is ever forked from a
worker whose torch has already started its threads. (Starting, vLLM cuts torch's
CPU threads to one unless OMP_NUM_THREADS is set; training sets its own, so the
LoRA fit that follows in the same process keeps every core.)
"""

import collections
import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

from compiler.peft_adapter import write_peft_adapter
from compiler.registry import SNAPSHOTS
from pawhub.adapter import inspect_lora_gguf
from pawhub.model import base_model_path
from pawhub.prompt import split

from . import BASE_HF_DIR, Completion, Engine, Request
from .guided import end_of_generation_ids, final_answer, guide_args, token_pieces

MAX_MODEL_LEN = 2048  # the runtime's context (pawhub.interpreter.DEFAULT_N_CTX)
# The engine is sized for the largest adapter rank a vLLM snapshot trains (LoRA
# compute is padded to it); a larger adapter is refused.
MAX_LORA_RANK = max(s.training["rank"] for s in SNAPSHOTS if s.engine == "vllm")
# Adapters one batch step may mix: a runtime batch holds calls of many programs
# (benchmarks/gpu.py: 8), and a rank-32 LoRA of a 135M model is a few MB.
MAX_LORAS = 8
# PEFT folders kept converted; vLLM itself keeps the most recent ones loaded.
MAX_CACHED_ADAPTERS = 32
# vLLM sizes its KV cache from this share of the device's memory (on CPU, of
# the host's); a 135M model needs little, and the host runs other work too.
MEMORY_UTILIZATION = 0.4


class VllmEngine(Engine):
    name = "vllm"

    def __init__(self, base_dir: Path | str):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM
        from vllm.platforms import current_platform

        from .vllm_guided import processor_class, use_model_runner_v2

        # The guide's logits processor comes in each model runner's interface: pin
        # the runner vLLM would choose, and pass the matching one.
        v2 = use_model_runner_v2()
        os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "1" if v2 else "0"

        self._llm = LLM(
            model=str(base_dir),
            # float32 on CPU (bfloat16 kernels need CPU support we can't assume);
            # bfloat16 on GPUs, where the LoRA kernels want half precision.
            dtype="float32" if current_platform.is_cpu() else "bfloat16",
            max_model_len=MAX_MODEL_LEN,
            enable_lora=True,
            max_lora_rank=MAX_LORA_RANK,
            max_loras=MAX_LORAS,
            gpu_memory_utilization=MEMORY_UTILIZATION,
            seed=0,
            logits_processors=[processor_class(v2)],
        )
        self._tokenizer = self._llm.get_tokenizer()
        # Every token llama.cpp ends an answer at, and each token's bytes as it spells them.
        self._end_of_generation = sorted(end_of_generation_ids(self._tokenizer))
        self._pieces = token_pieces(self._tokenizer)
        self._lock = threading.Lock()  # an LLM serves one caller at a time
        self._folders = Path(tempfile.mkdtemp(prefix="paw-vllm-adapters-"))
        weakref.finalize(self, shutil.rmtree, self._folders, True)  # at the latest, at exit
        # (resolved path, mtime_ns, size) of an adapter GGUF -> its LoRARequest.
        self._adapters: collections.OrderedDict = collections.OrderedDict()
        self._next_lora_id = 1

    def generate(self, requests: list[Request]) -> list[Completion]:
        from vllm import SamplingParams

        if not requests:
            return []
        with self._lock:
            prompts = [
                {"prompt_token_ids": self._prompt_ids(r.template, r.input)} for r in requests
            ]
            sampling = [
                SamplingParams(
                    temperature=r.temperature,
                    max_tokens=r.max_tokens,
                    stop_token_ids=self._end_of_generation,
                    extra_args=None if r.constraint.is_free else guide_args(r.constraint, r.input),
                )
                for r in requests
            ]
            loras = [self._lora(r.adapter) for r in requests]
            outputs = self._llm.generate(prompts, sampling, lora_request=loras, use_tqdm=False)
            self._evict(keep={lora.lora_int_id for lora in loras if lora is not None})
        return [
            self._completion(request, output.outputs[0])
            for request, output in zip(requests, outputs, strict=True)
        ]

    def _completion(self, request: Request, output) -> Completion:
        tokens = [t for t in output.token_ids if t not in self._end_of_generation]
        if request.constraint.is_free:
            text = output.text.strip()
        else:
            # The answer's bytes as the runtime's guided decoding joins them (a settled
            # label whole).
            answer = b"".join(self._pieces[t] for t in tokens)
            text = final_answer(request.constraint, request.input, answer)
        return Completion(text, truncated=output.finish_reason == "length", tokens=len(tokens))

    def _prompt_ids(self, template: str, input_text: str) -> list[int]:
        # The runtime's tokenization (pawhub.interpreter, compiler.training): the
        # template's pieces may hold special tokens, the input never does.
        head, tail = split(template)
        return (
            self._ids(head, special=True)
            + self._ids(input_text, special=False)
            + self._ids(tail, special=True)
        )

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return self._tokenizer(text, add_special_tokens=False, split_special_tokens=not special)[
            "input_ids"
        ]

    def _lora(self, adapter: Path | None):
        """The ``LoRARequest`` for an adapter GGUF (None for the bare base model)."""
        from vllm.lora.request import LoRARequest

        if adapter is None:
            return None
        path = Path(adapter)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return self._adapters[key]
        # Adapters may come from strangers: vLLM only sees files that pass validation.
        summary = inspect_lora_gguf(path, base=base_model_path())
        if summary.rank > MAX_LORA_RANK:
            raise ValueError(f"adapter rank {summary.rank} is over the engine's {MAX_LORA_RANK}")
        lora_id = self._next_lora_id
        self._next_lora_id += 1
        folder = write_peft_adapter(path, self._folders / str(lora_id))
        self._adapters[key] = LoRARequest(f"adapter-{lora_id}", lora_id, str(folder))
        return self._adapters[key]

    def _evict(self, *, keep: set[int]) -> None:
        """Drop the least recently used adapters over ``MAX_CACHED_ADAPTERS``, after a
        batch (never one it used: a batch may hold more programs than the cache)."""
        for key, lora in list(self._adapters.items()):
            if len(self._adapters) <= MAX_CACHED_ADAPTERS:
                break
            if lora.lora_int_id in keep:
                continue
            del self._adapters[key]
            # vLLM keeps a loaded adapter in memory; its folder is only read on load.
            self._llm.llm_engine.remove_lora(lora.lora_int_id)
            shutil.rmtree(lora.lora_path, ignore_errors=True)


_shared: VllmEngine | None = None
_shared_lock = threading.Lock()


def shared_engine(model_cache: Path | str) -> VllmEngine:
    """The process's one vLLM engine, started on first use (in a Celery worker,
    after the fork) and kept for every later job: starting one takes ~30 s."""
    global _shared
    with _shared_lock:
        if _shared is None:
            # Imported here: torch is only ever loaded in compile workers.
            from compiler.training import ensure_base_hf_dir

            _shared = VllmEngine(ensure_base_hf_dir(Path(model_cache) / BASE_HF_DIR))
        return _shared
