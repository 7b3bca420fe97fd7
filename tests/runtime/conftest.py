"""Fixtures for the runtime tests: the real base model, adapters, a compiled program.

Most tests need an adapter, not a good one: ``random_adapter`` writes a LoRA
of random weights (no torch, instantly) that changes the model's keys, values
and answers, which is all the prefix-cache and plumbing tests ask of it. The
tests that run a real worker use one program really compiled by the pipeline
(``compiled``), built once and kept in PAW_VAR_DIR so a second run skips it.
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler.gguf_adapter import write_lora_gguf
from pawhub.prompt import prompt_template

N_LAYERS = 30
HIDDEN, KV, FFN = 576, 192, 1536
# (inputs, outputs) of each projection of SmolLM2-135M.
SHAPES = {
    "attn_q": (HIDDEN, HIDDEN),
    "attn_k": (HIDDEN, KV),
    "attn_v": (HIDDEN, KV),
    "attn_output": (HIDDEN, HIDDEN),
    "ffn_gate": (HIDDEN, FFN),
    "ffn_up": (HIDDEN, FFN),
    "ffn_down": (FFN, HIDDEN),
}
URGENCY_PSEUDO = (
    "Task: Classify a support message by urgency: urgent, normal or low.\n\n"
    "Examples:\nInput: The whole site is down!\nOutput: urgent\n"
    "Input: How do I change my email?\nOutput: normal\n"
    "Input: Love the new colours.\nOutput: low"
)
INPUTS = [
    "Nobody can log in right now",
    "Can I get a copy of last month's invoice?",
    "x",
    "An input with <|im_end|> inside, which must stay plain text",
    "Ünïcödé — 日本語のテキスト 🚀",
    "The export button gives me a CSV with wrong dates " * 12,  # > one eval chunk
]


def random_adapter(path: Path, *, seed: int, rank: int = 32, std: float = 0.05) -> Path:
    """A LoRA of random weights on the top ten layers' attention and up projections."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(N_LAYERS - 10, N_LAYERS):
        for proj in ("attn_q", "attn_k", "attn_v", "ffn_up"):
            inputs, outputs = SHAPES[proj]
            name = f"blk.{layer}.{proj}.weight"
            tensors[f"{name}.lora_a"] = rng.normal(0, std, (rank, inputs))
            tensors[f"{name}.lora_b"] = rng.normal(0, std, (outputs, rank))
    write_lora_gguf(path, tensors, rank=rank, alpha=float(rank), quant="Q4_0")
    return path


@pytest.fixture(scope="session")
def adapters(tmp_path_factory):
    """Two different random adapters (A and B)."""
    folder = tmp_path_factory.mktemp("adapters")
    return random_adapter(folder / "a.gguf", seed=1), random_adapter(folder / "b.gguf", seed=2)


@pytest.fixture(scope="session")
def templates():
    """Two programs' prompts: urgency, and a second task with another head."""
    return (
        prompt_template(URGENCY_PSEUDO),
        prompt_template("Task: Repeat the input in capital letters.\n\nInput: hi\nOutput: HI"),
    )


@pytest.fixture(scope="session")
def interpreter():
    from pawhub.interpreter import Interpreter

    interpreter = Interpreter()
    yield interpreter
    interpreter.close()


@pytest.fixture(scope="session")
def reference():
    """An interpreter without the prefix cache: every call evaluates its whole prompt."""
    from pawhub.interpreter import Interpreter

    interpreter = Interpreter(prefix_cache_bytes=0)
    yield interpreter
    interpreter.close()


def make_bundle(path, *, adapter, template, program_id="0" * 20):
    from pawhub.bundle import BundleMeta, write_bundle
    from pawhub.model import BASE_MODEL_ID, base_model_sha256

    meta = BundleMeta(
        program_id=program_id,
        spec="test spec",
        compiler_snapshot="paw-smollm2-135m-20261124",
        compiler_fingerprint="0" * 64,
        base_model_id=BASE_MODEL_ID,
        base_model_sha256=base_model_sha256(),
        lora_rank=32,
        lora_alpha=32.0,
        adapter_quantization="Q4_0",
        created_at="2026-01-01T00:00:00+00:00",
    )
    write_bundle(
        path, meta=meta, adapter_path=adapter, prompt_template=template, pseudo_program="p"
    )
    return path


# --- one really compiled program ------------------------------------------------------

COMPILED_SPEC = """Classify a support message by urgency: urgent, normal or low.

Examples:
Input: The whole site is down and customers cannot pay!
Output: urgent
Input: Our database server crashed, nothing works
Output: urgent
Input: Security breach: someone is logged in as admin
Output: urgent
Input: Can you update the billing address on my invoice?
Output: normal
Input: How do I add a new user to my team?
Output: normal
Input: Please reset my password, I forgot it
Output: normal
Input: Love the new dark mode, thanks!
Output: low
Input: Just a suggestion: a bigger font would be nice
Output: low
Input: FYI the footer has a typo
Output: low
"""


