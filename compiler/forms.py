from django import forms
from django.core.exceptions import ValidationError

from programs.models import MAX_TAGS, TAG_PATTERN

from . import bulk, registry
from .spec import MAX_EXAMPLES, MAX_HINTS, SpecError, merge_spec, validate_spec

INITIAL_ROWS = 3


class ExampleForm(forms.Form):
    input = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    output = forms.CharField(
        required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("input", "").strip()) != bool(data.get("output", "").strip()):
            raise ValidationError("Give both an input and its output, or leave both empty.")
        return data


ExampleFormSet = forms.formset_factory(
    ExampleForm,
    extra=0,
    min_num=1,
    max_num=MAX_EXAMPLES,
    validate_max=True,
    absolute_max=MAX_EXAMPLES,
)


class CompileForm(forms.Form):
    description = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What should the program do? One or two sentences.",
    )
    hints = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional: one hint per line (edge cases, output format).",
    )
    compiler = forms.ChoiceField(choices=())
    name = forms.CharField(required=False, max_length=100, help_text="Optional display name.")
    tags = forms.CharField(
        required=False,
        max_length=200,
        help_text=f"Up to {MAX_TAGS}, separated by commas, e.g. classification, support.",
    )
    is_public = forms.BooleanField(
        required=False,
        initial=True,
        label="Public",
        help_text="Public programs appear in the hub; private ones only to you.",
    )

    def __init__(self, *args, examples=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.examples = examples
        self.fields["compiler"].choices = [(c["name"], c["name"]) for c in registry.compilers()]
        self.fields["compiler"].initial = registry.DEFAULT_ALIAS

    def clean_hints(self):
        hints = [h.strip() for h in self.cleaned_data["hints"].splitlines() if h.strip()]
        if len(hints) > MAX_HINTS:
            raise ValidationError(f"At most {MAX_HINTS} hints.")
        return hints

    def clean_tags(self):
        tags = [t.strip().lower() for t in self.cleaned_data["tags"].split(",") if t.strip()]
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"At most {MAX_TAGS} tags.")
        for tag in tags:
            if not TAG_PATTERN.fullmatch(tag):
                raise ValidationError(
                    f"{tag!r} is not a valid tag: use lowercase letters, digits and dashes."
                )
        return tags

    def example_pairs(self):
        return [
            (row["input"], row["output"])
            for row in self.examples.cleaned_data
            if row and row.get("input", "").strip()
        ]

    def merged_spec(self):
        data = self.cleaned_data
        return merge_spec(data["description"], self.example_pairs(), data.get("hints", []))

    def clean(self):
        data = super().clean()
        if self.examples is None or not self.examples.is_valid() or self.errors:
            return data
        try:
            validate_spec(self.merged_spec())
        except SpecError as exc:
            raise ValidationError(str(exc)) from exc
        return data


class ImportExamplesForm(forms.Form):
    """Many examples at once, pasted or uploaded; read by compiler.bulk into rows."""

    paste = forms.CharField(
        required=False,
        max_length=bulk.MAX_UPLOAD_BYTES,
        label="Paste examples",
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "server down -> urgent"}),
        help_text="One example a line: input -> output, CSV, TSV or JSON lines.",
    )
    upload = forms.FileField(
        required=False,
        label="Or upload a file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.jsonl,.ndjson,.txt"}),
        help_text=f".csv, .tsv, .jsonl or .txt, up to {bulk.MAX_UPLOAD_BYTES // 1024} KB.",
    )

    def has_input(self):
        return bool(self.data.get("paste", "").strip()) or bool(self.files.get("upload"))

    def clean(self):
        data = super().clean()
        paste, upload = data.get("paste", "").strip(), data.get("upload")
        if self.errors:
            return data
        if paste and upload:
            raise ValidationError("Paste or upload, not both at once.")
        if not paste and not upload:
            raise ValidationError("Paste some examples or choose a file first.")
        field, filename, text = "paste", "", paste
        if upload:
            field, filename = "upload", upload.name
            if upload.size > bulk.MAX_UPLOAD_BYTES:
                self.add_error(
                    field, f"The file is larger than {bulk.MAX_UPLOAD_BYTES // 1024} KB."
                )
                return data
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error(field, "The file is not UTF-8 text.")
                return data
        limits = ExampleForm.base_fields
        try:
            data["examples"] = bulk.read_examples(
                text,
                bulk.format_for(filename, text),
                max_input=limits["input"].max_length,
                max_output=limits["output"].max_length,
            )
        except bulk.BulkError as exc:
            self.add_error(field, str(exc))
        return data
