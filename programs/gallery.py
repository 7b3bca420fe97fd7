"""What makes the gallery fast with 100k programs: paging by id (deep pages
from the nearer end), each listing counted once (page_ids), and the rendered
results kept in the cache for a few seconds.

Cached results are shared by everyone (they hold nothing personal) and go
stale when a program is saved, named, tagged or moderated (gallery_changed),
or after HUB_CACHE_SECONDS at most: votes and programs that just finished
compiling show up within that time.
"""

import hashlib
import json

from django.core.cache import cache
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Count, Q, Window
from django.http import QueryDict

from .models import Program, Tag

POPULAR_TAGS = 24
POPULAR_TAGS_SECONDS = 300
POPULAR_TAGS_KEY = "hub:popular-tags"
GENERATION_KEY = "hub:generation"
# The count of the listed programs (and of those with each tag): exact, since
# any change to what is listed makes it stale (gallery_changed).
COUNT_SECONDS = 300


class HubPaginator(Paginator):
    """Pages by primary key first, then loads only that page's rows, with the
    count taken the cheapest way that stays exact (listing_ids).

    `object_list` is what the gallery filters (`filters`: q, tag, sort) apply
    to. `count_key` (count_key()) names where the total of a listing shared by
    every visitor (the gallery, a tag) is cached; searches have none. `rows`
    is what the page's rows are loaded from, by id (default: `object_list`):
    a search's filter and rank, needed to find the ids, only cost planning
    time there (5 ms for a search that ranks by meaning)."""

    def __init__(self, object_list, per_page, *, filters=None, count_key=None, rows=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.filters = filters or {}
        self.count_key = count_key
        self.rows = object_list if rows is None else rows

    def _check_object_list_is_ordered(self):
        pass  # the order is the filters' (ProgramQuerySet.SORTS: total orders)

    def get_page(self, number):
        # Paginator.get_page validates the number first, which counts: page() counts.
        try:
            return self.page(number)
        except PageNotAnInteger:
            return self.page(1)
        except EmptyPage:
            return self.page(self.num_pages)

    def page(self, number):
        if isinstance(number, float) and not number.is_integer():
            raise PageNotAnInteger(self.error_messages["invalid_page"])
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        bottom = (number - 1) * self.per_page
        total, ids = listing_ids(
            self.object_list, bottom, self.per_page, count_key=self.count_key, **self.filters
        )
        self.__dict__["count"] = total  # Paginator.count is a cached_property
        number = self.validate_number(number)  # EmptyPage past the last page
        rows = {program.pk: program for program in self.rows.filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)


def page_ids(programs, bottom, size, *, count_key=None):
    """(how many `programs` there are, the ids of `size` of them from `bottom`),
    in the queryset's order, which must be total (it ends with the id).

    The count costs a pass over every match, so it is taken once per listing:

    - with a `count_key` and a cached count, the ids alone; a page deeper than
      half the listing is read from the other end (the order reversed, then
      the rows), so no page walks more than half an index. A page whose size
      disagrees with the cached count (the listing changed) counts again;
    - otherwise in the same query as the ids (COUNT(*) OVER ()): one pass over
      the matches instead of two (a search reads each match's row once);
      a page past the end counts alone.
    """
    total = cache.get(count_key) if count_key else None
    if total is not None:
        top = min(bottom + size, total)
        if bottom > total // 2 and top > bottom:
            backwards = programs.reverse().values_list("pk", flat=True)
            ids = list(backwards[total - top : total - bottom])[::-1]
        else:
            ids = list(programs.values_list("pk", flat=True)[bottom : bottom + size])
        if len(ids) == max(0, top - bottom):
            return total, ids
    rows = list(
        programs.annotate(listing_total=Window(Count("pk"))).values_list("pk", "listing_total")[
            bottom : bottom + size
        ]
    )
    total = rows[0][1] if rows else programs.count()
    if count_key:
        cache.set(count_key, total, COUNT_SECONDS)
    return total, [pk for pk, _ in rows]


def listing_ids(programs, bottom, size, *, q="", tag="", sort=None, count_key=None):
    """(how many, the ids of `size` from `bottom`) of `programs` with the
    gallery's filters (ProgramQuerySet.gallery): one rule for the hub page and
    GET /programs. A search goes through search_ids (its meaning worked out
    beside its word query); the rest through page_ids."""
    q, tag = (q or "").strip(), (tag or "").strip().lower()
    if q:
        programs = programs.tagged(tag) if tag else programs
        return programs.search_ids(q, bottom, size, sort or "relevance")
    return page_ids(programs.gallery(tag=tag, sort=sort), bottom, size, count_key=count_key)


def count_key(*, q="", tag=""):
    """Where the count of the listed programs with `tag` (or all of them) is
    cached, until the gallery changes; None for a search (each one is new)."""
    if (q or "").strip():
        return None
    generation = cache.get_or_set(GENERATION_KEY, 0, timeout=None)
    tag = hashlib.sha256((tag or "").strip().lower().encode()).hexdigest()[:32]
    return f"hub:count:{generation}:{tag}"


def popular_tags():
    """The tags most used by listed programs, for the filter. Cached: counting
    them means reading every listed program's tags."""
    tags = cache.get(POPULAR_TAGS_KEY)
    if tags is None:
        listed = Q(programs__in=Program.objects.listed())
        tags = list(
            Tag.objects.annotate(uses=Count("programs", filter=listed))
            .filter(uses__gt=0)
            .order_by("-uses", "name")
            .values_list("name", flat=True)[:POPULAR_TAGS]
        )
        cache.set(POPULAR_TAGS_KEY, tags, POPULAR_TAGS_SECONDS)
    return tags


def clean_params(filters, page):
    """The gallery's query parameters rebuilt from the cleaned filters and a
    page number: what links and cache keys may carry, nothing a visitor added."""
    params = QueryDict(mutable=True)
    for name in ("q", "tag", "sort"):
        if filters.get(name):
            params[name] = filters[name]
    try:
        number = int(page)
    except (TypeError, ValueError):
        number = None
    if number and number > 1:
        params["page"] = str(number)
    return params


def results_key(filters, page):
    generation = cache.get_or_set(GENERATION_KEY, 0, timeout=None)
    request = json.dumps([filters.get(f, "") for f in ("q", "tag", "sort")] + [page or ""])
    return f"hub:results:{generation}:{hashlib.sha256(request.encode()).hexdigest()[:32]}"


def gallery_changed():
    """Make every cached gallery page stale."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # not set yet, or evicted
        cache.set(GENERATION_KEY, 1, timeout=None)
