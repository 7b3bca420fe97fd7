from django import forms

from .models import ApiKey, User


class ProfileSettingsForm(forms.ModelForm):
    class Meta:
        model = User
        # Not the email: it changes on allauth's email page (password prompt, then
        # confirmed by mail), never by a plain form post.
        fields = ["display_name", "bio"]
        help_texts = {
            "display_name": "Shown instead of your username on your programs.",
            "bio": "One or two lines about you, shown on your public profile.",
        }


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the key is for, e.g. “laptop” or “CI”. You see the key itself only once.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        data = super().clean()
        if self.user.api_keys.active().count() >= ApiKey.MAX_ACTIVE_PER_USER:
            raise forms.ValidationError(
                f"You have {ApiKey.MAX_ACTIVE_PER_USER} active keys; revoke one first."
            )
        return data
