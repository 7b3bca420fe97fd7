from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .forms import ApiKeyForm, ProfileSettingsForm
from .models import ApiKey, User


@require_GET
def profile(request, username):
    profile_user = get_object_or_404(User, username=username, is_active=True)
    return TemplateResponse(request, "accounts/profile.html", {"profile_user": profile_user})


def _settings_page(request, *, form=None, key_form=None, new_token=None):
    context = {
        "form": form or ProfileSettingsForm(instance=request.user),
        "key_form": key_form or ApiKeyForm(user=request.user),
        "api_keys": request.user.api_keys.all(),
        "new_token": new_token,
    }
    return TemplateResponse(request, "accounts/settings.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request):
    form = ProfileSettingsForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your settings were saved.")
        return redirect("account_settings")
    return _settings_page(request, form=form)


@login_required
@require_POST
@never_cache
def api_key_create(request):
    key_form = ApiKeyForm(request.POST, user=request.user)
    if not key_form.is_valid():
        return _settings_page(request, key_form=key_form)
    key, token = ApiKey.create_for(user=request.user, name=key_form.cleaned_data["name"])
    # Rendered, not redirected: the token is in this response and nowhere else,
    # neither in the session nor in a message cookie.
    return _settings_page(request, new_token={"key": key, "token": token})


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request, key_id):
    key = get_object_or_404(request.user.api_keys, pk=key_id, revoked_at__isnull=True)
    if request.method == "POST":
        key.revoke()
        messages.success(request, f"The key “{key.name}” was revoked.")
        return redirect("account_settings")
    return TemplateResponse(request, "accounts/api_key_revoke.html", {"key": key})
