"""Serving a program's files: ETag = sha256, conditional requests, byte ranges,
and optionally handing the file to the front server (X-Accel-Redirect).

Files in remote storage (an S3 bucket) are streamed through the site, asking
the store for just the requested bytes, so the contract stays the same; with
DOWNLOADS_REDIRECT_TO_STORAGE the site instead answers a whole-file or range
GET with a redirect to a short-lived signed URL (benchmarks/downloads_storage.py
measures both)."""

import logging
import re
from urllib.parse import quote

from django.conf import settings
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseNotModified,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header

from . import artifacts

log = logging.getLogger(__name__)

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeFile:
    """`length` bytes of `file` from `start`. No fileno(), so a WSGI server's
    sendfile never sends the whole file instead."""

    def __init__(self, file, start, length):
        file.seek(start)
        self.file, self.left = file, length

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.file.read(size)
        self.left -= len(data)
        return data

    def close(self):
        self.file.close()


def set_headers(response, headers):
    for name, value in headers.items():
        response[name] = value


def etag_matches(header, etag):
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in {tag.strip().removeprefix("W/") for tag in header.split(",")}


def requested_range(request, etag, size):
    """(start, end) inclusive for a single satisfiable byte range; None for the
    whole file; "unsatisfiable" for a range outside it. Several ranges, or an
    If-Range for another version, get the whole file (RFC 9110 allows it)."""
    header = request.headers.get("Range", "")
    if not header or request.headers.get("If-Range", etag) != etag:
        return None
    match = RANGE.match(header.replace(" ", ""))
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


def artifact_file(artifact):
    """Where the artifact is: a Path on local storage, a StoredFile in remote storage
    (programs/artifacts.py); None when it is missing (or escapes the storage)."""
    return artifacts.stored_file(artifact.path)


def serve(request, artifact, path, *, public, accel=True):
    """The response for `artifact` at `path`, and whether it counts as a
    download: a GET of the whole file or of a range starting at byte 0, so a
    client fetching chunks counts once. `accel=False` for a file outside
    MEDIA_ROOT, which the front server's X-Accel-Redirect location cannot reach."""
    etag = f'"{artifact.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # Revalidate every time (the same program id can be compiled again),
        # and keep private programs out of shared caches.
        "Cache-Control": f"{'public' if public else 'private'}, max-age=0, must-revalidate",
    }
    if etag_matches(request.headers.get("If-None-Match"), etag):
        response = HttpResponseNotModified()
        set_headers(response, headers)
        return response, False
    remote = isinstance(path, artifacts.StoredFile)
    size = path.size if remote else path.stat().st_size
    byte_range = requested_range(request, etag, size)
    if byte_range == "unsatisfiable":
        response = HttpResponse(status=416)
        set_headers(response, headers | {"Content-Range": f"bytes */{size}"})
        return response, False
    counts = request.method == "GET" and (byte_range is None or byte_range[0] == 0)
    disposition = content_disposition_header(as_attachment=True, filename=artifact.filename)

    if remote:
        return serve_remote(request, artifact, path, byte_range, headers, disposition), counts

    if accel and settings.DOWNLOADS_X_ACCEL_REDIRECT_PREFIX:
        # The front server sends the file (and answers the range itself).
        response = HttpResponse(content_type=artifact.content_type)
        set_headers(response, headers | {"Content-Disposition": disposition})
        response["X-Accel-Redirect"] = settings.DOWNLOADS_X_ACCEL_REDIRECT_PREFIX + quote(
            artifact.path
        )
        return response, counts

    if byte_range is None:
        response = FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=artifact.filename,
            content_type=artifact.content_type,
        )
    else:
        start, end = byte_range
        length = end - start + 1
        response = FileResponse(
            RangeFile(path.open("rb"), start, length),
            status=206,
            as_attachment=True,
            filename=artifact.filename,
            content_type=artifact.content_type,
        )
        response["Content-Length"] = str(length)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    set_headers(response, headers)
    return response, counts


def serve_remote(request, artifact, stored, byte_range, headers, disposition):
    """A file in remote storage: a redirect to a signed URL, or the bytes streamed."""
    if settings.DOWNLOADS_REDIRECT_TO_STORAGE and request.method == "GET":
        response = HttpResponseRedirect(
            stored.signed_url(filename_header=disposition, content_type=artifact.content_type)
        )
        # The signed URL is a short-lived credential: no cache may keep it.
        set_headers(response, headers | {"Cache-Control": "private, no-store"})
        return response
    size = stored.size
    start, end = byte_range if byte_range else (0, size - 1)
    length = end - start + 1
    if request.method == "HEAD" or length <= 0:
        response = HttpResponse(content_type=artifact.content_type, status=200)
    else:
        response = StreamingHttpResponse(
            closing_stream(*stored.open_range(start, end)),
            status=206 if byte_range else 200,
            content_type=artifact.content_type,
        )
    response["Content-Length"] = str(length)
    if byte_range:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    set_headers(response, headers | {"Content-Disposition": disposition})
    return response


def closing_stream(chunks, close):
    """`chunks`, then `close()` (the server closes the response's iterator when
    it is done with it, a client gone mid-way included)."""
    try:
        yield from chunks
    finally:
        close()
