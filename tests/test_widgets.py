"""The interactive explorer, driven without a browser: set widget values, check what it would show."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipcam_utils import load_clip, localize
from clipcam_utils.widgets import Explorer, MapCache, explore, explorer_scene, matching_objects


@pytest.fixture(scope="module")
def clip():
    return load_clip("shapes-rn")


@pytest.fixture
def explorer(clip):
    return Explorer(clip, seed=0)


def test_starts_on_a_scene_with_a_query_for_one_of_its_objects(explorer, clip) -> None:
    r = explorer.result
    scene = explorer_scene(0)
    assert r.ok and r.text == f"a photo of a {scene.objects[0].label}"
    assert (
        r.saliency.shape == (256, 256) and 0.0 <= r.saliency.min() and 0.9 < r.saliency.max() <= 1.0
    )  # resized from 128 px
    assert r.box is not None and r.gt_boxes == [scene.objects[0].box] and 0.0 < r.iou <= 1.0
    assert explorer.beta.value == clip.default_beta
    assert scene.objects[0].label in explorer.scene_info.value
    shown = Image.open(io.BytesIO(explorer.picture.value))
    assert shown.format == "JPEG" and shown.size == (256, 256)
    # what the widget shows is the overlay of the result (up to JPEG rounding)
    assert np.abs(np.asarray(shown, np.int16) - np.asarray(r.overlay(), np.int16)).mean() < 3


def test_same_numbers_as_localize(explorer, clip) -> None:
    scene = explorer_scene(0)
    loc = localize(clip, scene.image, explorer.text.value, cam="gradcam", beta=explorer.beta.value)
    r = explorer.result
    assert r.score == pytest.approx(loc.score, abs=1e-5)
    assert np.abs(r.saliency - loc.saliency).max() < 1e-5 and r.box == loc.box


def test_beta_rethresholds_the_cached_map(explorer) -> None:
    before = explorer.result
    misses = explorer.cache.misses
    explorer.beta.value = 0.7
    after = explorer.result
    assert explorer.cache.misses == misses and explorer.cache.hits >= 1  # no new forward pass
    assert np.array_equal(after.saliency, before.saliency) and after.score == before.score
    bw = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    assert bw(after.box) < bw(before.box)  # a higher threshold keeps fewer pixels
    assert "beta=0.70" in explorer.status.value


def test_text_cam_and_seed_changes_update_the_result(explorer) -> None:
    first = explorer.result
    other = explorer_scene(0).objects[1].label
    explorer.text.value = f"a photo of a {other}"
    assert explorer.result.text.endswith(other) and explorer.result.score != first.score
    assert explorer.result.gt_boxes == [explorer_scene(0).objects[1].box]
    explorer.cam.value = "eigencam"
    assert explorer.result.cam == "eigencam" and "EigenCAM" in explorer.status.value
    assert np.abs(explorer.result.saliency - first.saliency).max() > 1e-3
    explorer.seed.value = 3
    assert not np.array_equal(np.asarray(explorer.result.image), np.asarray(first.image))
    assert explorer_scene(3).objects[0].label in explorer.scene_info.value


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [("text", "   ", "text is empty"), ("path", "does/not/exist.png", "not found")],
)
def test_bad_values_show_a_message_not_a_traceback(explorer, attr, value, message) -> None:
    if attr == "path":
        explorer.source.value = "image file"
    getattr(explorer, attr).value = value
    assert not explorer.result.ok and message in explorer.result.error
    assert "error:" in explorer.status.value and "#b00020" in explorer.status.value
    assert message in explorer.describe()


def test_image_file_source(explorer, tmp_path) -> None:
    path = tmp_path / "scene.png"
    explorer_scene(5).image.save(path)
    explorer.source.value = "image file"
    assert "no image file given" in explorer.result.error
    explorer.path.value = str(path)
    assert explorer.result.ok and explorer.result.image.size == (256, 256) and explorer.result.iou is None


def test_explore_reports_unknown_words_and_bad_cam(clip) -> None:
    image = explorer_scene(1).image
    r = explore(clip, image, "a photo of a giraffe")
    assert r.ok and any("giraffe" in n for n in r.notes)
    bad = explore(clip, image, "a red star", cam="gradcam3")
    assert not bad.ok and "unknown CAM method" in bad.error
    assert "beta must be" in explore(clip, image, "a red star", beta=1.5).error


def test_explore_cache_is_keyed_by_pixels(clip) -> None:
    cache = MapCache(maxsize=2)
    a, b = explorer_scene(1).image, explorer_scene(2).image
    explore(clip, a, "a red star", cache=cache)
    explore(clip, a.copy(), "a red star", cache=cache)  # same pixels, another object
    assert (cache.hits, cache.misses) == (1, 1)
    explore(clip, b, "a red star", cache=cache)
    explore(clip, a, "a blue circle", cache=cache)  # a third entry: the oldest (a, red star) is evicted
    explore(clip, Image.fromarray(np.asarray(b)), "a red star", cache=cache)  # still cached
    assert (cache.hits, cache.misses) == (2, 3)
    explore(clip, a, "a red star", cache=cache)
    assert (cache.hits, cache.misses) == (2, 4)


def test_matching_objects_reads_labels_in_the_text() -> None:
    objs = explorer_scene(0).objects
    label = objs[0].label
    assert matching_objects(f"A   photo of a {label.upper()}", objs) == [objs[0]]
    assert matching_objects("a photo of nothing", objs) == []


def test_text_plain_stand_in_is_deterministic(explorer) -> None:
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == explorer.describe()
    assert "model_id" in bundle["application/vnd.jupyter.widget-view+json"]
    assert "0x" not in bundle["text/plain"]


def _upload(name: str, data: bytes) -> tuple[dict, ...]:
    import datetime

    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2024, 1, 1)},)  # fmt: skip


def test_uploaded_image_is_used_and_bad_uploads_are_a_message(explorer, clip) -> None:
    buf = io.BytesIO()
    explorer_scene(7).image.save(buf, format="PNG")
    explorer.source.value = "image file"
    explorer.upload.value = _upload("scene.png", buf.getvalue())
    r = explorer.result
    assert r.ok and np.array_equal(np.asarray(r.image), np.asarray(explorer_scene(7).image))
    loc = localize(clip, explorer_scene(7).image, explorer.text.value, beta=explorer.beta.value)
    assert r.score == pytest.approx(loc.score, abs=1e-5) and r.box == loc.box
    explorer.upload.value = _upload("notes.png", b"not an image")
    assert not explorer.result.ok and "cannot read notes.png" in explorer.result.error
