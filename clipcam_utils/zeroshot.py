"""Zero-shot classification on real photos: CLIP names the object in Open Images box crops.

The real profile's counterpart of `benchmarks.zero_shot_accuracy` (ShapesWorld's 64 classes on synthetic
scenes): one crop per image, around the largest box of a protocol class, classified among the 200 classes of
the grid benchmark (100 seen + 100 unseen) with one prompt per class. Chance is 1/200.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from .images import load_image
from .models import ClipModel
from .shapesworld import object_caption

CROP_MARGIN = 0.1  # each side of the box grows by this fraction of its size (context, as in a photo)


def box_crop(image: Image.Image, box: Sequence[float], margin: float = CROP_MARGIN) -> Image.Image:
    """The box (pixels, x1 y1 x2 y2) of `image` grown by `margin` of its size on each side, clipped."""
    x1, y1, x2, y2 = box
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    w, h = image.size
    left, top = max(0, int(x1 - dx)), max(0, int(y1 - dy))
    right, bottom = min(w, max(left + 1, int(round(x2 + dx)))), min(h, max(top + 1, int(round(y2 + dy))))
    return image.crop((left, top, right, bottom))


def labelled_crops(records, classes: Sequence[str], n: int) -> tuple[list[Image.Image], list[str]]:
    """Up to `n` crops, one per image record: the largest box whose label is one of `classes`."""
    wanted = set(classes)
    crops, labels = [], []
    for record in records:
        objects = [o for o in record.objects if o.label in wanted]
        if not objects:
            continue
        best = max(objects, key=lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))
        crops.append(box_crop(load_image(record.image_path), best.box))
        labels.append(best.label)
        if len(crops) == n:
            break
    return crops, labels


@torch.no_grad()
def crop_embeddings(clip: ClipModel, crops: Sequence[Image.Image], batch: int = 32) -> torch.Tensor:
    """Unit-length image embeddings of the crops (n, d), `batch` crops per forward pass; reusable for every
    template, since only the texts change."""
    if not crops:
        raise ValueError("no crops to classify; the records hold no box of the given classes")
    chunks = [
        clip.encode_image(clip.preprocess(list(crops[s : s + batch]))).float()
        for s in range(0, len(crops), batch)
    ]
    return F.normalize(torch.cat(chunks), dim=-1)


@torch.no_grad()
def crop_accuracy(
    clip: ClipModel, crops: Sequence[Image.Image], labels: Sequence[str], classes: Sequence[str],
    template: str = "a photo of a {}", batch: int = 32, embeddings: torch.Tensor | None = None,
) -> float:  # fmt: skip
    """Top-1 accuracy of CLIP over `classes` (one prompt each, article fixed) on the labelled crops.

    The class prompts are encoded once (not once per batch of crops); `embeddings` from `crop_embeddings`
    skips the image tower (e.g. when comparing templates on the same crops).
    """
    image = crop_embeddings(clip, crops, batch) if embeddings is None else embeddings
    if len(image) != len(labels):
        raise ValueError(f"{len(image)} crops but {len(labels)} labels")
    classes = list(classes)
    text = F.normalize(clip.encode_text([object_caption(c, template) for c in classes]).float(), dim=-1)
    pred = (image @ text.T).argmax(1).tolist()  # Eq. 1 up to the positive logit scale: the same ranking
    return sum(classes[p] == label for p, label in zip(pred, labels, strict=True)) / len(labels)


def openimages_crops(
    n: int = 256, seed: int = 1234, download_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[list[Image.Image], list[str], list[str]]:  # fmt: skip
    """`n` labelled box crops of Open Images classes (default: the protocol's 200), and the classes (sorted).

    The zoo request is sized before downloading, as for the grids (`grids.plan_queries`): `n` images over the
    seen and the unseen classes taken in turn (256 crops of the 200 classes: every class once or twice),
    drawn with `seed`; each returned image gives the crop of its class's largest box.
    """
    from .grids import plan_queries
    from .openimages import load_openimages_zoo
    from .protocol import load_seen_unseen_classes

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    seen, unseen = load_seen_unseen_classes()
    classes = sorted(seen | unseen) if classes is None else sorted(set(classes))
    unknown = sorted(set(classes) - seen - unseen)
    if unknown:
        raise ValueError(f"not classes of the protocol: {unknown}; see protocol.load_seen_unseen_classes()")
    groups = [[c for c in classes if c in seen], [c for c in classes if c in unseen]]
    records = load_openimages_zoo(plan_queries(groups, n, seed), seed=seed, download_dir=download_dir)
    crops, labels = labelled_crops(records, classes, n)
    return crops, labels, classes


def openimages_zero_shot_accuracy(
    clip: ClipModel, n: int = 256, seed: int = 1234, template: str = "a photo of a {}",
    download_dir: str | Path | None = None,
) -> float:  # fmt: skip
    """Top-1 accuracy over the protocol's 200 Open Images classes on `n` box crops (FiftyOne zoo, seeded)."""
    crops, labels, classes = openimages_crops(n, seed, download_dir)
    return crop_accuracy(clip, crops, labels, classes, template)
