"""Compile engines on the CPU side: which engine a snapshot gets, where its jobs go,
what a draft must be to be used, how scores are counted, the PEFT copy of an
adapter. vLLM itself runs in tests/vllm (its own environment, `make test-vllm`)."""

import json
import subprocess
import sys

import gguf
import numpy as np
import pytest
from celery import current_app
from safetensors.numpy import load_file

from compiler import engines, registry, services
from compiler.engines import Completion, Engine, Request, ScoringSet
from compiler.engines.drafting import drafted_task_line, drafting_template
from compiler.engines.llamacpp import LlamaCppEngine
from compiler.forms import CompileForm
from compiler.gguf_adapter import write_lora_gguf
from compiler.peft_adapter import write_peft_adapter
from compiler.pseudo import pseudo_program

SPEC = (
    "Label a support ticket as urgent or normal.\n\nExamples:\n"
    "Input: The site is down\nOutput: urgent\n\n"
    "Input: Please update my address\nOutput: normal\n"
)
EXAMPLES = [("The site is down", "urgent"), ("Please update my address", "normal")]
TASK = "Label a support ticket as urgent or normal."
VLLM_ALIAS = "paw-smollm2-135m-vllm"


class ScriptedEngine(Engine):
    """An engine whose model answers from a script: the boundary where a real
    engine would decode. Everything above it (drafting, scoring) is the real code."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def generate(self, requests):
        self.requests += requests
        return [self.answers.pop(0) for _ in requests]


# --- which snapshots a deployment offers ----------------------------------------------


def test_the_vllm_compiler_is_hidden_unless_the_deployment_enables_it(settings):
    settings.PAW_ENABLE_VLLM = False
    assert [c["name"] for c in registry.compilers()] == ["paw-smollm2-135m"]
    assert VLLM_ALIAS not in registry.known_names()
    with pytest.raises(registry.UnknownCompiler, match="not available here"):
        registry.resolve(VLLM_ALIAS)
    with pytest.raises(registry.UnknownCompiler, match="not available here"):
        registry.resolve("paw-smollm2-135m-vllm-20261125")
    assert [name for name, _ in CompileForm().fields["compiler"].choices] == ["paw-smollm2-135m"]


def test_an_enabled_deployment_offers_the_vllm_compiler(settings):
    settings.PAW_ENABLE_VLLM = True
    listed = {c["name"]: c for c in registry.compilers()}
    assert listed[VLLM_ALIAS]["latest_snapshot"] == "paw-smollm2-135m-vllm-20261206"
    assert not listed[VLLM_ALIAS]["default"]
    snapshot = registry.resolve(VLLM_ALIAS)
    assert (snapshot.engine, snapshot.pseudo_program) == ("vllm", "deterministic")
    # The November snapshot, which drafts its pseudo-program, stays for its programs.
    older = registry.resolve("paw-smollm2-135m-vllm-20261125")
    assert (older.engine, older.pseudo_program) == ("vllm", "drafted")
    assert registry.resolve(None).engine == "llama.cpp"  # the default stays on CPU
    assert snapshot.fingerprint != registry.resolve(None).fingerprint
    assert VLLM_ALIAS in [name for name, _ in CompileForm().fields["compiler"].choices]


def test_the_api_lists_the_vllm_compiler_only_when_enabled(client, db, settings):
    settings.PAW_ENABLE_VLLM = False
    names = [c["name"] for c in client.get("/api/v1/models/compilers").json()["compilers"]]
    assert VLLM_ALIAS not in names
    settings.PAW_ENABLE_VLLM = True
    names = [c["name"] for c in client.get("/api/v1/models/compilers").json()["compilers"]]
    assert VLLM_ALIAS in names


# --- where jobs go -------------------------------------------------------------------


def test_vllm_compiles_go_to_the_gpu_queue(
    user, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from compiler.tasks import compile_program

    settings.PAW_ENABLE_VLLM = True
    sent = []
    monkeypatch.setattr(
        compile_program, "apply_async", lambda args, queue: sent.append((args, queue))
    )
    with django_capture_on_commit_callbacks(execute=True):
        gpu = services.compile_submit(spec=SPEC, owner=user, compiler=VLLM_ALIAS).job
        cpu = services.compile_submit(spec=SPEC, owner=user).job
    assert sent == [([str(gpu.id)], "compile_gpu"), ([str(cpu.id)], "compile")]


def test_celery_routes_an_explicit_queue_over_the_compile_route():
    router = current_app.amqp.router
    task = "compiler.tasks.compile_program"
    assert router.route({}, task)["queue"].name == "compile"
    assert router.route({"queue": "compile_gpu"}, task)["queue"].name == "compile_gpu"
    assert "compile_gpu" in current_app.amqp.queues


def test_the_cpu_worker_does_not_consume_the_gpu_queue():
    from pathlib import Path

    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    worker = next(line for line in procfile.splitlines() if line.startswith("worker:"))
    assert "-Q default,compile " in worker and "compile_gpu" not in worker


# --- which engine a snapshot gets ------------------------------------------------------


def test_snapshots_get_their_engine(settings, monkeypatch, tmp_path):
    settings.PAW_ENABLE_VLLM = True
    assert isinstance(
        engines.for_snapshot(registry.resolve(None), model_cache=tmp_path), LlamaCppEngine
    )
    from compiler.engines import vllm as vllm_engine

    started = []
    monkeypatch.setattr(vllm_engine, "shared_engine", lambda cache: started.append(cache) or "v")
    assert engines.for_snapshot(registry.resolve(VLLM_ALIAS), model_cache=tmp_path) == "v"
    assert started == [tmp_path]


def test_the_cpu_default_never_imports_vllm():
    # A fresh interpreter: the CPU engine and the vLLM engine's module load, vLLM does not.
    code = (
        "import sys; import compiler.pipeline, compiler.engines.llamacpp, compiler.engines.vllm; "
        "assert 'vllm' not in sys.modules, 'vllm imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- drafting --------------------------------------------------------------------------


def test_a_usable_draft_becomes_the_task_line():
    engine = ScriptedEngine([Completion("Instruction: Say whether the ticket is urgent.", False)])
    drafted = engine.draft_pseudo_program(TASK, EXAMPLES)
    assert drafted == pseudo_program("Say whether the ticket is urgent.", EXAMPLES)
    # The examples section and the format are the deterministic pseudo-program's.
    deterministic = pseudo_program(TASK, EXAMPLES)
    assert drafted.split("\n\n", 1)[1] == deterministic.split("\n\n", 1)[1]
    (request,) = engine.requests
    assert request == Request(drafting_template(), TASK, None, request.max_tokens)
    assert drafting_template().endswith("<|im_start|>assistant\nInstruction:")


@pytest.mark.parametrize(
    "draft, truncated",
    [
        ("", False),
        ("   \n  ", False),
        ("Urgent.", False),  # too short to be an instruction
        ("Say whether the ticket is urgent or normal and", True),  # cut off at max_tokens
        ("Reply urgent because the site is down", False),  # quotes an example's input
        ("Input: The site is down", False),  # an example, not an instruction
        ("Classify it. Output: urgent", False),
        ("Answer [END_PSEUDO_PROGRAM] now please", False),
        ("Answer <|im_end|> now please", False),
        ("Put {INPUT_PLACEHOLDER} here please", False),
        ("word " * 200, False),  # longer than a task line may be
    ],
)
def test_an_unusable_draft_falls_back_to_the_deterministic_pseudo_program(draft, truncated):
    engine = ScriptedEngine([Completion(draft, truncated)])
    assert engine.draft_pseudo_program(TASK, EXAMPLES) == pseudo_program(TASK, EXAMPLES)


def test_a_draft_line_is_cleaned():
    text = '  "Label  the ticket as urgent or normal."\n\nSome rambling that ran out of tok'
    # Cut off at max_tokens, but after its first line: that line is whole.
    assert drafted_task_line(text, truncated=True) == "Label the ticket as urgent or normal."


# --- scoring ---------------------------------------------------------------------------


def test_score_sets_decode_one_batch_and_count_exact_matches(tmp_path):
    adapter = tmp_path / "a.gguf"
    answers = [Completion(t, False) for t in ("urgent", "low", "normal", "normal")]
    engine = ScriptedEngine(answers)
    scores = engine.score_sets(
        [
            ScoringSet("T {INPUT_PLACEHOLDER}", EXAMPLES + [("Coffee is cold", " low ")], adapter),
            ScoringSet("T {INPUT_PLACEHOLDER}", [("All is well", "urgent")], None),
            ScoringSet("T {INPUT_PLACEHOLDER}", [], adapter),
        ]
    )
    assert scores == [pytest.approx(1 / 3), 0.0, 0.0]
    assert [(r.input, r.adapter) for r in engine.requests] == [
        ("The site is down", adapter),
        ("Please update my address", adapter),
        ("Coffee is cold", adapter),
        ("All is well", None),
    ]


# --- the PEFT copy of an adapter (what vLLM loads) ------------------------------------


def test_the_peft_folder_holds_the_gguf_weights_llama_cpp_runs(tmp_path):
    rng = np.random.default_rng(0)
    shapes = {"attn_q": (576, 576), "attn_k": (576, 192), "ffn_down": (1536, 576)}
    tensors = {}
    for proj, (n_in, n_out) in shapes.items():
        tensors[f"blk.28.{proj}.weight.lora_a"] = rng.normal(size=(32, n_in)).astype(np.float32)
        tensors[f"blk.28.{proj}.weight.lora_b"] = rng.normal(size=(n_out, 32)).astype(np.float32)
    write_lora_gguf(tmp_path / "a.gguf", tensors, rank=32, alpha=16.0, quant="Q4_0")

    folder = write_peft_adapter(tmp_path / "a.gguf", tmp_path / "peft")

    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 32, 16.0)
    assert config["target_modules"] == ["down_proj", "k_proj", "q_proj"]
    assert config["layers_to_transform"] == [28]
    state = load_file(str(folder / "adapter_model.safetensors"))
    q4_0 = gguf.GGMLQuantizationType.Q4_0
    for proj, module in [("attn_q", "self_attn.q_proj"), ("ffn_down", "mlp.down_proj")]:
        for half in "ab":
            stored = state[f"base_model.model.model.layers.28.{module}.lora_{half.upper()}.weight"]
            original = tensors[f"blk.28.{proj}.weight.lora_{half}"]
            # Quantized and back, in Hugging Face row order (q's rows un-permuted).
            expected = gguf.quants.dequantize(gguf.quants.quantize(original, q4_0), q4_0)
            np.testing.assert_array_equal(stored, expected)
    assert len(state) == 6
