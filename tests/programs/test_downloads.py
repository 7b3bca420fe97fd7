"""Downloads: ETag = sha256, 304, ranges, filenames, access, the counter,
X-Accel-Redirect, and "not ready yet" while compiling."""

import hashlib

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from programs import services
from programs.artifacts import artifact_storage, is_local
from programs.models import Program
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db

ADAPTER = bytes(range(256)) * 40  # 10240 bytes
BUNDLE = b"PK\x03\x04" + b"bundle" * 100


@pytest.fixture(params=["local", "s3"])
def media(request, settings, tmp_path):
    """Where the files are: MEDIA_ROOT (local), or a real S3 server (s3)."""
    settings.MEDIA_ROOT = tmp_path
    settings.DOWNLOADS_X_ACCEL_REDIRECT_PREFIX = ""
    settings.DOWNLOADS_REDIRECT_TO_STORAGE = False
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return tmp_path


def with_files(program, media):
    storage = artifact_storage()
    for kind, data, name in (
        ("adapter", ADAPTER, "adapter.gguf"),
        ("bundle", BUNDLE, "program.paw"),
    ):
        key = storage.save(f"programs/{program.id}/{name}", ContentFile(data))
        setattr(program, f"{kind}_path", key)
        setattr(program, f"{kind}_size", len(data))
        setattr(program, f"{kind}_sha256", hashlib.sha256(data).hexdigest())
    program.save()
    return program


@pytest.fixture
def ready(media, user):
    program = with_files(ProgramFactory(owner=user, name="Urgency triage"), media)
    services.alias_point(user=user, slug="urgency", program=program)
    return program


def url(program, kind="adapter"):
    return reverse("program_download", args=[program.id, kind])


def body(response):
    return b"".join(response.streaming_content)


def downloads(program):
    return Program.objects.get(pk=program.pk).download_count


def test_whole_file_with_etag_and_a_good_filename(client, ready):
    response = client.get(url(ready))
    assert response.status_code == 200
    assert body(response) == ADAPTER
    assert response["ETag"] == f'"{hashlib.sha256(ADAPTER).hexdigest()}"'
    assert response["Content-Length"] == str(len(ADAPTER))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == (
        f'attachment; filename="urgency-{ready.id[:8]}.gguf"'
    )
    bundle = client.get(url(ready, "bundle"))
    assert body(bundle) == BUNDLE and bundle["Content-Type"] == "application/zip"
    assert bundle["Content-Disposition"].endswith(f'urgency-{ready.id[:8]}.paw"')
    assert downloads(ready) == 2


def test_if_none_match_gives_304_and_does_not_count(client, ready):
    etag = f'"{ready.adapter_sha256}"'
    response = client.get(url(ready), headers={"If-None-Match": etag})
    assert response.status_code == 304 and response["ETag"] == etag
    assert (
        client.get(url(ready), headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    )
    assert client.get(url(ready), headers={"If-None-Match": '"other"'}).status_code == 200
    assert downloads(ready) == 1


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, 10239),
        ("bytes=-10", 10230, 10239),
        ("bytes=10000-99999", 10000, 10239),
    ],
)
def test_ranges(client, ready, header, start, end):
    response = client.get(url(ready), headers={"Range": header})
    assert response.status_code == 206
    assert body(response) == ADAPTER[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(ADAPTER)}"
    assert response["Content-Length"] == str(end - start + 1)


def test_a_chunked_download_counts_once(client, ready):
    for start in range(0, len(ADAPTER), 4096):
        client.get(url(ready), headers={"Range": f"bytes={start}-{start + 4095}"})
    assert downloads(ready) == 1


