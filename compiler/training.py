"""Fit a program's LoRA adapter on CPU with PyTorch + PEFT.

Speed is the design constraint (a 16-example compile should take well under
two minutes on two cores), and three facts make it cheap:

1. Every training prompt starts with the same text (system turn + the
   pseudo-program), and attention is causal, so the shared prefix can be
   computed once per step and each example attends to it. A batch is packed as
   one sequence ``[prefix][example 1][example 2]...`` with a block mask, so a
   step costs ``P + B*S`` tokens instead of ``B*(P+S)``.
2. LoRA goes on the top ``adapted_layers`` layers only. The layers below are
   frozen and untouched, so their output for every example is computed once,
   before training, and each step runs the top layers alone.
3. The loss covers the answer tokens only (the output then ``<|im_end|>``), so
   the 49k-wide output projection runs on a few positions per example.

Tokenization matches ``pawhub.interpreter`` exactly: the prompt is split at
its placeholder, the two template pieces tokenized with special tokens and the
input as plain text (a test checks the ids agree with llama.cpp's).
"""

import dataclasses
import hashlib
import itertools
import json
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from pawhub.cores import available_cores
from pawhub.model import base_model_path, base_model_sha256
from pawhub.prompt import END_OF_TURN, LATEST_PROMPT_FORMAT, prompt_template, split

# PEFT asks for transformers' deprecated `is_gradient_checkpointing` on each model it
# wraps: a FutureWarning in the compile worker's log on every compile, nothing to act on.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

# PEFT / Hugging Face projection name -> llama.cpp tensor name.
GGUF_PROJECTION_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
_BUILD_MARKER = "paw-base.json"
_FROZEN_PACK = 16  # examples per packed sequence when running the frozen layers


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """Everything that shapes the adapter; the compiler registry pins and hashes these."""

    rank: int = 32
    alpha: float = 32.0
    steps: int = 40
    learning_rate: float = 2e-3
    batch_size: int = 4
    adapted_layers: int = 10  # LoRA on the top N of the base model's layers
    max_input_tokens: int = 128  # longer inputs are cut for training only
    max_output_tokens: int = 64
    seed: int = 0
    # Rewrites of each example trained on beside it (compiler.augment); 0: none.
    augment_variants: int = 0
    # For label examples (a choice output), LoRA on this many top layers instead of
    # adapted_layers; None: the same. Copying needs the lower layers, labels do not.
    label_adapted_layers: int | None = None
    # Each class of answer (an answer the spec repeats is a class; its one-off answers
    # and all rewrites one class together) is drawn as often as the spec's own examples
    # give it, so a rare fixed answer (NONE) is not drowned by rewrites of the others.
    # False, or no rewrites, or one class of answer: every pair alike.
    keep_answer_shares: bool = False
    target_modules: tuple[str, ...] = tuple(GGUF_PROJECTION_NAMES)

    def __post_init__(self):
        unknown = set(self.target_modules) - set(GGUF_PROJECTION_NAMES)
        if unknown:
            raise ValueError(f"unknown target modules: {sorted(unknown)}")
        if min(self.rank, self.steps, self.batch_size, self.adapted_layers) < 1:
            raise ValueError("rank, steps, batch_size and adapted_layers must be positive")
        labels = self.label_adapted_layers
        if self.augment_variants < 0 or (labels is not None and labels < 1):
            raise ValueError("augment_variants must be >= 0 and label_adapted_layers positive")

    def for_labels(self, labels: bool) -> "TrainingParams":
        """These parameters for a spec whose answers are (``labels``) or are not labels."""
        if labels and self.label_adapted_layers is not None:
            return dataclasses.replace(self, adapted_layers=self.label_adapted_layers)
        return self


