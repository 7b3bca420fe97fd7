"""Speed of the hub's pages with many programs, on PostgreSQL.

Seeds a separate benchmark database (``test_<your database>``, kept between
runs so the second run skips the seeding) with ``seed_programs`` up to
``--programs`` programs, then measures server time (the Django request
handler in this process: middleware, view, queries, template; no network)
for the gallery's first page, a deep page, a search, a tag filter and a
program page: p50/p95 over ``--requests`` requests each, after a warm-up,
and the number of queries per page.

Each page is measured twice: as deployed, with the gallery's rendered results
cached for HUB_CACHE_SECONDS (so mostly cache hits), and with that cache off
(every request queries and renders); the JSON's plain keys are the first,
the `_uncached` keys the second.

The API is measured the same way (issue 18): the list, a program by id and by
name, and the download metadata (HEAD of the download: the seeded programs have
no files, so it answers 409/404 after finding the program, which is the part
measured); `api_list_p95_ms`, `api_detail_p95_ms` and `api_queries_per_call`
(the most queries any API call made). Limits are lifted for the run: it
measures pages, not the limiter.

Throughput: requests per second of the gallery's first page relative to a
trivial view in the same run, both served the same way. The trivial view
renders the site layout (``base.html``) with nothing in it, through the same
middleware and context processors, so the ratio is what the gallery's own
work costs.

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/hub.py [--programs 100000]

The last output line is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paw_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.template.response import TemplateResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import include, path  # noqa: E402

from paw_site import limits  # noqa: E402
from programs import services  # noqa: E402
from programs.management.commands.seed_programs import SEED_USER_PREFIX  # noqa: E402
from programs.models import Alias, Program  # noqa: E402


def trivial(request):
    return TemplateResponse(request, "base.html")


# This module is the URLconf during the run: the site's URLs plus the trivial view.
urlpatterns = [path("__bench__/trivial/", trivial), path("", include("paw_site.urls"))]


def timed(client, url, params, requests, warmup, method="get", expect=(200,)):
    send = getattr(client, method)
    for _ in range(warmup):
        send(url, params)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = send(url, params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in expect, (url, params, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        send(url, params)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "queries": len(queries),
    }


def requests_per_second(client, url, params, seconds):
    done, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        client.get(url, params)
        done += 1
    return done / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    args = parser.parse_args()

    if connection.vendor != "postgresql":
        sys.exit("benchmarks/hub.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    name = connection.creation.create_test_db(verbosity=0, keepdb=True, serialize=False)
    print(f"database {name}")
    have = Program.objects.filter(owner__username__startswith=SEED_USER_PREFIX).count()
    if have < args.programs:
        print(f"seeding {args.programs - have} programs (kept for the next run)...")
        call_command("seed_programs", count=args.programs - have, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    # Search ranks by meaning too: the seeded specs need their vectors (kept, so quick next time).
    call_command("embed_programs", batch_size=64)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE programs_programembedding")
    programs = Program.objects.count()
    big = limits.Rule(anonymous=10**9, user=10**9, ip=10**9, period=60)
    limits.RULES.update(dict.fromkeys(limits.RULES, big))

    listed = Program.objects.listed()
    pages = listed.count() // 20
    top = listed.order_by("-score").first()
    scenarios = {
        "gallery": ("/hub/", {}),
        "deep_page": ("/hub/", {"page": max(1, int(pages * 0.8))}),
        "search": ("/hub/", {"q": "support ticket urgency"}),
        "search_common": ("/hub/", {"q": "classify"}),
        "tag": ("/hub/", {"tag": "finance"}),
        "detail": (top.get_absolute_url(), {}),
        "trivial": ("/__bench__/trivial/", {}),
    }
    named = Alias.objects.filter(program=top).first()
    if named is None:
        named, _ = services.alias_point(user=top.owner, slug="bench-top", program=top)
    api = {
        "api_list": ("/api/v1/programs", {}, "get", (200,)),
        "api_list_search": ("/api/v1/programs", {"q": "support ticket urgency"}, "get", (200,)),
        "api_detail_id": (f"/api/v1/programs/{top.pk}", {}, "get", (200,)),
        "api_detail_name": (f"/api/v1/programs/{named.name}", {}, "get", (200,)),
        "api_download": (f"/api/v1/programs/{top.pk}/download", {}, "head", (404, 409)),
    }
    client = Client(HTTP_HOST="127.0.0.1")
    runs = {}
    # As deployed (gallery results cached HUB_CACHE_SECONDS), then with that cache off.
    for mode, cache_seconds in (("cached", settings.HUB_CACHE_SECONDS or 30), ("uncached", 0)):
        results = runs[mode] = {}
        with override_settings(ROOT_URLCONF=__name__, DEBUG=False, HUB_CACHE_SECONDS=cache_seconds):
            for label, (url, params) in scenarios.items():
                results[label] = timed(client, url, params, args.requests, args.warmup)
                print(f"{mode:8} {label:14} {url} {params}: {results[label]}")
            if mode == "uncached":  # the API has no page cache: measured once
                for label, (url, params, method, expect) in api.items():
                    results[label] = timed(
                        client, url, params, args.requests, args.warmup, method, expect
                    )
                    print(f"{mode:8} {label:14} {method} {url} {params}: {results[label]}")
            gallery_rps = requests_per_second(client, "/hub/", {}, args.seconds)
            trivial_rps = requests_per_second(client, "/__bench__/trivial/", {}, args.seconds)
        results["ratio"] = round(gallery_rps / trivial_rps, 3)
        print(f"{mode:8} throughput: gallery {gallery_rps:.0f}/s, trivial {trivial_rps:.0f}/s")

    hub_pages = ("gallery", "deep_page", "search", "search_common", "tag")
    summary = {"programs": programs}
    for mode, suffix in (("cached", ""), ("uncached", "_uncached")):
        results = runs[mode]
        summary |= {
            f"gallery_p95_ms{suffix}": max(results[p]["p95_ms"] for p in ("gallery", "deep_page")),
            f"search_p95_ms{suffix}": max(
                results[p]["p95_ms"] for p in ("search", "search_common")
            ),
            f"tag_p95_ms{suffix}": results["tag"]["p95_ms"],
            f"detail_p95_ms{suffix}": results["detail"]["p95_ms"],
            f"queries_per_page{suffix}": max(results[p]["queries"] for p in hub_pages),
            f"gallery_vs_trivial_rps{suffix}": results["ratio"],
        }
    results = runs["uncached"]
    summary |= {
        "api_list_p95_ms": max(results[p]["p95_ms"] for p in ("api_list", "api_list_search")),
        "api_detail_p95_ms": max(
            results[p]["p95_ms"] for p in ("api_detail_id", "api_detail_name", "api_download")
        ),
        "api_queries_per_call": max(results[p]["queries"] for p in api),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