def test_unsatisfiable_and_odd_ranges(client, ready):
    response = client.get(url(ready), headers={"Range": "bytes=99999-"})
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{len(ADAPTER)}"
    several = client.get(url(ready), headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and body(several) == ADAPTER
    stale = client.get(url(ready), headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert stale.status_code == 200


def test_head_does_not_count(client, ready):
    response = client.head(url(ready))
    assert response.status_code == 200 and response["Content-Length"] == str(len(ADAPTER))
    assert downloads(ready) == 0


# (anonymous, other user, owner, staff)
ACCESS = {
    "public": (200, 200, 200, 200),
    "private": (404, 404, 200, 200),
    "hidden": (404, 404, 200, 200),
}


@pytest.mark.parametrize("kind", ACCESS)
@pytest.mark.parametrize("who", ["anonymous", "other", "owner", "staff"])
def test_download_access_matrix(client, media, user, other_user, staff, kind, who):
    program = with_files(
        ProgramFactory(owner=user, is_public=kind != "private", is_hidden=kind == "hidden"), media
    )
    if who != "anonymous":
        client.force_login({"other": other_user, "owner": user, "staff": staff}[who])
    expected = ACCESS[kind][["anonymous", "other", "owner", "staff"].index(who)]
    assert client.get(url(program)).status_code == expected
    if expected == 200:
        assert client.get(url(program))["Cache-Control"].startswith(
            "public" if kind == "public" else "private"
        )


def test_compiling_program_says_not_ready_yet_with_retry_after(client, media):
    program = ProgramFactory(status=Program.Status.COMPILING)
    response = client.get(url(program))
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "still compiling" in response.content.decode()


def test_failed_program_says_there_is_nothing(client, media):
    program = ProgramFactory(status=Program.Status.FAILED)
    response = client.get(url(program))
    assert response.status_code == 409 and "did not finish" in response.content.decode()


def test_unknown_kind_or_missing_file_is_404(client, ready, media):
    assert client.get(url(ready, "weights")).status_code == 404
    artifact_storage().delete(ready.adapter_path)
    assert client.get(url(ready)).status_code == 404


def test_paths_outside_media_root_are_never_served(client, ready):
    Program.objects.filter(pk=ready.pk).update(adapter_path="../../etc/passwd")
    assert client.get(url(ready)).status_code == 404


def test_x_accel_redirect_hands_the_file_to_the_front_server(client, ready, settings):
    if not is_local():
        pytest.skip("X-Accel-Redirect maps to MEDIA_ROOT: local storage only")
    settings.DOWNLOADS_X_ACCEL_REDIRECT_PREFIX = "/protected-media/"
    response = client.get(url(ready))
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{ready.adapter_path}"
    assert response["ETag"] == f'"{ready.adapter_sha256}"'
    assert response["Content-Disposition"].startswith("attachment;")
    client.get(url(ready), headers={"Range": "bytes=10-20"})
    assert downloads(ready) == 1


def test_remote_storage_can_redirect_to_a_signed_url(client, ready, settings):
    """DOWNLOADS_REDIRECT_TO_STORAGE: the site checks access, answers 304 itself
    and counts; the store sends the bytes (and the ranges) from a signed URL."""
    from tests.s3 import urlopen_no_proxy

    if is_local():
        pytest.skip("a signed URL needs remote storage")
    settings.DOWNLOADS_REDIRECT_TO_STORAGE = True
    response = client.get(url(ready))
    assert response.status_code == 302
    assert response["ETag"] == f'"{ready.adapter_sha256}"'
    assert response["Cache-Control"] == "private, no-store"
    signed = response["Location"]
    assert "Signature=" in signed
    with urlopen_no_proxy(signed) as answer:
        assert answer.status == 200 and answer.read() == ADAPTER
        assert answer.headers["Content-Disposition"] == (
            f'attachment; filename="urgency-{ready.id[:8]}.gguf"'
        )
    with urlopen_no_proxy(signed, {"Range": "bytes=100-199"}) as answer:
        assert answer.status == 206 and answer.read() == ADAPTER[100:200]
    assert client.get(url(ready), headers={"If-None-Match": response["ETag"]}).status_code == 304
    assert downloads(ready) == 1
    # Without the signature the store refuses: the bucket is not public.
    assert urlopen_no_proxy(signed.split("?")[0]).status == 403
