"""GET /programs, GET/PATCH /programs/{id_or_slug}, resolve, versions, alias,
vote and cases: contract and who may do what."""

import hashlib
from urllib.parse import quote

import pytest

from programs import services
from programs.models import Alias, Case, Program
from tests.factories import ProgramFactory

from .conftest import API, assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(user):
    return ProgramFactory(owner=user, name="Urgency triage", tags=["support", "triage"])


@pytest.fixture
def private(user):
    return ProgramFactory(owner=user, name="Secret", is_public=False)


@pytest.fixture
def hidden(user):
    return ProgramFactory(owner=user, is_hidden=True, hidden_reason="spam")


def ids(response):
    assert response.status_code == 200, response.content
    return [p["id"] for p in response.json()["programs"]]


# --- list ----------------------------------------------------------------------


def test_list_shows_the_gallery(anon, program, private, hidden):
    compiling = ProgramFactory(status="compiling")
    response = anon.get(f"{API}/programs")
    body = response.json()
    assert ids(response) == [program.id]
    assert body["total"] == 1 and body["page"] == 1 and body["per_page"] == 20
    item = body["programs"][0]
    assert item["owner"] == program.owner.username and item["tags"] == ["support", "triage"]
    assert item["url"].endswith(f"/p/{program.id}/") and item["status"] == "ready"
    assert item["description"].startswith("Urgency triage: classify")
    assert compiling.id not in ids(response)


def test_list_pages(anon):
    made = [ProgramFactory() for _ in range(5)]
    first = anon.get(f"{API}/programs", {"per_page": 2, "sort": "recent"})
    assert ids(first) == [p.id for p in reversed(made)][:2]
    assert first.json()["total"] == 5
    assert ids(anon.get(f"{API}/programs", {"per_page": 2, "page": 3, "sort": "recent"})) == [
        made[0].id
    ]
    assert ids(anon.get(f"{API}/programs", {"page": 99})) == []
    assert_error(anon.get(f"{API}/programs", {"per_page": 101}), 422, "validation_error")
    assert_error(anon.get(f"{API}/programs", {"page": 0}), 422)
    assert_error(anon.get(f"{API}/programs", {"sort": "sideways"}), 422)


def test_list_sorts(anon):
    low = ProgramFactory(score=1, download_count=50)
    high = ProgramFactory(score=9, download_count=5)
    assert ids(anon.get(f"{API}/programs", {"sort": "votes"})) == [high.id, low.id]
    assert ids(anon.get(f"{API}/programs", {"sort": "downloads"})) == [low.id, high.id]
    assert ids(anon.get(f"{API}/programs")) == [high.id, low.id]  # votes by default


def test_list_searches_and_filters_by_tag(anon, program):
    other = ProgramFactory(name="Translate to French", tags=["language"])
    assert ids(anon.get(f"{API}/programs", {"q": "triage"})) == [program.id]
    assert ids(anon.get(f"{API}/programs", {"q": "french"})) == [other.id]
    assert ids(anon.get(f"{API}/programs", {"tag": "language"})) == [other.id]
    assert ids(anon.get(f"{API}/programs", {"q": "triage", "tag": "language"})) == []


def test_mine_lists_your_programs_in_any_state(as_user, anon, program, private, hidden):
    compiling = ProgramFactory(owner=program.owner, status="compiling")
    ProgramFactory()  # someone else's
    mine = set(ids(as_user.get(f"{API}/programs", {"mine": "true", "sort": "recent"})))
    assert mine == {program.id, private.id, hidden.id, compiling.id}
    assert_error(anon.get(f"{API}/programs", {"mine": "true"}), 401)


def test_list_queries_do_not_grow_with_the_page(anon, django_assert_max_num_queries):
    for _ in range(30):
        ProgramFactory(tags=["a", "b"])
    with django_assert_max_num_queries(6):
        assert len(ids(anon.get(f"{API}/programs", {"per_page": 30}))) == 30


