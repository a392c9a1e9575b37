"""Zero-shot classification of crops (the real profile's notebook 01): same answer as Eq. 1, texts encoded once."""

from __future__ import annotations

import pytest
import torch

from clipcam_utils import shapesworld as sw
from clipcam_utils.models import load_clip
from clipcam_utils.zeroshot import box_crop, crop_accuracy, crop_embeddings


@pytest.fixture(scope="module")
def clip():
    return load_clip("shapes-rn")


def test_crop_accuracy_is_eq1_top1_with_the_class_texts_encoded_once(clip, monkeypatch) -> None:
    scenes = sw.object_items(per_class=1, seed=0, size=64)[::6][:10]  # 10 scenes of 10 classes
    crops = [it.image for it in scenes]
    labels = [it.label for it in scenes]
    classes = sorted(set(labels) | {"red star", "green heart"})
    prompts = [sw.object_caption(c) for c in classes]
    expected = sum(
        classes[i] == lab
        for i, lab in zip(clip.similarity(crops, prompts).argmax(1).tolist(), labels, strict=True)
    )
    calls = []
    encode_text = clip.encode_text
    monkeypatch.setattr(clip, "encode_text", lambda texts: calls.append(len(texts)) or encode_text(texts))
    assert crop_accuracy(clip, crops, labels, classes, batch=3) == pytest.approx(expected / len(crops))
    assert calls == [len(classes)]  # once, not once per batch of 3 crops (the 200 real prompts take seconds)
    embeddings = crop_embeddings(clip, crops, batch=4)
    assert embeddings.shape[0] == 10 and torch.allclose(embeddings.norm(dim=1), torch.ones(10))
    monkeypatch.setattr(clip, "encode_image", lambda *a: pytest.fail("the embeddings were given"))
    assert crop_accuracy(clip, crops, labels, classes, embeddings=embeddings) == pytest.approx(expected / 10)
    with pytest.raises(ValueError, match="10 crops but 9 labels"):
        crop_accuracy(clip, crops, labels[:9], classes, embeddings=embeddings)


def test_box_crop_grows_the_box_and_stays_inside_the_image() -> None:
    from PIL import Image

    image = Image.new("RGB", (100, 50))
    assert box_crop(image, (10, 10, 30, 20)).size == (24, 12)  # 10% of 20 x 10 on each side
    assert box_crop(image, (0, 0, 100, 50)).size == (100, 50)  # clipped at the borders
