"""Open Images loaders: the shared real subset, both folder layouts, bad input and the FiftyOne zoo."""

from __future__ import annotations

import collections
import csv
import shutil
import time
from pathlib import Path

import pytest
from helpers_data import OPENIMAGES, jpeg, needs_openimages
from PIL import Image

from clipcam_utils import openimages
from clipcam_utils.openimages import ZooUnavailableError, load_openimages, load_openimages_zoo
from clipcam_utils.records import LoadWarning, ObjectBox, RecordList

FULL_COLUMNS = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"


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
    jpeg(root / "Apple" / "a1.jpg", (200, 100))
    jpeg(root / "Apple" / "a2.jpg", (50, 40))
    (root / "Apple" / "Label").mkdir()
    (root / "Apple" / "Label" / "Apple.csv").write_text(
        "ImageID,XMin,XMax,YMin,YMax\na1,0.1,0.5,0.2,0.8\na1,0.0,1.0,0.0,1.0\na2,0.5,0.75,0.25,0.5\n"
    )
    jpeg(root / "Bell_pepper" / "p1.jpg", (300, 200))
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
    jpeg(split / "data" / "img1.jpg", (100, 50))
    jpeg(split / "data" / "img2.jpg", (80, 80))
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
    monkeypatch.setattr(openimages, "_ZOO_PROBE_HOST", ("192.0.2.1", 9))
    start = time.monotonic()
    with pytest.raises(ZooUnavailableError, match=r"no internet.*load_openimages\(<folder>"):
        load_openimages_zoo(["apple"], max_samples=5, probe_timeout=1.0)
    assert time.monotonic() - start < 5


def test_zoo_download_failure_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import fiftyone.utils.openimages as fouo

    def refuse(*args, **kwargs):
        raise ConnectionError("Max retries exceeded")

    monkeypatch.setattr(openimages, "_can_reach", lambda host, timeout: True)
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
    monkeypatch.setattr(openimages, "_can_reach", lambda host, timeout: True)
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
