"""Downloads from object storage: proxied stream vs redirect to a signed URL.

Starts a real S3 server (SeaweedFS `weed mini`, as the tests do), puts files of
a few sizes in it, and times the site's download path (programs/downloads.py
`serve`, called with a real request; the view's one program query is the same
in every mode and left out) three ways, each `--requests` times per size:

- local:    the file in MEDIA_ROOT (the embedded default), streamed by Django;
- proxy:    the file in S3, streamed through the site (a HEAD for its size,
            then a GET of the bytes asked for) -- the default;
- redirect: DOWNLOADS_REDIRECT_TO_STORAGE: the site answers 302 to a signed
            URL, the client then GETs the bytes from the store itself.

Time to first byte: from the request to the first byte of the file in the
client's hands (for redirect: the 302 plus the store's first byte). Throughput:
the file's size over the time to its last byte. p50 over the requests.
Everything runs on this host over loopback, so the network between client,
site and store costs next to nothing here: a redirect's extra connection to the
store costs a real client one more round trip (TLS included) on the Internet.

    .venv/bin/python benchmarks/downloads_storage.py [--requests 20] [--sizes-mb 1,16,64]

The last output line is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VAR = Path(tempfile.mkdtemp(prefix="paw-bench-downloads-"))
os.environ["PAW_VAR_DIR"] = str(VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paw_site.settings")

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import storages  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402

from programs import downloads  # noqa: E402
from programs.models import Artifact  # noqa: E402
from tests.s3 import seaweed_s3, urlopen_no_proxy  # noqa: E402


def artifact_for(key, data):
    import hashlib

    return Artifact(
        kind="adapter",
        path=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename="bench.gguf",
        content_type="application/octet-stream",
    )


def one_download(artifact, *, redirect):
    """(seconds to first byte, seconds to last byte, bytes, seconds to find the
    file: a stat, or a HEAD to the store) of one GET."""
    request = RequestFactory().get("/download")
    started = time.perf_counter()
    stored = downloads.artifact_file(artifact)
    found = time.perf_counter() - started
    response, _ = downloads.serve(request, artifact, stored, public=True)
    if redirect:
        assert response.status_code == 302, response.status_code
        with urlopen_no_proxy(response["Location"]) as answer:
            first = answer.read(1)
            first_at = time.perf_counter()
            size = len(first) + len(answer.read())
        return first_at - started, time.perf_counter() - started, size, found
    chunks = iter(response.streaming_content)
    first = next(chunks)
    first_at = time.perf_counter()
    size = len(first) + sum(len(chunk) for chunk in chunks)
    response.close()
    return first_at - started, time.perf_counter() - started, size, found


def measure(artifact, *, redirect, requests):
    one_download(artifact, redirect=redirect)  # warm-up (connections, imports)
    ttfb, total, finding = [], [], []
    for _ in range(requests):
        first, last, size, found = one_download(artifact, redirect=redirect)
        assert size == artifact.size, (size, artifact.size)
        ttfb.append(first)
        total.append(last)
        finding.append(found)
    p50_total = statistics.median(total)
    return {
        "find_ms_p50": round(statistics.median(finding) * 1000, 2),
        "ttfb_ms_p50": round(statistics.median(ttfb) * 1000, 2),
        "total_ms_p50": round(p50_total * 1000, 2),
        "mb_per_s": round(artifact.size / p50_total / 1e6, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--sizes-mb", default="1,16,64")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes_mb.split(",")]
    results = {}
    with seaweed_s3(VAR / "s3", VAR / "weed.log") as server:
        s3 = server.storage_settings("bench")
        for size_mb in sizes:
            data = os.urandom(int(size_mb * 1e6))
            key = f"programs/bench-{size_mb:g}mb/adapter.gguf"
            row = {}
            with override_settings(MEDIA_ROOT=VAR / "media"):
                storages["default"].save(key, ContentFile(data))
                row["local"] = measure(
                    artifact_for(key, data), redirect=False, requests=args.requests
                )
            with override_settings(STORAGES={"default": s3}, DOWNLOADS_REDIRECT_TO_STORAGE=False):
                storages["default"].save(key, ContentFile(data))
                row["proxy"] = measure(
                    artifact_for(key, data), redirect=False, requests=args.requests
                )
            with override_settings(STORAGES={"default": s3}, DOWNLOADS_REDIRECT_TO_STORAGE=True):
                row["redirect"] = measure(
                    artifact_for(key, data), redirect=True, requests=args.requests
                )
            results[f"{size_mb:g}MB"] = row
            for mode, figures in row.items():
                ttfb, total = figures["ttfb_ms_p50"], figures["total_ms_p50"]
                print(
                    f"{size_mb:>5g} MB  {mode:<8}  find p50 {figures['find_ms_p50']:>6.2f} ms  "
                    f"TTFB p50 {ttfb:>8.2f} ms  "
                    f"total p50 {total:>9.2f} ms  {figures['mb_per_s']:>7.1f} MB/s",
                    flush=True,
                )
    print(json.dumps({"requests": args.requests, "downloads_storage": results}))


if __name__ == "__main__":
    main()
