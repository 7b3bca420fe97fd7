from django import forms

from .models import User


class ProfileSettingsForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["display_name", "bio", "email"]
        help_texts = {
            "display_name": "Shown instead of your username on your programs.",
            "bio": "One or two lines about you, shown on your public profile.",
        }

    def clean_email(self):
        email = self.cleaned_data["email"]
        if email and User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another account already uses this email address.")
        return email