def ensure_base_hf_dir(target: Path | str, gguf_path: Path | str | None = None) -> Path:
    """A Hugging Face model folder converted from a base GGUF (default: the shipped
    base), built once.

    Training in torch must start from the very weights llama.cpp runs, so the
    folder is made from the GGUF itself (dequantized to fp32), never fetched.
    A marker file, written last, records the GGUF's sha256; a folder without a
    matching one is rebuilt. The folder is built beside the target and renamed
    into place, so concurrent workers never see half a model.
    """
    target = Path(target)
    if gguf_path is None:
        gguf_path, sha256 = base_model_path(), base_model_sha256()
    else:
        gguf_path = Path(gguf_path)
        with gguf_path.open("rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    expected = {"gguf": gguf_path.name, "sha256": sha256}
    marker = target / _BUILD_MARKER
    if _is_built(marker, expected):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # Saved as a plain fp32 model: without this, transformers records the
        # GGUF as a quantization config and reloading the folder needs the GGUF.
        model.hf_quantizer = None
        del model.config.quantization_config
        model.save_pretrained(build)
        tokenizer.save_pretrained(build)
        (build / _BUILD_MARKER).write_text(json.dumps(expected))
        if target.exists() and not _is_built(marker, expected):
            shutil.rmtree(target)  # stale: made from another base GGUF
        try:
            build.rename(target)
        except OSError:
            # Another worker renamed its folder into place first; it is as good as ours.
            if not _is_built(marker, expected):
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def _is_built(marker: Path, expected: dict) -> bool:
    return marker.is_file() and json.loads(marker.read_text()) == expected


@dataclasses.dataclass
class _Example:
    suffix_ids: list[int]  # input, then the template tail, then the answer
    answer_len: int  # answer tokens at the end of suffix_ids (output + end of turn)


def fit_lora(
    *,
    base_dir: Path | str,
    pairs: list[tuple[str, str]],
    pseudo_program: str,
    params: TrainingParams,
    prompt_format: int = LATEST_PROMPT_FORMAT,
    progress: Callable[[float], None] | None = None,
    originals: int | None = None,
) -> dict[str, np.ndarray]:
    """Train a LoRA on ``pairs`` (input, output) in prompts of ``prompt_format``
    (``pawhub.prompt``); same arguments give the same tensors.

    ``originals``: how many of the first pairs are the spec's own examples, the
    rest being rewrites of them (``compiler.augment.derive``'s order); None: all.

    Returns ``blk.{i}.{proj}.weight.lora_a`` / ``.lora_b`` arrays in Hugging
    Face row order, ready for ``compiler.gguf_adapter.write_lora_gguf``.
    """
    if not pairs:
        raise ValueError("training needs at least one example")
    torch.set_num_threads(available_cores())
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.eval()  # no dropout; the base stays frozen
    n_layers = model.config.num_hidden_layers
    first_adapted = n_layers - min(params.adapted_layers, n_layers)
    layers = model.model.layers

    head, tail = split(prompt_template(pseudo_program, prompt_format))
    prefix_ids = _tokenize(tokenizer, head, special=True)
    examples = [_example(tokenizer, tail, i, o, params) for i, o in pairs]

    # Frozen lower layers: run once for all examples, keep their output.
    with torch.no_grad():
        prefix_h = model.model.embed_tokens(torch.tensor([prefix_ids]))[0]
        suffix_hs = [model.model.embed_tokens(torch.tensor([e.suffix_ids]))[0] for e in examples]
        if first_adapted > 0:
            # In packs of bounded size: attention memory grows with the square
            # of the packed length.
            frozen = []
            for start in range(0, len(suffix_hs), _FROZEN_PACK):
                pack = suffix_hs[start : start + _FROZEN_PACK]
                frozen_prefix, outs = _run_packed(model, layers[:first_adapted], prefix_h, pack)
                frozen += outs
            prefix_h, suffix_hs = frozen_prefix, frozen

    lora_config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(params.target_modules),
        layers_to_transform=list(range(first_adapted, n_layers)),
    )
    # PEFT wraps the projections of `model` in place; we keep driving `model`.
    peft_model = get_peft_model(model, lora_config)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=0.0)
    # Linear decay to zero: with a few dozen steps, a high start and a soft landing.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / params.steps)

    shares = None
    if params.keep_answer_shares and originals is not None and originals < len(pairs):
        shares = _answer_shares(pairs, originals, rng)
    # Without rewrites, or with one class of answer, epochs already keep the shares.
    draw = shares or _epochs(len(examples), rng)
    for step in range(params.steps):
        batch = [draw() for _ in range(min(params.batch_size, len(examples)))]
        prefix_out, suffix_outs = _run_packed(
            model, layers[first_adapted:], prefix_h, [suffix_hs[i] for i in batch]
        )
        del prefix_out  # it only matters through attention, already inside suffix_outs
        # The answer's tokens are predicted from the positions just before them.
        predicting = torch.cat(
            [
                out[len(examples[i].suffix_ids) - examples[i].answer_len - 1 : -1]
                for out, i in zip(suffix_outs, batch, strict=True)
            ]
        )
        targets = torch.tensor(
            [t for i in batch for t in examples[i].suffix_ids[-examples[i].answer_len :]]
        )
        logits = model.lm_head(model.model.norm(predicting))
        loss = torch.nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if progress is not None:
            progress((step + 1) / params.steps)

    return _lora_tensors(model, first_adapted, params.target_modules)


