"""The CLIPCAM FiftyOne plugin, run through FiftyOne's own operator execution API on a temporary database.

The plugin is installed with the package's own command into a temporary plugins directory; the operators
are then found by FiftyOne's registry and executed with ``fiftyone.operators.execute_operator`` exactly as
the App would (immediate and delegated), and their fields are compared with ``localize`` on the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipcam_utils import cli, localize, methods
from clipcam_utils import shapesworld as sw
from clipcam_utils.boxes import box_iou, to_relative_xywh, union_box
from clipcam_utils.fiftyone_app import cached_clip
from clipcam_utils.fiftyone_export import heatmap_field, prediction_field, records_to_dataset
from clipcam_utils.plugin_install import MANIFEST, PLUGIN_NAME, SOURCE_DIR, install_plugin, uninstall_plugin

pytestmark = pytest.mark.usefixtures("fiftyone_db_dir")

LOCALIZE = f"{PLUGIN_NAME}/localize_with_clipcam"
EVALUATE = f"{PLUGIN_NAME}/evaluate_against_ground_truth"
N_SAMPLES = 3


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary plugins directory, FiftyOne's for this test, with the plugin installed by the CLI."""
    import fiftyone as fo

    folder = tmp_path / "plugins"
    monkeypatch.setattr(fo.config, "plugins_dir", str(folder))
    assert cli.main(["fiftyone-plugin", "install", "--plugins-dir", str(folder)]) == 0
    return folder


@pytest.fixture
def dataset(tmp_path: Path, request: pytest.FixtureRequest):
    records = sw.export_records(tmp_path / "images", N_SAMPLES, seed=11)
    ds = records_to_dataset(records, request.node.name, persistent=False)
    yield ds, records
    ds.delete()


def _execute(uri: str, ds, **ctx):
    import fiftyone.operators as foo

    result = foo.execute_operator(uri, dataset=ds, **ctx)
    result.raise_exceptions()
    return result


