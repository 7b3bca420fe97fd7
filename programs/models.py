import hashlib
import json
import re
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from django.conf import settings
from django.contrib.postgres.aggregates import StringAgg
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Left
from django.urls import reverse

from paw_site.names import RESERVED_NAMES
from pawhub.constraint import OutputConstraint
from pawhub.prompt import prompt_template

from .scores import Score

PROGRAM_ID_LENGTH = 20


def prompt_format_of(snapshot_name: str) -> int:
    """The prompt format programs of compiler snapshot `snapshot_name` run with.
    The compiler app, which knows its snapshots, installs the answer when Django
    starts (compiler.apps); programs sits below it and imports none of it."""
    return _prompt_formats(snapshot_name)


def _prompt_formats(snapshot_name):
    raise RuntimeError("the compiler app has not installed its prompt formats")


def install_prompt_formats(resolver):
    global _prompt_formats
    _prompt_formats = resolver


MAX_TAGS = 5
# A tag: lowercase letters, digits and dashes (the web form, the API schema and
# the services all use this one rule).
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SEARCH_CONFIG = "english"
# How search blends the text rank with the meaning score (ProgramQuerySet.search);
# they add up to at most 1, so a word match always outranks a meaning-only match.
TEXT_WEIGHT, MEANING_WEIGHT = 0.5, 0.5

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
SLUG_MIN_LENGTH, SLUG_MAX_LENGTH = 2, 50
# Names that are, or may become, the site's own top-level pages: a bare official
# name or a `user/slug` path must never shadow them.
RESERVED_SLUGS = RESERVED_NAMES
# `user/slug`, `slug`, either with `@vN`; the slash may arrive as %2F.
NAME_PATTERN = re.compile(
    r"^(?:(?P<namespace>[\w.@+-]+)/)?(?P<slug>[a-z0-9-]+)(?:@v(?P<version>[1-9][0-9]*))?$"
)


def program_id_for(*, normalized_spec: str, fingerprint: str, private_owner_id=None) -> str:
    """The deterministic program id: same spec + same compiler snapshot = same id.

    A private program also hashes its owner, so one person's private compile is
    never the cache hit that another person's compile of the same spec lands on.
    """
    parts = [normalized_spec, fingerprint]
    if private_owner_id is not None:
        parts.append(f"private:{private_owner_id}")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:PROGRAM_ID_LENGTH]


def spec_task(spec):
    """A spec's first paragraph: what the program does, without its examples."""
    return spec.strip().split("\n\n", 1)[0]


def validate_slug(slug):
    """The one slug rule, for the naming form, moderators and the API."""
    if not SLUG_MIN_LENGTH <= len(slug) <= SLUG_MAX_LENGTH:
        raise ValidationError(
            f"A name is {SLUG_MIN_LENGTH} to {SLUG_MAX_LENGTH} characters long.", code="length"
        )
    if not SLUG_PATTERN.match(slug):
        raise ValidationError(
            "Use lowercase letters, digits and hyphens, starting and ending with a letter "
            "or digit.",
            code="invalid",
        )
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"“{slug}” is reserved for the site.", code="reserved")


def is_postgresql(using="default"):
    return connections[using].vendor == "postgresql"


