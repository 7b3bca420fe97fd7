"""POST /compile, GET and DELETE /compile/{job_id}: contract and access."""

import uuid

import pytest

from compiler.models import CompileJob
from compiler.spec import SPEC_MAX_CHARS
from programs.models import Program

from .conftest import API, SPEC, assert_error

pytestmark = pytest.mark.django_db


def compile_(client, spec=SPEC, **fields):
    return client.post(
        f"{API}/compile/async", {"spec": spec, **fields}, content_type="application/json"
    )


def test_anonymous_compile_is_accepted_and_enqueued(
    anon, no_enqueue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = compile_(anon, name="Urgency", tags=["support"])
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {
        "job_id",
        "status",
        "program_id",
        "slug",
        "pseudo_program",
        "compiler_snapshot",
        "version",
        "cache_hit",
        "joined",
        # What the PAW SDK's compile_async reads, too.
        "cached",
        "compiler_kind",
        "version_action",
        "runtime_id",
        "runtime_manifest_version",
        "queue_position",
        "estimated_wait_s",
    }
    assert body["queue_position"] == 1 and body["cached"] is False
    assert body["runtime_id"] == "smollm2-135m-q4_1" and body["runtime_manifest_version"] == 1
    assert body["status"] == "queued" and body["compiler_snapshot"] == "paw-smollm2-135m-20261206"
    job = CompileJob.objects.get(pk=body["job_id"])
    assert job.owner is None and job.client_ip == "127.0.0.1"
    assert job.program_id == body["program_id"] and job.program.is_public
    assert list(job.program.tags.values_list("name", flat=True)) == ["support"]
    assert no_enqueue == [job]
    assert response["X-RateLimit-Limit"] == "20"


def test_signed_in_compile_can_be_private(as_user, user):
    response = compile_(as_user, public=False)
    assert response.status_code == 202
    program = Program.objects.get(pk=response.json()["program_id"])
    assert program.owner == user and not program.is_public
    assert response["X-RateLimit-Limit"] == "60"


def test_same_spec_while_compiling_joins_the_running_job(
    as_user, as_other, no_enqueue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = compile_(as_user).json()
        second = compile_(as_other)
    assert second.status_code == 202
    assert second.json()["job_id"] == first["job_id"] and second.json()["joined"] is True
    assert len(no_enqueue) == 1


def test_compiled_spec_is_a_cache_hit_with_the_ready_program(as_user, as_other):
    first = compile_(as_user).json()
    CompileJob.objects.filter(pk=first["job_id"]).update(status="ready", percent=100)
    Program.objects.filter(pk=first["program_id"]).update(status="ready", pseudo_program="PP")
    response = compile_(as_other)
    assert response.status_code == 202
    body = response.json()
    assert body["cache_hit"] is True and body["status"] == "ready"
    assert body["program_id"] == first["program_id"] and body["job_id"] == first["job_id"]
    assert body["pseudo_program"] == "PP"


def test_unknown_compiler_is_400(anon):
    body = assert_error(compile_(anon, compiler="gpt-17"), 400, "unknown_compiler")
    assert "paw-smollm2-135m" in body["message"]
    assert not CompileJob.objects.exists()


@pytest.mark.parametrize(
    "spec, says",
    [
        ("too short", "too short"),
        ("x" * (SPEC_MAX_CHARS + 1), "limit is 16000"),
        ("Classify messages by urgency, please.", "at least 2 examples"),
    ],
)
def test_spec_the_compile_form_would_refuse_is_422_with_its_message(anon, spec, says):
    body = assert_error(compile_(anon, spec=spec), 422, "validation_error")
    assert says in body["message"]
    assert body["details"]["errors"][0]["loc"][-1] == "spec"
    assert not CompileJob.objects.exists()


def test_missing_and_mistyped_fields_are_422(anon):
    body = assert_error(anon.post(f"{API}/compile/async", {}, content_type="application/json"), 422)
    assert body["details"]["errors"][0]["type"] == "missing"
    assert_error(compile_(anon, tags=["Not A Tag"]), 422, "validation_error")
    assert_error(compile_(anon, tags=[f"t{i}" for i in range(6)]), 422, "validation_error")
    assert_error(compile_(anon, name="n" * 101), 422, "validation_error")


def test_body_that_is_not_json_is_400(anon):
    response = anon.post(f"{API}/compile/async", "{not json", content_type="application/json")
    assert_error(response, 400)


def test_job_status_contract(anon):
    job_id = compile_(anon).json()["job_id"]
    response = anon.get(f"{API}/compile/{job_id}")
    assert response.status_code == 200
    assert response.json() | {"created_at": None} == {
        "job_id": job_id,
        "program_id": CompileJob.objects.get().program_id,
        "status": "queued",
        "stage": "",
        "percent": 0,
        "error": None,  # null, not "", while nothing went wrong (the PAW SDK reads it so)
        "created_at": None,
        "started_at": None,
        "finished_at": None,
        "completed_at": None,
        "compiler_snapshot": "paw-smollm2-135m-20261206",
        "compiler_kind": "finetune",
        "runtime_id": "smollm2-135m-q4_1",
        "runtime_manifest_version": 1,
        "cached": False,
        "queue_length": 1,
        "estimated_wait_s": None,  # no compile has finished yet: nothing to go by
    }


def test_unknown_job_is_404(anon):
    assert_error(anon.get(f"{API}/compile/{uuid.uuid4()}"), 404, "not_found")
    assert_error(anon.get(f"{API}/compile/not-a-uuid"), 404, "not_found")


def test_private_job_access(as_user, as_other, as_staff, anon):
    job_id = compile_(as_user, public=False).json()["job_id"]
    assert as_user.get(f"{API}/compile/{job_id}").status_code == 200
    assert as_staff.get(f"{API}/compile/{job_id}").status_code == 200
    assert_error(as_other.get(f"{API}/compile/{job_id}"), 404)
    assert_error(anon.get(f"{API}/compile/{job_id}"), 404)


def test_owner_cancels(as_user):
    job_id = compile_(as_user).json()["job_id"]
    response = as_user.delete(f"{API}/compile/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert CompileJob.objects.get(pk=job_id).status == "cancelled"
    # Cancelling again: the job has finished.
    body = assert_error(as_user.delete(f"{API}/compile/{job_id}"), 409, "conflict")
    assert body["details"] == {"status": "cancelled"}


def test_cancel_access(as_user, as_other, as_staff, anon):
    public_job = compile_(as_user).json()["job_id"]
    private_job = compile_(as_user, spec=SPEC + "\nInput: ok\nOutput: low\n", public=False)
    private_job = private_job.json()["job_id"]
    assert_error(anon.delete(f"{API}/compile/{public_job}"), 401, "unauthorized")
    assert_error(as_other.delete(f"{API}/compile/{public_job}"), 403, "forbidden")
    assert_error(as_other.delete(f"{API}/compile/{private_job}"), 404, "not_found")
    assert as_staff.delete(f"{API}/compile/{public_job}").json()["status"] == "cancelled"
    assert CompileJob.objects.get(pk=private_job).status == "queued"


def test_anonymous_jobs_cannot_be_cancelled_by_users(anon, as_other):
    job_id = compile_(anon).json()["job_id"]
    assert_error(as_other.delete(f"{API}/compile/{job_id}"), 403)


def test_compile_can_name_the_program(as_user, user):
    response = compile_(as_user, slug="urgency")
    assert response.status_code == 202
    body = response.json()
    assert body["slug"] == f"{user.username}/urgency" and body["version"] == 1
    assert Program.objects.get(pk=body["program_id"]).primary_alias.slug == "urgency"


def test_naming_needs_a_valid_slug_and_a_user(as_user, anon):
    assert_error(compile_(anon, slug="urgency"), 401)
    assert "reserved" in assert_error(compile_(as_user, slug="admin"), 422)["message"]
    assert_error(compile_(as_user, slug="Not Valid"), 422)
    assert not CompileJob.objects.exists()


def test_naming_someone_elses_program_is_a_conflict(as_user, as_other):
    first = compile_(as_user).json()
    body = assert_error(compile_(as_other, slug="mine-now"), 409, "conflict")
    assert body["details"] == {"program_id": first["program_id"]}


def test_a_spec_whose_program_moderators_hid_is_422_for_others(as_user, as_other):
    first = compile_(as_user)
    Program.objects.filter(pk=first.json()["program_id"]).update(status="ready", is_hidden=True)
    response = compile_(as_other)
    assert_error(response, 422, "invalid_spec")
    assert "removed by moderators" in response.json()["message"]
