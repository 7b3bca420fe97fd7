"""What makes the gallery fast with 100k programs: paging by id, and the
rendered results kept in the cache for a few seconds.

Cached results are shared by everyone (they hold nothing personal) and go
stale when a program is saved, named, tagged or moderated (gallery_changed),
or after HUB_CACHE_SECONDS at most: votes and programs that just finished
compiling show up within that time.
"""

import hashlib
import json

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import QueryDict

from .models import Program, Tag

POPULAR_TAGS = 24
POPULAR_TAGS_SECONDS = 300
POPULAR_TAGS_KEY = "hub:popular-tags"
GENERATION_KEY = "hub:generation"


class HubPaginator(Paginator):
    """Pages by primary key first, then loads only that page's rows.

    A deep page (OFFSET 80000) then walks an index that carries the id (an
    index-only scan on PostgreSQL) instead of fetching 80000 full rows."""

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        rows = {program.pk: program for program in self.object_list.filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)


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
