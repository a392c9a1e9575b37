"""Text queries: HICO-DET verbs as present participles, action prompts and HOI sentences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: records.py imports verb_to_ing from here
    from clipcam_utils.records import HoiClass, Interaction

__all__ = [
    "action_prompt",
    "article",
    "hoi_prompt",
    "hoi_prompts",
    "normalise_name",
    "object_caption",
    "verb_to_ing",
    "with_article",
]

ACTION_PROMPT_STYLES = ("verb", "someone", "hoi")

# The article rule: "an" before a vowel sound, "a" before a consonant sound, none before a plural or a mass
# noun ("a photo of jeans", "a photo of baked goods", "a photo of food"). The head noun is the last word, or
# the word before "of" ("chest of drawers"). A head noun ending in "s" is plural unless it ends in "ss",
# "us" or "is" (dress, bus, tennis) or is listed as singular.
# The lists cover Open Images' 601 boxable classes (checked by the tests) and ShapesWorld's captions.
_SINGULAR_IN_S = frozenset({"canvas", "chaos", "gas", "lens", "rhinoceros"})
_PLURAL_WITHOUT_S = frozenset({"cattle", "people"})
_MASS_NOUNS = frozenset(
    {"asparagus", "beer", "bread", "broccoli", "cabinetry", "candy", "care", "cheese", "clothing", "coffee",
     "cream", "equipment", "food", "footwear", "fruit", "furniture", "guacamole", "hair", "kitchenware",
     "lavender", "milk", "paper", "pasta", "popcorn", "powder", "seafood", "shellfish", "spray", "sushi",
     "swimwear", "tableware", "tape", "tea", "wine", "juice"}
)  # fmt: skip
# Spelling and sound disagree: a vowel letter read as a consonant, or a silent "h".
_CONSONANT_SOUND = ("euro", "one", "uni", "use", "uku")
_VOWEL_SOUND = ("hour", "honest", "honou", "heir")


def _head_noun(phrase: str) -> str:
    words = phrase.lower().split()
    return words[words.index("of") - 1] if "of" in words[1:] else words[-1]


def article(phrase: str) -> str:
    """The indefinite article for a noun phrase: "a", "an", or "" for plural and mass nouns.

    "apple" -> "an", "unicycle" -> "a", "jeans" -> "", "baked goods" -> "", "ice cream" -> "".
    """
    words = phrase.strip().lower().split()
    if not words:
        raise ValueError("article() needs a non-empty phrase")
    head = _head_noun(" ".join(words))
    plural = head in _PLURAL_WITHOUT_S or (
        head.endswith("s") and not head.endswith(("ss", "us", "is")) and head not in _SINGULAR_IN_S
    )
    if plural or head in _MASS_NOUNS:
        return ""
    first = words[0]
    if first.startswith(_VOWEL_SOUND):
        return "an"
    if first.startswith(_CONSONANT_SOUND):
        return "a"
    return "an" if first[0] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """ "orange star" -> "an orange star", "jeans" -> "jeans": captions should read like real ones."""
    word = article(phrase)
    return f"{word} {phrase}" if word else phrase


def object_caption(label: str, template: str = "a photo of a {}") -> str:
    """Fill an object template, fixing the article: "a photo of an apple", "a photo of jeans"."""
    if "a {}" in template:
        return template.replace("a {}", "{}").format(with_article(label))
    return template.format(label)


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
