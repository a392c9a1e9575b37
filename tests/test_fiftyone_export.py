from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipcam_utils.fiftyone_export import (
    GROUND_TRUTH_FIELD,
    INTERACTIONS_FIELD,
    Prediction,
    add_predictions,
    configure_fiftyone,
    dataset_name,
    heatmap_field,
    prediction_field,
    records_to_dataset,
)
from clipcam_utils.records import ImageRecord, Interaction, InteractionRecord, ObjectBox

pytestmark = pytest.mark.usefixtures("fiftyone_db_dir")


def _jpeg(path: Path, size: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 60, 90)).save(path)
    return path


@pytest.fixture
def records(tmp_path: Path) -> list[ImageRecord | InteractionRecord]:
    fruit = ImageRecord(
        "fruit1",
        _jpeg(tmp_path / "fruit1.jpg", (200, 100)),
        (200, 100),
        (
            ObjectBox("orange", (20.0, 10.0, 120.0, 60.0), {"IsGroupOf": True}),
            ObjectBox("apple", (0.0, 0.0, 200.0, 100.0)),
            ObjectBox("person", (50.0, 25.0, 150.0, 75.0)),
        ),
        "openimages",
    )
    human, bike, table = (10.0, 5.0, 60.0, 90.0), (40.0, 50.0, 150.0, 99.0), (100.0, 0.0, 160.0, 40.0)
    pairs = InteractionRecord(
        "HICO_test2015_00000001",
        _jpeg(tmp_path / "HICO_test2015_00000001.jpg", (160, 100)),
        (160, 100),
        (
            Interaction(human, bike, "ride", "bicycle", 19, False),
            Interaction(human, bike, "hold", "bicycle", 12, False),
            Interaction(human, table, "no_interaction", "dining_table", 300, True),
        ),
        "hicodet",
    )
    return [fruit, pairs]


def _relative(box: tuple[float, float, float, float], size: tuple[int, int]) -> list[float]:
    (x1, y1, x2, y2), (width, height) = box, size
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def test_names_are_namespaced_and_sanitised() -> None:
    assert dataset_name("oi-val") == "clipcam-oi-val" == dataset_name("clipcam-oi-val")
    assert prediction_field("ViT-B/16", "Grad-CAM") == "clipcam_vit_b_16_gradcam"
    assert prediction_field("RN50", "GradCAMPlusPlus") == prediction_field("rn50", "Grad-CAM++")
    assert prediction_field("ViT-B/16") == "clipcam_vit_b_16_gradcam"
    assert heatmap_field("clipcam_rn50_gradcam") == "clipcam_rn50_gradcam_heatmap"
    for bad in ("", "  ", "clipcam-"):
        with pytest.raises(ValueError, match="non-empty"):
            dataset_name(bad)
    with pytest.raises(ValueError, match="letters or digits"):
        prediction_field("///", "gradcam")


