"""The protocol's class lists and the records loaders return."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_data import SHARED

from clipcam_utils import protocol
from clipcam_utils.protocol import (
    class_split,
    is_seen_action,
    is_seen_class,
    load_seen_actions,
    load_seen_unseen_classes,
    openimages_label,
)
from clipcam_utils.records import ImageRecord, InteractionRecord, LoadReport, ObjectBox, RecordList

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
    shipped = Path(protocol.__file__).parent / "data" / name
    assert json.loads(shipped.read_text()) == json.loads((SHARED / "protocol" / name).read_text())


def test_records_are_frozen_and_list_keeps_report(tmp_path: Path) -> None:
    record = ImageRecord("x", tmp_path / "x.jpg", (10, 10), (ObjectBox("apple", (0, 0, 5, 5)),), "openimages")
    with pytest.raises(AttributeError):
        record.image_id = "y"  # type: ignore[misc]
    assert record.boxes_for("apple") == ((0, 0, 5, 5),) and record.labels == ("apple",)
    pairs = InteractionRecord("y", tmp_path / "y.jpg", (10, 10), (), "hicodet")
    assert pairs.num_pairs == 0 and not pairs.no_interaction
    report = LoadReport("test", tmp_path)
    report.skip("because", "a.jpg", count=2)
    assert report.num_skipped == 2 and "skipped 2: because, e.g. a.jpg" in report.summary()
    records = RecordList([record], report)
    assert records.report is report and records == [record]