def _tree(root: Path) -> dict[str, object]:
    """Everything under ``root`` (links not followed): relative path -> bytes, "<dir>" or "-> link target"."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        else:
            found[key] = "<dir>" if path.is_dir() else path.read_bytes()
    return found


def test_install_reinstall_and_uninstall_of_our_own_copy(tmp_path: Path, capsys) -> None:
    root = tmp_path / "plugins"
    assert cli.main(["fiftyone-plugin", "install", "--plugins-dir", str(root)]) == 0
    target = root / "clipcam"
    assert str(target) in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == ["clipcam"]  # no staging folder left behind
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "__init__.py", "fiftyone.yml"]
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["plugin"] == PLUGIN_NAME
    for name in ("__init__.py", "fiftyone.yml"):
        assert (target / name).read_bytes() == (SOURCE_DIR / name).read_bytes()
        assert manifest["files"][name] == hashlib.sha256((SOURCE_DIR / name).read_bytes()).hexdigest()
    # An older version of the plugin, as an older install left it (its manifest has that file's digest),
    # plus the bytecode Python compiled when FiftyOne loaded it: a reinstall replaces them.
    (target / "__init__.py").write_text("# an older version\n")
    manifest["files"]["__init__.py"] = hashlib.sha256(b"# an older version\n").hexdigest()
    (target / MANIFEST).write_text(json.dumps(manifest))
    (target / "__pycache__").mkdir()
    (target / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"bytecode")
    assert install_plugin(root) == target
    assert (target / "__init__.py").read_bytes() == (SOURCE_DIR / "__init__.py").read_bytes()
    assert not (target / "__pycache__").exists()
    (target / "__pycache__").mkdir()
    (target / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"bytecode")
    assert cli.main(["fiftyone-plugin", "uninstall", "--plugins-dir", str(root)]) == 0
    assert not target.exists() and f"removed {target}" in capsys.readouterr().out
    assert list(root.iterdir()) == []
    assert uninstall_plugin(root) is None
    assert cli.main(["fiftyone-plugin", "uninstall", "--plugins-dir", str(root)]) == 0
    assert "is not installed; nothing removed" in capsys.readouterr().out


def _foreign_folder(target: Path) -> None:
    target.mkdir()
    (target / "fiftyone.yml").write_text('name: "@someone/else"\n')
    (target / "mine.txt").write_text("keep me")


def _hand_made_copy(target: Path) -> None:  # the plugin's files, copied by hand (no manifest): not ours
    target.mkdir()
    for name in ("fiftyone.yml", "__init__.py"):
        (target / name).write_bytes((SOURCE_DIR / name).read_bytes())


def _edited_install(target: Path) -> None:
    install_plugin(target.parent)
    (target / "__init__.py").write_text((target / "__init__.py").read_text() + "# my own change\n")


def _install_with_a_file_added(target: Path) -> None:
    install_plugin(target.parent)
    (target / "notes").mkdir()
    (target / "notes" / "todo.txt").write_text("mine")


def _install_with_foreign_bytecode(target: Path) -> None:
    install_plugin(target.parent)
    (target / "__pycache__").mkdir()
    (target / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"not from our files")


def _link_to_a_users_folder(target: Path) -> None:  # even a link to a real install of ours elsewhere
    elsewhere = target.parent.parent / "my-plugins"
    install_plugin(elsewhere)
    target.symlink_to(elsewhere / "clipcam")


def _manifest_pointing_outside(target: Path) -> None:
    install_plugin(target.parent)
    victim = target.parent.parent / "victim.txt"
    victim.write_text("keep me")
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["files"]["../../victim.txt"] = hashlib.sha256(b"keep me").hexdigest()
    (target / MANIFEST).write_text(json.dumps(manifest))


def _a_file_of_that_name(target: Path) -> None:
    target.write_text("not a folder")


@pytest.mark.parametrize(
    "make",
    [_foreign_folder, _hand_made_copy, _edited_install, _install_with_a_file_added,
     _install_with_foreign_bytecode, _link_to_a_users_folder, _manifest_pointing_outside, _a_file_of_that_name],
)  # fmt: skip
def test_uninstall_and_install_never_delete_what_they_did_not_install(tmp_path: Path, capsys, make) -> None:
    root = tmp_path / "plugins"
    root.mkdir()
    make(root / "clipcam")
    before = _tree(tmp_path)
    for action in ("uninstall", "install"):
        assert cli.main(["fiftyone-plugin", action, "--plugins-dir", str(root)]) == 2, action
        err = capsys.readouterr().err
        assert "nothing was removed" in err and str(root / "clipcam") in err, err
        assert _tree(tmp_path) == before, f"{action} changed files it did not install"


def test_install_keeps_a_users_staging_named_folder_and_refuses_a_second_copy(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    (root / ".clipcam-installing").mkdir(parents=True)  # the name an installer might use for its staging
    (root / ".clipcam-installing" / "mine.txt").write_text("keep me")
    install_plugin(root)
    assert (root / ".clipcam-installing" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in root.iterdir()) == [".clipcam-installing", "clipcam"]

    elsewhere = tmp_path / "other-plugins"
    (elsewhere / "mine" / "clipcam-copy").mkdir(parents=True)
    install_plugin(elsewhere / "mine" / "clipcam-copy")  # a copy in a subfolder of the plugins dir
    with pytest.raises(FileExistsError, match="already installed at"):
        install_plugin(elsewhere)
    assert not (elsewhere / "clipcam").exists()


def test_fiftyone_finds_the_plugin_and_its_operators(plugins: Path) -> None:
    import fiftyone.plugins as fop
    from fiftyone.operators.registry import OperatorRegistry

    (definition,) = [p for p in fop.list_plugins() if p.name == PLUGIN_NAME]
    assert Path(definition.directory) == plugins / "clipcam"
    registry = OperatorRegistry()
    for uri in (LOCALIZE, EVALUATE):
        assert registry.operator_exists(uri), uri
    assert registry.get_operator(LOCALIZE).config.label == "Localize with CLIPCAM"
    # Once FiftyOne has loaded the plugin from it, the folder is still an unchanged install of ours: a rerun
    # (notebook 06 reinstalls into the same folder) replaces the copy, and uninstall removes all of it.
    assert install_plugin(plugins) == plugins / "clipcam"
    assert uninstall_plugin(plugins) == plugins / "clipcam" and not (plugins / "clipcam").exists()


def test_localize_operator_writes_what_localize_computes(plugins: Path, dataset, tmp_path: Path) -> None:
    ds, records = dataset
    maps = tmp_path / "maps"
    text = "a red circle"
    result = _execute(LOCALIZE, ds, params={"text": text, "heatmap_dir": str(maps), "method": "gradcam"})
    field = prediction_field("shapes-rn", "gradcam")
    assert ds.has_field(field) and ds.has_field(heatmap_field(field))
    progress = [r.params for r in result.executor._requests if r.operator_uri == "set_progress"]
    assert [p["progress"] for p in progress] == pytest.approx([1 / 3, 2 / 3, 1.0])
    clip = cached_clip("shapes-rn")
    boxes = 0
    for sample in ds:
        expected = localize(clip, sample.filepath, text, cam="gradcam")
        heatmap = sample[heatmap_field(field)]
        assert heatmap.map is None and "map" not in sample.to_dict()[heatmap_field(field)]
        png = Path(heatmap.map_path)
        assert png.is_file() and png.parent == maps / field
        if expected.box is None:  # an all-zero map: no box to write, and none is invented
            assert sample[field].detections == []
        else:
            boxes += 1
            (detection,) = sample[field].detections
            assert detection.bounding_box == to_relative_xywh(expected.box, expected.image_size)
            assert (detection.label, detection.query) == (text, text)
            assert detection.score == pytest.approx(expected.score, abs=1e-5)
            assert detection.heatmap_path == str(png)
        pixels = np.asarray(Image.open(png))
        assert pixels.dtype == np.uint8 and pixels.shape == expected.saliency.shape
        assert np.array_equal(pixels, np.rint(expected.saliency * 255).astype(np.uint8))
    assert boxes >= 1  # the retrained shapes-rn finds no evidence for this text on some of the scenes


def test_localize_operator_never_overwrites_unasked_and_targets_selected_samples_or_the_view(
    plugins: Path, dataset, tmp_path: Path
) -> None:
    from fiftyone.operators.executor import ExecutionError

    ds, _ = dataset
    maps, field = str(tmp_path / "maps"), "clipcam_picked"
    first, second, third = ds.values("id")
    _execute(LOCALIZE, ds, params={"text": "a blue square", "field": field, "heatmap_dir": maps,
                                   "view_target": "SELECTED_SAMPLES"}, selected=[first, third])  # fmt: skip
    assert [s[field] is not None for s in ds] == [True, False, True]
    with pytest.raises(ExecutionError, match=f"field '{field}' already exists.*overwrite"):
        _execute(LOCALIZE, ds, params={"text": "a green star", "field": field, "heatmap_dir": maps})
    assert ds[first][field].detections[0].query == "a blue square" and ds[second][field] is None
    _execute(LOCALIZE, ds, params={"text": "a green star", "field": field, "heatmap_dir": maps,
                                   "overwrite": True, "view_target": "SELECTED_SAMPLES"}, selected=[first])  # fmt: skip
    assert [d.query for d in ds[first][field].detections] == ["a green star"]  # replaced, not merged
    assert ds[third][field].detections[0].query == "a blue square"  # outside the target: untouched
    assert ds[first][heatmap_field(field)].query == "a green star"
    with pytest.raises(ExecutionError, match="prediction_field"):
        _execute(LOCALIZE, ds, params={"text": "x", "field": "ground_truth", "heatmap_dir": maps})
    # The current view (here: all but the first sample) is the other target the form offers.
    _execute(LOCALIZE, ds, view=ds.skip(1), params={"text": "a red circle", "field": "clipcam_in_view",
                                                     "heatmap_dir": maps, "view_target": "CURRENT_VIEW"})  # fmt: skip
    assert [s["clipcam_in_view"] is not None for s in ds] == [False, True, True]


def test_one_query_per_ground_truth_label_and_evaluation(plugins: Path, dataset, tmp_path: Path) -> None:
    from fiftyone.operators.executor import ExecutionError

    ds, records = dataset
    field = "clipcam_per_label"
    _execute(LOCALIZE, ds, params={"queries": "labels", "gt_field": "ground_truth", "field": field,
                                   "method": "gradcam++", "beta": 0.4, "heatmap_dir": str(tmp_path / "maps")})  # fmt: skip
    clip = cached_clip("shapes-rn")
    by_id = {r.image_id: r for r in records}
    for sample in ds:
        record = by_id[sample.image_id]
        labels = sorted({o.label for o in record.objects})
        detections = {d.label: d for d in sample[field].detections}
        assert sorted(detections) == labels
        ious = []
        for label in labels:
            query = sw.object_caption(label)
            expected = localize(clip, sample.filepath, query, cam="gradcam++", beta=0.4)
            assert detections[label].query == query
            assert detections[label].bounding_box == to_relative_xywh(expected.box, expected.image_size)
            truth = union_box(record.boxes_for(label))
            ious.append(box_iou(expected.box, truth))
            assert detections[label].iou == pytest.approx(ious[-1], abs=1e-9)
        # The sample's mean IoU over its queries, as `bench --fiftyone` writes it, so the sidebar sorts by it.
        assert sample[f"{field}_iou"] == pytest.approx(np.mean(ious), abs=1e-9)

    summary = _execute(EVALUATE, ds, params={"pred_field": field, "gt_field": "ground_truth",
                                             "eval_key": "ev", "iou": 0.3}).result  # fmt: skip
    assert summary["iou_field"] == "ev_iou" and summary["samples"] == N_SAMPLES
    assert (summary["tp"], summary["fp"]) == (int(ds.sum("ev_tp")), int(ds.sum("ev_fp")))
    assert summary["tp"] + summary["fp"] == ds.count(f"{field}.detections")
    for sample in ds:  # the best same-label IoU per box, and the sample's mean of them
        truths = sample.ground_truth.detections
        best = [max(_rel_iou(d.bounding_box, t.bounding_box) for t in truths if t.label == d.label)
                for d in sample[field].detections]  # fmt: skip
        assert [d.ev_max_iou for d in sample[field].detections] == pytest.approx(best, abs=1e-6)
        assert sample.ev_iou == pytest.approx(np.mean(best), abs=1e-6)
    from fiftyone import ViewField as F

    ordered = ds.sort_by("ev_iou", reverse=True).values("ev_iou")
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) > 1
    middle = float(np.median(ordered))
    assert len(ds.match(F("ev_iou") > middle)) == sum(v > middle for v in ordered)
    assert ds.get_evaluation_info("ev").config.iou == 0.3
    with pytest.raises(ExecutionError, match="evaluation 'ev' already exists"):
        _execute(EVALUATE, ds, params={"pred_field": field, "gt_field": "ground_truth", "eval_key": "ev"})
    again = _execute(EVALUATE, ds, params={"pred_field": field, "gt_field": "ground_truth", "eval_key": "ev",
                                           "overwrite": True}).result  # fmt: skip
    assert again["tp"] >= summary["tp"] and ds.get_evaluation_info("ev").config.iou == 0.5


def _rel_iou(a, b) -> float:
    return box_iou((a[0], a[1], a[0] + a[2], a[1] + a[3]), (b[0], b[1], b[0] + b[2], b[1] + b[3]))


def test_localize_runs_as_a_delegated_operation(plugins: Path, dataset, tmp_path: Path) -> None:
    from fiftyone.operators.delegated import DelegatedOperationService

    ds, _ = dataset
    field = "clipcam_delegated"
    queued = _execute(LOCALIZE, ds, params={"text": "a yellow triangle", "field": field,
                                            "heatmap_dir": str(tmp_path / "maps")}, request_delegation=True)  # fmt: skip
    assert queued.delegated and not ds.has_field(field)  # scheduled, not run
    service = DelegatedOperationService()
    (done,) = service.execute_queued_operations(operator=LOCALIZE, dataset_name=ds.name)
    assert done.error is None, done.error
    ds.reload()
    assert ds.count(f"{field}.detections") >= N_SAMPLES - 1 and ds.exists(heatmap_field(field)).count() == 3
    (op,) = service.list_operations(operator=LOCALIZE, dataset_name=ds.name)
    assert op.run_state == "completed" and op.status.progress == pytest.approx(1.0)


def _form(ds, params: dict, selected: list[str] | None = None) -> dict:
    """The Localize form's properties as the App receives them for these parameters."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    operator = foo.registry.OperatorRegistry().get_operator(LOCALIZE)
    ctx = ExecutionContext(
        request_params={"dataset_name": ds.name, "params": params, "selected": selected or []}
    )
    return operator.resolve_input(ctx).type.properties


