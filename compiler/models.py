import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

# The pipeline's stages, in order, with the overall percent each one starts at.
STAGES = [
    ("parsing", 0),
    ("pseudo-program", 3),
    ("training", 8),
    ("quantizing", 80),
    ("validating", 85),
    ("packaging", 96),
]
STAGE_START = dict(STAGES)
STAGE_END = {
    name: (STAGES[i + 1][1] if i + 1 < len(STAGES) else 100) for i, (name, _) in enumerate(STAGES)
}


class CompileJobQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=CompileJob.ACTIVE)

    def held_by(self, attempt):
        """The job while the attempt that claimed it as `attempt` (the row as its
        claim saved it) still runs it: not finished, cancelled, or taken over."""
        return self.filter(
            pk=attempt.pk,
            status=CompileJob.Status.COMPILING,
            worker=attempt.worker,
            attempts=attempt.attempts,
        )

    def stale(self):
        """Compiling jobs whose worker stopped reporting: it died or hung."""
        cutoff = timezone.now() - timedelta(seconds=settings.COMPILE_HEARTBEAT_STALE_SECONDS)
        return self.filter(status=CompileJob.Status.COMPILING, heartbeat_at__lt=cutoff)

    def unsent(self):
        """Queued jobs not (re)sent to the broker for a while: their message may be lost."""
        cutoff = timezone.now() - timedelta(seconds=settings.COMPILE_RESEND_QUEUED_SECONDS)
        return self.filter(status=CompileJob.Status.QUEUED).filter(
            models.Q(heartbeat_at__lt=cutoff)
            | models.Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
        )


class CompileJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        COMPILING = "compiling"
        READY = "ready"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.COMPILING)
    FINISHED = (Status.READY, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    program = models.ForeignKey("programs.Program", on_delete=models.CASCADE, related_name="jobs")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="compile_jobs",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=32, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)  # what the owner is told, on the page and the API
    # What went wrong in full (the exception and its traceback) when the user was
    # told only that something went wrong on our side: for staff, in the admin.
    error_detail = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Seconds spent per stage of the last attempt, e.g. {"training": 41.2}.
    stage_seconds = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=200, blank=True)  # "host:pid" of the running attempt
    # Who asked, for the API's cap on concurrent anonymous compiles per address
    # (as rate limits key it: the IPv4 address, or the /64 of an IPv6 one).
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # Last sign of life: a progress report while compiling; while queued, the
    # last time the sweeper sent it again (None: only sent when created).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CompileJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self):
        return f"compile {self.id} ({self.status})"

    def get_absolute_url(self):
        return reverse("compile_job", args=[self.id])

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
