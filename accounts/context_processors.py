from allauth.socialaccount.adapter import get_adapter


def sign_in_options(request):
    """Whether "Sign in with GitHub" can be offered (a GitHub app is configured)."""
    return {"github_enabled": bool(get_adapter(request).list_apps(request, provider="github"))}
