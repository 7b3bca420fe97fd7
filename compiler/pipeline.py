"""The compile pipeline: spec -> pseudo-program -> LoRA -> Q4_0 GGUF -> checked -> .paw.

Plain Python over files in a work directory, no Django: the Celery task owns
the job row and moves the finished directory into place. `report(stage,
fraction)` is called often; it raises to stop the pipeline (cancellation).
The model steps (drafting a pseudo-program, scoring the adapter) go through the
snapshot's engine (`compiler.engines`): llama.cpp by default, vLLM on GPU hosts.
"""

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pawhub import manifest
from pawhub.adapter import inspect_lora_gguf
from pawhub.bundle import BundleMeta, version_for, write_bundle
from pawhub.constraint import CHOICE, OutputConstraint, infer
from pawhub.model import BASE_MODEL_ID, base_model_sha256
from pawhub.prompt import prompt_template

from . import engines
from .augment import derive
from .gguf_adapter import write_lora_gguf
from .pseudo import pseudo_program
from .registry import Snapshot
from .spec import ParsedSpec, validate_spec

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.gguf"
BUNDLE_FILE = "program.paw"
# Held-out scoring needs enough examples left to train on.
HOLDOUT_MIN_EXAMPLES = 8


@dataclass
class CompileResult:
    pseudo_program: str
    prompt_template: str
    example_count: int
    selfcheck_accuracy: float
    heldout_accuracy: float | None
    heldout_count: int
    sdk_agreement: float  # see sdk_agreement()
    adapter_size: int
    adapter_sha256: str
    bundle_size: int
    bundle_sha256: str
    stage_seconds: dict = field(default_factory=dict)
    # pawhub.constraint.OutputConstraint.to_dict(); {} is free.
    output_constraint: dict = field(default_factory=dict)


def interpreter():
    """The process's one llama.cpp interpreter, shared with the runtime tasks and the
    llama.cpp engine (benchmarks/quality.py calls it by this name)."""
    from pawhub.interpreter import shared_interpreter

    return shared_interpreter()


def sdk_agreement(
    template, adapter, examples, hub_answers, *, max_tokens=engines.VALIDATION_MAX_TOKENS
) -> float:
    """The share of ``examples`` on which the program decoded freely on the shipped
    base file -- as the official PAW SDK runs a program locally -- answers what it
    answers within its output constraint on the hub (``hub_answers``, in order).
    The program page shows it, so a user knows whether the SDK's local run will do."""
    from pawhub.interpreter import shipped_interpreter

    run = shipped_interpreter().run
    free = [
        run(template, text, adapter=adapter, max_tokens=max_tokens).output for text, _ in examples
    ]
    same = sum(a == b for a, b in zip(free, hub_answers, strict=True))
    return same / len(examples) if examples else 1.0


def split_examples(examples):
    """(train, held_out): every fourth example is held out once there are enough."""
    if len(examples) < HOLDOUT_MIN_EXAMPLES:
        return list(examples), []
    held_out = [ex for i, ex in enumerate(examples) if i % 4 == 3]
    train = [ex for i, ex in enumerate(examples) if i % 4 != 3]
    return train, held_out


def task_text(parsed: ParsedSpec) -> str:
    if not parsed.hints:
        return parsed.task
    return parsed.task + " Hints: " + "; ".join(parsed.hints)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_pipeline(*, program_id, spec, snapshot: Snapshot, workdir: Path, report, model_cache):
    # Imported here, not at module top: torch is only ever loaded in compile workers.
    from .training import TrainingParams, ensure_base_hf_dir, fit_lora

    seconds = {}
    clock = time.perf_counter()

    def enter(stage):
        nonlocal clock
        now = time.perf_counter()
        if seconds:
            seconds[next(reversed(seconds))] = round(now - clock, 2)
        seconds[stage] = 0.0
        clock = now
        report(stage, 0.0)

    enter("parsing")
    parsed = validate_spec(spec)

    enter("pseudo-program")
    engine = engines.for_snapshot(snapshot, model_cache=model_cache)
    if snapshot.pseudo_program == "drafted":
        pseudo = engine.draft_pseudo_program(task_text(parsed), parsed.examples)
    else:
        pseudo = pseudo_program(task_text(parsed), parsed.examples)
    template = prompt_template(pseudo, snapshot.prompt_format)
    # From all of the spec's examples: what the answers may be is part of the spec.
    constraint = (
        infer(parsed.examples, rules=snapshot.constraint_rules)
        if snapshot.constrained_output
        else OutputConstraint()
    )
    train, held_out = split_examples(parsed.examples)

    enter("training")
    params = TrainingParams(**snapshot.training).for_labels(infer(parsed.examples).kind == CHOICE)
    base_dir = ensure_base_hf_dir(Path(model_cache) / engines.BASE_HF_DIR)
    tensors = fit_lora(
        base_dir=base_dir,
        pairs=derive(train, variants=params.augment_variants, seed=params.seed),
        pseudo_program=pseudo,
        params=params,
        prompt_format=snapshot.prompt_format,
        progress=lambda fraction: report("training", fraction),
        originals=len(train),
    )

    enter("quantizing")
    adapter = workdir / ADAPTER_FILE
    write_lora_gguf(
        adapter, tensors, rank=params.rank, alpha=params.alpha, quant=snapshot.adapter_quant
    )

    enter("validating")
    inspect_lora_gguf(adapter, base=snapshot.base_model)
    # The spec's own examples and the held-out ones, decoded as one batch.
    sets = [engines.ScoringSet(template, train, adapter, constraint)]
    if held_out:
        sets.append(engines.ScoringSet(template, held_out, adapter, constraint))
    answers = engine.decode_sets(sets)
    selfcheck = engines.exact_match(answers[0], train)
    heldout = engines.exact_match(answers[1], held_out) if held_out else None
    agreement = sdk_agreement(template, adapter, train + held_out, sum(answers, []))

    enter("packaging")
    bundle = workdir / BUNDLE_FILE
    meta = BundleMeta(
        program_id=program_id,
        spec=spec,
        compiler_snapshot=snapshot.name,
        compiler_fingerprint=snapshot.fingerprint,
        base_model_id=BASE_MODEL_ID,
        base_model_sha256=base_model_sha256(),
        lora_rank=params.rank,
        lora_alpha=float(params.alpha),
        adapter_quantization=snapshot.adapter_quant,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        output=constraint.to_dict(),
        version=version_for(constraint),
        interpreter=manifest.INTERPRETER,
        runtime_id=manifest.RUNTIME_ID,
        runtime_manifest_version=manifest.MANIFEST_VERSION,
    )
    write_bundle(
        bundle, meta=meta, adapter_path=adapter, prompt_template=template, pseudo_program=pseudo
    )
    enter("done")
    seconds.pop("done")
    return CompileResult(
        pseudo_program=pseudo,
        prompt_template=template,
        output_constraint=constraint.to_dict(),
        example_count=len(parsed.examples),
        selfcheck_accuracy=selfcheck,
        heldout_accuracy=heldout,
        heldout_count=len(held_out),
        sdk_agreement=agreement,
        adapter_size=adapter.stat().st_size,
        adapter_sha256=sha256_file(adapter),
        bundle_size=bundle.stat().st_size,
        bundle_sha256=sha256_file(bundle),
        stage_seconds=seconds,
    )
