"""What the official PAW SDK (programasweights 0.4.14) reads from the hub, call
by call (see /work/shared/PAW_SDK_PROTOCOL.md): the blocking compile, precheck,
the runtime manifest and the base model behind it, `program_id` on resolve,
`{"compilers": [...]}`, versions' `main_version`, renames, and bundles that
name their runtime (stored ones upgraded on download). The SDK itself runs
against a live site in tests/sdk/."""

import hashlib
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from api.routers import compile as compile_router
from compiler.models import CompileJob
from pawhub import manifest
from pawhub.bundle import BundleMeta, read_bundle, write_bundle
from pawhub.model import BASE_MODEL_FILENAME, base_model_path, base_model_sha256
from programs.models import Alias, Program
from tests.factories import ProgramFactory

from .conftest import API, SPEC, assert_error

pytestmark = pytest.mark.django_db


def post(client, path, body):
    return client.post(f"{API}{path}", body, content_type="application/json")


# --- compiling ---------------------------------------------------------------------------


@pytest.fixture
def finishing(monkeypatch):
    """The blocking compile's wait, with the job finished by a "worker" at its
    first look: `finishing.outcome` is what the worker does to it."""

    class Finisher:
        outcome = {"status": CompileJob.Status.READY, "stage_seconds": {"training": 1.5}}
        sleeps = 0

    async def sleep(seconds):
        Finisher.sleeps += 1
        job = await CompileJob.objects.filter(status__in=CompileJob.ACTIVE).afirst()
        await CompileJob.objects.filter(pk=job.pk).aupdate(
            finished_at=timezone.now(),
            started_at=timezone.now() - timedelta(seconds=2),
            **Finisher.outcome,
        )
        if Finisher.outcome["status"] == CompileJob.Status.READY:
            await Program.objects.filter(pk=job.program_id).aupdate(status=Program.Status.READY)

    monkeypatch.setattr(compile_router.asyncio, "sleep", sleep)
    return Finisher


