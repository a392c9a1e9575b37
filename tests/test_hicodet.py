"""HICO-DET loaders: the shared real annotations, JSON and .mat fixtures, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers_data import HICO_JSON, HICODET, jpeg, load_quietly

from clipcam_utils.hicodet import load_hicodet, load_hoi_classes
from clipcam_utils.prompts import action_prompt, verb_to_ing
from clipcam_utils.records import HoiClass, Interaction, LoadWarning

# --- HICO-DET: real annotations --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hico_json() -> dict:
    if not HICO_JSON.is_file():
        pytest.skip(f"needs the shared HICO-DET annotations at {HICO_JSON} (absent in a fresh clone)")
    return json.loads(HICO_JSON.read_text())


@pytest.mark.shared
def test_real_hicodet_counts(hico_json: dict) -> None:
    records = load_hicodet(HICO_JSON, require_images=False)
    assert len(records) == 9658
    assert [r.image_id + ".jpg" for r in records] == hico_json["filenames"]
    assert records.report.num_skipped == 0
    assert {r.image_id + ".jpg" for r in records if r.num_pairs == 0} == {
        hico_json["filenames"][i] for i in hico_json["empty"]
    }
    assert sum(r.num_pairs == 0 for r in records) == len(hico_json["empty"]) == 112
    ni = hico_json["verbs"].index("no_interaction")
    annotations = hico_json["annotation"]
    assert sum(r.num_pairs for r in records) == sum(len(a["hoi"]) for a in annotations) == 33405
    assert sum(r.num_pairs == 1 for r in records) == sum(len(a["hoi"]) == 1 for a in annotations) == 2457
    single_action = [r for r in records if r.num_pairs == 1 and not r.no_interaction]
    assert len(single_action) == sum(len(a["verb"]) == 1 and a["verb"][0] != ni for a in annotations) == 1911
    assert sum(r.no_interaction for r in records) == sum(
        bool(a["verb"]) and set(a["verb"]) == {ni} for a in annotations
    )
    assert all(r.size == tuple(s) for r, s in zip(records, hico_json["size"], strict=True))
    assert any("9657 of 9658 annotated images have no file" in n for n in records.report.notes)


@pytest.mark.shared
def test_real_hicodet_exact_pairs(hico_json: dict) -> None:
    records = {r.image_id: r for r in load_hicodet(HICO_JSON, require_images=False)}
    rare = set(hico_json["rare"])
    for index in (0, 1, 3052, 9657):
        annotation = hico_json["annotation"][index]
        record = records[hico_json["filenames"][index][: -len(".jpg")]]
        expected = [
            Interaction(
                tuple(h), tuple(o), hico_json["verbs"][v], hico_json["objects"][b], hoi + 1, hoi in rare
            )
            for h, o, hoi, b, v in zip(
                annotation["boxes_h"],
                annotation["boxes_o"],
                annotation["hoi"],
                annotation["object"],
                annotation["verb"],
                strict=True,
            )
        ]
        assert list(record.interactions) == expected
    chair = records["HICO_test2015_00003124"]
    assert chair.interactions == (
        Interaction((208.0, 43.0, 475.0, 418.0), (200.0, 147.0, 518.0, 418.0), "sit_on", "chair", 90, False),
    )
    assert chair.size == (640, 424) and action_prompt(chair.interactions[0], "hoi") == (
        "A photo of a person sitting on a chair"
    )


@pytest.mark.shared
def test_real_hicodet_missing_images_are_reported(hico_json: dict) -> None:
    with pytest.warns(LoadWarning, match=r"skipped 9657: image file not found .*HICO_test2015_00000001.jpg"):
        records = load_hicodet(HICO_JSON, image_dir=HICODET)
    assert [r.image_id for r in records] == ["HICO_test2015_00003124"]
    assert records[0].image_path == HICODET / "HICO_test2015_00003124.jpg"
    assert records.report.num_skipped == 9657 and records.report.kept_items == 1


# --- HICO-DET: JSON and .mat fixtures ----------------------------------------------------------------------

VERBS = ["hold", "no_interaction", "ride"]
OBJECTS = ["bicycle", "dining_table"]
# HOI ids 1..4 in HICO order (object-major): [hoi, object, verb], 0-based as in the JSON conversion.
CORRESPONDENCE = [[0, 0, 0], [1, 0, 2], [2, 0, 1], [3, 1, 0]]
H1, H2 = [10.0, 20.0, 60.0, 90.0], [70.0, 10.0, 120.0, 95.0]
O1, O2 = [40.0, 50.0, 110.0, 99.0], [0.0, 60.0, 30.0, 100.0]


def _hico_fixture_json(path: Path) -> Path:
    data = {
        "annotation": [
            {
                "boxes_h": [H1, H1, H2],
                "boxes_o": [O1, O1, O2],
                "hoi": [0, 1, 3],
                "object": [0, 0, 1],
                "verb": [0, 2, 0],
            },
            {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []},
            {"boxes_h": [H2], "boxes_o": [O1], "hoi": [2], "object": [0], "verb": [1]},
        ],
        "filenames": [
            "HICO_test2015_00000001.jpg",
            "HICO_test2015_00000002.jpg",
            "HICO_test2015_00000003.jpg",
        ],
        "size": [[128, 100], [64, 64], [128, 100]],
        "empty": [1],
        "objects": OBJECTS,
        "verbs": VERBS,
        "correspondence": CORRESPONDENCE,
        "rare": [1],
        "non_rare": [0, 2, 3],
    }
    path.write_text(json.dumps(data))
    return path


def _struct_array(rows: list[dict], shape: tuple[int, int] | None = None) -> np.ndarray:
    names = list(rows[0]) if rows else ["x1", "y1", "x2", "y2"]
    array = np.empty(shape or (1, len(rows)), dtype=[(name, object) for name in names])
    for index, row in enumerate(rows):
        for name in names:
            array[name].flat[index] = row[name]
    return array


def _num(value: float) -> np.ndarray:
    return np.array([[value]], dtype=float)


def _mat_boxes(boxes: list[list[float]]) -> np.ndarray:
    return _struct_array(
        [{k: _num(v) for k, v in zip(("x1", "y1", "x2", "y2"), box, strict=True)} for box in boxes]
    )


def _mat_hoi(hoi_id: int, humans=(), objects=(), connection=(), invis: int = 0) -> dict:
    visible = not invis
    return {
        "id": _num(hoi_id),
        "bboxhuman": _mat_boxes(list(humans)) if visible else np.zeros((0, 0)),
        "bboxobject": _mat_boxes(list(objects)) if visible else np.zeros((0, 0)),
        "connection": np.array(connection, dtype=float).reshape(-1, 2) if visible else np.zeros((0, 0)),
        "invis": _num(invis),
    }


def _hico_fixture_mat(path: Path) -> Path:
    # Mirrors anno_bbox.mat (hico_20160224_det_README.txt): bbox_test is a 1xN struct array of filename,
    # size (width/height/depth) and hoi (1xK struct array of id, bboxhuman, bboxobject, connection, invis);
    # list_action is a 600x1 struct array (here 4x1) of nname, vname, vname_ing.
    def size(width: int, height: int) -> np.ndarray:
        return _struct_array([{"width": _num(width), "height": _num(height), "depth": _num(3)}])

    images = [
        {
            "filename": "HICO_test2015_00000001.jpg",
            "size": size(128, 100),
            "hoi": _struct_array(
                [
                    _mat_hoi(1, [H1], [O1], [[1, 1]]),
                    _mat_hoi(2, [H1], [O1], [[1, 1]]),
                    _mat_hoi(4, [H2], [O2], [[1, 1]]),
                    _mat_hoi(3, invis=1),
                ]
            ),
        },
        {
            "filename": "HICO_test2015_00000002.jpg",
            "size": size(64, 64),
            "hoi": _struct_array([_mat_hoi(3, invis=1)]),
        },
        {
            "filename": "HICO_test2015_00000003.jpg",
            "size": size(128, 100),
            "hoi": _struct_array([_mat_hoi(3, [H2], [O1], [[1, 1]])]),
        },
    ]
    actions = [
        {"nname": OBJECTS[o], "vname": VERBS[v], "vname_ing": verb_to_ing(VERBS[v]).replace(" ", "_")}
        for _, o, v in CORRESPONDENCE
    ]
    scipy.io.savemat(
        path, {"bbox_test": _struct_array(images), "list_action": _struct_array(actions, (len(actions), 1))}
    )
    return path


def _expected_fixture_pairs(rare: bool | None) -> list[tuple[Interaction, ...]]:
    def pair(h, o, verb, obj, hoi_id, is_rare=False):
        return Interaction(tuple(h), tuple(o), verb, obj, hoi_id, None if rare is None else is_rare)

    return [
        (
            pair(H1, O1, "hold", "bicycle", 1),
            pair(H1, O1, "ride", "bicycle", 2, True),
            pair(H2, O2, "hold", "dining_table", 4),
        ),
        (),
        (pair(H2, O1, "no_interaction", "bicycle", 3),),
    ]


@pytest.mark.parametrize("kind", ["json", "mat"])
def test_hicodet_fixture_formats(tmp_path: Path, kind: str) -> None:
    if kind == "json":
        path = _hico_fixture_json(tmp_path / "instances_test2015.json")
    else:
        path = _hico_fixture_mat(tmp_path / "anno_bbox.mat")
    images = tmp_path / "images" / "test2015"
    for number in (1, 2, 3):
        jpeg(images / f"HICO_test2015_{number:08d}.jpg", (64, 64) if number == 2 else (128, 100))
    records = load_hicodet(path)  # images/test2015 next to the annotation is the default folder
    assert records.report.num_skipped == 0 and records.report.kept_items == 4
    assert [r.interactions for r in records] == _expected_fixture_pairs(rare=True if kind == "json" else None)
    first, empty, alone = records
    assert first.image_path == images / "HICO_test2015_00000001.jpg" and first.size == (128, 100)
    assert first.num_pairs == 3 and not first.no_interaction
    assert empty.num_pairs == 0 and not empty.no_interaction
    assert alone.no_interaction and alone.interactions[0].is_no_interaction
    assert all(r.source == "hicodet" for r in records)
    assert load_hoi_classes(path) == (
        HoiClass(1, "hold", "bicycle"),
        HoiClass(2, "ride", "bicycle"),
        HoiClass(3, "no_interaction", "bicycle"),
        HoiClass(4, "hold", "dining_table"),
    )
    if kind == "mat":
        assert any("2 HOI annotations are marked invisible" in n for n in records.report.notes)
    assert load_hicodet(tmp_path, require_images=False)[0].image_id == "HICO_test2015_00000001"


def test_hicodet_missing_images_warn_and_skip(tmp_path: Path) -> None:
    path = _hico_fixture_json(tmp_path / "instances_test2015.json")
    jpeg(tmp_path / "imgs" / "HICO_test2015_00000003.jpg", (128, 100))
    with pytest.warns(LoadWarning, match=r"skipped 2: image file not found .*HICO_test2015_00000001.jpg"):
        records = load_hicodet(path, tmp_path / "imgs")
    assert [r.image_id for r in records] == ["HICO_test2015_00000003"]
    everything = load_hicodet(path, tmp_path / "imgs", require_images=False)
    assert len(everything) == 3 and everything.report.num_skipped == 0
    with pytest.raises(FileNotFoundError, match="none of the 3 images .*require_images=False"):
        load_hicodet(path, tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder .* does not exist"):
        load_hicodet(path, tmp_path / "nowhere")


def test_hicodet_bad_pairs_are_counted(tmp_path: Path) -> None:
    path = _hico_fixture_json(tmp_path / "instances_test2015.json")
    data = json.loads(path.read_text())
    data["annotation"][0]["boxes_o"][0] = [110.0, 50.0, 40.0, 99.0]  # inverted
    data["annotation"][0]["boxes_h"][2] = [70.0, 10.0, 500.0, 95.0]  # outside the 128x100 image
    data["annotation"][2]["hoi"][0] = 600  # no such HOI
    data["annotation"][1] = {"boxes_h": [H1]}  # malformed entry
    path.write_text(json.dumps(data))
    records = load_quietly(load_hicodet, path, require_images=False)
    assert [r.num_pairs for r in records] == [1, 0]
    assert records.report.skipped == {
        "inverted box (x2 < x1 or y2 < y1)": 1,
        "box outside the image": 1,
        "HOI index out of range": 1,
        "malformed annotation entry (needs lists boxes_h, boxes_o, hoi, verb, object)": 1,
    }


def test_hicodet_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"annotation": [')
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_hicodet(broken, require_images=False)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"annotation": [], "filenames": []}))
    with pytest.raises(ValueError, match="wrong.json is not a HICO-DET .*correspondence"):
        load_hicodet(wrong, require_images=False)
    not_mat = tmp_path / "anno_bbox.mat"
    not_mat.write_bytes(b"definitely not MATLAB")
    with pytest.raises(ValueError, match="cannot read .*anno_bbox.mat"):
        load_hicodet(not_mat, require_images=False)
    scipy.io.savemat(not_mat, {"bbox_train": np.zeros((1, 1))})
    with pytest.raises(ValueError, match="lacks 'bbox_test'.*found: bbox_train"):
        load_hicodet(not_mat, require_images=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hicodet(tmp_path / "missing.json")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="neither instances_test2015.json nor anno_bbox.mat"):
        load_hicodet(tmp_path / "empty_dir")