def _epochs(total: int, rng) -> Callable[[], int]:
    """Draws the pairs in epochs, each shuffled: every pair alike."""
    order: list[int] = []

    def draw() -> int:
        if not order:
            order.extend(range(total))
            rng.shuffle(order)
        return order.pop()

    return draw


def _answer_shares(pairs, originals: int, rng) -> Callable[[], int] | None:
    """Draws a class of answer as often as the first ``originals`` pairs (the spec's
    own examples) give it, then one of its pairs, in shuffled epochs within each
    class. Classes: each answer that two or more of the spec's own examples give,
    and one class for every other pair (one-off answers, rewrites)."""
    counts: dict[str, int] = {}
    for _, answer in pairs[:originals]:
        counts[answer.strip()] = counts.get(answer.strip(), 0) + 1
    members: dict[str | None, list[int]] = {}
    for k, (_, answer) in enumerate(pairs):
        key = answer.strip() if counts.get(answer.strip(), 0) >= 2 else None
        members.setdefault(key, []).append(k)
    classes = list(members)
    if len(classes) < 2:
        return None
    own = [sum(1 for k in members[c] if k < originals) for c in classes]
    cumulative = list(itertools.accumulate(max(n, 1) for n in own))
    orders: dict[str | None, list[int]] = {c: [] for c in classes}

    def draw() -> int:
        (c,) = rng.choices(classes, cum_weights=cumulative)
        if not orders[c]:
            orders[c] = list(members[c])
            rng.shuffle(orders[c])
        return orders[c].pop()

    return draw


def _tokenize(tokenizer, text: str, *, special: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]


def _example(tokenizer, tail: str, input_text: str, output_text: str, params) -> _Example:
    input_ids = _tokenize(tokenizer, input_text, special=False)[: params.max_input_tokens]
    tail_ids = _tokenize(tokenizer, tail, special=True)
    answer = _tokenize(tokenizer, output_text.strip(), special=False)
    if len(answer) < params.max_output_tokens:
        answer.append(tokenizer.convert_tokens_to_ids(END_OF_TURN))
    else:
        # An answer cut short must not be taught to end there.
        answer = answer[: params.max_output_tokens]
    return _Example(suffix_ids=input_ids + tail_ids + answer, answer_len=len(answer))


def _run_packed(model, layers, prefix_h, suffix_hs):
    """Run ``layers`` over ``[prefix][suffix 1][suffix 2]...`` as one sequence.

    The mask lets each suffix attend to the prefix and causally to itself, and
    position ids restart after the prefix for every suffix, so each suffix is
    computed exactly as if it followed the prefix alone (as at inference).
    """
    prefix_len = prefix_h.shape[0]
    lengths = [h.shape[0] for h in suffix_hs]
    hidden = torch.cat([prefix_h, *suffix_hs])[None]
    positions, mask = packed_layout(prefix_len, lengths)
    position_embeddings = model.model.rotary_emb(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_ids=positions,
            position_embeddings=position_embeddings,
        )
    hidden = hidden[0]
    return hidden[:prefix_len], list(torch.split(hidden[prefix_len:], lengths))


def packed_layout(prefix_len: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ids (1, L) and boolean attention mask (1, 1, L, L) of the packed
    sequence ``[prefix][suffix 1][suffix 2]...`` with suffixes of ``lengths``:
    each suffix sees the prefix and itself causally, its positions following the
    prefix's."""
    segment = torch.cat(
        [torch.full((prefix_len,), -1)] + [torch.full((n,), k) for k, n in enumerate(lengths)]
    )
    positions = torch.cat(
        [torch.arange(prefix_len)] + [torch.arange(prefix_len, prefix_len + n) for n in lengths]
    )[None]
    index = torch.arange(segment.shape[0])
    causal = index[None, :] <= index[:, None]
    same_segment = (segment[None, :] == -1) | (segment[None, :] == segment[:, None])
    return positions, (causal & same_segment)[None, None]


def _lora_tensors(model, first_adapted, target_modules) -> dict[str, np.ndarray]:
    tensors = {}
    for i in range(first_adapted, model.config.num_hidden_layers):
        layer = model.model.layers[i]
        for hf_name in target_modules:
            parent = (
                layer.self_attn
                if hf_name in ("q_proj", "k_proj", "v_proj", "o_proj")
                else layer.mlp
            )
            module = getattr(parent, hf_name)
            stem = f"blk.{i}.{GGUF_PROJECTION_NAMES[hf_name]}.weight"
            tensors[f"{stem}.lora_a"] = module.lora_A["default"].weight.detach().numpy().copy()
            tensors[f"{stem}.lora_b"] = module.lora_B["default"].weight.detach().numpy().copy()
    return tensors