def test_method_choices_are_the_registry_s(plugins: Path, dataset) -> None:
    ds, _ = dataset
    form = _form(ds, {"text": "a red circle"})
    assert [c.value for c in form["method"].view.choices] == methods.method_names()
    assert len(methods.method_names()) > 7  # the paper's seven and the later methods
    labels = {c.value: c.label for c in form["method"].view.choices}
    assert labels["gradcam"] == "Grad-CAM" and labels["chefer"].endswith("(ViT models only)")
    assert "shapes-rn" in [c.value for c in form["model"].view.choices]
    assert "problem" not in form and not form["method"].invalid
    # A method for the other image tower: the form says so at the method and keeps Execute disabled.
    form = _form(ds, {"text": "a red circle", "method": "chefer", "model": "shapes-rn"})
    assert form["method"].invalid and "applies only to ViT" in form["method"].error_message
    assert "applies only to ViT" in form["problem"].view.description
    vit = _form(ds, {"text": "a red circle", "method": "chefer", "model": "shapes-vit"})
    assert not vit["method"].invalid and "problem" not in vit
    form = _form(ds, {"text": "a red circle", "method": "no-such-cam"})
    assert form["method"].invalid and "unknown CAM method 'no-such-cam'" in form["method"].error_message


def test_a_later_registry_method_runs_and_an_unfit_one_is_refused(
    plugins: Path, dataset, tmp_path: Path
) -> None:
    from fiftyone.operators.executor import ExecutionError

    ds, _ = dataset
    first = ds.first()
    maps = str(tmp_path / "maps")
    _execute(LOCALIZE, ds, params={"text": "a blue square", "method": "MaskCLIP", "heatmap_dir": maps,
                                   "view_target": "SELECTED_SAMPLES"}, selected=[first.id])  # fmt: skip
    field = prediction_field("shapes-rn", "maskclip")
    expected = localize(cached_clip("shapes-rn"), first.filepath, "a blue square", cam="maskclip")
    (detection,) = ds[first.id][field].detections
    assert detection.bounding_box == to_relative_xywh(expected.box, expected.image_size)
    assert detection.score == pytest.approx(expected.score, abs=1e-5)
    with pytest.raises(ExecutionError, match="applies only to ViT"):
        _execute(LOCALIZE, ds, params={"text": "a blue square", "method": "chefer", "heatmap_dir": maps})
    assert not ds.has_field(prediction_field("shapes-rn", "chefer"))  # refused before any sample


