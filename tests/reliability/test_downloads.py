"""Downloads over real HTTP from gunicorn (production settings, behind the proxy):
the bytes served hash to the sha256 the program page and the API show, ETag
gives 304, Range gives 206 pieces that reassemble the file, a private program
is a 404 to everyone but its owner, and the counter counts each download once.
Every test runs twice: files in MEDIA_ROOT, and files in a real S3 server
(SeaweedFS) that the site reaches over the network."""

import hashlib
import json
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile

from pawhub.bundle import read_bundle
from programs.artifacts import artifact_storage, is_local
from programs.models import Program
from tests.factories import ProgramFactory, UserFactory
from tests.reliability.production import Proxy, production_site, sign_in
from tests.runtime.conftest import make_bundle, random_adapter

pytestmark = pytest.mark.django_db(transaction=True)

SHOWN_SHA = re.compile(
    r"<dt>(Bundle|Adapter)</dt><dd>[^<]*sha256 <code class=\"hash\">(\w+)</code>"
)
SHOWN_COUNT = re.compile(r"<dt>Downloads</dt><dd>([\d,]+)</dd>")


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """Real hashers: the site (its own process) checks the passwords made here."""


@pytest.fixture(autouse=True)
def fresh_download_limits():
    """Each test downloads up to ~100 times, anonymously, from a site that counts
    in the cache it shares with this process when that is Redis (CI): the two
    storages' runs would add up past the anonymous download limit."""
    cache.clear()


@pytest.fixture(scope="module", params=["local", "s3"])
def storage(request):
    """(S3 server, key prefix) when the files are in S3, else None."""
    if request.param == "local":
        return None
    return request.getfixturevalue("s3_server"), f"rel-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def site(django_db_setup, tmp_path_factory, storage):
    """The production site, its files where `storage` says."""
    env = storage[0].storage_env(storage[1]) if storage else {}
    with production_site(tmp_path_factory.mktemp("site") / "gunicorn.log", **env) as url:
        yield url