def test_list_counts_once(anon):
    """A search counts in the query that pages it; the public listing's count
    is kept until the gallery changes (issue 18: 100k programs)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def counted(params):
        with CaptureQueriesContext(connection) as queries:
            body = anon.get(f"{API}/programs", params).json()
        return body["total"], [q for q in queries.captured_queries if '"__count"' in q["sql"]]

    ProgramFactory.create_batch(3, name="Zebra triage")
    ProgramFactory(name="Translate to French")
    assert counted({"q": "zebra", "per_page": 2}) == (3, [])
    counted({})
    assert counted({"page": 2, "per_page": 3}) == (4, [])
    ProgramFactory()
    assert counted({})[0] == 5


# --- one program ----------------------------------------------------------------


# What GET /programs/{id} says of an output constraint's fields the program does not use.
OUTPUT_DEFAULTS = {
    "choices": [],
    "shapes": [],
    "start": "word",
    "fixed": [],
    "max_bytes": 0,
    "copied": [],
}


def test_detail_contract(anon, program):
    body = anon.get(f"{API}/programs/{program.id}").json()
    assert body["id"] == program.id and body["spec"] == program.spec
    assert body["compiler_snapshot"] == "paw-smollm2-135m-20261124"
    assert body["slug"] is None and body["adapter"] is None  # no name, no files on disk
    assert body["selfcheck_accuracy"] == 0.9 and body["hidden"] is False
    assert body["output"] == {"kind": "free", **OUTPUT_DEFAULTS}


def test_detail_gives_the_prompt_in_the_compilers_own_format(anon, user):
    """A client that runs the GGUF adapter on its own needs the exact prompt."""
    from pawhub.prompt import INPUT_PLACEHOLDER, prompt_template

    old = ProgramFactory(owner=user, pseudo_program="Task: say hi")
    new = ProgramFactory(
        owner=user, pseudo_program="Task: say hi", compiler_snapshot="paw-smollm2-135m-20261202b"
    )
    old_template = anon.get(f"{API}/programs/{old.id}").json()["prompt_template"]
    new_template = anon.get(f"{API}/programs/{new.id}").json()["prompt_template"]
    assert old_template == prompt_template("Task: say hi", 1)
    assert new_template == prompt_template("Task: say hi", 2)
    assert old_template.count(INPUT_PLACEHOLDER) == new_template.count(INPUT_PLACEHOLDER) == 1


@pytest.mark.parametrize(
    ("stored", "extra"),
    [
        ({"kind": "choice", "choices": ["urgent", "normal", "low"]}, {}),
        ({"kind": "shape", "shapes": ["###-###-####"]}, {}),
        ({"kind": "span", "start": "space"}, {}),
        ({"kind": "span"}, {"start": "word"}),
        ({"kind": "span", "fixed": ["NONE"], "max_bytes": 20}, {}),
        ({"kind": "words", "max_bytes": 30}, {}),
        ({"kind": "shape", "shapes": ["####-##-##"], "max_bytes": 18, "copied": [[0, 2]]}, {}),
    ],
)
def test_detail_says_what_the_answers_may_be(anon, user, stored, extra):
    program = ProgramFactory(owner=user, output_constraint=stored)
    output = anon.get(f"{API}/programs/{program.id}").json()["output"]
    assert output == OUTPUT_DEFAULTS | stored | extra


def test_detail_access(anon, as_user, as_other, as_staff, program, private, hidden):
    for client in (anon, as_user, as_other, as_staff):
        assert client.get(f"{API}/programs/{program.id}").status_code == 200
    for p in (private, hidden):
        assert as_user.get(f"{API}/programs/{p.id}").status_code == 200
        assert as_staff.get(f"{API}/programs/{p.id}").status_code == 200
        assert_error(as_other.get(f"{API}/programs/{p.id}"), 404, "not_found")
        assert_error(anon.get(f"{API}/programs/{p.id}"), 404, "not_found")
    assert as_user.get(f"{API}/programs/{hidden.id}").json()["hidden_reason"] == "spam"


def test_detail_by_name(anon, user, program):
    services.alias_point(user=user, slug="urgency", program=program)
    for ref in (f"{user.username}/urgency", f"{user.username}%2Furgency", "x@v1"):
        if ref == "x@v1":
            ref = f"{user.username}/urgency@v1"
        body = anon.get(f"{API}/programs/{ref}").json()
        assert body["id"] == program.id and body["slug"] == f"{user.username}/urgency"
    assert_error(anon.get(f"{API}/programs/{user.username}/nope"), 404)
    assert_error(anon.get(f"{API}/programs/{'0' * 20}"), 404)


def test_owner_patches(as_user, program, private):
    response = as_user.patch(
        f"{API}/programs/{program.id}",
        {"name": "Renamed", "tags": ["ops"]},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Renamed" and body["tags"] == ["ops"] and body["public"] is True
    program.refresh_from_db()
    assert program.name == "Renamed"
    # Fields left out stay as they are; a private program can be published.
    response = as_user.patch(
        f"{API}/programs/{private.id}", {"public": True}, content_type="application/json"
    )
    assert response.json()["name"] == "Secret" and response.json()["public"] is True


def test_public_programs_stay_public(as_user, program):
    # Its id is the shared cache entry for the spec: others' compiles land on it.
    response = as_user.patch(
        f"{API}/programs/{program.id}", {"public": False}, content_type="application/json"
    )
    assert_error(response, 409, "conflict")
    assert Program.objects.get(pk=program.pk).is_public


def test_patch_access(anon, as_other, as_staff, program, private):
    def patch(client, p):
        return client.patch(
            f"{API}/programs/{p.id}", {"name": "x"}, content_type="application/json"
        )

    assert_error(patch(anon, program), 401)
    assert_error(patch(as_other, program), 403, "forbidden")
    assert_error(patch(as_staff, program), 403)  # moderators hide, they do not edit
    assert_error(patch(as_other, private), 404)
    assert Program.objects.get(pk=program.pk).name == "Urgency triage"


def test_patch_validates(as_user, program):
    for bad in ({"tags": ["Bad Tag"]}, {"name": "x" * 101}, {"public": "maybe"}):
        response = as_user.patch(
            f"{API}/programs/{program.id}", bad, content_type="application/json"
        )
        assert_error(response, 422, "validation_error")


# --- names and versions -----------------------------------------------------------


def test_alias_then_resolve_and_versions(as_user, anon, user, program):
    response = as_user.post(
        f"{API}/programs/{program.id}/alias", {"slug": "urgency"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json() == {
        "slug": f"{user.username}/urgency",
        "version": 1,
        "program_id": program.id,
        "created": True,
    }
    again = as_user.post(
        f"{API}/programs/{program.id}/alias", {"slug": "urgency"}, content_type="application/json"
    )
    assert again.status_code == 200 and again.json()["created"] is False
    newer = ProgramFactory(owner=user)
    response = as_user.post(
        f"{API}/programs/{newer.id}/alias", {"slug": "urgency"}, content_type="application/json"
    )
    assert response.json()["version"] == 2

    name = f"{user.username}/urgency"
    assert anon.get(f"{API}/programs/resolve/{name}").json()["id"] == newer.id
    assert anon.get(f"{API}/programs/resolve/{quote(name, safe='')}").json()["id"] == newer.id
    old = anon.get(f"{API}/programs/resolve/{name}@v1").json()
    assert old["id"] == program.id and old["version"] == 1
    versions = anon.get(f"{API}/programs/{name}/versions").json()
    assert versions["slug"] == name
    assert [(v["version"], v["program_id"]) for v in versions["versions"]] == [
        (2, newer.id),
        (1, program.id),
    ]
    assert anon.get(f"{API}/programs/{program.id}/versions").json()["slug"] == name


def test_official_names_resolve_bare(anon, staff, program):
    services.program_publish(program=program, actor=staff, slug="urgency")
    body = anon.get(f"{API}/programs/resolve/urgency").json()
    assert body["id"] == program.id and body["slug"] == "urgency"
    assert anon.get(f"{API}/programs/urgency").json()["id"] == program.id


def test_resolve_and_versions_not_found(anon, as_other, user, private, program):
    services.alias_point(user=user, slug="secret", program=private)
    assert_error(anon.get(f"{API}/programs/resolve/{user.username}/secret"), 404)
    assert_error(as_other.get(f"{API}/programs/resolve/{user.username}/secret"), 404)
    assert_error(anon.get(f"{API}/programs/resolve/nobody/nothing"), 404)
    assert_error(anon.get(f"{API}/programs/resolve/not a name!"), 404)
    assert_error(anon.get(f"{API}/programs/{program.id}/versions"), 404)  # never named


def test_alias_access_and_validation(anon, as_other, as_user, program):
    def name(client, slug="urgency"):
        return client.post(
            f"{API}/programs/{program.id}/alias", {"slug": slug}, content_type="application/json"
        )

    assert_error(name(anon), 401)
    assert_error(name(as_other), 403)
    body = assert_error(name(as_user, "admin"), 422, "validation_error")
    assert "reserved" in body["message"]
    assert_error(name(as_user, "Bad Slug"), 422)
    assert not Alias.objects.exists()


# --- votes and cases ----------------------------------------------------------------


def test_vote_toggles(as_other, program):
    def vote(value):
        response = as_other.post(
            f"{API}/programs/{program.id}/vote", {"vote": value}, content_type="application/json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    assert vote(1) == {"score": 1, "vote": 1}
    assert vote(1) == {"score": 0, "vote": 0}
    assert vote(-1) == {"score": -1, "vote": -1}
    assert vote(1) == {"score": 1, "vote": 1}


def test_vote_access_and_validation(anon, as_other, as_user, program, private):
    def vote(client, p, value=1):
        return client.post(
            f"{API}/programs/{p.id}/vote", {"vote": value}, content_type="application/json"
        )

    assert_error(vote(anon, program), 401)
    assert_error(vote(as_other, private), 404)
    assert_error(vote(as_other, program, 2), 422)
    assert vote(as_user, private).json()["score"] == 1  # authors may vote on their own


def test_cases(as_other, anon, program):
    case = {"input": "printer on fire", "expected": "urgent", "type": "edge_case", "note": "!"}
    response = as_other.post(
        f"{API}/programs/{program.id}/cases", case, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["input"] == "printer on fire" and body["author"] == as_other.api_key.user.username
    assert body["passed"] is None and body["type"] == "edge_case"
    listed = anon.get(f"{API}/programs/{program.id}/cases").json()
    assert listed["total"] == 1 and listed["cases"][0]["id"] == body["id"]
    assert anon.get(f"{API}/programs/{program.id}/cases", {"type": "success"}).json()["total"] == 0


def test_case_access_and_validation(anon, as_other, program, private):
    def add(client, p, **fields):
        data = {"input": "x", "expected": "y"} | fields
        return client.post(f"{API}/programs/{p.id}/cases", data, content_type="application/json")

    assert_error(add(anon, program), 401)
    assert_error(add(as_other, private), 404)
    assert_error(anon.get(f"{API}/programs/{private.id}/cases"), 404)
    assert_error(add(as_other, program, type="opinion"), 422)
    assert_error(add(as_other, program, input=""), 422)
    assert_error(add(as_other, program, expected="y" * 1001), 422)
    compiling = ProgramFactory(status="compiling")
    assert_error(add(as_other, compiling), 409, "conflict")
    assert not Case.objects.exists()


# --- downloads ------------------------------------------------------------------------

BUNDLE = b"PK\x03\x04 a .paw bundle " * 100
ADAPTER = b"GGUF adapter bytes " * 100


@pytest.fixture
def with_files(settings, tmp_path, program):
    settings.MEDIA_ROOT = tmp_path
    settings.DOWNLOADS_X_ACCEL_REDIRECT_PREFIX = ""
    folder = tmp_path / "programs" / program.id
    folder.mkdir(parents=True)
    for kind, data, name in (("bundle", BUNDLE, "program.paw"), ("adapter", ADAPTER, "a.gguf")):
        (folder / name).write_bytes(data)
        setattr(program, f"{kind}_path", f"programs/{program.id}/{name}")
        setattr(program, f"{kind}_size", len(data))
        setattr(program, f"{kind}_sha256", hashlib.sha256(data).hexdigest())
    program.save()
    return program


def download(client, program, **params):
    return client.get(f"{API}/programs/{program.id}/download", params)


def test_download_the_bundle_and_the_adapter(anon, with_files):
    program = with_files
    response = download(anon, program)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == BUNDLE
    assert response["Content-Type"] == "application/zip"
    assert response["ETag"] == f'"{program.bundle_sha256}"'
    adapter = download(anon, program, file="adapter")
    assert b"".join(adapter.streaming_content) == ADAPTER
    assert Program.objects.get(pk=program.pk).download_count == 2
    # The detail links to both, with their sizes and hashes.
    body = anon.get(f"{API}/programs/{program.id}").json()
    assert body["bundle"]["sha256"] == program.bundle_sha256
    assert body["adapter"]["url"].endswith(f"/programs/{program.id}/download?file=adapter")


def test_download_conditional_and_ranges(anon, with_files):
    program = with_files
    etag = f'"{program.bundle_sha256}"'
    not_modified = anon.get(
        f"{API}/programs/{program.id}/download", headers={"If-None-Match": etag}
    )
    assert not_modified.status_code == 304
    part = anon.get(f"{API}/programs/{program.id}/download", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and b"".join(part.streaming_content) == BUNDLE[:10]
    outside = anon.get(f"{API}/programs/{program.id}/download", headers={"Range": "bytes=99999-"})
    assert_error(outside, 416, "range_not_satisfiable")
    assert outside["Content-Range"] == f"bytes */{len(BUNDLE)}"


def test_download_while_compiling_says_when_to_retry(anon, no_enqueue):
    program = ProgramFactory(status="compiling")
    response = download(anon, program)
    assert response.status_code == 202 and response["Retry-After"] == "30"
    assert response.json()["status"] == "compiling"


def test_download_refusals(anon, as_other, as_user, private, program, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert_error(download(anon, private), 404)
    assert_error(download(as_other, private), 404)
    assert_error(download(as_user, private), 404, "not_found")  # visible, but no file on disk
    assert_error(download(anon, ProgramFactory(status="failed")), 409, "conflict")
    assert_error(download(anon, program, file="weights.bin"), 422)