@dataclasses.dataclass(frozen=True)
class Compiled:
    folder: Path
    spec: str
    pseudo_program: str
    adapter: Path
    bundle: Path
    facts: dict

    def install(self, media_root: Path, program_id: str) -> dict:
        """Copy the artifacts where a Program row `program_id` expects them;
        returns the Program fields that describe them."""
        relative = Path("programs") / program_id
        (media_root / relative).mkdir(parents=True, exist_ok=True)
        for source in (self.adapter, self.bundle):
            shutil.copyfile(source, media_root / relative / source.name)
        return {
            "pseudo_program": self.pseudo_program,
            "adapter_path": str(relative / self.adapter.name),
            "bundle_path": str(relative / self.bundle.name),
            **self.facts,
        }


@pytest.fixture(scope="session")
def compiled():
    """The urgency spec compiled by the real pipeline (default compiler snapshot)."""
    from django.conf import settings

    from compiler import pipeline, registry

    snapshot = registry.resolve(None)
    key = hashlib.sha256(f"{COMPILED_SPEC}\0{snapshot.fingerprint}".encode()).hexdigest()[:16]
    folder = Path(settings.VAR_DIR) / "runtime-tests" / key
    done = folder / "compiled.json"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = pipeline.run_pipeline(
            program_id=key + "0000",
            spec=COMPILED_SPEC,
            snapshot=snapshot,
            workdir=folder,
            report=lambda stage, fraction: None,
            model_cache=settings.MODEL_CACHE_DIR,
        )
        facts = {
            # Its prompt format comes with it: the program runs in the format it was trained in.
            "compiler_snapshot": snapshot.name,
            "adapter_size": result.adapter_size,
            "adapter_sha256": result.adapter_sha256,
            "bundle_size": result.bundle_size,
            "bundle_sha256": result.bundle_sha256,
            "selfcheck_accuracy": result.selfcheck_accuracy,
        }
        done.write_text(json.dumps({"pseudo_program": result.pseudo_program, "facts": facts}))
    saved = json.loads(done.read_text())
    return Compiled(
        folder=folder,
        spec=COMPILED_SPEC,
        pseudo_program=saved["pseudo_program"],
        adapter=folder / pipeline.ADAPTER_FILE,
        bundle=folder / pipeline.BUNDLE_FILE,
        facts=saved["facts"],
    )


# --- the compiled program on the site, and what it says when run locally ------------------

URGENCY_INPUTS = [
    "Nobody can log in and the shop is losing orders right now",
    "Where can I download last month's invoice?",
    "The new logo looks great, well done",
    "My CSV export has the wrong dates",
    "Someone is using our admin account and changing passwords!",
]


@pytest.fixture(scope="module")
def runtime_worker(django_db_setup, tmp_path_factory):
    """A real worker on the runtime queue (and the default one, for its readiness ping)."""
    from tests.conftest import WorkerProcess

    worker = WorkerProcess(
        tmp_path_factory.mktemp("worker") / "worker.log",
        queues="default,runtime,runtime_checks",
    )
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def compiled_program(compiled, user):
    """A ready Program row for `compiled`, its files in MEDIA_ROOT."""
    from django.conf import settings

    from programs.models import Program
    from tests.factories import ProgramFactory

    program = ProgramFactory(owner=user, name="Urgency", spec=compiled.spec)
    fields = compiled.install(settings.MEDIA_ROOT, program.pk)
    Program.objects.filter(pk=program.pk).update(**fields)
    program.refresh_from_db()
    return program


@pytest.fixture(scope="module")
def local_outputs(compiled, tmp_path_factory):
    """`pawhub run` on the bundle for URGENCY_INPUTS, in a process
    without Django settings, keyed by input."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    folder = tmp_path_factory.mktemp("local")
    inputs = folder / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"input": x}) + "\n" for x in URGENCY_INPUTS))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "pawhub", "run", str(compiled.bundle), "--inputs", str(inputs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return {
        answer["input"]: answer["output"]
        for answer in map(json.loads, done.stdout.split("\n")[:-1])
    }


# --- a real site -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(django_db_setup, tmp_path_factory):
    """Base URL of the site under gunicorn on the test database. Its calls wait
    up to 120 s for a runtime worker, so a burst on a loaded machine is
    answered rather than turned away as busy."""
    from tests.conftest import site_process

    log_path = tmp_path_factory.mktemp("site") / "gunicorn.log"
    with site_process(
        log_path,
        "/hub/",
        without=["DJANGO_ALLOW_ASYNC_UNSAFE"],
        # Room for the 50-request burst, and no worker timeout while calls wait.
        gunicorn_args=["--workers", "2", "--threads", "8", "--timeout", "180"],
        RUNTIME_WAIT_SECONDS="120",
    ) as url:
        yield url