def test_the_form_shows_the_refusal_until_overwrite_is_ticked(plugins: Path, dataset, tmp_path: Path) -> None:
    import fiftyone as fo

    ds, _ = dataset
    params = {"text": "a red circle", "heatmap_dir": str(tmp_path / "maps")}
    form = _form(ds, params)
    assert "problem" not in form and not form["overwrite"].invalid
    _execute(LOCALIZE, ds, params={**params, "view_target": "SELECTED_SAMPLES"}, selected=[ds.first().id])
    field = prediction_field("shapes-rn", "gradcam")
    form = _form(ds, params)  # the same question again: the fields exist now
    assert form["overwrite"].invalid and f"field '{field}' already exists" in form["overwrite"].error_message
    assert (
        form["problem"].view.label == "Cannot run yet"
        and "tick 'overwrite'" in form["problem"].view.description
    )
    form = _form(ds, {**params, "overwrite": True})
    assert "problem" not in form and not form["overwrite"].invalid
    form = _form(ds, {**params, "field": "clipcam_elsewhere"})  # or another field name
    assert "problem" not in form
    # A field of another kind under that name is someone else's data: refused even with overwrite.
    ds.add_sample_field("clipcam_notes", fo.StringField)
    form = _form(ds, {**params, "field": "clipcam_notes", "overwrite": True})
    assert form["field"].invalid and "not a Detections field" in form["field"].error_message
    form = _form(ds, {**params, "queries": "labels", "gt_field": "ground_truth", "template": "no label"})
    assert form["template"].invalid and "must contain '{}'" in form["template"].error_message


