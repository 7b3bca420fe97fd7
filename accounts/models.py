import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.urls import reverse
from django.utils import timezone


class User(AbstractUser):
    """A PAW Hub user: a local account, a GitHub account, or both."""

    display_name = models.CharField(max_length=100, blank=True)
    bio = models.CharField(max_length=300, blank=True)
    # Kept from GitHub at sign-up so pages never call GitHub to show a face.
    avatar_url = models.URLField(max_length=500, blank=True)
    github_url = models.URLField(max_length=500, blank=True)

    def get_absolute_url(self):
        return reverse("profile", args=[self.username])

    @property
    def shown_name(self):
        return self.display_name or self.username


API_KEY_PREFIX = "paw_"


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKey(models.Model):
    """A secret for the REST API (`X-API-Key`). Only a sha256 of the token is
    stored: the token is shown once, when the key is made, and never again."""

    # How often last_used_at is written, so a busy key does not write on every request.
    LAST_USED_RESOLUTION = timedelta(minutes=1)
    MAX_ACTIVE_PER_USER = 20

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The token's start ("paw_1a2b3c4d"), shown so people can tell their keys apart.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_token(token: str) -> str:
        # The token carries 256 random bits, so a fast unsalted hash is enough.
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def create_for(cls, *, user, name) -> tuple["ApiKey", str]:
        """A new key and its token; the caller shows the token once."""
        token = f"{API_KEY_PREFIX}{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            user=user,
            name=name,
            prefix=token[: len(API_KEY_PREFIX) + 8],
            secret_hash=cls.hash_token(token),
        )
        return key, token

    @classmethod
    def authenticate(cls, token: str) -> "ApiKey | None":
        """The active key for `token`, with its use recorded; None if there is none."""
        if not token.startswith(API_KEY_PREFIX) or len(token) > 200:
            return None
        key = (
            cls.objects.active()
            .select_related("user")
            .filter(secret_hash=cls.hash_token(token))
            .first()
        )
        if key is not None:
            now = timezone.now()
            if key.last_used_at is None or now - key.last_used_at >= cls.LAST_USED_RESOLUTION:
                cls.objects.filter(pk=key.pk).update(last_used_at=now)
                key.last_used_at = now
        return key

    @property
    def is_active(self):
        return self.revoked_at is None

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
