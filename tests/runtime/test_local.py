"""Running a downloaded bundle locally: `pawhub.load(...).run(...)` and
`pawhub run`, with no Django and no database."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

import pawhub
from pawhub.bundle import BundleError
from tests.conftest import REPO
from tests.runtime.conftest import make_bundle

INPUTS = ["Nobody can log in right now", "x"]


@pytest.fixture(scope="module")
def bundle(adapters, templates, tmp_path_factory):
    return make_bundle(
        tmp_path_factory.mktemp("bundle") / "urgency.paw",
        adapter=adapters[0],
        template=templates[0],
    )


def without_django():
    """A process environment in which importing Django fails."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO / "tests" / "runtime" / "no_django")
    return env


def cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "pawhub", "run", *map(str, args)],
        cwd=REPO,
        env=without_django(),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def test_load_runs_the_bundle_as_the_interpreter_does(bundle, interpreter, adapters, templates):
    with pawhub.load(bundle, interpreter=interpreter) as program:
        assert program.meta.lora_rank == 32 and program.prompt_template == templates[0]
        for text in INPUTS:
            expected = interpreter.run(templates[0], text, adapter=adapters[0])
            assert program.run(text).output == expected.output
        adapter_copy = program.adapter_path
        assert adapter_copy.exists()
    assert not adapter_copy.exists()  # the private adapter copy goes with the program


def test_the_command_line_gives_the_same_outputs(
    bundle, interpreter, adapters, templates, tmp_path
):
    expected = [interpreter.run(templates[0], x, adapter=adapters[0]).output for x in INPUTS]
    one = cli(bundle, INPUTS[0])
    assert one.returncode == 0, one.stderr
    assert one.stdout == expected[0] + "\n"

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"input": x}) + "\n" for x in INPUTS) + "\n")
    many = cli(bundle, "--inputs", inputs, "--max-tokens", 64)
    assert many.returncode == 0, many.stderr
    answers = [json.loads(line) for line in many.stdout.splitlines()]
    assert [a["output"] for a in answers] == expected
    assert [a["input"] for a in answers] == INPUTS
    assert all(a["tokens_generated"] >= 1 and a["latency_ms"] > 0 for a in answers)


def test_the_command_line_refuses_a_bad_bundle_clearly(tmp_path, bundle):
    not_zip = tmp_path / "bad.paw"
    not_zip.write_bytes(b"not a zip")
    done = cli(not_zip, "hi")
    assert done.returncode == 2 and "not a valid ZIP file" in done.stderr
    assert "Traceback" not in done.stderr

    traversal = tmp_path / "traversal.paw"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(traversal, "w") as target:
        for info in source.infolist():
            target.writestr("../" + info.filename, source.read(info))
    done = cli(traversal, "hi")
    assert done.returncode == 2 and "path traversal" in done.stderr


def test_the_command_line_reports_an_input_over_the_limits(bundle):
    done = cli(bundle, "hi", "--max-tokens", 0)
    assert done.returncode == 1 and "max_tokens must be between 1 and 512" in done.stderr


def test_a_bundle_for_another_base_model_is_refused(adapters, templates, tmp_path, monkeypatch):
    import pawhub.local

    path = make_bundle(tmp_path / "other.paw", adapter=adapters[0], template=templates[0])
    monkeypatch.setattr(pawhub.local, "base_model_sha256", lambda: "f" * 64)
    with pytest.raises(BundleError, match="another base model"):
        pawhub.load(path)
