from django.conf import settings


def sign_in_options(request):
    """Whether "Sign in with GitHub" can be offered. The app is configured in
    settings only (never as a database SocialApp), so no query per page."""
    return {"github_enabled": bool(settings.SOCIALACCOUNT_PROVIDERS.get("github", {}).get("APP"))}