def test_large_targets_default_to_a_delegated_operation(plugins: Path, dataset, monkeypatch) -> None:
    import sys

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    ds, _ = dataset
    operator = foo.registry.OperatorRegistry().get_operator(LOCALIZE)
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {"text": "a red circle"}})
    options = operator.resolve_execution_options(ctx)
    assert options.allow_immediate_execution and options.allow_delegated_execution
    assert not options.default_choice_to_delegated  # 3 samples: run at once by default
    plugin_module = sys.modules[type(operator).__module__]
    monkeypatch.setattr(plugin_module, "DELEGATE_DEFAULT_ABOVE", N_SAMPLES - 1)
    options = operator.resolve_execution_options(ctx)
    assert options.default_choice_to_delegated and options.allow_immediate_execution
    assert (
        "delegated operation is offered" in operator.resolve_input(ctx).type.properties["delegate"].view.label
    )


def test_map_panel_answers_new_texts_from_the_capture_cache(
    plugins: Path, dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import io

    from clipcam_utils import cams
    from clipcam_utils.plots import heatmap_overlay

    ds, _ = dataset
    first, second = ds.values("id")[:2]
    captures = []
    real_capture = cams.capture
    monkeypatch.setattr(cams, "capture", lambda *a, **k: captures.append(1) or real_capture(*a, **k))
    clip = cached_clip("shapes-rn")
    clip._capture_cache.clear()

    def panel(sample_id: str, text: str) -> dict:
        result = _execute(f"{PLUGIN_NAME}/clipcam_map_panel", ds, current_sample=sample_id,
                          params={"__method__": "on_change_query", "panel_id": "p", "panel_state": {"text": text}})  # fmt: skip
        sent = {r.operator_uri: r.params for r in result.executor._requests}
        assert "show_panel_output" in sent
        return {**sent["patch_panel_data"]["data"], **sent["patch_panel_state"]["state"]}

    shown = panel(first, "a red circle")
    assert len(captures) == 1
    url = shown["map"]
    assert url.startswith("data:image/png;base64,")
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    expected = localize(clip, ds[first].filepath, "a red circle")
    assert np.array_equal(
        drawn, np.asarray(heatmap_overlay(ds[first].filepath, expected.saliency, expected.box))
    )
    assert "'a red circle'" in shown["summary"] and f"{expected.score:.2f}" in shown["summary"]
    captures.clear()
    assert panel(first, "a blue square")["map"] != url and captures == []  # a new text: no forward pass
    panel(second, "a blue square")
    assert len(captures) == 1  # another sample: one forward pass
    assert panel(second, "  ")["map"] is None
