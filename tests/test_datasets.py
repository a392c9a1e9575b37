from __future__ import annotations

import collections
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from clipcam_utils import datasets
from clipcam_utils.datasets import (
    HoiClass,
    ImageRecord,
    Interaction,
    InteractionRecord,
    LoadWarning,
    ObjectBox,
    RecordList,
    ZooUnavailableError,
    action_prompt,
    class_split,
    hoi_prompt,
    hoi_prompts,
    is_seen_action,
    is_seen_class,
    load_hicodet,
    load_hoi_classes,
    load_openimages,
    load_openimages_zoo,
    load_seen_actions,
    load_seen_unseen_classes,
    openimages_label,
    verb_to_ing,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OPENIMAGES = SHARED / "openimages_v6_val_subset"
HICODET = SHARED / "hicodet"
HICO_JSON = HICODET / "instances_test2015.json"
needs_openimages = pytest.mark.skipif(
    not OPENIMAGES.is_dir(),
    reason=f"needs the shared Open Images subset at {OPENIMAGES} (absent in a fresh clone)",
)
needs_hicodet = pytest.mark.skipif(
    not HICO_JSON.is_file(),
    reason=f"needs the shared HICO-DET annotations at {HICO_JSON} (absent in a fresh clone)",
)

FULL_COLUMNS = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"


def _jpeg(path: Path, size: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path)
    return path


def _load_quietly(function, *args, **kwargs):
    with pytest.warns(LoadWarning):
        return function(*args, **kwargs)


# --- protocol lists --------------------------------------------------------------------------------------


def test_seen_unseen_class_lists() -> None:
    seen, unseen = load_seen_unseen_classes()
    assert len(seen) == len(unseen) == 100 and not seen & unseen
    assert is_seen_class("Orange") and is_seen_class("computer keyboard")
    assert class_split("person") == "unseen" and not is_seen_class("person")
    assert class_split("apple") is None
    assert class_split("Dairy") == "unseen" and openimages_label("Dairy") == "dairy product"


def test_seen_actions_list() -> None:
    seen = load_seen_actions()
    assert len(seen) == 52 and "riding" not in seen and "sitting on" in seen
    assert is_seen_action("sitting on") and is_seen_action("sit_on") and is_seen_action("spin")
    assert (
        not is_seen_action("riding") and not is_seen_action("ride") and not is_seen_action("no_interaction")
    )


@pytest.mark.shared
@pytest.mark.skipif(
    not (SHARED / "protocol").is_dir(), reason=f"needs {SHARED / 'protocol'} (absent in a fresh clone)"
)
@pytest.mark.parametrize("name", ["openimages_seen_unseen_classes.json", "hicodet_seen_actions.json"])
def test_package_lists_equal_the_shared_protocol(name: str) -> None:
    shipped = Path(datasets.__file__).parent / "data" / name
    assert json.loads(shipped.read_text()) == json.loads((SHARED / "protocol" / name).read_text())


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


# --- Open Images: real data ------------------------------------------------------------------------------


def _real_csv_boxes() -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    expected: dict[str, list] = collections.defaultdict(list)
    for cls in ("Apple", "Orange"):
        with (OPENIMAGES / cls / "Label" / f"{cls}.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                width, height = Image.open(OPENIMAGES / cls / f"{row['ImageID']}.jpg").size
                box = (
                    float(row["XMin"]) * width,
                    float(row["YMin"]) * height,
                    float(row["XMax"]) * width,
                    float(row["YMax"]) * height,
                )
                expected[row["ImageID"]].append((cls.lower(), box))
    return expected


@pytest.mark.shared
@needs_openimages
def test_real_openimages_counts_and_exact_boxes() -> None:
    with pytest.warns(LoadWarning, match="disagrees with the class CSV"):
        records = load_openimages(OPENIMAGES)
    assert isinstance(records, RecordList) and len(records) == 107
    assert records == sorted(records, key=lambda r: r.image_id)
    images_per_label = collections.Counter(label for r in records for label in r.labels)
    boxes_per_label = collections.Counter(obj.label for r in records for obj in r.objects)
    assert images_per_label == {"apple": 46, "orange": 61}
    assert boxes_per_label == {"apple": 102, "orange": 175}
    report = records.report
    assert (report.kept_records, report.kept_items) == (107, 277)
    # The Apple .txt files list corners as xmax ymax xmin ymin; the loader keeps the CSV and says so.
    assert report.num_skipped == 46

    expected = _real_csv_boxes()
    by_id = {r.image_id: r for r in records}
    assert by_id.keys() == expected.keys()
    for image_id, boxes in expected.items():
        record = by_id[image_id]
        assert [(o.label, o.box) for o in record.objects] == boxes
        assert record.size == Image.open(record.image_path).size
        assert record.source == "openimages"


@pytest.mark.shared
@needs_openimages
def test_real_openimages_classes_and_sampling() -> None:
    oranges = load_openimages(OPENIMAGES, classes=["ORANGE"])
    assert len(oranges) == 61 and all(r.labels == ("orange",) for r in oranges)
    assert oranges.report.num_skipped == 0
    first = load_openimages(OPENIMAGES, classes="orange", max_samples=10, seed=3)
    again = load_openimages(OPENIMAGES, classes="orange", max_samples=10, seed=3)
    other = load_openimages(OPENIMAGES, classes="orange", max_samples=10, seed=4)
    assert len(first) == 10 and [r.image_id for r in first] == [r.image_id for r in again]
    assert [r.image_id for r in first] != [r.image_id for r in other]
    assert any("sampled 10 of 61" in note for note in first.report.notes)
    with pytest.raises(ValueError, match="did you mean 'apple'"):
        load_openimages(OPENIMAGES, classes=["appel"])
    with pytest.raises(ValueError, match="'banana' is an Open Images class but .* has no images"):
        load_openimages(OPENIMAGES, classes=["banana"])
    with pytest.raises(ValueError, match="max_samples"):
        load_openimages(OPENIMAGES, max_samples=0)


@pytest.mark.shared
@needs_openimages
def test_real_txt_labels_alone_are_reported_as_inverted(tmp_path: Path) -> None:
    ids = sorted(p.stem for p in (OPENIMAGES / "Apple").glob("*.jpg"))[:3]
    (tmp_path / "Apple" / "Label").mkdir(parents=True)
    for image_id in ids:
        shutil.copy(OPENIMAGES / "Apple" / f"{image_id}.jpg", tmp_path / "Apple")
        shutil.copy(OPENIMAGES / "Apple" / "Label" / f"{image_id}.txt", tmp_path / "Apple" / "Label")
    num_lines = sum(len((tmp_path / "Apple" / "Label" / f"{i}.txt").read_text().splitlines()) for i in ids)
    with pytest.warns(LoadWarning, match="inverted box"):
        records = load_openimages(tmp_path)
    assert len(records) == 0
    assert records.report.skipped["inverted box (xmax < xmin or ymax < ymin) in a label .txt"] == num_lines
    assert records.report.skipped["image without labels in its Label/ folder"] == 3


# --- Open Images: fixtures in both layouts ---------------------------------------------------------------


@pytest.fixture
def oidv4_root(tmp_path: Path) -> Path:
    root = tmp_path / "validation"
    _jpeg(root / "Apple" / "a1.jpg", (200, 100))
    _jpeg(root / "Apple" / "a2.jpg", (50, 40))
    (root / "Apple" / "Label").mkdir()
    (root / "Apple" / "Label" / "Apple.csv").write_text(
        "ImageID,XMin,XMax,YMin,YMax\na1,0.1,0.5,0.2,0.8\na1,0.0,1.0,0.0,1.0\na2,0.5,0.75,0.25,0.5\n"
    )
    _jpeg(root / "Bell_pepper" / "p1.jpg", (300, 200))
    (root / "Bell_pepper" / "Label").mkdir()
    (root / "Bell_pepper" / "Label" / "p1.txt").write_text(
        "Bell pepper 10 20 110.5 180\nBell pepper 0 0 300 200\n"
    )
    return tmp_path


def test_oidv4_fixture_layout(oidv4_root: Path) -> None:
    records = load_openimages(oidv4_root)
    assert [r.image_id for r in records] == ["a1", "a2", "p1"]
    a1, a2, p1 = records
    assert a1.size == (200, 100) and a1.image_path == oidv4_root / "validation" / "Apple" / "a1.jpg"
    assert [o.box for o in a1.objects] == [
        (0.1 * 200, 0.2 * 100, 0.5 * 200, 0.8 * 100),
        (0.0, 0.0, 200.0, 100.0),
    ]
    assert a2.objects == (ObjectBox("apple", (25.0, 10.0, 37.5, 20.0)),)
    assert [(o.label, o.box) for o in p1.objects] == [
        ("bell pepper", (10.0, 20.0, 110.5, 180.0)),
        ("bell pepper", (0.0, 0.0, 300.0, 200.0)),
    ]
    assert records.report.num_skipped == 0 and records.report.kept_items == 5
    assert [r.image_id for r in load_openimages(oidv4_root, classes=["bell pepper"])] == ["p1"]
    with pytest.raises(ValueError, match="did you mean 'bell pepper'"):
        load_openimages(oidv4_root, classes=["bell peper"])


@pytest.fixture
def zoo_root(tmp_path: Path) -> Path:
    split = tmp_path / "open-images-v6" / "validation"
    _jpeg(split / "data" / "img1.jpg", (100, 50))
    _jpeg(split / "data" / "img2.jpg", (80, 80))
    (split / "labels").mkdir()
    (split / "labels" / "detections.csv").write_text(
        FULL_COLUMNS
        + "\nimg1,xclick,/m/014j1m,1,0.1,0.3,0.2,0.6,0,1,1,0,-1"
        + "\nimg1,xclick,/m/0cxn2,1,0.5,0.9,0.0,1.0,1,0,0,0,0"
        + "\nimg2,activemil,/m/02cbp,1,0.25,0.5,0.25,0.5,-1,-1,-1,-1,-1"
        + "\nnotdownloaded,xclick,/m/014j1m,1,0.1,0.3,0.2,0.6,0,0,0,0,0\n"
    )
    (split / "metadata").mkdir()
    (split / "metadata" / "classes.csv").write_text("/m/014j1m,Apple\n/m/0cxn2,Ice cream\n/m/02cbp,Dairy\n")
    return split.parent


def test_zoo_fixture_layout(zoo_root: Path) -> None:
    records = load_openimages(zoo_root)  # the zoo's dataset folder: the validation split is found
    assert [r.image_id for r in records] == ["img1", "img2"]
    img1, img2 = records
    assert img1.objects[0] == ObjectBox(
        "apple",
        (0.1 * 100, 0.2 * 50, 0.3 * 100, 0.6 * 50),
        {"IsOccluded": False, "IsTruncated": True, "IsGroupOf": True, "IsDepiction": False},
    )
    assert img1.objects[1].label == "ice cream" and img1.objects[1].attributes["IsOccluded"] is True
    assert img2.objects == (ObjectBox("dairy product", (20.0, 20.0, 40.0, 40.0), {}),)
    assert any("1 rows of detections.csv are for images not in data/" in n for n in records.report.notes)
    assert records.report.num_skipped == 0
    only_dairy = load_openimages(zoo_root / "validation", classes=["dairy product"])
    assert [r.image_id for r in only_dairy] == ["img2"]
    apples = load_openimages(zoo_root, classes=["Apple"])
    assert [(r.image_id, r.labels) for r in apples] == [("img1", ("apple",))]
    with pytest.raises(ValueError, match="did you mean 'ice cream'"):
        load_openimages(zoo_root, classes=["icecream"])


# --- Open Images: bad input ------------------------------------------------------------------------------


def test_openimages_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no Open Images data found in .*zoo layout.*OIDv4"):
        load_openimages(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_openimages(tmp_path / "nowhere")
    (tmp_path / "data").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileNotFoundError, match="labels/detections.csv"):
        load_openimages(tmp_path)


def test_openimages_missing_columns_name_the_file(zoo_root: Path) -> None:
    csv_path = zoo_root / "validation" / "labels" / "detections.csv"
    csv_path.write_text("ImageID,LabelName,XMin,XMax,YMin\nimg1,/m/014j1m,0.1,0.2,0.3\n")
    with pytest.raises(ValueError, match=r"detections.csv lacks column\(s\) YMax"):
        load_openimages(zoo_root)
    (zoo_root / "validation" / "metadata" / "classes.csv").unlink()
    with pytest.raises(FileNotFoundError, match="classes.csv"):
        load_openimages(zoo_root)


def test_openimages_bad_boxes_and_images_are_counted(oidv4_root: Path) -> None:
    label_dir = oidv4_root / "validation" / "Apple" / "Label"
    (label_dir / "Apple.csv").write_text(
        "ImageID,XMin,XMax,YMin,YMax\n"
        "a1,0.1,0.5,0.2,0.8\n"
        "a1,0.6,0.2,0.2,0.8\n"  # inverted
        "a1,0.1,1.5,0.2,0.8\n"  # outside [0, 1]
        "a1,zero,0.5,0.2,0.8\n"  # not a number
        "a2,0.1,0.5,0.2,0.8\n"
        "ghost,0.1,0.5,0.2,0.8\n"  # no image file
    )
    (oidv4_root / "validation" / "Apple" / "a2.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(LoadWarning) as caught:
        records = load_openimages(oidv4_root, classes=["apple"])
    assert [r.image_id for r in records] == ["a1"] and len(records[0].objects) == 1
    skipped = records.report.skipped
    assert skipped["inverted box (XMax < XMin or YMax < YMin)"] == 1
    assert skipped["box outside [0, 1] (coordinates must be normalised)"] == 1
    assert skipped["non-numeric box coordinates"] == 1
    assert skipped["boxes for an image file that is not in the class folder"] == 1
    assert skipped["image file cannot be decoded (re-download it)"] == 1
    message = str(caught[0].message)
    assert "Apple.csv:3" in message and "a2.jpg" in message and "kept 1 images (1 boxes)" in message


def test_openimages_pixel_boxes_outside_the_image(oidv4_root: Path) -> None:
    (oidv4_root / "validation" / "Bell_pepper" / "Label" / "p1.txt").write_text(
        "Bell pepper 10 20 300.3 200\nBell pepper 10 20 400 200\nBell pepper 1 2\n"
    )
    with pytest.warns(LoadWarning, match="p1.txt:2"):
        records = load_openimages(oidv4_root, classes=["bell pepper"])
    assert records[0].objects == (
        ObjectBox("bell pepper", (10.0, 20.0, 300.0, 200.0)),
    )  # sub-pixel slack clipped
    assert records.report.skipped["box outside the image"] == 1
    assert (
        records.report.skipped["malformed label line (expected '<Class> xmin ymin xmax ymax' in pixels)"] == 1
    )


# --- Open Images: the FiftyOne zoo -----------------------------------------------------------------------


def test_zoo_offline_fails_fast_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # 192.0.2.0/24 is reserved for documentation and never routed: the same as being offline.
    monkeypatch.setattr(datasets, "_ZOO_PROBE_HOST", ("192.0.2.1", 9))
    start = time.monotonic()
    with pytest.raises(ZooUnavailableError, match=r"no internet.*load_openimages\(<folder>"):
        load_openimages_zoo(["apple"], max_samples=5, probe_timeout=1.0)
    assert time.monotonic() - start < 5


def test_zoo_download_failure_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import fiftyone.utils.openimages as fouo

    def refuse(*args, **kwargs):
        raise ConnectionError("Max retries exceeded")

    monkeypatch.setattr(datasets, "_can_reach", lambda host, timeout: True)
    monkeypatch.setattr(fouo, "get_classes", refuse)
    with pytest.raises(ZooUnavailableError, match=r"Max retries exceeded.*load_openimages\(<folder>"):
        load_openimages_zoo("apple")


def test_zoo_call_and_local_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zoo_root: Path) -> None:
    import fiftyone as fo
    import fiftyone.utils.openimages as fouo
    import fiftyone.zoo as foz

    calls = []

    def fake_download(name, **kwargs):
        calls.append((name, kwargs, fo.config.dataset_zoo_dir))
        target = Path(fo.config.dataset_zoo_dir) / name
        shutil.copytree(zoo_root, target)
        return None, str(target)

    previous = fo.config.dataset_zoo_dir
    monkeypatch.setattr(datasets, "_can_reach", lambda host, timeout: True)
    monkeypatch.setattr(
        fouo, "get_classes", lambda version, dataset_dir=None: ["Apple", "Dairy", "Ice cream"]
    )
    monkeypatch.setattr(foz, "download_zoo_dataset", fake_download)
    records = load_openimages_zoo(
        ["apple", "ICE CREAM"], max_samples=7, seed=5, download_dir=tmp_path / "zoo"
    )
    name, kwargs, zoo_dir = calls[0]
    assert name == "open-images-v6" and zoo_dir == str(tmp_path / "zoo")
    assert kwargs == {
        "split": "validation",
        "label_types": ["detections"],
        "classes": ["Apple", "Ice cream"],
        "max_samples": 7,
        "seed": 5,
        "shuffle": True,
    }
    assert fo.config.dataset_zoo_dir == previous
    assert [(r.image_id, r.labels) for r in records] == [("img1", ("apple", "ice cream"))]
    with pytest.raises(ValueError, match="did you mean 'apple'"):
        load_openimages_zoo(["aple"])


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
        _jpeg(images / f"HICO_test2015_{number:08d}.jpg", (64, 64) if number == 2 else (128, 100))
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
    _jpeg(tmp_path / "imgs" / "HICO_test2015_00000003.jpg", (128, 100))
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
    records = _load_quietly(load_hicodet, path, require_images=False)
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


def test_records_are_frozen_and_list_keeps_report(tmp_path: Path) -> None:
    record = ImageRecord("x", tmp_path / "x.jpg", (10, 10), (ObjectBox("apple", (0, 0, 5, 5)),), "openimages")
    with pytest.raises(AttributeError):
        record.image_id = "y"  # type: ignore[misc]
    assert record.boxes_for("apple") == ((0, 0, 5, 5),) and record.labels == ("apple",)
    pairs = InteractionRecord("y", tmp_path / "y.jpg", (10, 10), (), "hicodet")
    assert pairs.num_pairs == 0 and not pairs.no_interaction
    report = datasets.LoadReport("test", tmp_path)
    report.skip("because", "a.jpg", count=2)
    assert report.num_skipped == 2 and "skipped 2: because, e.g. a.jpg" in report.summary()
    records = RecordList([record], report)
    assert records.report is report and records == [record]
