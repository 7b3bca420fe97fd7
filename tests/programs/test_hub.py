"""The gallery at /hub/: listing, search, tags, sort, pages, htmx, queries."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from programs import services
from programs.gallery import POPULAR_TAGS_KEY
from programs.models import Program
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db

HUB = "/hub/"


@pytest.fixture(autouse=True)
def fresh_popular_tags():
    cache.delete(POPULAR_TAGS_KEY)  # cached across requests (and tests)


def titles(response):
    return [p.title for p in response.context["page"].object_list]


def test_hub_lists_only_public_ready_visible_programs(client, user):
    shown = ProgramFactory(name="Shown")
    ProgramFactory(name="Private one", is_public=False, owner=user)
    ProgramFactory(name="Hidden one", is_hidden=True)
    ProgramFactory(name="Still compiling", status=Program.Status.COMPILING)
    ProgramFactory(name="Broken", status=Program.Status.FAILED)
    client.force_login(user)  # not even the owner sees private ones in the gallery
    response = client.get(HUB)
    assert response.status_code == 200
    assert titles(response) == [shown.title]


@pytest.mark.parametrize("who", ["anonymous", "user", "staff"])
def test_hub_access(client, who, user, staff):
    if who != "anonymous":
        client.force_login(user if who == "user" else staff)
    assert client.get(HUB).status_code == 200


def test_search_matches_name_spec_tags_and_slugs(client, user):
    urgency = ProgramFactory(name="Urgency", spec="Label help-desk messages by urgency.")
    invoice = ProgramFactory(
        name="Invoices", spec="Extract the total from an invoice.", tags=["finance"]
    )
    named = ProgramFactory(owner=user, name="Third", spec="Turn dates into ISO format.")
    services.alias_point(user=user, slug="date-normalizer", program=named)
    assert titles(client.get(HUB, {"q": "urgency"})) == [urgency.title]
    assert titles(client.get(HUB, {"q": "invoice total"})) == [invoice.title]
    assert titles(client.get(HUB, {"q": "finance"})) == [invoice.title]
    assert titles(client.get(HUB, {"q": "normalizer"})) == [named.title]
    assert titles(client.get(HUB, {"q": "nothing-like-this"})) == []


def test_search_ranks_name_matches_first(client):
    in_spec = ProgramFactory(name="Mailer", spec="Sort email by sentiment.", score=50)
    in_name = ProgramFactory(name="Sentiment", spec="Positive or negative?", score=1)
    result = titles(client.get(HUB, {"q": "sentiment"}))
    assert set(result) == {in_spec.title, in_name.title}
    from django.db import connection

    if connection.vendor == "postgresql":  # SQLite has no ranking: votes decide
        assert result[0] == in_name.title


def test_tag_filter(client):
    tagged = ProgramFactory(tags=["support"])
    ProgramFactory(tags=["finance"])
    response = client.get(HUB, {"tag": "support"})
    assert titles(response) == [tagged.title]
    assert '<option value="support" selected>' in response.content.decode()


@pytest.mark.parametrize(
    "sort, field", [("votes", "score"), ("downloads", "download_count"), ("recent", None)]
)
def test_sort(client, sort, field):
    programs = [ProgramFactory(score=s, download_count=d) for s, d in [(5, 1), (9, 3), (1, 7)]]
    result = titles(client.get(HUB, {"sort": sort}))
    if field:
        expected = sorted(programs, key=lambda p: getattr(p, field), reverse=True)
    else:
        expected = list(reversed(programs))
    assert result == [p.title for p in expected]


def test_twenty_per_page_with_working_links(client):
    ProgramFactory.create_batch(45)
    first = client.get(HUB, {"sort": "recent", "tag": ""})
    assert len(titles(first)) == 20
    page = first.content.decode()
    assert 'href="?sort=recent&amp;page=2"' in page  # only the filters that are set
    third = client.get(HUB, {"sort": "recent", "page": 3})
    assert len(titles(third)) == 5
    assert client.get(HUB, {"page": "nonsense"}).status_code == 200
    assert client.get(HUB, {"page": 99}).context["page"].number == 3


def test_htmx_gets_just_the_results_and_responses_vary(client):
    ProgramFactory(name="Urgency")
    full = client.get(HUB)
    fragment = client.get(HUB, headers={"HX-Request": "true"})
    assert "HX-Request" in full["Vary"] and "HX-Request" in fragment["Vary"]
    assert "<html" in full.content.decode()
    body = fragment.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<section id="results"')
    assert "Urgency" in body
    restore = client.get(HUB, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.content.decode()


def test_the_search_form_works_with_and_without_htmx(client):
    page = client.get(HUB).content.decode()
    assert 'method="get" action="/hub/"' in page
    assert 'hx-get="/hub/"' in page and 'hx-push-url="true"' in page


def test_empty_states_say_what_to_do(client):
    empty = client.get(HUB).content.decode()
    assert "No programs yet" in empty and reverse("compile") in empty
    ProgramFactory()
    none = client.get(HUB, {"q": "zebra"}).content.decode()
    assert "No program matches “zebra”" in none and "clear the filters" in none


@pytest.mark.parametrize("params", [{}, {"q": "urgency"}, {"tag": "support"}, {"sort": "recent"}])
def test_queries_do_not_grow_with_the_page(client, user, django_assert_max_num_queries, params):
    def make(n):
        for _ in range(n):
            program = ProgramFactory(tags=["support", "triage"], name="Urgency triage")
            services.alias_point(user=program.owner, slug="urgency", program=program)

    make(2)
    client.get(HUB, params)  # warm the popular-tags cache, as in steady state
    with django_assert_max_num_queries(6) as few:
        client.get(HUB, params)
    make(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(HUB, params)
    assert len(response.context["page"].object_list) == 20


def test_results_are_cached_until_a_program_changes(client, settings, django_assert_num_queries):
    settings.HUB_CACHE_SECONDS = 30
    program = ProgramFactory(name="Urgency")
    client.get(HUB, {"q": "urgency"})
    with django_assert_num_queries(0):
        cached = client.get(HUB, {"q": "urgency"}, headers={"HX-Request": "true"})
    assert "Urgency" in cached.content.decode()
    program.is_hidden = True
    program.save()
    assert "Urgency" not in client.get(HUB, {"q": "urgency"}).content.decode()


def test_a_ban_empties_the_cached_gallery(client, settings, staff):
    settings.HUB_CACHE_SECONDS = 30
    program = ProgramFactory(name="Spam machine")
    assert "Spam machine" in client.get(HUB).content.decode()
    services.user_ban(user=program.owner, actor=staff, reason="spam")
    assert "Spam machine" not in client.get(HUB).content.decode()


# --- counts and deep pages at scale (issue 18) ---------------------------------------


def counts(queries):
    """The queries that count programs on their own (QuerySet.count())."""
    return [q["sql"] for q in queries if '"__count"' in q["sql"]]


@pytest.mark.parametrize("params", [{}, {"tag": "support"}, {"sort": "recent", "page": 2}])
def test_the_count_of_a_listing_is_taken_once(client, params):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ProgramFactory.create_batch(25, tags=["support"])
    ProgramFactory(name="Untagged")
    expected = 25 if params.get("tag") else 26
    client.get(HUB, params)
    with CaptureQueriesContext(connection) as queries:
        again = client.get(HUB, params)
    assert counts(queries.captured_queries) == []
    assert again.context["page"].paginator.count == expected
    assert f"{expected} programs" in again.content.decode()
    ProgramFactory(tags=["support"])  # the gallery changed: counted again
    assert client.get(HUB, params).context["page"].paginator.count == expected + 1


def test_a_search_counts_its_matches_in_the_query_that_pages_them(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ProgramFactory.create_batch(23, name="Zebra triage")
    ProgramFactory(name="Translate to French")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(HUB, {"q": "zebra", "page": 2})
    assert counts(queries.captured_queries) == []
    page = response.context["page"]
    assert page.paginator.count == 23 and len(page.object_list) == 3
    assert "23 programs matching" in response.content.decode()
    # Past the last page: the last page, counted on its own.
    assert client.get(HUB, {"q": "zebra", "page": 9}).context["page"].number == 2


@pytest.mark.parametrize("sort", ["votes", "recent", "downloads"])
def test_deep_pages_read_from_the_other_end_are_the_same_pages(client, sort):
    from django.utils import timezone

    # Ties everywhere: the same score, downloads and time (the id breaks them).
    ProgramFactory.create_batch(47)
    Program.objects.update(score=3, download_count=7, created_at=timezone.now())
    forward = list(Program.objects.listed().sorted_by(sort).values_list("pk", flat=True))
    client.get(HUB, {"sort": sort})  # the count is cached: deep pages read backwards
    pages = [client.get(HUB, {"sort": sort, "page": n}).context["page"] for n in (1, 2, 3)]
    assert [p.pk for page in pages for p in page.object_list] == forward
    assert [len(page.object_list) for page in pages] == [20, 20, 7]


def test_a_stale_cached_count_is_taken_again(client):
    from programs import gallery

    ProgramFactory.create_batch(3)
    cache.set(gallery.count_key(), 40, gallery.COUNT_SECONDS)  # as if the listing had shrunk
    page = client.get(HUB).context["page"]
    assert page.paginator.count == 3 and len(page.object_list) == 3
    assert cache.get(gallery.count_key()) == 3
