"""tokenizers.py and ClipModel.tokenize: compact vocabulary, end-of-text pooling, text validation."""

from __future__ import annotations

import json
import warnings

import open_clip
import pytest
import torch
from helpers_core import tiny_tokenizer
from torch import nn

from clipcam_utils import training
from clipcam_utils.models import ClipModel
from clipcam_utils.tokenizers import CompactTokenizer, bpe_tokenizer, check_length, clean_text

LONG = "a red star above a blue circle next to a green square inside an orange heart " * 3


@pytest.fixture(scope="module")
def tok() -> CompactTokenizer:
    return tiny_tokenizer()


def test_vocabulary_layout(tok) -> None:
    """0 = padding, 1 = <unk>, 2 = start, then the corpus' BPE tokens, end-of-text last (the largest id)."""
    bpe = bpe_tokenizer()
    assert tok.pad_id == 0 and tok.unk_id == 1
    assert tok.vocab_size == len(tok.bpe_ids) + 2
    assert tok.bpe_ids[0] == bpe.sot_token_id and tok.bpe_ids[-1] == bpe.eot_token_id
    assert tok.encode("")[0] == 2
    eot = tok.encode("")[-1]
    assert eot == tok.vocab_size - 1
    corpus_ids = {i for t in training.caption_corpus() for i in bpe.encode(t)}
    assert set(tok.bpe_ids[1:-1]) == corpus_ids
    assert tok.bpe_ids[1:-1] == sorted(tok.bpe_ids[1:-1])


def test_known_and_unknown_words(tok) -> None:
    ids = tok.encode("a red star")
    bpe = bpe_tokenizer()
    assert ids[0] == 2 and ids[-1] == tok.vocab_size - 1 and len(ids) == 5
    assert all(1 < i < tok.vocab_size - 1 for i in ids[1:-1])
    # Round trip: compact ids map back to exactly CLIP's BPE ids.
    assert [tok.bpe_ids[i - 2] for i in ids] == [
        bpe.sot_token_id,
        *bpe.encode("a red star"),
        bpe.eot_token_id,
    ]
    unk = tok.encode("a red zebra")
    assert unk[:3] == ids[:3] and unk[3] == tok.unk_id and unk[4] == ids[4]
    assert tok.unknown_words("a red zebra next to a dog") == ["zebra", "dog"]
    assert tok.unknown_words("a red star") == []
    assert tok.encode("A  RED   Star") == ids  # CLIP's BPE lower-cases and normalises white space


def test_batch_padding_and_argmax_at_end_token(tok) -> None:
    texts = ["a red star", "someone is touching", "zebra", LONG]
    out = tok(texts)
    assert out.shape == (4, tok.context_length) and out.dtype == torch.long
    eot = tok.vocab_size - 1
    for row, text in zip(out, texts, strict=True):
        ids = tok.encode(text)
        n = len(ids)
        assert row[:n].tolist() == ids
        assert (row[n:] == 0).all()
        assert int(row.argmax()) == n - 1 and int(row[n - 1]) == eot  # open_clip pools here
    assert tok("a red star").shape == (1, tok.context_length)
    wide = tok(["a red star"], context_length=20)
    assert (
        wide.shape == (1, 20) and wide[0, :5].tolist() == tok.encode("a red star") and not wide[0, 5:].any()
    )


def test_truncation_keeps_the_end_token(tok) -> None:
    ids = tok.encode(LONG)
    assert len(ids) == tok.context_length
    assert ids[-1] == tok.vocab_size - 1
    full = [tok._map.get(i, 1) for i in bpe_tokenizer().encode(LONG)]
    assert ids[1:-1] == full[: tok.context_length - 2]  # the first tokens are kept


def test_shorter_context_override_keeps_the_end_token(tok) -> None:
    out = tok([LONG], context_length=8)
    assert out.shape == (1, 8)
    assert int(out[0, -1]) == tok.vocab_size - 1


def test_state_dict_round_trip(tok) -> None:
    state = json.loads(json.dumps(tok.state_dict()))  # plain data: it travels inside checkpoints
    again = CompactTokenizer.from_state_dict(state)
    assert again.bpe_ids == tok.bpe_ids and again.vocab_size == tok.vocab_size
    assert again.context_length == tok.context_length
    texts = ["a red star", "a red zebra", LONG]
    assert torch.equal(again(texts), tok(texts))
    other = CompactTokenizer.from_corpus(["a dog"], context_length=8)
    assert other.vocab_size == 2 + 4 and other.context_length == 8  # pad, unk, start, "a", "dog", end
    assert sorted(other.encode("a dog")) == [2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------- validation


def test_clean_text() -> None:
    assert clean_text("  a dog \n") == "a dog"
    for empty in ["", "   ", "\t\n"]:
        with pytest.raises(ValueError, match=r"text is empty; give a sentence"):
            clean_text(empty)
    for bad in [None, 3, b"a dog", ["a dog"]]:
        with pytest.raises(TypeError, match=r"text must be a string, got (NoneType|int|bytes|list)"):
            clean_text(bad)


def test_check_length() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_length("a red star", 5)  # 3 tokens + start + end = 5: fits exactly
    with pytest.warns(
        UserWarning, match=r"text has 6 tokens but the model's context holds 5; .*first 3 tokens"
    ):
        check_length("a red star now", 5)


def _tokenizing_clip(tokenizer, context_length: int) -> ClipModel:
    """A ClipModel used only for `tokenize` (no network weights needed)."""
    return ClipModel(nn.Identity(), "tok-only", None, tokenizer, (0.0,) * 3, (1.0,) * 3, None, 0.3,
                     torch.device("cpu"), torch.float32, context_length)  # fmt: skip


@pytest.mark.parametrize("which", ["clip-bpe", "compact"])
def test_clip_model_tokenize(tok, which) -> None:
    if which == "clip-bpe":
        tokenizer, ctx, eot = open_clip.get_tokenizer("ViT-B-32"), 77, bpe_tokenizer().eot_token_id
    else:
        tokenizer, ctx, eot = tok, tok.context_length, tok.vocab_size - 1
    clip = _tokenizing_clip(tokenizer, ctx)
    short = clip.tokenize("  a red star ")
    assert short.shape == (1, ctx)
    assert torch.equal(short, clip.tokenize("a red star"))
    assert int(short[0].argmax()) == 4 and int(short[0, 4]) == eot
    long = "a red star above a blue circle " * (12 if which == "clip-bpe" else 3)
    with pytest.warns(
        UserWarning, match=rf"context holds {ctx}; it is truncated to the first {ctx - 2} tokens"
    ):
        out = clip.tokenize(["a red star", long])
    assert out.shape == (2, ctx)
    assert int(out[1, -1]) == eot and (out[1] != 0).all()
    assert int(out[1].argmax()) == ctx - 1
    with pytest.raises(ValueError, match="text is empty"):
        clip.tokenize(["a red star", " "])
    with pytest.raises(TypeError, match="text must be a string, got int"):
        clip.tokenize(["a red star", 3])
