"""programs/artifacts.py against a real S3 server: the copy a runtime worker
caches for llama.cpp (keyed and checked by sha256), and finding files to serve."""

import hashlib

import pytest
from django.core.files.base import ContentFile

from programs.artifacts import StoredFile, artifact_local_path, artifact_storage, stored_file

DATA = bytes(range(256)) * 100


@pytest.fixture
def stored(s3_storage, settings):
    key = artifact_storage().save("programs/p1-job-1/adapter.gguf", ContentFile(DATA))
    return key, hashlib.sha256(DATA).hexdigest()


def test_a_local_copy_is_made_once_and_named_by_its_sha256(stored, settings):
    key, sha = stored
    path = artifact_local_path(key, sha256=sha)
    assert path == settings.ARTIFACT_CACHE_DIR / f"{sha}.gguf"
    assert path.read_bytes() == DATA
    # Cached: the store is not asked again, even once the object is gone.
    artifact_storage().delete(key)
    assert artifact_local_path(key, sha256=sha) == path
    assert [p.name for p in settings.ARTIFACT_CACHE_DIR.iterdir()] == [path.name]


def test_a_copy_that_does_not_match_its_sha256_is_refused_and_not_kept(stored, settings):
    key, _ = stored
    with pytest.raises(OSError, match="does not match"):
        artifact_local_path(key, sha256="0" * 64)
    assert list(settings.ARTIFACT_CACHE_DIR.iterdir()) == []


def test_a_missing_object_is_file_not_found(s3_storage, settings):
    with pytest.raises(FileNotFoundError):
        artifact_local_path("programs/nothing/adapter.gguf", sha256="1" * 64)
    assert list(settings.ARTIFACT_CACHE_DIR.iterdir()) == []


def test_stored_file_finds_size_and_ranges_and_refuses_escapes(stored):
    key, _ = stored
    found = stored_file(key)
    assert isinstance(found, StoredFile) and found.size == len(DATA)
    chunks, close = found.open_range(100, 9999)
    assert b"".join(chunks) == DATA[100:10000]
    close()
    assert stored_file("programs/nothing/adapter.gguf") is None
    assert stored_file("../../etc/passwd") is None
    assert stored_file("") is None
