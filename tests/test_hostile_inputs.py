"""Hostile inputs (issue 14): no silent wrong result, no lost or duplicated data, no traceback.

Huge images keep their boxes in the file's pixels; texts the model cannot read are flagged; `localize --out`
is checked before anything runs; records files are validated on resume and bad lines quarantined, never
deleted; a run folder has one writer; Ctrl-C says how to resume.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipcam_utils import cli, images, load_clip, localize
from clipcam_utils.evaluation import RECORD_COLUMNS, run_grid_benchmark, summarize
from clipcam_utils.grids import GridItem, cell_origin, make_grid
from clipcam_utils.runfiles import LOCK_NAME, RecordsRepairedWarning, RunLock, quarantine_path
from clipcam_utils.tokenizers import UnknownWordsWarning, unknown_words_message
from clipcam_utils.widgets import explore, explorer_scene


@pytest.fixture(scope="module")
def clip():
    return load_clip("shapes-rn")


def _scene_file(path: Path, size: tuple[int, int], fmt: str = "JPEG") -> Path:
    """A ShapesWorld scene blown up to `size` (smooth, so it encodes fast)."""
    explorer_scene(3).image.resize(size, Image.BILINEAR).save(path, fmt, quality=90)
    return path


# ---------------------------------------------------------------------------------------------- huge images
def test_boxes_of_a_huge_image_are_in_the_files_pixels(clip, tmp_path, monkeypatch) -> None:
    """Decoded at 1/4 (as an 8160x6120 photo is by default), the box and image_size are the file's."""
    monkeypatch.setattr(images, "DECODE_PIXELS", 300_000)
    path = _scene_file(tmp_path / "big.jpg", (2400, 1600))
    decoded = images.load_image(path)
    assert decoded.size == (600, 400)
    big = localize(clip, path, "a photo of a red star")
    assert big.image_size == (2400, 1600) and big.box is not None
    plain = decoded.copy()
    plain.info.pop(images.ORIGINAL_SIZE)  # the same pixels, as a 600x400 image of the caller's
    small = localize(clip, plain, "a photo of a red star")
    assert small.image_size == (600, 400)
    assert big.box == pytest.approx([v * 4 for v in small.box])
    full = localize(clip, Image.open(path).convert("RGB"), "a photo of a red star")  # decoded in full
    assert full.image_size == (2400, 1600)
    assert np.abs(np.array(big.box) - np.array(full.box)).max() <= 0.05 * 2400