class Tag(models.Model):
    name = models.SlugField(max_length=32, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Cosine(models.Func):
    """Each program's cosine from `nearest` ({program id: cosine}), 0 for the
    rest: one JSON object parameter, looked up by id in the database (a CASE
    with a branch per program costs several times more, in Django and SQL)."""

    output_field = models.FloatField()

    def __init__(self, nearest):
        nearest = {pk: round(cosine, 4) for pk, cosine in nearest.items()}
        super().__init__(Value(json.dumps(nearest)), F("pk"))

    def compiled(self, compiler):
        (nearest, params), (pk, pk_params) = (
            compiler.compile(e) for e in self.get_source_expressions()
        )
        return nearest, pk, (*params, *pk_params)

    def as_sql(self, compiler, connection, **extra):
        nearest, pk, params = self.compiled(compiler)
        # Program ids are hex: a safe JSON path.
        return f"""COALESCE(JSON_EXTRACT({nearest}, '$."' || {pk} || '"'), 0.0)""", params

    def as_postgresql(self, compiler, connection, **extra):
        nearest, pk, params = self.compiled(compiler)
        return f"COALESCE(({nearest})::jsonb ->> {pk}, '0')::double precision", params


class ProgramQuerySet(models.QuerySet):
    # Each order ends with the id, so it is total: a page is the same rows
    # whichever end of the listing it is read from (gallery.page_ids).
    SORTS = {
        "votes": ("-score", "-created_at", "-id"),
        "recent": ("-created_at", "-id"),
        "downloads": ("-download_count", "-created_at", "-id"),
    }

    def listed(self):
        """What the public gallery shows: public, ready, not hidden."""
        return self.filter(LISTED)

    def official_compiling(self):
        """Official example programs still compiling (a fresh install's gallery shows them)."""
        return self.filter(
            owner__isnull=True, is_public=True, is_hidden=False, status=Program.Status.COMPILING
        )

    def visible_to(self, user):
        """Programs `user` may open. Private ones only to their owner; hidden
        ones only to their owner (who sees why) and staff."""
        if user.is_authenticated and user.is_staff:
            return self.all()
        public = Q(is_public=True, is_hidden=False)
        if user.is_authenticated:
            return self.filter(public | Q(owner=user))
        return self.filter(public)

    def search(self, text):
        """Programs matching `text` by its words or near it in meaning, annotated
        with `rank` (higher is better):

            rank = matched + TEXT_WEIGHT * text_rank + MEANING_WEIGHT * meaning

        `matched` is 1 for a program that has every word of `text` and 0 for
        one found only by meaning, so word matches stay on top and the blend
        orders each group. `text_rank` is PostgreSQL's full-text rank squashed
        into [0, 1) by r / (1 + r) (0 on SQLite); `meaning` is the cosine
        between the query and the spec for the programs semantic.nearest_programs
        returns, 0 for the rest.

        Words: on PostgreSQL the stored, GIN-indexed `search_vector`, every
        word a prefix (search as you type); elsewhere every word must appear
        somewhere (icontains).

        This one query is the definition of a search's order; the site pages
        through search_ids, which gives the same pages sooner (a test holds
        the two to the same ids, order and count).
        """
        from .semantic import nearest_programs  # it imports these models

        words = self._words(text)
        if words is None:
            return self.annotate(rank=Value(0.0))
        has_words, text_rank = words
        text_rank = text_rank / (text_rank + 1.0) if is_postgresql(self.db) else text_rank
        nearest = nearest_programs(text)
        if not nearest:
            return self.filter(has_words).annotate(rank=1.0 + TEXT_WEIGHT * text_rank)
        near = Q(pk__in=list(nearest))
        # Only a program found by meaning may lack the words: test it on those alone.
        matched = models.Case(
            models.When(near, then=models.Case(models.When(has_words, then=1.0), default=0.0)),
            default=1.0,
        )
        return self.filter(has_words | near).annotate(
            rank=matched + TEXT_WEIGHT * text_rank + MEANING_WEIGHT * Cosine(nearest)
        )

    def _words(self, text):
        """(the filter "has every word of `text`", PostgreSQL's raw text rank or
        0), or None when `text` has no word."""
        words = re.findall(r"\w+", text.lower())[:12]
        if not words:
            return None
        if is_postgresql(self.db):
            query = SearchQuery(
                " & ".join(f"{word}:*" for word in words), search_type="raw", config=SEARCH_CONFIG
            )
            return Q(search_vector=query), SearchRank(F("search_vector"), query)
        has_words = Q()
        for word in words:
            has_words &= (
                Q(name__icontains=word)
                | Q(spec__icontains=word)
                | Exists(Tag.objects.filter(programs=OuterRef("pk"), name__icontains=word))
                | Exists(Alias.objects.filter(program=OuterRef("pk"), slug__icontains=word))
            )
        return has_words, Value(0.0)

    def search_ids(self, text, bottom, size, sort="relevance"):
        """(how many programs `search(text).sorted_by(sort)` has, the ids of
        `size` of them from `bottom`): the same rows in the same order, sooner.

        The query's meaning (embedding it, scanning the spec vectors: no
        database) is worked out in another thread while the database finds the
        word matches, ranked by their words alone, down to the page's last row.
        Then the programs near in meaning are read by id, and the two merge
        with search()'s rank: meaning can only lift a word match, so no word
        match below that depth can reach the page. Every order is descending
        (SORTS, and the rank), so one reversed sort of the merged keys gives it.
        """
        from .gallery import page_ids  # they import these models
        from .semantic import nearest_programs_soon

        words = self._words(text)
        if words is None:
            return page_ids(self.search(text).sorted_by(sort), bottom, size)
        pending = nearest_programs_soon(text)
        has_words, text_rank = words
        relevance = sort == "relevance"
        fields = [key.lstrip("-") for key in self.SORTS.get(sort, self.SORTS["votes"])]
        order = ["-text_rank", *self.SORTS["votes"]] if relevance else [f"-{f}" for f in fields]
        # By words: the best rows down to the end of the page, and their count
        # in the same query (one pass over the matches).
        matches = self.filter(has_words).annotate(
            text_rank=text_rank, listing_total=models.Window(models.Count("pk"))
        )
        best = matches.order_by(*order).values_list("pk", "text_rank", *fields, "listing_total")
        rows = list(best[: bottom + size])
        total = rows[0][-1] if rows else 0
        found = {pk: (1.0, rank, keys) for pk, rank, *keys, _ in rows}
        nearest = pending.result()
        if nearest:  # By meaning: the near ones, with or without the words.
            near = self.filter(pk__in=list(nearest)).annotate(
                text_rank=text_rank,
                matched=models.Case(models.When(has_words, then=1.0), default=0.0),
            )
            for pk, matched, rank, *keys in near.values_list("pk", "matched", "text_rank", *fields):
                total += not matched
                found[pk] = (matched, rank, keys)

        def key(item):
            pk, (matched, rank, keys) = item
            if not relevance:
                return (*keys, pk)
            # search()'s rank, in the database's arithmetic: ts_rank is a float4.
            rank = struct.unpack("f", struct.pack("f", rank))[0]
            rank = rank / (rank + 1.0) if is_postgresql(self.db) else rank
            meaning = round(nearest.get(pk, 0.0), 4)
            return (matched + TEXT_WEIGHT * rank + MEANING_WEIGHT * meaning, *keys, pk)

        ranked = sorted(found.items(), key=key, reverse=True)
        return total, [pk for pk, _ in ranked[bottom : bottom + size]]

    def gallery(self, *, q="", tag="", sort=None):
        """The gallery's filters as one queryset: words (ranked by relevance
        unless another sort is asked for), one tag, a sort order (votes by
        default). The hub page and GET /programs page through
        gallery.listing_ids, which applies the same rule (a search through
        search_ids)."""
        programs, q, tag = self, (q or "").strip(), (tag or "").strip().lower()
        if q:
            programs = programs.search(q)
        if tag:
            programs = programs.tagged(tag)
        return programs.sorted_by(sort or ("relevance" if q else "votes"))

    def tagged(self, tag):
        return self.filter(
            Exists(Program.tags.through.objects.filter(program=OuterRef("pk"), tag__name=tag))
        )

    def sorted_by(self, sort):
        """Order by one of SORTS; "relevance" (after search) falls back to votes."""
        if sort == "relevance":
            return self.order_by("-rank", *self.SORTS["votes"])
        return self.order_by(*self.SORTS.get(sort, self.SORTS["votes"]))

    def for_cards(self):
        """Everything a gallery card shows, in a constant number of queries
        (the spec only as a short `summary`)."""
        cards = self.defer("spec", "pseudo_program").annotate(summary=Left("spec", 240))
        return cards.select_related("owner").prefetch_related(
            "tags",
            models.Prefetch(
                "aliases", queryset=Alias.objects.select_related("owner").order_by("-version")
            ),
        )

    def refresh_search_vector(self):
        """Recompute the stored search document (PostgreSQL only; a no-op elsewhere).

        Names and slugs weigh most, then tags, then the spec."""
        if not is_postgresql(self.db):
            return 0
        tags = (
            Program.tags.through.objects.filter(program=OuterRef("pk"))
            .values("program")
            .annotate(text=StringAgg("tag__name", " "))
            .values("text")
        )
        slugs = (
            Alias.objects.filter(program=OuterRef("pk"))
            .values("program")
            .annotate(text=StringAgg("slug", " ", distinct=True))
            .values("text")
        )
        vector = (
            SearchVector("name", weight="A", config=SEARCH_CONFIG)
            + SearchVector(
                Coalesce(Subquery(slugs), Value(""), output_field=models.TextField()),
                weight="A",
                config=SEARCH_CONFIG,
            )
            + SearchVector(
                Coalesce(Subquery(tags), Value(""), output_field=models.TextField()),
                weight="B",
                config=SEARCH_CONFIG,
            )
            + SearchVector("spec", weight="C", config=SEARCH_CONFIG)
        )
        return self.update(search_vector=vector)


# What the public gallery lists (ProgramQuerySet.listed() and the partial indexes).
LISTED = Q(status="ready", is_public=True, is_hidden=False)


class ProgramManager(models.Manager.from_queryset(ProgramQuerySet)):
    def get_queryset(self):
        # The search document is only ever read inside the database.
        return super().get_queryset().defer("search_vector")


class Program(models.Model):
    class Status(models.TextChoices):
        COMPILING = "compiling"
        READY = "ready"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=PROGRAM_ID_LENGTH, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="programs",
    )
    name = models.CharField(max_length=100, blank=True)
    spec = models.TextField()
    pseudo_program = models.TextField(blank=True)
    # What the answers may be (pawhub.constraint.OutputConstraint.to_dict(); {} is free).
    output_constraint = models.JSONField(default=dict, blank=True)
    compiler_alias = models.CharField(max_length=100)
    compiler_snapshot = models.CharField(max_length=100)
    compiler_fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPILING)
    is_public = models.BooleanField(default=True)
    is_hidden = models.BooleanField(default=False)
    hidden_reason = models.CharField(max_length=300, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="programs")

    # Artifacts, relative to MEDIA_ROOT; written by the compile worker.
    adapter_path = models.CharField(max_length=200, blank=True)
    adapter_size = models.PositiveBigIntegerField(null=True, blank=True)
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    bundle_path = models.CharField(max_length=200, blank=True)
    bundle_size = models.PositiveBigIntegerField(null=True, blank=True)
    bundle_sha256 = models.CharField(max_length=64, blank=True)
    example_count = models.PositiveIntegerField(default=0)
    # Exact-match accuracy on the spec's own (training) examples and on held-out ones.
    selfcheck_accuracy = models.FloatField(null=True, blank=True)
    heldout_accuracy = models.FloatField(null=True, blank=True)
    heldout_count = models.PositiveIntegerField(default=0)
    # The share of the spec's examples on which decoding freely (as the official SDK
    # runs a program locally) gives the same answer as decoding within the program's
    # output constraint (as the hub and pawhub run it); null when not measured.
    sdk_agreement = models.FloatField(null=True, blank=True)

    # The sum of this program's votes, recomputed under a row lock by vote_toggle.
    score = models.IntegerField(default=0)
    download_count = models.PositiveIntegerField(default=0)
    # Name, slugs, tags and spec as a tsvector, kept by refresh_search_vector()
    # on PostgreSQL (GIN-indexed there); always empty on SQLite.
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    objects = ProgramManager()

    class Meta:
        ordering = ["-created_at"]
        # The gallery's three orders (SORTS), over listed programs only, with
        # the id as their last key so deep pages are index-only scans, from
        # either end (gallery.page_ids).
        indexes = [
            models.Index(
                fields=[field, "-created_at", "-id"] if field != "-created_at" else [field, "-id"],
                condition=LISTED,
                name=f"program_listed_{name}_idx",
            )
            for name, field in [
                ("votes", "-score"),
                ("recent", "-created_at"),
                ("downloads", "-download_count"),
            ]
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("program_detail", args=[self.id])

    @property
    def title(self):
        return self.name or f"Program {self.id}"

    @property
    def constraint(self):
        return OutputConstraint.from_dict(self.output_constraint)

    @property
    def prompt_template(self):
        """The prompt it runs in: its pseudo-program in its compiler's prompt format."""
        return prompt_template(self.pseudo_program, prompt_format_of(self.compiler_snapshot))

    @property
    def is_ready(self):
        return self.status == self.Status.READY

    @property
    def selfcheck_score(self):
        """k/n on the training examples (the spec's examples less the held-out ones)."""
        trained = max(0, self.example_count - self.heldout_count)
        return Score.from_accuracy(self.selfcheck_accuracy, trained)

    @property
    def heldout_score(self):
        """k/n on the held-out examples; None when none were held out."""
        return Score.from_accuracy(self.heldout_accuracy, self.heldout_count)

    @property
    def sdk_agreement_score(self):
        """k/n: on k of its n examples the official SDK's local (free) decoding gives
        the program's constrained answer; None when it was not measured."""
        return Score.from_accuracy(self.sdk_agreement, self.example_count)

    @property
    def sdk_runs_it_locally(self):
        """Whether the official SDK's local run can be recommended: it agreed on
        every example, or the program has no output constraint to miss."""
        agreement = self.sdk_agreement_score
        if agreement is None:
            return self.constraint.is_free
        return agreement.correct == agreement.total

    @property
    def needs_more_examples(self):
        """A ready program whose held-out score is low, rough or missing."""
        held = self.heldout_score
        return self.is_ready and (held is None or held.is_rough or held.is_low)

    @property
    def blurb(self):
        """The spec's first paragraph: what the program does, without its examples."""
        return spec_task(getattr(self, "summary", None) or self.spec)  # for_cards(): `summary`

    @property
    def primary_alias(self):
        """The name to show: an official one first, then the owner's; newest
        version first. Uses prefetched `aliases` when present."""
        aliases = sorted(self.aliases.all(), key=lambda a: (a.owner_id is not None, -a.version))
        return aliases[0] if aliases else None

    def download_stem(self):
        alias = self.primary_alias
        if alias:
            return alias.slug
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:40] or "program"

    def artifact(self, kind):
        """The downloadable file `kind` ("adapter" or "bundle"); KeyError otherwise."""
        suffix, content_type = ARTIFACT_TYPES[kind]
        return Artifact(
            kind=kind,
            path=getattr(self, f"{kind}_path"),
            size=getattr(self, f"{kind}_size"),
            sha256=getattr(self, f"{kind}_sha256"),
            filename=f"{self.download_stem()}-{self.id[:8]}{suffix}",
            content_type=content_type,
        )