def test_blocking_compile_answers_when_the_program_is_ready(as_user, user, no_enqueue, finishing):
    response = post(as_user, "/compile", {"spec": SPEC, "slug": "urgency"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert finishing.sleeps == 1
    assert body["status"] == "ready" and body["error"] is None
    program = Program.objects.get(pk=body["program_id"])
    assert program.owner == user and program.is_ready
    assert body["slug"] == f"{user.username}/urgency" and body["version"] == 1
    assert body["version_action"] == "created"
    assert body["runtime_id"] == manifest.RUNTIME_ID and body["runtime_manifest_version"] == 1
    assert body["compiler_kind"] == "finetune" and body["cached"] is False
    assert body["timings"]["total_ms"] > 0 and body["timings"]["training_ms"] == 1500.0

    # The same spec again: a cache hit, answered without waiting.
    again = post(as_user, "/compile", {"spec": SPEC, "slug": "urgency"}).json()
    assert finishing.sleeps == 1
    assert again["cached"] is True and again["status"] == "ready"
    assert again["program_id"] == body["program_id"] and again["version_action"] == "no_change"


def test_blocking_compile_reports_a_failure(anon, no_enqueue, finishing):
    finishing.outcome = {"status": CompileJob.Status.FAILED, "error": "Training diverged."}
    body = post(anon, "/compile", {"spec": SPEC}).json()
    assert body["status"] == "failed" and body["error"] == "Training diverged."


def test_blocking_compile_stops_waiting_at_the_limit(anon, no_enqueue, settings):
    settings.COMPILE_WAIT_SECONDS = 0
    body = post(anon, "/compile", {"spec": SPEC}).json()
    assert body["status"] == "queued" and body["job_id"]


def test_blocking_compile_refuses_like_the_async_one(anon):
    assert_error(post(anon, "/compile", {"spec": SPEC, "compiler": "nope"}), 400)
    assert_error(post(anon, "/compile", {"spec": SPEC, "slug": "x-name"}), 401)


def test_precheck_says_whether_a_compile_would_be_a_cache_hit(anon, no_enqueue):
    body = post(anon, "/compile/precheck", {"spec": SPEC}).json()
    assert body == {
        "cached": False,
        "program_id": None,
        "compiler_snapshot": "paw-smollm2-135m-20261206",
        "compiler_kind": "finetune",
        "queue_length": 0,
        "estimated_wait_s": None,
    }
    job_id = post(anon, "/compile/async", {"spec": SPEC}).json()["job_id"]
    assert post(anon, "/compile/precheck", {"spec": SPEC}).json()["queue_length"] == 1
    job = CompileJob.objects.get(pk=job_id)
    now = timezone.now()
    CompileJob.objects.filter(pk=job_id).update(
        status="ready", started_at=now - timedelta(seconds=90), finished_at=now
    )
    Program.objects.filter(pk=job.program_id).update(status="ready")
    body = post(anon, "/compile/precheck", {"spec": SPEC}).json()
    assert body["cached"] is True and body["program_id"] == job.program_id
    assert CompileJob.objects.count() == 1  # a precheck submits nothing
    # Another spec would wait for one compile of the recent mean length.
    other = post(anon, "/compile/precheck", {"spec": SPEC.replace("urgent", "pressing")}).json()
    assert other["cached"] is False and other["estimated_wait_s"] == 90.0
    assert_error(post(anon, "/compile/precheck", {"spec": SPEC, "compiler": "nope"}), 400)


def test_job_status_uses_the_sdks_names(anon, as_user, no_enqueue):
    job_id = post(as_user, "/compile/async", {"spec": SPEC}).json()["job_id"]
    as_user.delete(f"{API}/compile/{job_id}")
    body = anon.get(f"{API}/compile/{job_id}").json()
    assert body["status"] == "cancelled" and body["completed_at"] == body["finished_at"]
    assert body["completed_at"] is not None and body["error"] == "Cancelled."
    # Cancelling what can no longer be cancelled: 409.
    assert_error(as_user.delete(f"{API}/compile/{job_id}"), 409, "conflict")


# --- the runtime and its base model ------------------------------------------------------


def test_runtime_manifest(anon):
    response = anon.get(f"{API}/models/runtimes/{manifest.RUNTIME_ID}")
    assert response.status_code == 200
    body = response.json()
    base = body["local_sdk"]["base_model"]
    assert body["runtime_id"] == manifest.RUNTIME_ID and body["manifest_version"] == 1
    assert body["interpreter"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert body["adapter_format"] == "gguf_lora"
    assert body["prompt_template"] == {
        "format": "rendered_text",
        "placeholder": "{INPUT_PLACEHOLDER}",
    }
    assert body["program_assets"] == {"adapter_filename": "adapter.gguf"}
    assert body["local_sdk"]["supported"] is True and body["local_sdk"]["n_ctx"] == 2048
    # The shipped Q4_1 file the adapters were trained on, by its sha256.
    assert base["file"] == BASE_MODEL_FILENAME == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert base["sha256"] == base_model_sha256()
    assert base["size_bytes"] == base_model_path().stat().st_size
    assert base["url"] == f"http://testserver{API}/models/files/{base_model_sha256()}"


def test_unknown_runtime_is_404_with_detail(anon):
    body = assert_error(anon.get(f"{API}/models/runtimes/qwen3-0.6b-q6_k"), 404, "not_found")
    assert "not found" in body["detail"].lower()


def test_the_base_model_is_served_content_addressed(anon):
    digest = base_model_sha256()
    size = base_model_path().stat().st_size
    url = f"{API}/models/files/{digest}"
    whole = anon.get(url)
    assert whole.status_code == 200 and whole["ETag"] == f'"{digest}"'
    assert int(whole["Content-Length"]) == size
    whole.close()
    head = anon.get(url, headers={"Range": "bytes=0-3"})
    assert head.status_code == 206 and b"".join(head.streaming_content) == b"GGUF"
    assert head["Content-Range"] == f"bytes 0-3/{size}"
    assert anon.get(url, headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    assert_error(anon.get(f"{API}/models/files/{'0' * 64}"), 404)


def test_the_manifest_and_the_model_need_no_auth(anon):
    # A key that is sent but revoked is refused elsewhere; the SDK fetches these without one.
    headers = {"X-API-Key": "paw_not_a_key"}
    response = anon.get(f"{API}/models/runtimes/{manifest.RUNTIME_ID}", headers=headers)
    assert response.status_code == 200
    range_ = {"Range": "bytes=0-3"} | headers
    assert anon.get(f"{API}/models/files/{base_model_sha256()}", headers=range_).status_code == 206


# --- programs ----------------------------------------------------------------------------


def test_compilers_are_wrapped(anon):
    body = anon.get(f"{API}/models/compilers").json()
    assert set(body) == {"compilers"} and body["compilers"][0]["name"]


def test_resolve_gives_program_id_and_versions_say_which_is_main(as_user, anon, user):
    first, second = ProgramFactory(owner=user), ProgramFactory(owner=user)
    for program in (first, second):
        post(as_user, f"/programs/{program.id}/alias", {"slug": "urgency"})
    name = f"{user.username}/urgency"
    resolved = anon.get(f"{API}/programs/resolve/{name}").json()
    assert resolved["program_id"] == resolved["id"] == second.id
    assert resolved["aliases"] == [f"{name}@v2"]
    assert resolved["interpreter"] == manifest.INTERPRETER
    pinned = anon.get(f"{API}/programs/resolve/{name}@v1").json()
    assert pinned["program_id"] == first.id
    versions = anon.get(f"{API}/programs/{name}/versions").json()
    assert versions["main_version"] == 2
    assert [(v["version"], v["is_main"]) for v in versions["versions"]] == [(2, True), (1, False)]


def test_unknown_program_404s_carry_detail(anon):
    for path in ("/programs/0123456789abcdef0123/download", "/programs/resolve/nobody/nothing"):
        body = assert_error(anon.get(f"{API}{path}"), 404)
        assert "not found" in body["detail"].lower()


def test_patch_slug_renames_or_refuses_clearly(as_user, user, other_user):
    program = ProgramFactory(owner=user)
    response = as_user.patch(
        f"{API}/programs/{program.id}", {"slug": "triage"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["slug"] == f"{user.username}/triage"
    assert Alias.objects.get(program=program).full_name == f"{user.username}/triage@v1"
    # Your own namespace spelled out is fine; another's, or no name, is refused.
    full = as_user.patch(
        f"{API}/programs/{program.id}",
        {"slug": f"{user.username}/triage-2"},
        content_type="application/json",
    )
    assert full.json()["slug"] == f"{user.username}/triage-2"
    for slug in (f"{other_user.username}/mine", ""):
        refused = as_user.patch(
            f"{API}/programs/{program.id}", {"slug": slug}, content_type="application/json"
        )
        assert_error(refused, 422, "rename_refused")
    bad = as_user.patch(
        f"{API}/programs/{program.id}", {"slug": "X"}, content_type="application/json"
    )
    assert_error(bad, 422)


# --- bundles -----------------------------------------------------------------------------


def stored_bundle(settings, tmp_path, program, *, version):
    """A real bundle of `version` on disk for `program`, as an older hub wrote it."""
    settings.MEDIA_ROOT = str(tmp_path)
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF" + bytes(4096))
    meta = BundleMeta(
        program_id=program.id,
        spec=program.spec,
        compiler_snapshot=program.compiler_snapshot,
        compiler_fingerprint=program.compiler_fingerprint,
        base_model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        base_model_sha256=base_model_sha256(),
        lora_rank=8,
        lora_alpha=16.0,
        adapter_quantization="Q4_0",
        created_at="2026-11-30T12:00:00+00:00",
        output={"kind": "choice", "choices": ["urgent", "routine"]},
        version=version,
    )
    path = tmp_path / "programs" / program.id / "program.paw"
    path.parent.mkdir(parents=True)
    write_bundle(
        path,
        meta=meta,
        adapter_path=adapter,
        prompt_template="Classify: {INPUT_PLACEHOLDER}\n",
        pseudo_program="Say urgent or routine.",
    )
    data = path.read_bytes()
    Program.objects.filter(pk=program.pk).update(
        bundle_path=f"programs/{program.id}/program.paw",
        bundle_size=len(data),
        bundle_sha256=hashlib.sha256(data).hexdigest(),
    )
    return path


def test_a_stored_old_bundle_is_upgraded_on_download(anon, settings, tmp_path):
    program = ProgramFactory()
    path = stored_bundle(settings, tmp_path, program, version=2)
    old_sha = Program.objects.get(pk=program.pk).bundle_sha256
    response = anon.get(f"{API}/programs/{program.id}/download")
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    program.refresh_from_db()
    # The served bytes are the stored file's, and its sha256 and size are recorded.
    assert program.bundle_sha256 != old_sha
    assert (
        response["ETag"] == f'"{program.bundle_sha256}"' == f'"{hashlib.sha256(data).hexdigest()}"'
    )
    assert program.bundle_size == len(data) == path.stat().st_size
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["version"] == 4 and meta["program_id"] == program.id
    assert meta["interpreter"] == manifest.INTERPRETER
    assert (meta["runtime_id"], meta["runtime_manifest_version"]) == (manifest.RUNTIME_ID, 1)
    assert meta["output"] == {"kind": "choice", "choices": ["urgent", "routine"]}
    assert read_bundle(path).meta.version == 4
    # Once upgraded, it stays as it is: the same bytes, the same ETag.
    again = anon.get(f"{API}/programs/{program.id}/download")
    assert again["ETag"] == response["ETag"]
    assert (
        anon.get(f"{API}/programs/{program.id}", headers={}).json()["bundle"]["sha256"]
        == program.bundle_sha256
    )


def test_an_upgraded_bundle_is_not_rewritten_again(anon, settings, tmp_path):
    program = ProgramFactory()
    path = stored_bundle(settings, tmp_path, program, version=3)
    anon.get(f"{API}/programs/{program.id}/download")
    upgraded = path.read_bytes()
    anon.get(f"{API}/programs/{program.id}/download")
    assert path.read_bytes() == upgraded


def test_the_openapi_document_describes_what_the_sdk_gets(anon):
    doc = anon.get(f"{API}/openapi.json").json()
    paths = doc["paths"]
    assert "200" in paths[f"{API}/compile"]["post"]["responses"]
    assert "202" in paths[f"{API}/compile/async"]["post"]["responses"]
    assert "200" in paths[f"{API}/compile/precheck"]["post"]["responses"]
    assert "409" in paths[f"{API}/compile/{{job_id}}"]["delete"]["responses"]
    assert "200" in paths[f"{API}/models/runtimes/{{runtime_id}}"]["get"]["responses"]
    assert {"200", "206", "304"} <= set(paths[f"{API}/models/files/{{sha256}}"]["get"]["responses"])
    schemas = doc["components"]["schemas"]
    assert {"completed_at", "cached", "queue_length", "estimated_wait_s"} <= set(
        schemas["JobOut"]["properties"]
    )
    assert {"program_id", "interpreter", "aliases"} <= set(schemas["ProgramOut"]["properties"])
    assert "main_version" in schemas["VersionsOut"]["properties"]
    assert "detail" in schemas["ErrorOut"]["properties"]
