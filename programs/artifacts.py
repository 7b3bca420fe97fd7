"""Where compiled files (adapters, bundles) live: Django's default storage.

With nothing set that is `FileSystemStorage` under MEDIA_ROOT (the embedded
default). With `AWS_STORAGE_BUCKET_NAME` set it is an S3-compatible bucket
(django-storages), so a compile worker, a runtime worker and the site on
different hosts share the files without sharing a disk.

- `artifact_publish` puts a finished work folder in place, atomically: a local
  folder is renamed (inside the caller's transaction); remote objects are
  uploaded whole first (an S3 object is only visible once complete) and only
  then does the caller's transaction point the program at them.
- `artifact_local_path` gives a real file for llama.cpp: the file itself on
  local storage, else a copy cached under ARTIFACT_CACHE_DIR keyed by sha256.
- `stored_file` finds a file to serve (programs/downloads.py).
"""

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def artifact_storage():
    return storages["default"]


def is_local(storage=None):
    """Whether the files are a folder on this host's disk."""
    return isinstance(storage or artifact_storage(), FileSystemStorage)


def _not_found(exc):
    """Whether `exc`, from a storage call, means "no such file"."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error.get("Code") in {"404", "NoSuchKey", "NotFound"} or status == 404
    return False


# --- writing (compile workers) ---------------------------------------------------------


def artifact_upload(*, folder: Path, prefix: str, names):
    """Remote storage only: upload `names` from `folder` under `prefix`; returns
    {name: key}. Each object appears whole or not at all."""
    storage = artifact_storage()
    keys = {}
    try:
        for name in names:
            with open(folder / name, "rb") as f:
                keys[name] = storage.save(f"{prefix}/{name}", File(f, name=name))
    except BaseException:
        artifact_delete(keys.values())
        raise
    return keys


def artifact_delete(keys):
    storage = artifact_storage()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # best effort: an orphan object is harmless, nothing points at it
            log.warning("could not delete artifact %s", key, exc_info=True)


def artifact_replace(name: str, source: Path) -> None:
    """Put the file `source` in place of artifact `name`, whole: readers see the old
    file or the new one, never a part (a rename on local storage; an S3 object
    is only visible once complete, and django-storages overwrites by default)."""
    storage = artifact_storage()
    if is_local(storage):
        target = Path(storage.path(name))
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    with open(source, "rb") as f:
        saved = storage.save(name, File(f, name=Path(name).name))
    if saved != name:  # a store configured not to overwrite: keep one name per artifact
        storage.delete(saved)
        raise OSError(f"the storage would not overwrite {name}")


def local_folder(prefix: str) -> Path:
    """Local storage only: the folder `prefix` on disk."""
    return Path(artifact_storage().path(prefix))


# --- reading (runtime workers, compile pipeline) ----------------------------------------


def artifact_local_path(name: str, *, sha256: str) -> Path:
    """A real file with the contents of artifact `name` (sha256 `sha256`), for code
    that needs a path (llama.cpp). OSError when it is missing or corrupt."""
    storage = artifact_storage()
    if is_local(storage):
        try:
            return Path(storage.path(name))
        except SuspiciousOperation as exc:
            raise FileNotFoundError(f"artifact path escapes the storage: {name}") from exc
    cache = Path(settings.ARTIFACT_CACHE_DIR)
    key = sha256 or hashlib.sha256(name.encode()).hexdigest()
    target = cache / f"{key}{Path(name).suffix}"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                source = storage.open(name, "rb")
            except Exception as exc:
                if _not_found(exc):
                    raise FileNotFoundError(f"artifact {name} is missing from storage") from exc
                raise
            with source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise OSError(f"artifact {name} does not match its sha256")
        os.replace(tmp, target)  # a reader never sees a half-written copy
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --- serving (the site) -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """An artifact in remote storage: its key and size."""

    storage: object
    name: str
    size: int

    def open_range(self, start, end):
        """An iterator over bytes start..end (inclusive) and a close()."""
        bucket = getattr(self.storage, "bucket", None)
        if bucket is not None:  # S3: ask for just those bytes
            from storages.utils import clean_name

            key = self.storage._normalize_name(clean_name(self.name))
            body = bucket.Object(key).get(Range=f"bytes={start}-{end}")["Body"]
            return body.iter_chunks(64 * 1024), body.close
        f = self.storage.open(self.name, "rb")
        f.seek(start)
        left = end - start + 1

        def chunks():
            nonlocal left
            while left > 0 and (data := f.read(min(64 * 1024, left))):
                left -= len(data)
                yield data

        return chunks(), f.close

    def signed_url(self, *, filename_header, content_type):
        """A time-limited URL the storage itself serves the object at."""
        parameters = {
            "ResponseContentDisposition": filename_header,
            "ResponseContentType": content_type,
        }
        try:
            return self.storage.url(self.name, parameters=parameters)
        except TypeError:  # a storage without per-URL parameters
            return self.storage.url(self.name)


def stored_file(name: str):
    """Local storage: the Path; remote: a StoredFile; None when there is no such
    file (or the name escapes the storage)."""
    if not name:
        return None
    storage = artifact_storage()
    if is_local(storage):
        root = Path(storage.location).resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            log.error("artifact is missing on disk: %s", path)
            return None
        return path
    try:
        size = storage.size(name)
    except SuspiciousOperation:
        log.error("artifact name escapes the storage: %s", name)
        return None
    except Exception as exc:
        if _not_found(exc):
            log.error("artifact is missing from storage: %s", name)
            return None
        raise
    return StoredFile(storage=storage, name=name, size=size)
