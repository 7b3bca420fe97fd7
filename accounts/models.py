from django.contrib.auth.models import AbstractUser
from django.db import models
from django.urls import reverse


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
