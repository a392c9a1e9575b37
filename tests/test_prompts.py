"""HICO-DET verbs as participles, action prompts and the 600 HOI sentences."""

from __future__ import annotations

import json

import pytest
from helpers_data import HICO_JSON, HICODET, needs_hicodet

from clipcam_utils.hicodet import load_hoi_classes
from clipcam_utils.prompts import action_prompt, hoi_prompt, hoi_prompts, verb_to_ing
from clipcam_utils.protocol import is_seen_action, load_seen_actions, load_seen_unseen_classes
from clipcam_utils.records import Interaction

# --- verbs and prompts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "ing"),
    [
        ("ride", "riding"),
        ("sit_on", "sitting on"),
        ("hold", "holding"),
        ("lie_on", "lying on"),
        ("tie", "tying"),
        ("pick_up", "picking up"),
        ("stop_at", "stopping at"),
        ("spin", "spining"),
        ("control", "controling"),
        ("hop_on", "hopping on"),
        ("lasso", "lassoing"),
        ("no_interaction", "not interacting with"),
    ],
)
def test_verb_to_ing(verb: str, ing: str) -> None:
    assert verb_to_ing(verb) == ing


@pytest.mark.parametrize("verb", ["", "  ", "ride!", 3])
def test_verb_to_ing_rejects_non_verbs(verb: object) -> None:
    with pytest.raises(ValueError, match="verb"):
        verb_to_ing(verb)  # type: ignore[arg-type]


def test_action_prompt_styles() -> None:
    pair = Interaction((0, 0, 5, 5), (2, 2, 9, 9), "ride", "bicycle", 19)
    assert action_prompt(pair) == "riding"
    assert action_prompt(pair, style="someone") == "Someone is riding bicycle"
    assert action_prompt(pair, style="hoi") == "A photo of a person riding a bicycle"
    table = Interaction((0, 0, 5, 5), (2, 2, 9, 9), "eat_at", "dining_table", 1)
    assert action_prompt(table, "someone") == "Someone is eating at dining table"
    assert hoi_prompt("no_interaction", "apple") == "A photo of a person and an apple"
    assert hoi_prompt("wave", "bus") == "A photo of a person waving at a bus"
    with pytest.raises(ValueError, match="verb.*someone.*hoi"):
        action_prompt(pair, style="caption")


@pytest.mark.shared
@needs_hicodet
def test_every_seen_action_maps_from_a_hico_verb() -> None:
    verbs = json.loads(HICO_JSON.read_text())["verbs"]
    participles = {verb_to_ing(verb): verb for verb in verbs}
    assert len(participles) == len(verbs) == 117
    assert load_seen_actions() <= participles.keys()
    assert {verb for verb in verbs if is_seen_action(verb)} == {participles[a] for a in load_seen_actions()}


@pytest.mark.shared
@pytest.mark.skipif(not (HICODET / "prompts.json").is_file(), reason=f"needs {HICODET / 'prompts.json'}")
def test_hoi_prompts_equal_the_published_list() -> None:
    classes = load_hoi_classes(HICO_JSON)
    assert [c.hoi_id for c in classes] == list(range(1, 601))
    assert hoi_prompts(classes) == json.loads((HICODET / "prompts.json").read_text())


# --- object prompts: the article rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "prompt"),
    [
        ("jeans", "a photo of jeans"),
        ("sunglasses", "a photo of sunglasses"),
        ("baked goods", "a photo of baked goods"),
        ("ice cream", "a photo of ice cream"),
        ("human hair", "a photo of human hair"),
        ("apple", "a photo of an apple"),
        ("unicycle", "a photo of a unicycle"),
        ("umbrella", "a photo of an umbrella"),
        ("bus", "a photo of a bus"),
        ("dress", "a photo of a dress"),
        ("tennis ball", "a photo of a tennis ball"),
        ("chest of drawers", "a photo of a chest of drawers"),
        ("salt and pepper shakers", "a photo of salt and pepper shakers"),
        ("orange cross", "a photo of an orange cross"),
    ],
)
def test_object_prompts_use_the_right_article(label: str, prompt: str) -> None:
    from clipcam_utils.evaluation import Protocol

    assert Protocol().text(label) == prompt
    assert Protocol(prompt="{}").text(label) == label


def test_protocol_classes_without_an_article() -> None:
    from clipcam_utils.prompts import article

    seen, unseen = load_seen_unseen_classes()
    bare = {c for c in seen | unseen if article(c) == ""}
    assert bare == {
        "baked goods", "bread", "broccoli", "cabinetry", "clothing", "fast food", "food", "footwear", "fruit",
        "furniture", "glasses", "guacamole", "human hair", "ice cream", "jeans", "juice", "pasta", "seafood",
        "shorts", "sports equipment", "sunglasses", "swimwear", "tableware", "trousers",
    }  # fmt: skip
    assert article("sheep") == "a" and article("cattle") == "" and article("hour glass") == "an"
    with pytest.raises(ValueError):
        article("  ")


def test_shapesworld_captions_keep_their_articles() -> None:
    """The tiny CLIPs were trained on these captions: the rule must not change a single one."""
    from clipcam_utils import shapesworld as sw

    for label in sw.class_names():
        assert sw.with_article(label) == ("an " if label[0] in "aeiou" else "a ") + label
