"""A compact-vocabulary view of CLIP's real BPE tokenizer, for the tiny ShapesWorld CLIPs.

CLIP's vocabulary has 49,408 tokens; a token-embedding table that large would dwarf a tiny text tower
(6.3 M parameters at width 128). The tiny models keep CLIP's real tokenizer and only remap the BPE ids
they were trained on to a dense range; any other token becomes `<unk>`, so arbitrary user text still works.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence

import torch
from open_clip.tokenizer import SimpleTokenizer

_BPE: SimpleTokenizer | None = None


def bpe_tokenizer() -> SimpleTokenizer:
    """CLIP's BPE tokenizer as shipped by open_clip (loaded once)."""
    global _BPE
    if _BPE is None:
        _BPE = SimpleTokenizer()
    return _BPE


def clean_text(text: str) -> str:
    """Validate a query: a non-empty string; surrounding white space is dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(
            "text is empty; give a sentence describing the region to find, e.g. 'a photo of a dog'"
        )
    return stripped


def check_length(text: str, context_length: int) -> None:
    """Warn when `text` does not fit in the context and will be truncated (CLIP keeps the first tokens)."""
    n = len(bpe_tokenizer().encode(text)) + 2  # start and end tokens
    if n > context_length:
        warnings.warn(
            f"text has {n} tokens but the model's context holds {context_length}; it is truncated to the first "
            f"{context_length - 2} tokens: {text[:60]!r}...",
            UserWarning,
            stacklevel=3,
        )


class UnknownWordsWarning(UserWarning):
    """A query holds words the model's vocabulary does not know: they reach the model as `<unk>`."""


def unknown_words_message(tokenizer: object, text: str) -> str | None:
    """What to tell the user when `tokenizer` knows none or only some of the words of `text` (None: all known).

    Only tokenizers with an `unknown_words` method (the ShapesWorld `CompactTokenizer`) can miss words;
    CLIP's own BPE encodes any text, so for open_clip models this is always None.
    """
    check = getattr(tokenizer, "unknown_words", None)
    if check is None or not isinstance(text, str):
        return None
    words = list(dict.fromkeys(re.findall(r"[^\W_]+(?:'[^\W_]+)*", text.lower())))
    unknown = [w for w in words if check(w)]
    if not words and check(text):  # no words at all, only symbols the model never saw
        return f"the model knows none of the tokens of {text!r} (all read as <unk>): the result says nothing"
    if not unknown:
        return None
    names = ", ".join(repr(w) for w in unknown)
    if len(unknown) == len(words):
        return (f"the model knows none of the words of {text!r} ({names} all read as <unk>): its map, box and "
                "score say nothing about this text; use words from the model's training captions")  # fmt: skip
    return (f"the model does not know {len(unknown)} of the {len(words)} words of {text!r}: {names} "
            "(read as <unk>); only the other words guide the map")  # fmt: skip


def warn_unknown_words(tokenizer: object, texts: Iterable[str], stacklevel: int = 3) -> None:
    """Issue an `UnknownWordsWarning` for each distinct text with words the model does not know."""
    for text in dict.fromkeys(texts):
        message = unknown_words_message(tokenizer, text)
        if message is not None:
            warnings.warn(message, UnknownWordsWarning, stacklevel=stacklevel)


class CompactTokenizer:
    """CLIP's BPE tokenizer with ids remapped to a small vocabulary.

    Id 0 is padding, 1 is `<unk>`, then the known BPE tokens, and the end-of-text token is the largest id:
    open_clip pools the text tower at the argmax token id, which in CLIP's vocabulary is end-of-text.
    """

    def __init__(self, bpe_ids: Sequence[int], context_length: int = 16) -> None:
        bpe = bpe_tokenizer()
        body = sorted(set(int(i) for i in bpe_ids) - {bpe.sot_token_id, bpe.eot_token_id})
        self.bpe_ids: list[int] = [bpe.sot_token_id, *body, bpe.eot_token_id]
        self.pad_id, self.unk_id = 0, 1
        self._map = {b: k + 2 for k, b in enumerate(self.bpe_ids)}
        self.vocab_size = len(self.bpe_ids) + 2
        self.context_length = context_length

    @classmethod
    def from_corpus(cls, texts: Iterable[str], context_length: int = 16) -> CompactTokenizer:
        """Vocabulary = every BPE token that occurs in `texts`."""
        bpe = bpe_tokenizer()
        ids: set[int] = set()
        for t in texts:
            ids.update(bpe.encode(t))
        return cls(sorted(ids), context_length)

    def encode(self, text: str) -> list[int]:
        """Compact ids of one text, with start/end tokens, truncated to the context."""
        bpe = bpe_tokenizer()
        ids = [bpe.sot_token_id, *bpe.encode(text), bpe.eot_token_id]
        if len(ids) > self.context_length:
            ids = ids[: self.context_length - 1] + [bpe.eot_token_id]
        return [self._map.get(i, self.unk_id) for i in ids]

    def unknown_words(self, text: str) -> list[str]:
        """Tokens of `text` the model never saw in training (they all read as `<unk>`)."""
        bpe = bpe_tokenizer()
        return [bpe.decode([i]).strip() for i in bpe.encode(text) if i not in self._map]

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        n = context_length or self.context_length
        out = torch.zeros(len(texts), n, dtype=torch.long)
        for row, t in enumerate(texts):
            ids = self.encode(t)
            if len(ids) > n:
                ids = ids[: n - 1] + [ids[-1]]  # keep end-of-text: open_clip pools the text tower there
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def state_dict(self) -> dict:
        return {"bpe_ids": self.bpe_ids, "context_length": self.context_length}

    @classmethod
    def from_state_dict(cls, state: dict) -> CompactTokenizer:
        return cls(state["bpe_ids"], state["context_length"])
