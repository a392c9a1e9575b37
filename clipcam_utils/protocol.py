"""The CLIPCAM protocol's class lists: seen / unseen Open Images classes and seen HICO-DET actions."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from clipcam_utils.prompts import normalise_name, verb_to_ing

__all__ = [
    "class_split",
    "is_seen_action",
    "is_seen_class",
    "load_seen_actions",
    "load_seen_unseen_classes",
    "openimages_label",
]

# Open Images display name (lower-cased) -> the name the CLIPCAM protocol puts in prompts.
_OPENIMAGES_PROMPT_NAMES = {"dairy": "dairy product"}


def openimages_label(display_name: str) -> str:
    """Open Images display name -> label used in prompts: lower-cased ("Dairy" -> "dairy product")."""
    name = normalise_name(display_name)
    return _OPENIMAGES_PROMPT_NAMES.get(name, name)


def _package_json(name: str) -> Any:
    return json.loads((resources.files("clipcam_utils") / "data" / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_seen_unseen_classes() -> tuple[frozenset[str], frozenset[str]]:
    """The protocol's 100 seen and 100 unseen Open Images classes (lower-cased display names)."""
    data = _package_json("openimages_seen_unseen_classes.json")
    return frozenset(data["seen"]), frozenset(data["unseen"])


@lru_cache(maxsize=1)
def load_seen_actions() -> frozenset[str]:
    """The protocol's 52 seen HICO-DET actions, as present participles ("riding", "sitting on")."""
    return frozenset(_package_json("hicodet_seen_actions.json")["seen_verbs_ing"])


def class_split(name: str) -> str | None:
    """ "seen" or "unseen" for a class of the object protocol, None for a class outside both lists."""
    label = openimages_label(name)
    seen, unseen = load_seen_unseen_classes()
    if label in seen:
        return "seen"
    if label in unseen:
        return "unseen"
    return None


def is_seen_class(name: str) -> bool:
    """True if the class is one of the protocol's 100 seen (ImageNet) classes."""
    return class_split(name) == "seen"


def is_seen_action(verb_ing: str) -> bool:
    """True if the action (a participle like "riding", or a HICO verb like "ride") is a seen action."""
    seen = load_seen_actions()
    phrase = normalise_name(verb_ing)
    if phrase in seen:
        return True
    return bool(re.fullmatch(r"[a-z]+( [a-z]+)*", phrase)) and verb_to_ing(phrase) in seen
