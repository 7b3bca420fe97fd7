"""A corpus of malformed adapters and bundles (tests/ml/corpus.py) through every
entry point that reads such files: the readers themselves, `pawhub
run` (what someone who downloaded a bundle runs), and a real runtime worker
(what the site runs). Every file is refused with a clear reason, and the
worker process that refused them goes on answering.

The site has no upload: its adapters are written by its own compile workers,
and the runtime worker validates each before llama.cpp loads it, which is the
path tested here.
"""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from pawhub.adapter import AdapterError, inspect_lora_gguf
from pawhub.bundle import BundleError, read_bundle
from pawhub.model import base_model_path, base_model_sha256
from programs.models import Program
from runtime import services
from tests.conftest import REPO
from tests.factories import ProgramFactory
from tests.ml.corpus import (
    malformed_adapters,
    malformed_bundles,
    oversized_adapter,
    raw_gguf,
    small_lora,
    valid_bundle,
)
from tests.runtime.conftest import URGENCY_PSEUDO, random_adapter, runtime_worker  # noqa: F401


def adapter_corpus(folder: Path):
    """The malformed adapters, plus a file over the size cap and a symlink."""
    cases = malformed_adapters(folder)
    cases.append(("over the size cap", oversized_adapter(folder / "huge.gguf"), "over the"))
    link = folder / "link.gguf"
    link.symlink_to(raw_gguf(folder / "good.gguf", small_lora()))
    cases.append(("symlink", link, "regular file"))
    return cases


def refusals(cases, read, error):
    """Read each case; (refused with the expected reason, what went wrong otherwise)."""
    refused, wrong = 0, []
    for name, path, message in cases:
        try:
            read(path)
        except error as exc:
            if re.search(message, str(exc)):
                refused += 1
            else:
                wrong.append(f"{name}: wrong reason: {exc}")
        except Exception as exc:  # anything but the reader's own error is a crash
            wrong.append(f"{name}: crashed with {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{name}: accepted")
    return refused, wrong


def test_the_readers_refuse_the_whole_corpus(tmp_path, figure):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    adapters = adapter_corpus(tmp_path / "a")
    base = base_model_path()
    refused, wrong = refusals(adapters, lambda p: inspect_lora_gguf(p, base=base), AdapterError)
    figure("malformed adapters refused by inspect_lora_gguf", f"{refused}/{len(adapters)}")
    bundles = malformed_bundles(tmp_path / "b")
    refused_bundles, wrong_bundles = refusals(bundles, read_bundle, BundleError)
    figure("malformed bundles refused by read_bundle", f"{refused_bundles}/{len(bundles)}")
    assert not wrong + wrong_bundles, "\n".join(wrong + wrong_bundles)


# --- pawhub run ----------------------------------------------------------------


def run_cli(bundle, *args):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["RUNTIME_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pawhub", "run", str(bundle), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_python_m_runtime_run_refuses_every_malformed_bundle_cleanly(tmp_path, figure):
    """Each malformed bundle, and each malformed adapter inside an otherwise good
    bundle (compiled for the installed base model): exit status 2, the reason
    on stderr, no traceback, nothing on stdout. A good bundle then runs."""
    for name in ("a", "b", "wrapped"):
        (tmp_path / name).mkdir()
    cases = malformed_bundles(tmp_path / "b")
    sha = base_model_sha256()
    for i, (name, adapter, message) in enumerate(adapter_corpus(tmp_path / "a")):
        if name in ("over the size cap", "symlink"):
            continue  # properties of a file on disk, not of a bundle member
        bundle = valid_bundle(tmp_path / "wrapped" / f"{i}.paw", adapter, base_model_sha256=sha)
        cases.append((f"adapter: {name}", bundle, message))

    def check(case):
        name, path, message = case
        done = run_cli(path, "hello")
        problems = []
        if done.returncode != 2:
            problems.append(f"exit status {done.returncode}")
        if "Traceback" in done.stderr or not re.search(message, done.stderr):
            problems.append(f"stderr: {done.stderr[-1500:]!r}")
        if done.stdout:
            problems.append(f"stdout: {done.stdout[-300:]!r}")
        return f"{name}: " + "; ".join(problems) if problems else None

    with ThreadPoolExecutor(max_workers=2) as pool:
        wrong = [problem for problem in pool.map(check, cases) if problem]
    figure(
        "malformed bundles refused by pawhub run",
        f"{len(cases) - len(wrong)}/{len(cases)}",
    )
    assert not wrong, "\n".join(wrong)

    good = valid_bundle(
        tmp_path / "good.paw", random_adapter(tmp_path / "good.gguf", seed=3), base_model_sha256=sha
    )
    done = run_cli(good, "hello", "--max-tokens", "4")
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]


# --- a real runtime worker ----------------------------------------------------------------


def program_folder(program) -> Path:
    return Path(settings.MEDIA_ROOT) / "programs" / program.id


def program_with_adapter(adapter: Path) -> Program:
    """A ready program whose adapter file in MEDIA_ROOT is `adapter` (copied;
    a symlink stays a symlink)."""
    program = ProgramFactory(pseudo_program=URGENCY_PSEUDO)
    folder = program_folder(program)
    shutil.rmtree(folder, ignore_errors=True)  # what an earlier run left there
    folder.mkdir(parents=True)
    target = folder / "adapter.gguf"
    if adapter.is_symlink():
        target.symlink_to(adapter.resolve())
    else:
        shutil.copyfile(adapter, target)
    Program.objects.filter(pk=program.pk).update(adapter_path=f"programs/{program.id}/adapter.gguf")
    program.refresh_from_db()
    return program


def pool_child(worker) -> int:
    (child,) = psutil.Process(worker.proc.pid).children()
    return child.pid


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_runtime_worker_refuses_every_malformed_adapter_and_stays_up(
    runtime_worker,  # noqa: F811
    tmp_path,
    figure,
):
    good = program_with_adapter(random_adapter(tmp_path / "good.gguf", seed=5))
    text = "Nobody can log in right now"
    first = services.program_run(program=good, input_text=text, max_tokens=8)
    assert first.tokens_generated > 0
    pid = pool_child(runtime_worker)

    cases = adapter_corpus(tmp_path)
    wrong = []
    for name, adapter, _ in cases:
        program = program_with_adapter(adapter)
        try:
            result = services.program_run(program=program, input_text=text)
        except services.RunError as error:
            if error.code != "broken_program" or "cannot be run" not in error.message:
                wrong.append(f"{name}: {error.code}: {error.message}")
        else:
            wrong.append(f"{name}: ran, and said {result.output!r}")
        finally:
            # Later tests (and runs) may give a program the same id.
            shutil.rmtree(program_folder(program))
    refused = len(cases) - len(wrong)
    figure("malformed adapters refused by the runtime worker", f"{refused}/{len(cases)}")

    after = services.program_run(program=good, input_text=text, max_tokens=8)
    figure("worker pool process before/after the corpus", (pid, pool_child(runtime_worker)))
    assert not wrong, "\n".join(wrong)
    assert runtime_worker.proc.poll() is None and pool_child(runtime_worker) == pid
    assert after.output == first.output  # greedy: the same answer as before the corpus
