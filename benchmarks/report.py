"""Run every benchmark and write benchmarks/RESULTS.md with what they printed.

Each benchmark runs as its own process, one after the other; RESULTS.md gets
the figures of its last output line (one JSON object), the lines it printed
before it, its exit status and time, plus the machine (CPU, cores, RAM, load
average before and after), the date and the git commit. Nothing is added that
a benchmark did not print.

    .venv/bin/python benchmarks/report.py [--quick] [--only load,hub]

`make bench` runs it; `make bench-quick` (or `make bench BENCH_ARGS=--quick`)
runs the quick version of each. The hub benchmark needs PostgreSQL: it keeps
its seeded database ``test_<name>`` of ``--hub-database-url`` (default
``PAW_BENCH_DATABASE_URL`` or postgres://postgres@127.0.0.1:5432/paw_bench)
between runs. The load benchmark needs PostgreSQL and Redis (see its --help).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HUB_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/paw_bench"


def benchmarks(quick: bool, hub_database_url: str) -> dict:
    """name -> (arguments, extra environment), full or quick."""
    hub_env = {"DATABASE_URL": hub_database_url}
    if quick:
        return {
            "quality": (["--quick"], {}),
            "runtime": (["--quick"], {}),
            "hub": (["--programs", "2000", "--requests", "30", "--seconds", "2"], hub_env),
            "semantic_search": (["--repeats", "1"], {}),
            "load": (["--quick"], {}),
            "downloads_storage": (["--requests", "5", "--sizes-mb", "1,16"], {}),
            "site_run": (["--calls", "20"], {}),
            "clients": (["--tasks", "urgency,email"], {}),
        }
    return {
        "quality": ([], {}),
        "runtime": ([], {}),
        "hub": ([], hub_env),
        "semantic_search": ([], {}),
        "load": ([], {}),
        "downloads_storage": ([], {}),
        "site_run": ([], {}),
        "clients": ([], {}),
    }


def run(name: str, arguments: list[str], env: dict) -> dict:
    command = [sys.executable, f"benchmarks/{name}.py", *arguments]
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    # stderr (progress bars, warnings) goes to a file: a pipe nobody reads
    # while stdout is read would fill up and stall the benchmark.
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=os.environ | env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        lines = []
        for line in process.stdout:  # shown as it comes: some run for many minutes
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        returncode = process.wait()
        errors.seek(0)
        stderr = errors.read()
    figures = None
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        try:
            figures = json.loads(lines[-1])
        except ValueError:
            pass
        if isinstance(figures, dict):
            lines.pop()
        else:
            figures = None
    if returncode:
        print(stderr[-3000:], file=sys.stderr)
    return {
        "name": name,
        "command": " ".join(command[1:]),
        "returncode": returncode,
        "seconds": round(time.monotonic() - started),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "figures": figures,
        "lines": lines,
        "stderr_tail": stderr[-3000:] if returncode else "",
    }


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    ram_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if "MemTotal" in line), 0)
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(ram_kb / 2**20, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def tree() -> tuple[str, bool]:
    """The commit checked out and whether tracked files differ from it."""
    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def tree_text(before: tuple[str, bool], after: tuple[str, bool]) -> str:
    """The tree the run started on, and what changed under it while it ran."""
    commit, dirty = before
    text = f"`{commit}`" + (" (with uncommitted changes)" if dirty else "")
    if after != before:
        after_commit, after_dirty = after
        changed = [f"at `{after_commit[:12]}`"] if after_commit != commit else []
        changed += ["with uncommitted changes"] if after_dirty else []
        text += "; the tree changed during the run (at the end: " + ", ".join(changed) + ")"
    return text


def load_text(load: tuple) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def render(
    results, *, machine_facts, quick, started_at, tree_before, tree_after, load_before, load_after
) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/report.py{' --quick' if quick else ''}` "
        f"(`make bench{'-quick' if quick else ''}`): every figure below is what a "
        "benchmark printed in this run, nothing else. Re-run it to refresh this file.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {started_at:%Y-%m-%d %H:%M} UTC |",
        f"| git commit | {tree_text(tree_before, tree_after)} |",
        f"| version | {'quick' if quick else 'full'} |",
        f"| CPU | {machine_facts['cpu']} |",
        f"| cores | {machine_facts['cores']} |",
        f"| RAM | {machine_facts['ram_gib']} GiB |",
        f"| system | {machine_facts['system']}, Python {machine_facts['python']} |",
        f"| load average (1 / 5 / 15 min) before | {load_text(load_before)} |",
        f"| load average (1 / 5 / 15 min) after | {load_text(load_after)} |",
        "",
        "The load average counts everything on the machine, not only the benchmarks: "
        "above the number of cores, other work was competing for the CPU and the "
        "timings are slower and noisier than on an idle machine.",
        "",
        "| benchmark | exit | time | load average before → after (1 min) |",
        "|---|---|---|---|",
    ]
    for r in results:
        status = "ok" if r["returncode"] == 0 else f"failed ({r['returncode']})"
        out.append(
            f"| [{r['name']}](#{r['name']}) | {status} | {r['seconds']} s | "
            f"{r['load_before'][0]:.2f} → {r['load_after'][0]:.2f} |"
        )
    for r in results:
        out += ["", f"## {r['name']}", "", f"`{r['command']}`", ""]
        if r["figures"] is not None:
            out += ["| figure | value |", "|---|---|"]
            out += [f"| {key} | {format_value(value)} |" for key, value in flat(r["figures"])]
            out.append("")
        else:
            out += ["No JSON summary line was printed.", ""]
        if r["lines"]:
            out += ["What it printed:", "", "```", *r["lines"], "```"]
        if r["stderr_tail"]:
            out += ["", "End of its error output:", "", "```", r["stderr_tail"].rstrip(), "```"]
    return "\n".join(out) + "\n"


def flat(figures: dict, prefix: str = ""):
    """(dotted key, value) for each figure, nested objects spelled out."""
    for key, value in figures.items():
        if isinstance(value, dict) and value:
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def format_value(value) -> str:
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick version")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument(
        "--hub-database-url",
        default=os.environ.get("PAW_BENCH_DATABASE_URL", DEFAULT_HUB_DATABASE_URL),
    )
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    plan = benchmarks(args.quick, args.hub_database_url)
    if args.only:
        names = args.only.split(",")
        unknown = [name for name in names if name not in plan]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(plan)}")
        plan = {name: plan[name] for name in names}

    started_at = datetime.datetime.now(datetime.UTC)
    tree_before = tree()
    load_before = os.getloadavg()
    results = [run(name, arguments, env) for name, (arguments, env) in plan.items()]
    text = render(
        results,
        machine_facts=machine(),
        quick=args.quick,
        started_at=started_at,
        tree_before=tree_before,
        tree_after=tree(),
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    args.output.write_text(text)
    failed = [r["name"] for r in results if r["returncode"]]
    print(f"\nwrote {args.output}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