class ProgramEmbedding(models.Model):
    """A program's spec as a unit vector (float32 bytes), made once when the
    program becomes ready; see programs/semantic.py. Its own table, so the
    gallery's program queries never carry the vectors."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="embedding")
    model = models.CharField(max_length=100, help_text="The embedder that made the vector.")
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.model} vector of {self.program_id}"


ARTIFACT_TYPES = {
    "adapter": (".gguf", "application/octet-stream"),
    "bundle": (".paw", "application/zip"),
}


@dataclass(frozen=True)
class Artifact:
    kind: str
    path: str  # relative to MEDIA_ROOT; empty until the compile finished
    size: int | None
    sha256: str
    filename: str
    content_type: str


class AliasQuerySet(models.QuerySet):
    def in_namespace(self, owner):
        """Aliases under `owner`'s name, or the official namespace for None."""
        return self.filter(owner=owner) if owner is not None else self.filter(owner__isnull=True)

    def resolve(self, name, *, user):
        """The alias `name` points at, as `user` may see it.

        `name` is `user/slug`, a bare `slug` (the official namespace), either
        with `@vN`; without a version, the newest. The slash may arrive raw or
        as `%2F`. Raises Alias.DoesNotExist for a bad name, an unknown one, or
        one whose program `user` may not open.
        """
        match = NAME_PATTERN.match(unquote(str(name)).strip().strip("/"))
        if not match:
            raise Alias.DoesNotExist(f"“{name}” is not a program name.")
        aliases = self.filter(slug=match["slug"])
        if match["namespace"]:
            aliases = aliases.filter(owner__username__iexact=match["namespace"])
        else:
            aliases = aliases.filter(owner__isnull=True)
        if match["version"]:
            aliases = aliases.filter(version=int(match["version"]))
        visible = Program.objects.visible_to(user).filter(pk=OuterRef("program_id"))
        alias = (
            aliases.select_related("owner", "program__owner")
            .annotate(visible=Exists(visible))
            .order_by("-version")
            .first()
        )
        if alias is None or not alias.visible:
            raise Alias.DoesNotExist(f"No program is named “{name}”.")
        return alias

    def versions_of(self, alias, *, user):
        """Every version of `alias`'s name whose program `user` may open, newest first."""
        return (
            self.filter(owner=alias.owner_id, slug=alias.slug)
            .filter(program__in=Program.objects.visible_to(user))
            .select_related("owner", "program")
            .order_by("-version")
        )