@pytest.fixture(autouse=True)
def same_storage_here(storage, settings):
    """This process writes the files where the site reads them."""
    if storage:
        server, location = storage
        settings.STORAGES = {**settings.STORAGES, "default": server.storage_settings(location)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A real adapter (random LoRA, Q4_0) and the bundle around it."""
    from pawhub.prompt import prompt_template

    folder = tmp_path_factory.mktemp("files")
    adapter = random_adapter(folder / "adapter.gguf", seed=7)
    bundle = make_bundle(
        folder / "program.paw", adapter=adapter, template=prompt_template("Task: say hi")
    )
    read_bundle(bundle)  # a valid one
    return {"adapter": adapter.read_bytes(), "bundle": bundle.read_bytes()}


def program_with_files(files, **fields):
    program = ProgramFactory(**fields)
    if is_local():
        # Fresh: an earlier test may have left a symlink (test_malformed_files) at this id.
        shutil.rmtree(settings.MEDIA_ROOT / "programs" / program.id, ignore_errors=True)
    values = {}
    for kind, data in files.items():
        name = "adapter.gguf" if kind == "adapter" else "program.paw"
        key = artifact_storage().save(f"programs/{program.id}/{name}", ContentFile(data))
        values |= {
            f"{kind}_path": key,
            f"{kind}_size": len(data),
            f"{kind}_sha256": hashlib.sha256(data).hexdigest(),
        }
    Program.objects.filter(pk=program.pk).update(**values)
    program.refresh_from_db()
    return program


def count(program):
    return Program.objects.get(pk=program.pk).download_count


def web_url(program, kind):
    return f"/p/{program.id}/download/{kind}/"


def api_url(program, kind):
    return f"/api/v1/programs/{program.id}/download?file={kind}"


def test_served_bytes_hash_to_the_sha256_shown_and_etag_gives_304(site, files, figure):
    proxy = Proxy(site)
    program = program_with_files(files)
    page = proxy.get(program.get_absolute_url())
    assert page.status == 200
    shown = {kind.lower(): sha for kind, sha in SHOWN_SHA.findall(page.text())}
    api = proxy.get(f"/api/v1/programs/{program.id}")
    assert api.status == 200
    listed = json.loads(api.body)
    before = count(program)
    assert int(SHOWN_COUNT.search(page.text()).group(1)) == listed["downloads"] == before == 0
    for kind in ("bundle", "adapter"):
        for url in (web_url(program, kind), api_url(program, kind)):
            whole = proxy.get(url)
            assert whole.status == 200, (url, whole.status, whole.body[:300])
            served = hashlib.sha256(whole.body).hexdigest()
            assert served == shown[kind] == listed[kind]["sha256"], url
            assert len(whole.body) == listed[kind]["size"] == int(whole.header("Content-Length"))
            assert whole.header("ETag") == f'"{served}"'
            assert whole.header("Content-Disposition").startswith("attachment; filename=")
            figure(f"{kind} via {url.split('/')[1]}", f"{len(whole.body)} bytes, sha256 {served}")

            again = proxy.get(url, headers={"If-None-Match": whole.header("ETag")})
            assert again.status == 304 and again.body == b""
            assert again.header("ETag") == whole.header("ETag")
            # A stale ETag gets the file again.
            stale = proxy.get(url, headers={"If-None-Match": '"' + "0" * 64 + '"'})
            assert stale.status == 200 and stale.body == whole.body
            head = proxy.request("HEAD", url)
            assert head.status == 200 and head.body == b""
    # Two whole downloads of each file on each URL count; 304s and HEADs do not.
    after = count(program)
    figure("download counter before/after (8 GETs of the file, 4 304s, 4 HEADs)", (before, after))
    assert after == before + 8
    page = proxy.get(program.get_absolute_url()).text()
    assert int(SHOWN_COUNT.search(page).group(1)) == after


def test_ranges_reassemble_the_file_and_count_once(site, files, figure):
    proxy = Proxy(site)
    program = program_with_files(files)
    data = files["bundle"]
    size = len(data)
    chunk = 64 * 1024
    for url in (web_url(program, "bundle"), api_url(program, "bundle")):
        before = count(program)
        etag = proxy.request("HEAD", url).header("ETag")
        pieces = []
        for start in range(0, size, chunk):
            end = min(start + chunk, size) - 1
            piece = proxy.get(url, headers={"Range": f"bytes={start}-{end}", "If-Range": etag})
            assert piece.status == 206, (url, start, piece.status)
            assert piece.header("Content-Range") == f"bytes {start}-{end}/{size}"
            assert int(piece.header("Content-Length")) == len(piece.body) == end - start + 1
            pieces.append(piece.body)
        assert b"".join(pieces) == data
        figure(f"{url.split('/')[1]}: 206 pieces of {chunk} B reassembled", len(pieces))
        figure("counter before/after a download in pieces", (before, count(program)))
        assert count(program) == before + 1

        tail = proxy.get(url, headers={"Range": "bytes=-100"})
        assert tail.status == 206 and tail.body == data[-100:]
        outside = proxy.get(url, headers={"Range": f"bytes={size}-"})
        assert outside.status == 416 and outside.header("Content-Range") == f"bytes */{size}"
        # A range of an older version (If-Range no longer matches) gets the whole new file.
        old = proxy.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
        assert old.status == 200 and old.body == data
        assert count(program) == before + 2


def test_concurrent_downloads_each_count_once(site, files, figure):
    program = program_with_files(files)
    proxy = Proxy(site)
    url = web_url(program, "adapter")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: proxy.get(url), range(20)))
    digest = program.adapter_sha256
    wrong = [
        (a.status, a.body[:300]) for a in answers if hashlib.sha256(a.body).hexdigest() != digest
    ]
    assert not wrong, wrong
    figure("counter after 20 concurrent downloads", count(program))
    assert count(program) == 20


def test_a_private_program_is_404_to_everyone_but_its_owner(site, files, figure):
    owner, stranger = UserFactory(), UserFactory()
    program = program_with_files(files, owner=owner, is_public=False)
    anonymous = Proxy(site)
    owner_cookie, *_ = sign_in(anonymous, owner.username)
    stranger_cookie, *_ = sign_in(anonymous, stranger.username)
    paths = [program.get_absolute_url(), f"/api/v1/programs/{program.id}"]
    paths += [web_url(program, k) for k in files] + [api_url(program, k) for k in files]
    statuses = {}
    for who, cookie in (("anonymous", None), ("stranger", stranger_cookie)):
        for path in paths:
            answer = anonymous.get(path, headers={"Cookie": cookie} if cookie else {})
            statuses.setdefault(who, []).append(answer.status)
            assert answer.status == 404, (who, path, answer.status)
            assert program.adapter_sha256 not in answer.text()
    assert count(program) == 0
    for path in paths:
        assert anonymous.get(path, headers={"Cookie": owner_cookie}).status == 200, path
    statuses["owner"] = [200] * len(paths)
    figure("statuses on the private program's pages and files", statuses)
    figure("counter after 8 refused and 4 owner downloads", count(program))
    assert count(program) == 4
