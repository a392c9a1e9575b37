"""HICO-DET verbs as participles, action prompts and the 600 HOI sentences."""

from __future__ import annotations

import json

import pytest
from helpers_data import HICO_JSON, HICODET, needs_hicodet

from clipcam_utils.hicodet import load_hoi_classes
from clipcam_utils.prompts import action_prompt, hoi_prompt, hoi_prompts, verb_to_ing
from clipcam_utils.protocol import is_seen_action, load_seen_actions
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
