import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

PROGRAM_ID_LENGTH = 20
MAX_TAGS = 5


def program_id_for(*, normalized_spec: str, fingerprint: str, private_owner_id=None) -> str:
    """The deterministic program id: same spec + same compiler snapshot = same id.

    A private program also hashes its owner, so one person's private compile is
    never the cache hit that another person's compile of the same spec lands on.
    """
    parts = [normalized_spec, fingerprint]
    if private_owner_id is not None:
        parts.append(f"private:{private_owner_id}")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:PROGRAM_ID_LENGTH]


class Tag(models.Model):
    name = models.SlugField(max_length=32, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ProgramQuerySet(models.QuerySet):
    def listed(self):
        """What the public gallery shows: public, ready, not hidden."""
        return self.filter(is_public=True, is_hidden=False, status=Program.Status.READY)

    def visible_to(self, user):
        """Programs `user` may open. Private ones only to their owner; hidden
        ones only to their owner (who sees why) and staff."""
        if user.is_authenticated and user.is_staff:
            return self.all()
        public = Q(is_public=True, is_hidden=False)
        if user.is_authenticated:
            return self.filter(public | Q(owner=user))
        return self.filter(public)


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

    score = models.IntegerField(default=0)
    download_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    objects = ProgramQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "is_public", "is_hidden", "-created_at"]),
            models.Index(fields=["status", "is_public", "is_hidden", "-score"]),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("program_detail", args=[self.id])

    @property
    def title(self):
        return self.name or f"Program {self.id}"

    @property
    def is_ready(self):
        return self.status == self.Status.READY
