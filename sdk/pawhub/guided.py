"""A program's output constraint, token by token.

The interpreter (``pawhub.interpreter``) decodes a constrained program itself:
at each step the most likely token whose text keeps the answer valid
(``allowed_tokens``). Other runtimes that decode with llama-cpp-python and take
llama.cpp logits processors -- the official PAW SDK's local functions take
``logits_processor=`` -- get the same choice as a processor (``Guided``), so
their local answers are the hub's::

    import programasweights as paw
    import pawhub

    fn = paw.function("alice/email")
    guided = pawhub.guided("alice/email")
    answer = fn(text, logits_processor=guided(text))

With greedy decoding (the SDK's default) the processor leaves exactly one token
possible at each step, the one the interpreter would take, and the end of turn
only once the answer is whole. The one difference: where the interpreter cuts a
looping answer after its first round (rules-3 constraints), the processor ends
the answer at the token that shows the loop, so such an answer keeps a few more
bytes.
"""

from pathlib import Path

import numpy as np

from pawhub.constraint import CHOICE, Guide, OutputConstraint

# The next valid token is looked for among this many most likely ones first.
GUIDE_TOP_K = 64


def allowed_tokens(guide: Guide, answer: bytes, logits, *, piece, is_end, first: bool) -> list:
    """The tokens that keep ``answer`` valid under ``guide``, most likely first (an
    end-of-turn token: one that ends the answer here, valid once it is whole); with
    ``first``, only the most likely of them. ``piece(token)`` is a token's bytes,
    ``is_end(token)`` whether it ends a turn."""
    top_k = min(GUIDE_TOP_K, len(logits) - 1)
    top = np.argpartition(-logits, top_k)[:top_k]
    ranked = top[np.argsort(-logits[top])].tolist()
    allowed = valid_tokens(guide, answer, ranked, piece, is_end, first)
    if not allowed:
        # Rare: nothing valid among the most likely tokens; look through them all.
        allowed = valid_tokens(guide, answer, np.argsort(-logits).tolist(), piece, is_end, first)
    return allowed


def valid_tokens(guide: Guide, answer: bytes, ranked, piece, is_end, first: bool) -> list:
    """The tokens of ``ranked`` (most likely first) that keep ``answer`` valid, in
    order; with ``first``, only the first of them (see ``allowed_tokens``)."""
    allowed = []
    for token in ranked:
        if is_end(token):
            valid = guide.may_end(answer)
        else:
            # A token with no text (a control token) would let the answer stall.
            text = piece(token)
            valid = bool(text) and guide.allows(answer + text)
        if valid:
            allowed.append(token)
            if first:
                break
    return allowed


class Vocabulary:
    """Token bytes and end-of-turn tokens of the base model, read from its GGUF
    (vocabulary only: no weights are loaded)."""

    def __init__(self, model: "Path | str | object | None" = None):
        import llama_cpp

        if model is None or isinstance(model, (str, Path)):
            from pawhub.model import base_model_path, load_llama

            model = load_llama(model or base_model_path(), vocab_only=True, verbose=False)
        self._llama = model
        self._vocab = llama_cpp.llama_model_get_vocab(model.model)
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self.eos = model.token_eos()
        self._pieces: dict[int, bytes] = {}

    def piece(self, token: int) -> bytes:
        text = self._pieces.get(token)
        if text is None:
            text = self._pieces[token] = self._llama.detokenize([token])
        return text

    def is_end(self, token: int) -> bool:
        return bool(self._is_eog(self._vocab, token))


class Guided:
    """A program's output constraint as llama.cpp logits processors: ``guided(input)``
    is a ``llama_cpp.LogitsProcessorList`` for one call on that input."""

    def __init__(self, constraint: OutputConstraint, vocabulary: Vocabulary | None = None):
        self.constraint = constraint
        self._vocabulary = vocabulary

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary()
        return self._vocabulary

    def __call__(self, input_text: str, *, temperature: float = 0.0):
        import llama_cpp

        if self.constraint.is_free:
            return None  # decoded freely on the hub too
        processor = _Processor(Guide(self.constraint, input_text), self.vocabulary, temperature)
        return llama_cpp.LogitsProcessorList([processor])


class _Processor:
    """One call's processor: reads the answer so far off the token history (the
    tokens after those it first saw) and masks every token but the allowed ones."""

    def __init__(self, guide: Guide, vocabulary: Vocabulary, temperature: float):
        self.guide = guide
        self.vocabulary = vocabulary
        self.greedy = temperature <= 0
        self.start: int | None = None
        self.answer = b""
        self.read = 0

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = len(input_ids)
        for token in list(input_ids[self.start + self.read :]):
            self.answer += self.vocabulary.piece(int(token))
            self.read += 1
        logits = np.asarray(scores, dtype=np.float32)
        masked = np.full_like(logits, -np.inf)
        eos = self.vocabulary.eos
        if self.read and self.guide.settled(self.answer) is not None and not self._choice_left():
            masked[eos] = 0.0  # a whole label, or a looping answer: end it here
            return masked
        allowed = allowed_tokens(
            self.guide,
            self.answer,
            logits,
            piece=self.vocabulary.piece,
            is_end=self.vocabulary.is_end,
            first=self.greedy,
        )
        if not allowed:
            masked[eos] = 0.0
            return masked
        for token in allowed:
            # Any end of turn the model prefers ends the answer as its runtime expects.
            target = eos if self.vocabulary.is_end(token) else token
            masked[target] = max(masked[target], logits[token])
        return masked

    def _choice_left(self) -> bool:
        """A settled label still has its remaining bytes to decode."""
        settled = self.guide.settled(self.answer)
        return self.guide.constraint.kind == CHOICE and settled.encode() != self.answer.strip()