def test_configure_fiftyone_before_import(tmp_path: Path) -> None:
    database = tmp_path / "db"
    code = (
        "import sys; from clipcam_utils.fiftyone_export import configure_fiftyone as c;"
        f"print(c({str(database)!r})); assert 'fiftyone' not in sys.modules;"
        "import fiftyone as fo; print(fo.config.database_dir, fo.config.do_not_track, fo.config.database_validation)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == [str(database.resolve()), str(database.resolve()), "True", "False"]
    assert database.is_dir()


def test_configure_fiftyone_after_import(fiftyone_db_dir: Path, tmp_path: Path) -> None:
    import fiftyone as fo

    assert configure_fiftyone(fiftyone_db_dir) == fiftyone_db_dir
    assert configure_fiftyone() == fiftyone_db_dir
    assert fo.config.do_not_track is True and fo.config.database_validation is False
    with pytest.raises(RuntimeError, match="already imported with database_dir=.*restart the Python kernel"):
        configure_fiftyone(tmp_path / "other")


def test_records_to_dataset_schema(records: list, request: pytest.FixtureRequest) -> None:
    dataset = records_to_dataset(records, request.node.name)
    assert dataset.name == f"clipcam-{request.node.name}" and len(dataset) == 2 and dataset.persistent
    fruit = dataset.match({"image_id": "fruit1"}).first()
    assert fruit.filepath == str(records[0].image_path) and fruit.source == "openimages"
    assert (fruit.metadata.width, fruit.metadata.height) == (200, 100)
    orange, apple, person = fruit[GROUND_TRUTH_FIELD].detections
    assert orange.label == "orange" and orange.bounding_box == _relative(
        (20.0, 10.0, 120.0, 60.0), (200, 100)
    )
    assert orange.bounding_box == [0.1, 0.1, 0.5, 0.5]
    assert orange.IsGroupOf is True and orange.seen is True
    assert apple.bounding_box == [0.0, 0.0, 1.0, 1.0] and apple.seen is None  # outside both protocol lists
    assert person.seen is False

    hico = dataset.match({"source": "hicodet"}).first()
    assert hico.num_pairs == 3 and hico.no_interaction is False
    ground_truth = hico[GROUND_TRUTH_FIELD].detections
    assert [(d.label, d.role) for d in ground_truth] == [
        ("person", "human"),
        ("bicycle", "object"),
        ("dining table", "object"),
    ]
    assert ground_truth[0].bounding_box == _relative((10.0, 5.0, 60.0, 90.0), (160, 100))
    ride, hold, nothing = hico[INTERACTIONS_FIELD].detections
    assert ride.label == "riding bicycle" and (ride.verb, ride.verb_ing, ride.object) == (
        "ride",
        "riding",
        "bicycle",
    )
    assert ride.hoi_id == 19 and ride.seen is False and hold.seen is True and ride.no_interaction is False
    assert ride.bounding_box == _relative((10.0, 5.0, 150.0, 99.0), (160, 100))
    assert ride.human_box == _relative((10.0, 5.0, 60.0, 90.0), (160, 100))
    assert ride.object_box == _relative((40.0, 50.0, 150.0, 99.0), (160, 100))
    assert nothing.label == "not interacting with dining table" and nothing.no_interaction and nothing.rare
    with pytest.raises(TypeError, match="records\\[0\\] is a str"):
        records_to_dataset(["not a record"], request.node.name + "-bad")


def test_existing_datasets_need_overwrite_or_reuse(records: list, request: pytest.FixtureRequest) -> None:
    import fiftyone as fo

    name = request.node.name
    first = records_to_dataset(records[:1], name)
    with pytest.raises(ValueError, match="already exists; pass overwrite=True .* or reuse=True"):
        records_to_dataset(records, name)
    assert len(fo.load_dataset(dataset_name(name))) == 1  # untouched by the refused call
    reused = records_to_dataset(records, name, reuse=True)
    assert reused.name == first.name and len(reused) == 1
    replaced = records_to_dataset(records, name, overwrite=True)
    assert len(replaced) == 2 and fo.list_datasets().count(dataset_name(name)) == 1
    with pytest.raises(ValueError, match="not both"):
        records_to_dataset(records, name, overwrite=True, reuse=True)
    assert all(existing.startswith("clipcam-") for existing in fo.list_datasets())


def test_add_predictions_with_heatmap_files(
    records: list, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dataset = records_to_dataset(records, request.node.name)
    field = prediction_field("ViT-B/16", "Grad-CAM")
    saliency = np.linspace(0.0, 1.0, 7 * 9).reshape(7, 9)
    written = add_predictions(
        dataset,
        field,
        {
            "fruit1": Prediction(
                "a photo of a orange",
                boxes=[(20, 10, 120, 60), (0, 0, 10, 10)],
                saliency=saliency,
                iou=0.6,
                label="orange",
            ),
            "HICO_test2015_00000001": Prediction("riding", boxes=None, saliency=np.zeros((14, 14)), iou=0.0),
        },
        heatmap_dir=tmp_path / "maps",
    )
    assert written == 2
    fruit = dataset.match({"image_id": "fruit1"}).first()
    first, second = fruit[field].detections
    assert first.bounding_box == [0.1, 0.1, 0.5, 0.5] and second.bounding_box == [0.0, 0.0, 0.05, 0.1]
    assert (first.label, first.query, first.iou, first.seen) == ("orange", "a photo of a orange", 0.6, True)
    heatmap = fruit[heatmap_field(field)]
    assert heatmap.map is None and "map" not in fruit.to_dict()[heatmap_field(field)]
    stored = Path(heatmap.map_path)
    assert (
        stored.is_file()
        and stored.parent == (tmp_path / "maps" / field).resolve()
        and stored.suffix == ".png"
    )
    assert (
        first.heatmap_path == str(stored)
        and list(heatmap.range) == [0, 255]
        and heatmap.query == "a photo of a orange"
    )
    pixels = np.asarray(Image.open(stored))
    assert pixels.shape == (7, 9) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, np.rint(saliency * 255).astype(np.uint8))

    hico = dataset.match({"source": "hicodet"}).first()
    assert hico[field].detections == [] and hico[heatmap_field(field)].query == "riding"
    assert hico[heatmap_field(field)].label == "riding"

    # Re-adding a query replaces its detections; another query is added beside it (single-sample form).
    add_predictions(
        fruit, field, Prediction("a photo of a orange", boxes=(0, 0, 200, 100), iou=0.9, label="orange")
    )
    add_predictions(
        fruit,
        field,
        [Prediction("apple", boxes=(5, 5, 50, 50), saliency=saliency, iou=0.1)],
        heatmap_dir=tmp_path / "maps",
    )
    fruit.reload()
    assert [(d.query, d.bounding_box, d.iou) for d in fruit[field].detections] == [
        ("a photo of a orange", [0.0, 0.0, 1.0, 1.0], 0.9),
        ("apple", [0.025, 0.05, 0.225, 0.45], 0.1),
    ]
    assert fruit[field].detections[1].seen is None and fruit[heatmap_field(field)].query == "apple"
    assert len(list((tmp_path / "maps" / field).glob("*.png"))) == 3


def test_add_predictions_rejects_bad_input(
    records: list, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dataset = records_to_dataset(records, request.node.name)
    field = prediction_field("RN50", "Grad-CAM")
    with pytest.raises(KeyError, match="1 image ids are not in the dataset .*nope"):
        add_predictions(dataset, field, {"nope": Prediction("x"), "fruit1": Prediction("x")})
    assert not dataset.has_sample_field(field)  # nothing was written
    with pytest.raises(ValueError, match="heatmap_dir"):
        add_predictions(dataset, field, {"fruit1": Prediction("x", saliency=np.ones((2, 2)))})
    with pytest.raises(ValueError, match=r"\[0, 1\].*min-max normalise"):
        add_predictions(
            dataset, field, {"fruit1": Prediction("x", saliency=np.full((2, 2), 3.0))}, heatmap_dir=tmp_path
        )
    with pytest.raises(ValueError, match="2-D"):
        add_predictions(
            dataset, field, {"fruit1": Prediction("x", saliency=np.ones(4))}, heatmap_dir=tmp_path
        )
    with pytest.raises(ValueError, match="fruit1.*outside the 200x100 image"):
        add_predictions(dataset, field, {"fruit1": Prediction("x", boxes=(0, 0, 300, 50))})
    for reserved in (GROUND_TRUTH_FIELD, "filepath", field + "_heatmap", "Bad Name"):
        with pytest.raises(ValueError, match="prediction_field"):
            add_predictions(dataset, reserved, {"fruit1": Prediction("x")})
    with pytest.raises(TypeError, match="mapping image_id"):
        add_predictions(dataset, field, Prediction("x"))


def test_shapesworld_export_has_the_same_schema(tmp_path: Path) -> None:
    """ShapesWorld scenes become FiftyOne samples exactly like Open Images / HICO-DET ones."""
    from clipcam_utils.shapesworld import export_records

    objects = export_records(tmp_path / "obj", 3, seed=2, kind="objects", size=64)
    pairs = export_records(tmp_path / "rel", 2, seed=2, kind="interactions", size=64)
    ds = records_to_dataset(objects + pairs, "test-shapes-export", overwrite=True, persistent=False)
    try:
        assert len(ds) == 5
        first = ds.match({"image_id": objects[0].image_id}).first()
        dets = first[GROUND_TRUTH_FIELD].detections
        assert sorted(d.label for d in dets) == sorted(o.label for o in objects[0].objects)
        x1, y1, x2, y2 = objects[0].objects[0].box
        d0 = next(d for d in dets if d.label == objects[0].objects[0].label)
        assert d0.bounding_box == pytest.approx([x1 / 64, y1 / 64, (x2 - x1) / 64, (y2 - y1) / 64])
        rel = ds.match({"image_id": pairs[0].image_id}).first()
        assert len(rel[INTERACTIONS_FIELD].detections) == 1 and rel["source"] == "shapes"
    finally:
        ds.delete()


def _grid_of_four(tmp_path: Path):
    from clipcam_utils.grids import GridItem, make_grid

    labels = ("orange", "bicycle", "red star", "apple")  # seen, unseen, outside both lists, outside
    items = [
        GridItem(
            f"it{k}",
            label,
            ((20.0, 10.0, 120.0, 60.0),),
            Image.new("RGB", (200, 100), (40 * k, 90, 90)),
            (200, 100),
            label == "orange" if label in ("orange", "bicycle") else None,
        )  # fmt: skip
        for k, label in enumerate(labels)
    ]
    return make_grid(3, items, 112)


def test_grid_benchmark_write_back_ready_for_evaluate_detections(tmp_path: Path, request) -> None:
    from clipcam_utils.evaluation import run_grid_benchmark
    from clipcam_utils.fiftyone_export import add_grid_predictions, grid_image_id, grids_to_dataset
    from clipcam_utils.grids import cell_origin

    grid = _grid_of_four(
        tmp_path
    )  # each truth, in its 112-px cell: x * 0.56, y * 1.12 -> (11.2, 11.2, 67.2, 67.2)

    def maps(g, cells, texts):  # cells 0 and 1 found exactly, cell 2 half, cell 3 nothing
        out = []
        for c in cells:
            m = np.zeros((224, 224), np.float32)
            ox, oy = cell_origin(c, 112)
            if c < 2:
                m[oy + 12 : oy + 67, ox + 12 : ox + 67] = 1.0
            elif c == 2:
                m[oy + 12 : oy + 67, ox + 12 : ox + 39] = 1.0
            out.append(m)
        return out

    saved = {}
    records = run_grid_benchmark(maps, [grid], 0.5, progress=False,
                                 on_result=lambda g, c, t, s, b, i: saved.__setitem__((g.grid_id, c), s))  # fmt: skip
    dataset = grids_to_dataset([grid], request.node.name, tmp_path / "grids", source="shapes")
    sample = dataset.first()
    assert sample.image_id == grid_image_id(3) == "grid-00003" and sample.grid_id == 3 and sample.layout == 2
    assert Path(sample.filepath) == (tmp_path / "grids" / "grid-00003.png").resolve()
    assert Image.open(sample.filepath).size == (224, 224)
    truth = sample[GROUND_TRUTH_FIELD].detections
    assert [(d.label, d.cell) for d in truth] == [
        ("orange", 0),
        ("bicycle", 1),
        ("red star", 2),
        ("apple", 3),
    ]
    assert truth[3].bounding_box == pytest.approx([123.2 / 224, 123.2 / 224, 56 / 224, 56 / 224])
    assert truth[0].seen is True and truth[1].seen is False and truth[2].seen is None

    field = prediction_field("shapes-rn", "gradcam")
    written = add_grid_predictions(dataset, field, records, saved, heatmap_dir=tmp_path / "maps")
    assert written == 3  # the empty map of cell 3 gives no box
    sample = dataset.first()
    preds = sample[field].detections
    assert [(d.label, d.cell, d.query) for d in preds] == [
        ("orange", 0, "a photo of an orange"), ("bicycle", 1, "a photo of a bicycle"), ("red star", 2, "a photo of a red star")
    ]  # fmt: skip
    assert [round(d.iou, 3) for d in preds] == [round(v, 3) for v in records.iou[:3]]
    assert sample[f"{field}_iou"] == pytest.approx(records.iou.mean())
    assert Path(sample[heatmap_field(field)].map_path).is_file()
    result = dataset.evaluate_detections(field, gt_field=GROUND_TRUTH_FIELD, eval_key="ev", iou=0.5)
    assert (sample := dataset.first()) and (sample.ev_tp, sample.ev_fp, sample.ev_fn) == (2, 1, 2)
    assert result.metrics()["precision"] == pytest.approx(2 / 3)


def test_bench_command_writes_fiftyone_dataset(tmp_path: Path, request, capsys) -> None:
    import fiftyone as fo

    from clipcam_utils import cli

    name = request.node.name
    rc = cli.main(
        ["bench", "objects", "--grids", "1", "--out", str(tmp_path), "--fiftyone", name, "--no-progress"]
    )
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    dataset = fo.load_dataset(f"clipcam-{name}")
    field = prediction_field("shapes-rn", "gradcam")
    assert len(dataset) == 1 and field in out
    sample = dataset.first()
    assert len(sample[GROUND_TRUTH_FIELD].detections) >= 4 and sample[heatmap_field(field)] is not None
    assert Path(sample.filepath).is_file() and isinstance(sample[f"{field}_iou"], float)


def test_repeated_classes_in_a_grid_keep_one_detection_and_one_heatmap_per_cell(
    tmp_path: Path, request
) -> None:
    from clipcam_utils.evaluation import run_grid_benchmark
    from clipcam_utils.fiftyone_export import add_grid_predictions, grids_to_dataset
    from clipcam_utils.grids import GridItem, cell_origin, make_grid

    labels = ("apple", "orange", "apple", "orange")  # two classes, as in the Open Images subset
    items = [GridItem(f"it{k}", lab, ((20.0, 10.0, 120.0, 60.0),), Image.new("RGB", (200, 100), (40 * k, 90, 90)),
                      (200, 100), None) for k, lab in enumerate(labels)]  # fmt: skip
    grid = make_grid(0, items, 112)

    def maps(g, cells, texts):  # each cell's map lights its own quadrant, at a cell-specific level
        out = []
        for c in cells:
            m = np.zeros((224, 224), np.float32)
            ox, oy = cell_origin(c, 112)
            m[oy + 12 : oy + 67, ox + 12 : ox + 67] = 1.0
            m[0, 0] = 0.2 * c  # a distinct mark per cell
            out.append(m)
        return out

    saved = {}
    records = run_grid_benchmark(maps, [grid], 0.5, progress=False,
                                 on_result=lambda g, c, t, s, b, i: saved.__setitem__((g.grid_id, c), s))  # fmt: skip
    dataset = grids_to_dataset([grid], request.node.name, tmp_path / "grids", source="openimages")
    field = prediction_field("shapes-rn", "gradcam")
    for _ in range(2):  # writing the same run twice replaces, never duplicates
        assert add_grid_predictions(dataset, field, records, saved, heatmap_dir=tmp_path / "maps") == 4
        preds = dataset.first()[field].detections
        assert sorted((d.label, d.cell) for d in preds) == [
            ("apple", 0),
            ("apple", 2),
            ("orange", 1),
            ("orange", 3),
        ]
    paths = {d.cell: Path(d.heatmap_path) for d in preds}
    assert len(set(paths.values())) == 4 and all(p.is_file() for p in paths.values())
    for cell, path in paths.items():
        png = np.asarray(Image.open(path), dtype=np.float64) / 255
        assert png[0, 0] == pytest.approx(0.2 * cell, abs=1 / 255)  # each cell's own map
        assert np.abs(png - saved[(0, cell)]).max() <= 1 / 255 + 1e-9
