"""The official example programs (programs/examples/official.json) are the hub's best.

Each is compiled as `make run` compiles it (seed_examples: its description and
examples merged into one spec, the default compiler snapshot) by the real
pipeline, and its held-out score -- every fourth example, never trained on --
must be high on enough examples to mean something. Issue 16: the urgency
example held out 4 examples, scored 2/4 and answered "low" for an outage.

Slow (three real compiles, about a minute of CPU each on 2 idle cores): marked
`slow`, run in CI; tests/programs/test_seed_examples.py checks the file itself.
benchmarks/official_examples.py gives the same figures for other training seeds.
"""

import json
from pathlib import Path

import pytest
from django.conf import settings

from compiler import pipeline, registry
from compiler.spec import merge_spec
from pawhub.constraint import OutputConstraint
from programs.management.commands.seed_examples import EXAMPLES_FILE

OFFICIAL = {example["slug"]: example for example in json.loads(EXAMPLES_FILE.read_text())}
ISSUE_SENTENCE = "Nobody can log in, the whole site is down"
# Answers the compiled programs must give (none of these inputs is an example).
PROBES = {"urgency": [(ISSUE_SENTENCE, "urgent")]}


def spec_of(example) -> str:
    return merge_spec(example["description"], [tuple(pair) for pair in example["examples"]])


# Not there yet (benchmarks/EXPERIMENTS.md, 2026-12-05): 40 dates hold out 7-8 of 10 on
# seed 0; more examples underfit (the snapshot trains a fixed 40 steps). Not strict: an
# XPASS means the dates got there and the mark should go.
DATES_BELOW_TARGET = pytest.mark.xfail(reason="iso-date holds out < 0.90 (issue 16)", strict=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "slug",
    [pytest.param(s, marks=DATES_BELOW_TARGET) if s == "iso-date" else s for s in sorted(OFFICIAL)],
)
def test_an_official_example_compiles_into_a_program_that_scores_on_held_out(slug, tmp_path):
    snapshot = registry.resolve(None)
    result = pipeline.run_pipeline(
        program_id=f"official-{slug}",
        spec=spec_of(OFFICIAL[slug]),
        snapshot=snapshot,
        workdir=tmp_path,
        report=lambda stage, fraction: None,
        model_cache=settings.MODEL_CACHE_DIR,
    )
    # The runtime's call (runtime.tasks.run): the program's prompt, adapter and constraint.
    run = pipeline.interpreter().run
    answers = [
        (
            text,
            expected,
            run(
                result.prompt_template,
                text,
                adapter=Path(tmp_path) / pipeline.ADAPTER_FILE,
                constraint=OutputConstraint.from_dict(result.output_constraint),
            ).output,
        )
        for text, expected in PROBES.get(slug, [])
    ]
    print(
        f"\n{slug} ({snapshot.name}, seed {snapshot.training.get('seed', 0)}): "
        f"{result.example_count} examples, held-out {result.heldout_accuracy:.3f} of "
        f"{result.heldout_count}, self-check {result.selfcheck_accuracy:.3f}, "
        f"stages {result.stage_seconds}; probes {answers}"
    )
    assert result.heldout_count >= 8
    assert result.heldout_accuracy >= 0.90
    for text, expected, got in answers:
        assert got == expected, f"{text!r} -> {got!r}"
