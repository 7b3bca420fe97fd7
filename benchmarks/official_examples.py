"""Held-out scores of the official example programs (``programs/examples/official.json``).

Each official example is compiled as ``make run`` compiles it (``seed_examples``:
its description and examples merged into one spec, the default compiler
snapshot) by the real pipeline (``compiler.pipeline.run_pipeline``), once per
training seed, and its spec held-out score is printed (every fourth example is
held out, ``compiler.pipeline.split_examples``) with the held-out misses. The
urgency program is also asked the sentence of issue 16.

    .venv/bin/python benchmarks/official_examples.py [--slugs urgency,sentiment]
        [--seeds 0,1,2] [--file programs/examples/official.json] [--snapshot NAME]

The last line is one JSON object. No Django and no network, as benchmarks/quality.py.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compiler import engines, pipeline  # noqa: E402
from compiler.registry import resolve  # noqa: E402
from compiler.spec import merge_spec  # noqa: E402
from pawhub.constraint import OutputConstraint  # noqa: E402

OFFICIAL = REPO / "programs" / "examples" / "official.json"
# Issue 16: the official urgency program answered "low" for it.
ISSUE_SENTENCE = "Nobody can log in, the whole site is down"
PROBES = {"urgency": [(ISSUE_SENTENCE, "urgent")]}


def model_cache() -> Path:
    return Path(os.environ.get("MODEL_CACHE_DIR", REPO / "var" / "models"))


def compile_example(example: dict, snapshot) -> dict:
    """Compile one official example; its held-out score, misses and probe answers."""
    spec = merge_spec(example["description"], [tuple(pair) for pair in example["examples"]])
    scored = []  # (answers, pairs) of each exact_match call: self-check, then held-out
    exact_match = engines.exact_match

    def recording(answers, pairs):
        scored.append((answers, pairs))
        return exact_match(answers, pairs)

    with tempfile.TemporaryDirectory(prefix=f"paw-official-{example['slug']}-") as tmp:
        started = time.perf_counter()
        with mock.patch.object(engines, "exact_match", recording):
            result = pipeline.run_pipeline(
                program_id=f"official-{example['slug']}",
                spec=spec,
                snapshot=snapshot,
                workdir=Path(tmp),
                report=lambda stage, fraction: None,
                model_cache=model_cache(),
            )
        compile_s = time.perf_counter() - started
        constraint = OutputConstraint.from_dict(result.output_constraint)
        run = pipeline.interpreter().run
        probes = [
            (
                text,
                expected,
                run(
                    result.prompt_template,
                    text,
                    adapter=Path(tmp) / pipeline.ADAPTER_FILE,
                    max_tokens=engines.VALIDATION_MAX_TOKENS,
                    constraint=constraint,
                ).output,
            )
            for text, expected in PROBES.get(example["slug"], [])
        ]
    answers, held_out = scored[-1] if result.heldout_count else ([], [])
    misses = [
        (text, expected, got)
        for got, (text, expected) in zip(answers, held_out, strict=True)
        if got != expected.strip()
    ]
    return {
        "slug": example["slug"],
        "seed": snapshot.training.get("seed", 0),
        "examples": result.example_count,
        "heldout_count": result.heldout_count,
        "heldout_accuracy": result.heldout_accuracy,
        "selfcheck_accuracy": result.selfcheck_accuracy,
        "misses": misses,
        "probes": probes,
        "compile_s": round(compile_s, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=OFFICIAL)
    parser.add_argument("--slugs", help="comma-separated slugs (default: all)")
    parser.add_argument("--seeds", help="comma-separated training seeds (default: the snapshot's)")
    parser.add_argument(
        "--snapshot", help="a compiler alias or dated snapshot (default: the default)"
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    examples = json.loads(args.file.read_text())
    if args.slugs:
        wanted = args.slugs.split(",")
        examples = [e for e in examples if e["slug"] in wanted]
    snapshot = resolve(args.snapshot)
    seeds = (
        [int(s) for s in args.seeds.split(",")]
        if args.seeds
        else [snapshot.training.get("seed", 0)]
    )
    print(f"snapshot {snapshot.name}; load average at start {os.getloadavg()}")
    results = []
    for seed in seeds:
        seeded = dataclasses.replace(snapshot, training={**snapshot.training, "seed": seed})
        for example in examples:
            r = compile_example(example, seeded)
            results.append(r)
            hits = round(r["heldout_accuracy"] * r["heldout_count"]) if r["heldout_count"] else 0
            print(
                f"{r['slug']}@{r['seed']}: {r['examples']} examples, held out "
                f"{hits}/{r['heldout_count']} ({r['heldout_accuracy']}), self-check "
                f"{r['selfcheck_accuracy']:.3f}, compile {r['compile_s']}s, "
                f"load {r['load_avg_1m']}"
            )
            for text, expected, got in r["misses"]:
                print(f"  miss: {text!r} -> {got!r} (expected {expected!r})")
            for text, expected, got in r["probes"]:
                print(f"  probe: {text!r} -> {got!r} (expected {expected!r})")
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