def test_cli_overlay_of_a_huge_image(clip, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(images, "DECODE_PIXELS", 300_000)
    path = _scene_file(tmp_path / "big.jpg", (2400, 1600))
    out = tmp_path / "overlay.png"
    assert cli.main(["localize", str(path), "a photo of a red star", "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["image_size"] == [2400, 1600] and payload["box"][2] <= 2400 and payload["box"][2] > 600
    assert Image.open(out).size == (600, 400)  # drawn on the decoded image, box mapped onto it


# ---------------------------------------------------------------------------------------------- unknown words
def test_unknown_words_are_named_in_the_api(clip) -> None:
    image = explorer_scene(1).image
    with pytest.warns(
        UnknownWordsWarning, match=r"knows none of the words.*'xylophone', 'quixotic', 'zebra'"
    ):
        localize(clip, image, "xylophone quixotic zebra")
    with pytest.warns(UnknownWordsWarning, match=r"does not know 1 of the 4 words.*'giraffe'"):
        localize(clip, image, "a photo of a giraffe")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)
        localize(clip, image, "a photo of a red star")  # every word known: silent
    assert unknown_words_message(object(), "anything at all") is None  # CLIP's own BPE knows every text


def test_unknown_words_in_the_explorer_and_the_cli(clip, tmp_path, capsys) -> None:
    r = explore(clip, explorer_scene(1).image, "xylophone quixotic zebra")
    assert r.ok and any("knows none of the words" in n and "'zebra'" in n for n in r.notes)
    image = tmp_path / "scene.png"
    explorer_scene(1).image.save(image)
    assert cli.main(["localize", str(image), "xylophone quixotic zebra"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["text"] == "xylophone quixotic zebra"
    assert (
        captured.err.startswith("warning: the model knows none of the words") and "'quixotic'" in captured.err
    )


# ---------------------------------------------------------------------------------------------- localize --out
@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("{tmp}", "is a folder; give a file name such as"),
        ("{tmp}/overlay", "has no file extension; supported: .png, .jpg"),
        ("{tmp}/overlay.xyz", "unknown extension '.xyz'; supported: .png"),
        ("{tmp}/file.txt/overlay.png", "is a file, not a folder"),
        ("/proc/clipcam-overlay.png", "cannot write in /proc"),
    ],
)
def test_localize_out_is_checked_before_the_model_runs(out, message, tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "file.txt").write_text("x")
    image = tmp_path / "scene.png"
    explorer_scene(0).image.save(image)
    monkeypatch.setattr(
        cli, "_load", lambda args: pytest.fail("the model was loaded before --out was checked")
    )
    assert cli.main(["localize", str(image), "a red star", "--out", out.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_localize_prints_the_result_before_writing(clip, tmp_path, capsys, monkeypatch) -> None:
    import clipcam_utils.plots as plots

    image = tmp_path / "scene.png"
    explorer_scene(0).image.save(image)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "heatmap_overlay", disk_full)
    rc = cli.main(["localize", str(image), "a photo of a red star", "--out", str(tmp_path / "o.png")])
    captured = capsys.readouterr()
    assert rc == 2 and json.loads(captured.out)["image_size"] == [256, 256]  # the result is not lost
    assert "No space left on device" in captured.err and "the result above is complete" in captured.err


def test_image_url_is_refused_in_the_cli(tmp_path, capsys) -> None:
    url = "http://example.com/photos//cat.jpg"
    assert cli.main(["localize", url, "a cat"]) == 2
    err = capsys.readouterr().err
    assert url in err and "URLs are not supported" in err and "download the file first" in err


# ---------------------------------------------------------------------------------------------- records
def _item(i: int, label: str) -> GridItem:
    return GridItem(f"id{i}", label, ((25.0, 25.0, 75.0, 75.0),), Image.new("RGB", (100, 100), (i * 50 % 256, 90, 90)),
                    (100, 100), i % 2 == 0)  # fmt: skip


def _grids(n: int) -> list:
    return [make_grid(g, [_item(4 * g + i, f"c{i}") for i in range(4)], 100) for g in range(n)]


def _perfect(grid, cells, texts):
    maps = []
    for c in cells:
        ox, oy = cell_origin(c, grid.cell_size)
        m = np.zeros(grid.size[::-1], np.float32)
        m[oy + 25 : oy + 75, ox + 25 : ox + 75] = 1.0
        maps.append(m)
    return maps


def _counted(calls: list):
    def fn(grid, cells, texts):
        calls.append((grid.grid_id, list(cells)))
        return _perfect(grid, cells, texts)

    return fn


def test_bad_lines_are_quarantined_with_file_and_line(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(2), 0.5, out=out, progress=False)
    lines = out.read_text().splitlines()  # header + 8 records
    edited = list(lines)
    edited[2] = edited[2].replace(",1.0,True,", ",7.5,True,")  # line 3: IoU 7.5 by hand
    edited[4] = edited[4].replace(",1.0,True,", ",abc,True,")  # line 5: a non-numeric IoU
    edited.append(lines[1])  # line 10: a duplicate of line 2
    edited.append('"garbage with a stray quote')  # line 11: must not swallow the good line after it
    edited.append(lines[8])  # line 12: duplicate of line 9
    out.write_bytes(("\n".join(edited) + "\n").encode() + b"\xff\xfe binary junk\n")  # line 13
    calls: list = []
    with pytest.warns(RecordsRepairedWarning) as caught:
        df = run_grid_benchmark(_counted(calls), _grids(2), 0.5, out=out, progress=False)
    message = str(caught[0].message)
    assert str(out) in message and "moved 6 bad line(s)" in message and str(quarantine_path(out)) in message
    assert "line 3: iou 7.5 is outside [0, 1]" in message and "line 5: iou 'abc' is not a number" in message
    assert "the 6 valid record(s) are kept" in message and "delete" not in message
    side = quarantine_path(out).read_bytes()
    assert (
        b"line 10: second record of grid 0 cell 0 (first on line 2)" in side
        and b"\xff\xfe binary junk" in side
    )
    assert b"line 11: " in side and b"line 13: not UTF-8 text" in side
    assert calls == [(0, [1, 3])]  # only the two quarantined queries are computed again
    on_disk = pd.read_csv(out)
    assert len(df) == len(on_disk) == 8 and not on_disk.duplicated(["grid_id", "cell"]).any()
    assert (on_disk.iou == 1.0).all() and summarize(df)["miou_all"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordsRepairedWarning)  # a clean file resumes silently
        run_grid_benchmark(_counted(calls), _grids(2), 0.5, out=out, progress=False)


def test_a_foreign_file_is_refused_not_deleted(tmp_path) -> None:
    out = tmp_path / "run.csv"
    out.write_text("name,score\nalice,3\n")
    with pytest.raises(ValueError, match=r"run\.csv line 1 is not a records header.*move it away") as info:
        run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    assert "delete" not in str(info.value) and out.read_text() == "name,score\nalice,3\n"


def test_summarize_names_non_numeric_iou() -> None:
    records = pd.DataFrame({c: [0] for c in RECORD_COLUMNS}).assign(
        iou=["abc"], seen=[True], hit=[True], error=[""]
    )
    with pytest.raises(
        ValueError, match=r"1 iou value\(s\) that are not numbers in \[0, 1\] \(row 0: 'abc'\)"
    ):
        summarize(records)


def test_returned_records_are_the_asked_grids_only(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(3), 0.5, out=out, progress=False)
    df = run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    assert len(df) == 4 and set(df.grid_id) == {0} and len(pd.read_csv(out)) == 12  # nothing on disk lost


# ---------------------------------------------------------------------------------------------- lock
def test_a_second_writer_is_refused_with_the_first_writers_pid(tmp_path) -> None:
    out = tmp_path / "run.csv"
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "run.csv.lock"
        lock.write_text(json.dumps({"pid": writer.pid, "host": socket.gethostname(), "started": "now",
                                    "command": "python -m clipcam_utils bench objects"}))  # fmt: skip
        with pytest.raises(RuntimeError, match=rf"being written by another run \(PID {writer.pid} "):
            run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
        assert not out.exists() and lock.exists()  # nothing written, the other run's lock kept
    finally:
        writer.kill()
        writer.wait()
    with pytest.warns(
        RuntimeWarning, match=rf"took over the stale lock .*PID {writer.pid} \(no longer running"
    ):
        df = run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    assert len(df) == 4 and not lock.exists()  # released at the end


def test_bench_folder_lock_names_the_holder(tmp_path, capsys) -> None:
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid()
        with RunLock(tmp_path):  # the same process may nest (the command, then run_bench)
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


# ---------------------------------------------------------------------------------------------- bench command
def _bench(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["bench", *argv, "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_default_beta_given_explicitly_resumes(tmp_path, capsys) -> None:
    args = ["objects", "--grids", "1", "--out", str(tmp_path)]
    rc, out, err = _bench(capsys, *args)
    assert rc == 0, err
    rc, out2, err = _bench(capsys, *args, "--beta", "0.2")  # shapes-rn's default beta
    assert rc == 0, err
    assert out2.splitlines()[2:4] == out.splitlines()[2:4]  # the same table, nothing recomputed
    rc, _, err = _bench(capsys, *args, "--beta", "0.3")
    assert rc == 2 and "beta" in err


def test_summaries_of_several_runs_are_merged(tmp_path, capsys) -> None:
    rc, _, err = _bench(capsys, "objects", "--grids", "1", "--out", str(tmp_path))
    assert rc == 0, err
    rc, out, err = _bench(capsys, "objects", "--grids", "1", "--cam", "layercam", "--out", str(tmp_path))
    assert rc == 0, err
    assert "merged with 1 row(s) of earlier runs" in out
    summary = pd.read_csv(tmp_path / "summary-objects-shapes.csv")
    assert sorted(summary.cam) == ["gradcam", "layercam"]
    rc, _, _ = _bench(
        capsys, "objects", "--grids", "1", "--out", str(tmp_path)
    )  # rerun: updated, not doubled
    assert sorted(pd.read_csv(tmp_path / "summary-objects-shapes.csv").cam) == ["gradcam", "layercam"]


def test_ctrl_c_says_what_is_safe_and_how_to_resume(tmp_path, capsys, monkeypatch) -> None:
    import clipcam_utils.evaluation as ev

    real = ev.score_query
    seen: list[int] = []

    def interrupt_on_grid_1(saliency, grid, cell, beta, protocol):
        seen.append(grid.grid_id)
        if grid.grid_id == 1:
            raise KeyboardInterrupt
        return real(saliency, grid, cell, beta, protocol)

    monkeypatch.setattr(ev, "score_query", interrupt_on_grid_1)
    args = ["objects", "--grids", "2", "--out", str(tmp_path)]
    rc, _, err = _bench(capsys, *args)
    assert rc == 130 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: 4 record(s) are safe in ")
    command = f"resume with: python -m clipcam_utils bench objects --grids 2 --out {tmp_path} --no-progress"
    assert line.endswith(command) and not (tmp_path / LOCK_NAME).exists()
    monkeypatch.setattr(ev, "score_query", real)
    rc, out, err = _bench(capsys, *args)
    assert rc == 0, err
    assert len(pd.read_csv(tmp_path / "objects-shapes-clipcam-shapes-rn-gradcam.csv")) == 8


@pytest.mark.usefixtures("fiftyone_db_dir")
def test_bench_fiftyone_never_replaces_data_unasked(tmp_path, capsys, request) -> None:
    import fiftyone as fo

    from clipcam_utils.fiftyone_export import prediction_field

    name = request.node.name[:40]
    base = ["objects", "--grids", "1", "--out", str(tmp_path), "--fiftyone", name]
    rc, out, err = _bench(capsys, *base)
    assert rc == 0, err
    assert f"created FiftyOne dataset 'clipcam-{name}' (database folder " in out
    dataset = fo.load_dataset(f"clipcam-{name}")
    dataset.info["mine"] = "keep me"
    dataset.save()
    sample = dataset.first()
    sample.tags.append("checked")
    sample.save()
    rn, vit = prediction_field("shapes-rn", "gradcam"), prediction_field("shapes-vit", "gradcam")
    rc, out, err = _bench(capsys, *base, "--model", "shapes-vit")  # another model: added beside the first
    assert rc == 0, err
    assert "same grids, other fields kept" in out
    dataset.reload()
    assert (
        dataset.has_sample_field(rn) and dataset.has_sample_field(vit) and dataset.info["mine"] == "keep me"
    )
    assert dataset.first().tags == ["checked"]
    rc, _, err = _bench(capsys, *base)  # the same run again: its fields exist
    assert rc == 2 and f"already holds {rn}" in err and "--overwrite" in err
    rc, out, err = _bench(capsys, *base, "--overwrite")  # asked: only this run's fields are replaced
    assert rc == 0, err
    dataset.reload()
    assert dataset.has_sample_field(vit) and dataset.first().tags == ["checked"]
    other = ["objects", "--grids", "1", "--seed", "7", "--out", str(tmp_path / "other"), "--fiftyone", name]
    rc, _, err = _bench(capsys, *other)  # other grids under the same name: refused
    assert rc == 2 and "already exists with other samples" in err and vit in err
    assert fo.load_dataset(f"clipcam-{name}").info["mine"] == "keep me"


def test_overlay_never_replaces_the_input_image(tmp_path, capsys) -> None:
    image = tmp_path / "photo.png"
    explorer_scene(0).image.save(image)
    before = image.read_bytes()
    assert cli.main(["localize", str(image), "a red star", "--out", str(image)]) == 2
    assert "is the input image" in capsys.readouterr().err and image.read_bytes() == before


def test_an_existing_overlay_is_replaced_only_when_asked(clip, tmp_path, capsys, monkeypatch) -> None:
    image, keep = tmp_path / "scene.png", tmp_path / "keep.png"
    explorer_scene(0).image.save(image)
    explorer_scene(1).image.save(keep)  # a user's own picture where the overlay would go
    before = keep.read_bytes()
    args = ["localize", str(image), "a red star", "--out", str(keep)]
    with monkeypatch.context() as m:
        m.setattr(cli, "_load", lambda args: pytest.fail("the model was loaded before --out was checked"))
        assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and keep.read_bytes() == before
    assert cli.main([*args, "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["overlay"] == str(keep) and keep.read_bytes() != before
    assert cli.main(["localize", str(image), "a red star", "--out", str(image), "--overwrite"]) == 2
    assert "is the input image" in capsys.readouterr().err  # --overwrite never replaces the input


def test_an_animation_warns_that_only_its_first_frame_is_used(tmp_path) -> None:
    from PIL import Image

    from clipcam_utils.images import load_image

    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=r"anim.gif holds 3 frames or pages; only the first is used"):
        im = load_image(path)
    assert im.size == (40, 30) and im.getpixel((5, 5)) == (255, 0, 0)


def test_bench_out_that_is_a_file_or_unwritable_is_a_message(tmp_path, capsys) -> None:
    target = tmp_path / "results.csv"
    target.write_text("mine\n")
    rc, _, err = _bench(capsys, "objects", "--grids", "1", "--out", str(target))
    assert rc == 2 and "is a file" in err and target.read_text() == "mine\n"
    rc, _, err = _bench(capsys, "objects", "--grids", "1", "--out", "/proc/clipcam-bench")
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err


def test_a_text_of_symbols_only_is_flagged(clip) -> None:
    message = unknown_words_message(clip.tokenizer, "§§ ¤¤")
    assert message is not None and "knows none of the tokens" in message


def test_unreadable_settings_are_a_message(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    (tmp_path / "run.protocol.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"run\.protocol\.json is not readable JSON settings.*restore it"):
        run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    assert len(pd.read_csv(out)) == 4


def test_bench_into_a_folder_another_run_writes_is_refused(tmp_path, capsys) -> None:
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": writer.pid, "host": socket.gethostname(),
                                                      "started": "now", "command": "bench objects"}))  # fmt: skip
        rc, _, err = _bench(capsys, "objects", "--grids", "1", "--out", str(tmp_path))
    finally:
        writer.kill()
        writer.wait()
    assert rc == 2 and f"PID {writer.pid}" in err and "looks like a bug" not in err
    assert not list(tmp_path.glob("*.csv"))  # nothing written


def test_infinite_ids_and_a_torn_header_are_handled(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    lines = out.read_text().splitlines()
    out.write_text(
        "\n".join([*lines, "inf," + lines[1].split(",", 1)[1], "nan," + lines[2].split(",", 1)[1]]) + "\n"
    )
    with pytest.warns(RecordsRepairedWarning, match=r"line 6: grid_id 'inf' is not a whole number >= 0"):
        assert len(run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)) == 4
    torn = tmp_path / "torn.csv"
    torn.write_text(",".join(RECORD_COLUMNS)[:20])  # killed while writing the header
    with pytest.warns(RecordsRepairedWarning, match="cut a header torn"):
        assert len(run_grid_benchmark(_perfect, _grids(1), 0.5, out=torn, progress=False)) == 4
    assert list(pd.read_csv(torn).columns) == RECORD_COLUMNS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "objects", "--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
        (["bench", "objects", "--grids", "0"], "argument --grids: must be at least 1, got 0"),
        (["eval-shapes", "--grids", "0"], "argument --grids: must be at least 1, got 0"),
        (["eval-shapes", "--seed", "x"], "argument --seed: expected an integer, got 'x'"),
        (["demo", "--seed", "-5"], "argument --seed: must be 0 or more, got -5"),
    ],
)
def test_counts_and_seeds_are_checked_by_the_parser(argv, message, capsys) -> None:
    assert cli.main(argv) == 2 and message in capsys.readouterr().err


def test_train_shapes_checks_its_out_before_training(tmp_path, capsys, monkeypatch) -> None:
    import clipcam_utils.training as training

    monkeypatch.setattr(training, "train_all", lambda *a, **k: pytest.fail("training started before --out"))
    (tmp_path / "file").write_text("x")
    assert cli.main(["train-shapes", "--out", str(tmp_path / "file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert cli.main(["train-shapes", "--out", "/proc/clipcam-models"]) == 2
    assert "cannot be written" in capsys.readouterr().err