class Alias(models.Model):
    """A name for a program: `user/slug` in a user's namespace, or a bare
    `slug` in the official one (owner null). Re-pointing a name adds a version;
    old versions keep resolving."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="aliases",
        help_text="Empty for the official namespace.",
    )
    slug = models.CharField(max_length=SLUG_MAX_LENGTH, validators=[validate_slug])
    version = models.PositiveIntegerField(default=1)
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="aliases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AliasQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "aliases"
        ordering = ["slug", "-version"]
        constraints = [
            # Two partial constraints: a plain unique constraint treats NULL owners as distinct.
            models.UniqueConstraint(
                fields=["owner", "slug", "version"],
                condition=Q(owner__isnull=False),
                name="alias_unique_user_version",
            ),
            models.UniqueConstraint(
                fields=["slug", "version"],
                condition=Q(owner__isnull=True),
                name="alias_unique_official_version",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="alias_version_positive"),
        ]

    def __str__(self):
        return self.full_name

    def get_absolute_url(self):
        if self.is_official:
            return reverse("official_alias_version", args=[self.slug, self.version])
        return reverse("alias_version", args=[self.owner.username, self.slug, self.version])

    @property
    def is_official(self):
        return self.owner_id is None

    @property
    def name(self):
        return self.slug if self.is_official else f"{self.owner.username}/{self.slug}"

    @property
    def full_name(self):
        return f"{self.name}@v{self.version}"

    def get_latest_url(self):
        if self.is_official:
            return reverse("official_alias", args=[self.slug])
        return reverse("alias", args=[self.owner.username, self.slug])


class Vote(models.Model):
    class Value(models.IntegerChoices):
        UP = 1
        DOWN = -1

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes"
    )
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="votes")
    value = models.SmallIntegerField(choices=Value.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "program"], name="vote_one_per_user"),
            models.CheckConstraint(
                condition=Q(value__in=[1, -1]), name="vote_value_plus_minus_one"
            ),
        ]

    def __str__(self):
        return f"{self.user} {self.value:+d} {self.program_id}"


class CaseQuerySet(models.QuerySet):
    def pass_counts(self):
        """{type: (checked, passed)} over these cases; types with none are left out."""
        rows = self.values("type").annotate(
            checked=models.Count("pk", filter=Q(passed__isnull=False)),
            passed=models.Count("pk", filter=Q(passed=True)),
        )
        return {row["type"]: (row["checked"], row["passed"]) for row in rows}


class Case(models.Model):
    """Someone's report of how the program does on one input."""

    class Type(models.TextChoices):
        SUCCESS = "success", "Works"
        LIMITATION = "limitation", "Limitation"
        EDGE_CASE = "edge_case", "Edge case"

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="cases")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="cases"
    )
    input = models.TextField(max_length=2000)
    expected = models.TextField(max_length=1000)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.SUCCESS)
    note = models.CharField(max_length=500, blank=True)
    # Filled by the runtime's automatic check of the case.
    actual_output = models.TextField(blank=True)
    passed = models.BooleanField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["type", "-created_at"]
        indexes = [models.Index(fields=["program", "type", "-created_at"], name="case_program_idx")]

    def __str__(self):
        return f"{self.get_type_display()} case on {self.program_id}"


class ReportQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=Report.Status.OPEN)


class Report(models.Model):
    class Reason(models.TextChoices):
        SPAM = "spam", "Spam or advertising"
        HARMFUL = "harmful", "Harmful or offensive"
        BROKEN = "broken", "Does not do what it says"
        PRIVACY = "privacy", "Exposes personal data"
        COPYRIGHT = "copyright", "Infringes someone's rights"
        OTHER = "other", "Something else"

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="reports"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_reports",
    )
    resolution = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open report per person per program: reporting again updates it.
            models.UniqueConstraint(
                fields=["program", "reporter"],
                condition=Q(status="open"),
                name="report_one_open_per_reporter",
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="report_queue_idx")]

    def __str__(self):
        return f"{self.get_reason_display()} on {self.program_id} ({self.status})"


class ModerationAction(models.Model):
    """The log: who did what to which program or user, and why."""

    class Action(models.TextChoices):
        HIDE = "hide", "Hid a program"
        UNHIDE = "unhide", "Unhid a program"
        BAN = "ban", "Banned a user"
        UNBAN = "unban", "Lifted a ban"
        RESOLVE_REPORT = "resolve_report", "Resolved a report"
        PUBLISH = "publish", "Published into the official namespace"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    program = models.ForeignKey(
        Program, null=True, blank=True, on_delete=models.SET_NULL, related_name="moderation_log"
    )
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="moderation_log",
    )
    report = models.ForeignKey(Report, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.actor} {self.action} {self.program_id or self.target_user_id}"
