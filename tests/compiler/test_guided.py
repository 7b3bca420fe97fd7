"""Guided decoding for vLLM (compiler.engines.guided): the same choice of the next
token as the llama.cpp runtime, on the same bytes. vLLM itself runs it in tests/vllm."""

import pytest

from compiler.engines.guided import (
    GuidedRequest,
    final_answer,
    guide_args,
    token_pieces,
)
from pawhub.constraint import Guide, OutputConstraint

# A toy vocabulary: id -> bytes (0 is the end of turn, 1 a control token).
PIECES = [b"", b"", b" urg", b"ent", b" normal", b" Lis", b"bon", b" Ber", b"lin", b"x"]
EOG = {0}
LABELS = OutputConstraint("choice", ("urgent", "normal"))


def guided(constraint, input_text="", *, greedy=True):
    request = GuidedRequest.from_extra_args(
        guide_args(constraint, input_text), pieces=PIECES, eog=EOG, greedy=greedy
    )
    assert request is not None
    return request


def test_a_free_or_absent_constraint_is_not_guided():
    assert GuidedRequest.from_extra_args(None, pieces=PIECES, eog=EOG, greedy=True) is None
    free = guide_args(OutputConstraint(), "x")
    assert GuidedRequest.from_extra_args(free, pieces=PIECES, eog=EOG, greedy=True) is None


def test_the_first_valid_token_in_rank_order_wins():
    request = guided(LABELS)
    # "x" and the control token are ranked first, but cannot start a label.
    assert request.allowed([9, 1, 4, 2]) == [4]
    assert guided(LABELS, greedy=False).allowed([9, 1, 4, 2]) == [4, 2]
    # The end of turn only once the answer is whole.
    assert request.allowed([0, 2]) == [2]


def test_the_answer_follows_the_decoded_tokens_and_settles():
    request = guided(LABELS)
    request.advance([2])
    assert request.answer == b" urg" and request.settled  # only "urgent" is left
    request.advance([2, 3, 0])  # the end of turn adds nothing
    assert request.answer == b" urgent" and request.seen == 3
    assert request.allowed([9, 0]) == [0]
    # A label settled early is returned whole, as the runtime returns it.
    assert final_answer(LABELS, "", b" urg") == "urgent"


def test_a_span_is_held_to_the_input():
    span = OutputConstraint("span")
    request = guided(span, "We moved from Berlin to Lisbon.")
    assert request.allowed([9, 5, 7]) == [5]
    request.advance([5])
    assert request.allowed([8, 6]) == [6]  # " Lislin" is not in the input
    assert final_answer(span, "", b" Lisbon ") == "Lisbon"


def test_the_pieces_are_the_tokenizers_bytes():
    class Toy:
        all_special_ids = [0]
        added_tokens_decoder = {}

        def __len__(self):
            return 4

        def get_vocab(self):
            # Byte-level BPE: "Ġ" stands for a space, "Ċ" for a newline.
            return {"<|im_end|>": 0, "Ġhi": 1, "Ċ": 2, "é": 3}

    assert token_pieces(Toy()) == [b"", b" hi", b"\n", "é".encode("latin-1")]


@pytest.mark.slow
def test_the_pieces_and_ends_match_llama_cpps_on_the_whole_vocabulary(tmp_path, settings):
    """Byte for byte, on SmolLM2's 49152 tokens: what guided decoding compares."""
    import llama_cpp
    from transformers import AutoTokenizer

    from compiler.engines.guided import end_of_generation_ids
    from compiler.training import ensure_base_hf_dir
    from pawhub.interpreter import shared_interpreter

    base = ensure_base_hf_dir(settings.MODEL_CACHE_DIR / "SmolLM2-135M-Instruct")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    pieces = token_pieces(tokenizer)
    interpreter = shared_interpreter()
    n_vocab = interpreter._n_vocab
    assert len(pieces) == n_vocab
    vocabulary = interpreter._vocabulary  # what its guided decoding reads tokens with
    assert [i for i in range(n_vocab) if vocabulary.piece(i) != pieces[i]] == []
    vocab = llama_cpp.llama_model_get_vocab(interpreter._llm.model)
    eog = {i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    assert {i for i in range(n_vocab) if vocabulary.is_end(i)} == eog
    assert end_of_generation_ids(tokenizer) == eog
    # And the guide sees the same answer either way.
    assert Guide(LABELS, "").settled(b"".join(pieces[i] for i in tokenizer.encode(" urg")))
