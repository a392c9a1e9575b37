"""Text queries: HICO-DET verbs as present participles, action prompts and HOI sentences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: records.py imports verb_to_ing from here
    from clipcam_utils.records import HoiClass, Interaction

__all__ = ["action_prompt", "hoi_prompt", "hoi_prompts", "normalise_name", "verb_to_ing"]

ACTION_PROMPT_STYLES = ("verb", "someone", "hoi")


def normalise_name(name: str) -> str:
    """Lower-case a class or verb name and turn underscores and runs of spaces into single spaces."""
    return " ".join(str(name).replace("_", " ").lower().split())


_DOUBLED_FINAL_CONSONANT = frozenset(
    {
        "cut",
        "drag",
        "flip",
        "hit",
        "hop",
        "hug",
        "pet",
        "run",
        "set",
        "sip",
        "sit",
        "spin",
        "stab",
        "stir",
        "stop",
        "tag",
        "zip",
    }
)
# Spelled as in the authors' code, hence in the seen-actions list.
_CLIPCAM_SPELLING = {"spin": "spining", "control": "controling"}
# The 600 HOI sentences ("A photo of a person ...") spell these differently.
_HOI_PROMPT_SPELLING = {
    "control": "controlling",
    "drag": "draging",
    "flip": "fliping",
    "hit": "hiting",
    "spin": "spinning",
    "stab": "stabing",
    "stir": "stiring",
    "tag": "taging",
    "wave": "waving at",
    "zip": "ziping",
}


def _participle(word: str) -> str:
    if word in _CLIPCAM_SPELLING:
        return _CLIPCAM_SPELLING[word]
    if word.endswith("ie"):
        return word[:-2] + "ying"
    if word in _DOUBLED_FINAL_CONSONANT:
        return word + word[-1] + "ing"
    if len(word) > 2 and word.endswith("e") and not word.endswith(("ee", "oe", "ye")):
        return word[:-1] + "ing"
    return word + "ing"


def _verb_words(verb: str) -> list[str]:
    words = str(verb).strip().lower().replace("_", " ").split()
    if not words or not all(word.isalpha() for word in words):
        raise ValueError(f"verb must be a HICO-DET verb name such as 'ride' or 'sit_on', got {verb!r}")
    return words


def verb_to_ing(verb: str) -> str:
    """HICO-DET verb -> present participle phrase: "ride" -> "riding", "sit_on" -> "sitting on".

    Spelling follows the paper's seen-actions list (two forms as in the authors' code: "spining",
    "controling"); "no_interaction" becomes "not interacting with".
    """
    words = _verb_words(verb)
    if words == ["no", "interaction"]:
        return "not interacting with"
    return " ".join([_participle(words[0]), *words[1:]])


def _object_phrase(object_name: str) -> str:
    phrase = normalise_name(object_name)
    if not phrase:
        raise ValueError(f"object name must be non-empty, got {object_name!r}")
    return phrase


def hoi_prompt(verb: str, object_name: str) -> str:
    """The HOI sentence "A photo of a person <verb-ing> a/an <object>" (as in HICO-DET's prompts.json)."""
    words = _verb_words(verb)
    obj = _object_phrase(object_name)
    article = "an" if obj[0] in "aeiou" else "a"
    if words == ["no", "interaction"]:
        return f"A photo of a person and {article} {obj}"
    key = "_".join(words)
    phrase = _HOI_PROMPT_SPELLING.get(key) or verb_to_ing(key)
    return f"A photo of a person {phrase} {article} {obj}"


def action_prompt(interaction: Interaction, style: str = "verb") -> str:
    """Text query for a pair: "verb" (paper: "riding"), "someone" (official code: "Someone is riding
    bicycle") or "hoi" ("A photo of a person riding a bicycle")."""
    if style == "verb":
        return verb_to_ing(interaction.verb)
    if style == "someone":
        return f"Someone is {verb_to_ing(interaction.verb)} {_object_phrase(interaction.object)}"
    if style == "hoi":
        return hoi_prompt(interaction.verb, interaction.object)
    raise ValueError(f"unknown prompt style {style!r}; use one of {ACTION_PROMPT_STYLES}")


def hoi_prompts(classes: Sequence[HoiClass]) -> list[str]:
    """The HOI sentences of ``classes`` in order (give all 600 to get HICO-DET's prompt list)."""
    return [hoi_prompt(cls.verb, cls.object) for cls in classes]
