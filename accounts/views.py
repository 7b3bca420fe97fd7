from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods

from .forms import ProfileSettingsForm
from .models import User


@require_GET
def profile(request, username):
    profile_user = get_object_or_404(User, username=username, is_active=True)
    return TemplateResponse(request, "accounts/profile.html", {"profile_user": profile_user})


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request):
    form = ProfileSettingsForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your settings were saved.")
        return redirect("account_settings")
    return TemplateResponse(request, "accounts/settings.html", {"form": form})
