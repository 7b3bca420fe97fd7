from django import forms

from pawhub.calls import DEFAULT_MAX_TOKENS, MAX_INPUT_CHARS, RunLimitError, check_request

from .models import SLUG_MAX_LENGTH, Case, Report, validate_slug

SORT_CHOICES = [
    ("", "Best first"),
    ("votes", "Most votes"),
    ("recent", "Newest"),
    ("downloads", "Most downloaded"),
]


class HubFilterForm(forms.Form):
    """The gallery's search box, tag filter and sort order (all optional)."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    tag = forms.CharField(required=False, max_length=32)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)


class AliasForm(forms.Form):
    slug = forms.CharField(
        label="Name",
        max_length=SLUG_MAX_LENGTH,
        validators=[validate_slug],
        help_text="Lowercase letters, digits and hyphens. Using a name you already use "
        "makes this program its next version.",
    )


class PublishForm(AliasForm):
    reason = forms.CharField(required=False, max_length=300, label="Note for the log")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].label = "Official name"
        self.fields["slug"].help_text = "A bare name; an existing one gets a new version."


class CaseForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = ["input", "expected", "type", "note"]
        widgets = {
            "input": forms.Textarea(attrs={"rows": 2}),
            "expected": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"expected": "Expected output"}
        help_texts = {"note": "Optional: what this case shows."}


class TryForm(forms.Form):
    """The program page's "Try it" box."""

    def __init__(self, *args, **kwargs):
        # Its own ids: the case form on the same page has an `input` field too.
        kwargs.setdefault("auto_id", "id_try_%s")
        super().__init__(*args, **kwargs)

    input = forms.CharField(
        max_length=MAX_INPUT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The program answers it as its spec says.",
    )

    def clean_input(self):
        text = self.cleaned_data["input"]
        try:  # the interpreter's own bounds, as POST /infer checks them
            check_request(text, max_tokens=DEFAULT_MAX_TOKENS)
        except RunLimitError as error:
            raise forms.ValidationError(f"{str(error).capitalize()}.") from error
        return text


class ReportForm(forms.ModelForm):
    class Meta:
        model = Report
        fields = ["reason", "note"]
        widgets = {"reason": forms.RadioSelect, "note": forms.Textarea(attrs={"rows": 2})}
        help_texts = {"note": "Optional: anything that helps the moderators."}


class ReasonForm(forms.Form):
    """Why a moderator hides, unhides, bans or resolves: kept in the log."""

    reason = forms.CharField(max_length=300, required=False)
    next = forms.CharField(required=False, widget=forms.HiddenInput)
