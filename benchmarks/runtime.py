"""Speed of the runtime on compiled label-task programs, in one run:

- warm per-call latency p50/p95 with the prefix cache, and without it (every
  call evaluates its whole prompt), and their ratio;
- warm latency on the base file as shipped (Q4_1) rather than the runtime's
  Q8_0 copy of it, decoded freely rather than within the program's output
  constraint, and for the same task compiled in prompt format 1 (the snapshot
  before format 2, otherwise the same) -- the ratio to the warm figure says
  what each adds;
- the first call of a fresh process (model loaded, nothing cached yet), and
  loading the model itself;
- the cost of swapping to another program whose adapter and prompt head are
  cached (calls that alternate two programs minus calls that stay on one);
- throughput (calls/s) with one and with two worker processes, each process
  with its share of the cores, as the runtime queue's workers run.

It compiles the ``urgency`` and ``sentiment`` tasks of ``benchmarks/data/``
with the real pipeline (default compiler snapshot) once and keeps them under
``<PAW_VAR_DIR or var>/bench-runtime/``; later runs reuse them.

    .venv/bin/python benchmarks/runtime.py [--quick] [--threads N]

The last output line is one JSON object (``warm_p50_ms``, ``warm_p95_ms``,
``no_cache_p50_ms``, ``prefix_cache_speedup``, ``swap_ms``, ...). Latencies are
the interpreter's own (what ``POST /infer`` reports as ``latency_ms``), not the
web round trip. Timings only mean something on an idle machine: the JSON
carries the load average seen at the start and the end.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

# As in every process of the site (paw_site/__init__.py): idle OpenMP threads
# spin briefly, then sleep instead of spinning on cores other processes need.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from compiler import pipeline  # noqa: E402
from compiler.registry import resolve  # noqa: E402
from compiler.spec import merge_spec  # noqa: E402
from pawhub.constraint import OutputConstraint  # noqa: E402
from pawhub.interpreter import Interpreter, available_cores  # noqa: E402
from pawhub.model import base_model_path  # noqa: E402

DATA_DIR = REPO / "benchmarks" / "data"
TASKS = ("urgency", "sentiment")
# The default compiler as it was before prompt format 2 (the same training and
# constraints, the input closed by [END_INPUT]).
FORMAT_1_SNAPSHOT = "paw-smollm2-135m-20261202"
MAX_TOKENS = 8  # label answers are 1-3 tokens
TARGETS = {"warm_p50_ms": 80.0, "prefix_cache_speedup": 2.0, "swap_ms": 10.0}


def var_dir() -> Path:
    return Path(os.environ.get("PAW_VAR_DIR", REPO / "var"))


def compile_task(name: str, snapshot) -> dict:
    """The task compiled by the pipeline: template, adapter path, inputs (cached on disk)."""
    task = json.loads((DATA_DIR / f"{name}.json").read_text())
    spec = merge_spec(task["description"], [tuple(pair) for pair in task["train"]])
    # "2": what program.json holds (the template itself since prompt formats).
    key = hashlib.sha256(f"2\0{spec}\0{snapshot.fingerprint}".encode()).hexdigest()[:16]
    folder = var_dir() / "bench-runtime" / f"{name}-{key}"
    done = folder / "program.json"
    if not done.exists():
        print(f"compiling {name} (once; kept in {folder}) ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        result = pipeline.run_pipeline(
            program_id=f"bench-{name}",
            spec=spec,
            snapshot=snapshot,
            workdir=folder,
            report=lambda stage, fraction: None,
            model_cache=Path(os.environ.get("MODEL_CACHE_DIR", var_dir() / "models")),
        )
        print(f"  compiled in {time.perf_counter() - started:.0f} s", flush=True)
        done.write_text(
            json.dumps({"template": result.prompt_template, "output": result.output_constraint})
        )
    inputs = [text for text, _ in task["held_out"] + task["train"]]
    compiled = json.loads(done.read_text())
    return {
        "name": name,
        "template": compiled["template"],
        "adapter": str(folder / pipeline.ADAPTER_FILE),
        "constraint": OutputConstraint.from_dict(compiled["output"]),
        "inputs": inputs,
    }


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def calls(interpreter, program, inputs):
    return [
        interpreter.run(
            program["template"],
            text,
            adapter=program["adapter"],
            max_tokens=MAX_TOKENS,
            constraint=program["constraint"],
        )
        for text in inputs
    ]


def latency(interpreter, program, inputs) -> list[float]:
    return [r.latency_ms for r in calls(interpreter, program, inputs)]


def worker(program, inputs, threads, ready, start, done):
    """One worker process: load, warm up, say so, wait for the start, run its share."""
    interpreter = Interpreter(n_threads=threads)
    calls(interpreter, program, inputs[:1])
    ready.put(os.getpid())
    start.wait()
    calls(interpreter, program, inputs)
    done.put(time.perf_counter())  # CLOCK_MONOTONIC: comparable across processes


def throughput(program, inputs, processes: int, cores: int) -> float:
    """Calls per second of `processes` warm processes sharing `inputs`, the cores split
    between them."""
    context = multiprocessing.get_context("spawn")  # a llama.cpp context must not cross a fork
    ready, start, done = context.Queue(), context.Event(), context.Queue()
    threads = max(1, cores // processes)
    workers = [
        context.Process(
            target=worker, args=(program, inputs[i::processes], threads, ready, start, done)
        )
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    for _ in workers:
        ready.get(timeout=600)
    began = time.perf_counter()
    start.set()
    finished = [done.get(timeout=3600) for _ in workers]
    for process in workers:
        process.join()
    return len(inputs) / (max(finished) - began)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument(
        "--threads", type=int, default=available_cores(), help="llama.cpp threads (default: all)"
    )
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    snapshot = resolve(None)
    programs = [compile_task(name, snapshot) for name in TASKS]
    urgency, other = programs
    n = 12 if args.quick else 48
    inputs = (urgency["inputs"] * 4)[:n]
    print(f"{snapshot.name}; {args.threads} threads of {available_cores()} cores; {n} calls each")

    started = time.perf_counter()
    cached = Interpreter(n_threads=args.threads)
    model_load_ms = (time.perf_counter() - started) * 1000
    first_call_ms = latency(cached, urgency, inputs[:1])[0]
    warm = latency(cached, urgency, inputs)
    answers = calls(cached, urgency, inputs)
    tokens = statistics.mean(r.tokens_generated for r in answers)

    plain = Interpreter(n_threads=args.threads, prefix_cache_bytes=0)
    latency(plain, urgency, inputs[:1])
    no_cache = latency(plain, urgency, inputs)
    plain.close()

    # The same warm calls on the base file as shipped (Q4_1) instead of the runtime's
    # Q8_0 copy, and decoded freely instead of within the output constraint.
    shipped = Interpreter(base_model_path(), n_threads=args.threads)
    latency(shipped, urgency, inputs[:1])
    warm_shipped = latency(shipped, urgency, inputs)
    shipped.close()
    unguided = latency(cached, {**urgency, "constraint": None}, inputs)
    format_1 = compile_task("urgency", resolve(FORMAT_1_SNAPSHOT))
    latency(cached, format_1, inputs[:1])
    warm_format_1 = latency(cached, format_1, inputs)

    # Swapping: both programs' adapters and heads are cached. Each urgency call
    # right after a sentiment call (adapter set again, head restored) is paired
    # with the same call repeated at once (nothing to swap); the cost is their
    # difference, paired so that the machine's noise mostly cancels.
    latency(cached, other, other["inputs"][:1])
    swapped, differences = [], []
    for text, other_text in zip(inputs, other["inputs"], strict=False):
        latency(cached, other, [other_text])
        after_swap = latency(cached, urgency, [text])[0]
        differences.append(after_swap - latency(cached, urgency, [text])[0])
        swapped.append(after_swap)
    swap_ms = statistics.median(differences)
    cached.close()

    throughput_inputs = (urgency["inputs"] * 4)[: 16 if args.quick else 64]
    throughputs = {
        procs: throughput(urgency, throughput_inputs, procs, args.threads) for procs in (1, 2)
    }

    summary = {
        "warm_p50_ms": round(statistics.median(warm), 1),
        "warm_p95_ms": round(percentile(warm, 95), 1),
        "warm_shipped_base_p50_ms": round(statistics.median(warm_shipped), 1),
        "q8_0_copy_speedup": round(statistics.median(warm_shipped) / statistics.median(warm), 2),
        "warm_unguided_p50_ms": round(statistics.median(unguided), 1),
        "warm_format_1_p50_ms": round(statistics.median(warm_format_1), 1),
        "prompt_format_2_speedup": round(
            statistics.median(warm_format_1) / statistics.median(warm), 2
        ),
        "no_cache_p50_ms": round(statistics.median(no_cache), 1),
        "no_cache_p95_ms": round(percentile(no_cache, 95), 1),
        "prefix_cache_speedup": round(statistics.median(no_cache) / statistics.median(warm), 2),
        "swap_ms": round(swap_ms, 1),
        "swapped_call_p50_ms": round(statistics.median(swapped), 1),
        "first_call_ms": round(first_call_ms, 1),
        "model_load_ms": round(model_load_ms, 1),
        "throughput_1_process_per_s": round(throughputs[1], 2),
        "throughput_2_processes_per_s": round(throughputs[2], 2),
        "mean_tokens_generated": round(tokens, 2),
        "calls": n,
        "threads": args.threads,
        "cores": available_cores(),
        "quick": args.quick,
        "compiler_snapshot": snapshot.name,
        "load_avg_1m_start": round(load_start, 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
    }
    print()
    for label, key in (("warm (prefix cache)", "warm"), ("no prefix cache", "no_cache")):
        p50, p95 = summary[f"{key}_p50_ms"], summary[f"{key}_p95_ms"]
        print(f"{label:<20} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
    print(f"prefix cache speedup {summary['prefix_cache_speedup']:.2f}x")
    print(
        f"warm p50 on the shipped Q4_1 base {summary['warm_shipped_base_p50_ms']:.1f} ms "
        f"({summary['q8_0_copy_speedup']:.2f}x the Q8_0 copy's); decoded freely "
        f"{summary['warm_unguided_p50_ms']:.1f} ms (output: {urgency['constraint'].describe()})"
    )
    print(
        f"warm p50 in prompt format 1 ({FORMAT_1_SNAPSHOT}) "
        f"{summary['warm_format_1_p50_ms']:.1f} ms "
        f"(format 2 is {summary['prompt_format_2_speedup']:.2f}x faster)"
    )
    print(
        f"swap to a cached program: +{summary['swap_ms']:.1f} ms "
        f"(swapped call p50 {summary['swapped_call_p50_ms']:.1f} ms)"
    )
    print(f"first call {first_call_ms:.0f} ms, after loading the model in {model_load_ms:.0f} ms")
    print(
        f"throughput {summary['throughput_1_process_per_s']:.2f} calls/s with 1 process, "
        f"{summary['throughput_2_processes_per_s']:.2f} with 2"
    )
    for name, target in TARGETS.items():
        value = summary[name]
        met = value >= target if name == "prefix_cache_speedup" else value <= target
        print(f"target {name}: {value} vs {target} -> {'met' if met else 'NOT met'}")
    print(
        f"load average {load_start:.2f} -> {summary['load_avg_1m_end']} on {summary['cores']} "
        "cores: timings are only meaningful on an idle machine"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
