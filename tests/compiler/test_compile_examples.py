"""The compile form takes many examples at once and starts from an earlier program."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compiler.models import CompileJob
from compiler.spec import MAX_EXAMPLES, parse_spec
from programs.models import Program
from tests.compiler.test_compile_views import form_data
from tests.factories import ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db

PASTE = "Nobody can log in, the whole site is down -> urgent\nWhere is my invoice? -> low\n"


def rows_of(response):
    examples = response.context["examples"]
    return [(f.initial.get("input", ""), f.initial.get("output", "")) for f in examples]


def test_the_form_offers_paste_and_upload_and_posts_multipart(signed_in):
    page = signed_in.get("/compile/").content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert 'name="paste"' in page and 'type="file" name="upload"' in page


def test_a_paste_becomes_rows_after_the_filled_ones_without_js(signed_in, no_enqueue):
    data = form_data([("printer on fire", "urgent"), ("", "")], action="import", paste=PASTE)
    response = signed_in.post("/compile/", data)
    assert response.status_code == 200
    assert rows_of(response) == [
        ("printer on fire", "urgent"),
        ("Nobody can log in, the whole site is down", "urgent"),
        ("Where is my invoice?", "low"),
    ]
    page = response.content.decode()
    assert "Added 2 examples" in page
    # Everything else typed is kept, the preview is the merged spec, nothing was compiled.
    assert "Classify a support message by urgency." in page
    assert "Input: Where is my invoice?\nOutput: low" in response.context["preview"]
    assert not CompileJob.objects.exists()


def test_imported_rows_compile_into_one_spec(signed_in, no_enqueue):
    imported = rows_of(signed_in.post("/compile/", form_data([], action="import", paste=PASTE)))
    response = signed_in.post("/compile/", form_data(imported))
    assert response.status_code == 302
    spec = Program.objects.get().spec
    assert parse_spec(spec).examples == imported


def test_an_upload_is_read_by_its_file_name(signed_in):
    upload = SimpleUploadedFile(
        "examples.tsv", b"input\toutput\nserver down\turgent\ninvoice, please\tlow\n"
    )
    response = signed_in.post("/compile/", form_data([], action="import", upload=upload))
    assert rows_of(response) == [("server down", "urgent"), ("invoice, please", "low")]


def test_a_paste_left_in_its_box_is_imported_not_compiled(signed_in, no_enqueue):
    response = signed_in.post("/compile/", form_data([("a b c", "urgent")], paste=PASTE))
    assert response.status_code == 200
    assert len(rows_of(response)) == 3
    assert not CompileJob.objects.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"paste": "a -> b\nnot an example\n"}, "Line 2: expected &#x27;input -&gt; output&#x27;."),
        (
            {"upload": SimpleUploadedFile("x.csv", b"\xff\xfe\x00")},
            "The file is not UTF-8 text.",
        ),
        ({}, "Paste some examples or choose a file first."),
        (
            {"paste": "a -> b", "upload": SimpleUploadedFile("x.csv", b"a,b")},
            "Paste or upload, not both at once.",
        ),
    ],
)
def test_import_errors_are_shown_beside_the_box_and_keep_the_rows(signed_in, extra, message):
    data = form_data([("printer on fire", "urgent")], action="import", **extra)
    response = signed_in.post("/compile/", data)
    page = response.content.decode()
    assert message in page
    assert rows_of(response) == [("printer on fire", "urgent")]
    assert "<details open>" in page


def test_an_import_past_the_example_limit_is_refused_whole(signed_in):
    paste = "".join(f"input {i} -> out {i}\n" for i in range(MAX_EXAMPLES))
    response = signed_in.post(
        "/compile/", form_data([("printer on fire", "urgent")], action="import", paste=paste)
    )
    assert f"At most {MAX_EXAMPLES} examples in all: the form has 1 and this import 64." in (
        response.content.decode()
    )
    assert rows_of(response) == [("printer on fire", "urgent")]
    # Exactly the limit is fine.
    response = signed_in.post("/compile/", form_data([], action="import", paste=paste))
    assert len(rows_of(response)) == MAX_EXAMPLES


def test_import_with_htmx_swaps_the_rows_and_the_box(signed_in):
    response = signed_in.post(
        "/compile/", form_data([], action="import", paste=PASTE), HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="example-rows">')
    assert '<div id="bulk-import" class="bulk-import" hx-swap-oob="true">' in page
    assert "<html" not in page
    assert response["HX-Trigger-After-Swap"] == "rows-changed"
    response = signed_in.post(
        "/compile/", form_data([], action="import", paste="nope"), HTTP_HX_REQUEST="true"
    )
    assert "Line 1: expected 2 columns" in response.content.decode()
    assert "HX-Trigger-After-Swap" not in response


def test_the_form_starts_from_a_program_and_says_its_score_is_low(signed_in, user):
    spec = (
        "Classify a support message by urgency.\n\nExamples:\n"
        "Input: server down\nOutput: urgent\n\nInput: invoice?\nOutput: low\n\n"
        "Hints:\n- outages are urgent"
    )
    program = ProgramFactory(
        owner=user,
        spec=spec,
        name="Urgency",
        example_count=16,
        heldout_accuracy=0.5,
        heldout_count=4,
        tags=["support"],
    )
    response = signed_in.get(f"/compile/?from={program.id}")
    page = response.content.decode()
    assert rows_of(response) == [("server down", "urgent"), ("invoice?", "low"), ("", "")]
    form = response.context["form"]
    assert form.initial["description"] == "Classify a support message by urgency."
    assert form.initial["hints"] == "outages are urgent"
    assert form.initial["tags"] == "support"
    assert "which scored 2/4 (50 %) on held-out examples" in page
    assert "Add more examples" in page


def test_a_good_source_gets_no_nagging_and_a_private_one_is_not_leaked(client, user):
    good = ProgramFactory(owner=user, example_count=40, heldout_accuracy=0.9, heldout_count=10)
    secret = ProgramFactory(owner=user, is_public=False, spec="Secret task.\na -> b\nc -> d")
    client.force_login(user)
    page = client.get(f"/compile/?from={good.id}").content.decode()
    assert "which scored 9/10 (90 %)" in page and "Add more examples" not in page
    client.force_login(UserFactory())
    response = client.get(f"/compile/?from={secret.id}")
    assert response.status_code == 200
    assert "Secret task" not in response.content.decode()
    assert response.context["source"] is None
