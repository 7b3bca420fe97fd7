"""Guided decoding for the vLLM engine, step for step as the llama.cpp runtime does it.

A program's answer is held to its output constraint (``pawhub.constraint``)
by ``pawhub.interpreter``: at each step it takes the most likely token whose
text keeps the answer valid (``Guide.allows``), ends the answer with the end of
turn only when it is whole (``Guide.may_end``), and stops a label answer as
soon as one label is left (``Guide.settled``). vLLM's structured outputs
(regex, choice) would hold an answer to a grammar, but not to these very
rules (a span of the input at word boundaries, compared stripped, on bytes),
so the vLLM engine runs the same ``Guide`` in a logits processor
(``compiler.engines.vllm_guided``): the same rules, the same greedy choice,
so the same answers wherever the two models' logits rank tokens alike.

This module holds the engine-free part: each token's bytes as llama.cpp
spells them (``token_pieces``), the end-of-generation tokens, and the choice of
the next token for one request (``GuidedRequest.allowed``). No vLLM, no torch.
"""

import dataclasses

from pawhub.constraint import Guide, OutputConstraint
from pawhub.guided import GUIDE_TOP_K, valid_tokens  # noqa: F401 (GUIDE_TOP_K: vllm_guided's)

EXTRA_ARGS_KEY = "paw_guide"  # SamplingParams.extra_args[...] = {"constraint", "input"}
# llama-cpp-python detokenizes one token into a 32-byte buffer: the 47 longer
# SmolLM2 tokens (runs of 33+ spaces or dashes) come out empty there, so the
# runtime never takes them in a guided answer. Here neither.
MAX_PIECE_BYTES = 32
# llama.cpp's end-of-generation tokens for SmolLM2 (llama_vocab_is_eog): the end of
# turn, the end of text, and the fill-in-the-middle repository token.
END_OF_GENERATION = ("<|im_end|>", "<|endoftext|>", "<reponame>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: each byte's stand-in character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def token_pieces(tokenizer) -> list[bytes]:
    """Each token id's bytes, as llama.cpp detokenizes a single token: special
    (control) tokens have none. ``tokenizer`` is the base model's Hugging Face
    tokenizer (a byte-level BPE, as SmolLM2's)."""
    byte_of = {char: byte for byte, char in _bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    special.update(
        token_id
        for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items()
        if added.special
    )
    vocab_size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    pieces = [b""] * vocab_size
    for text, token_id in tokenizer.get_vocab().items():
        if token_id in special:
            continue
        if all(char in byte_of for char in text):
            piece = bytes(byte_of[char] for char in text)
        else:  # an added token spelled out as plain text
            piece = text.encode()
        pieces[token_id] = piece if len(piece) <= MAX_PIECE_BYTES else b""
    return pieces


def end_of_generation_ids(tokenizer) -> set[int]:
    """The tokens that end an answer, as llama.cpp counts them (``END_OF_GENERATION``)."""
    ids = {tokenizer.eos_token_id} - {None}
    for text in END_OF_GENERATION:
        token_id = tokenizer.convert_tokens_to_ids(text)
        if token_id is not None and tokenizer.convert_ids_to_tokens(token_id) == text:
            ids.add(token_id)
    return ids


def guide_args(constraint: OutputConstraint, input_text: str) -> dict:
    """What a request carries in ``SamplingParams.extra_args`` to be guided."""
    return {EXTRA_ARGS_KEY: {"constraint": constraint.to_dict(), "input": input_text}}


@dataclasses.dataclass
class GuidedRequest:
    """One request's guided decoding: the answer so far and what may come next."""

    guide: Guide
    pieces: list[bytes]
    eog: set[int]
    greedy: bool = True
    answer: bytes = b""
    seen: int = 0  # output tokens folded into ``answer``

    @classmethod
    def from_extra_args(cls, extra_args, *, pieces, eog, greedy) -> "GuidedRequest | None":
        raw = (extra_args or {}).get(EXTRA_ARGS_KEY)
        if raw is None:
            return None
        constraint = OutputConstraint.from_dict(raw["constraint"])
        if constraint.is_free:
            return None
        return cls(Guide(constraint, raw["input"]), pieces, eog, greedy=greedy)

    def advance(self, output_ids: list[int]) -> None:
        """Fold the tokens decoded since the last step into the answer."""
        for token in output_ids[self.seen :]:
            if token not in self.eog:
                self.answer += self.pieces[token]
        self.seen = len(output_ids)

    @property
    def settled(self) -> bool:
        """Only one answer is left (a label): end it here, as the runtime does."""
        return self.guide.settled(self.answer) is not None

    def allowed(self, ranked) -> list[int]:
        """The tokens of ``ranked`` (ids, most likely first) that keep the answer
        valid -- an end-of-generation token only where the answer is whole --
        in order; only the first of them when greedy."""
        return valid_tokens(
            self.guide,
            self.answer,
            ranked,
            lambda token: self.pieces[token] if token < len(self.pieces) else b"",
            self.eog.__contains__,
            self.greedy,
        )


def final_answer(constraint: OutputConstraint, input_text: str, answer: bytes) -> str:
    """The answer as the runtime returns it: a settled label whole, all stripped."""
    settled = Guide(constraint, input_text).settled(answer)
    if settled is not None:
        return settled
    return answer.decode("utf-8", errors="replace").strip()
