"""HICO-DET human-object pairs as :class:`~clipcam_utils.records.InteractionRecord` lists.

Reads the official ``anno_bbox.mat`` and the widely used ``instances_<split>2015.json`` conversion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipcam_utils.records import (
    MAX_EXAMPLES,
    HoiClass,
    Interaction,
    InteractionRecord,
    LoadReport,
    RecordList,
    finish_report,
    image_size,
    pixel_box,
)

__all__ = ["load_hicodet", "load_hoi_classes"]


@dataclass
class _RawHicoImage:
    filename: str
    size: tuple[int, int]
    pairs: list[Interaction]


def _positive_size(value: Any) -> tuple[int, int] | None:
    try:
        width, height = value
    except (TypeError, ValueError):
        return None
    if isinstance(width, bool) or isinstance(height, bool):
        return None
    try:
        if int(width) != width or int(height) != height or width <= 0 or height <= 0:
            return None
    except (TypeError, ValueError):
        return None
    return int(width), int(height)


def _add_pair(
    raw: _RawHicoImage,
    human: Any,
    obj: Any,
    cls: HoiClass,
    rare: bool | None,
    report: LoadReport,
    where: str,
) -> None:
    boxes = []
    for coords in (human, obj):
        try:
            values = [float(v) for v in coords]
        except (TypeError, ValueError):
            values = []
        if len(values) != 4:
            report.skip("malformed box (expected [x1, y1, x2, y2])", where)
            return
        box, problem = pixel_box(values, raw.size)
        if box is None:
            report.skip(problem or "invalid box", where)
            return
        boxes.append(box)
    raw.pairs.append(Interaction(boxes[0], boxes[1], cls.verb, cls.object, cls.hoi_id, rare))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}); the file may be truncated, download it again"
        ) from error


_HICO_JSON_KEYS = ("annotation", "filenames", "size", "verbs", "objects", "correspondence")


def _json_hoi_classes(data: Mapping[str, Any], path: Path) -> list[HoiClass]:
    verbs, objects = data["verbs"], data["objects"]
    classes = []
    for index, entry in enumerate(data["correspondence"]):
        try:
            hoi, obj, verb = (int(v) for v in entry)
            if hoi != index:
                raise ValueError
            classes.append(HoiClass(hoi + 1, str(verbs[verb]), str(objects[obj])))
        except (TypeError, ValueError, IndexError) as error:
            raise ValueError(
                f"{path}: correspondence[{index}] = {entry!r} is not [hoi, object, verb] with valid 0-based "
                "indices in HOI order; use the original instances_<split>.json"
            ) from error
    return classes


def _read_hicodet_json(path: Path, report: LoadReport) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    data = _load_json(path)
    if not isinstance(data, dict) or any(key not in data for key in _HICO_JSON_KEYS):
        found = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path} is not a HICO-DET instances_<split>.json: it needs keys {', '.join(_HICO_JSON_KEYS)} "
            f"(found: {found})"
        )
    annotations, filenames, sizes = data["annotation"], data["filenames"], data["size"]
    if not len(annotations) == len(filenames) == len(sizes):
        raise ValueError(
            f"{path}: 'annotation', 'filenames' and 'size' must have one entry per image, got "
            f"{len(annotations)}, {len(filenames)} and {len(sizes)}"
        )
    classes = _json_hoi_classes(data, path)
    rare_ids = {int(i) for i in data["rare"]} if "rare" in data else None
    images = []
    for index, (entry, filename, size_value) in enumerate(zip(annotations, filenames, sizes, strict=True)):
        size = _positive_size(size_value)
        if size is None or not isinstance(filename, str):
            report.skip("image entry without a file name or a (width, height) size", f"index {index}")
            continue
        raw = _RawHicoImage(filename, size, [])
        keys = ("boxes_h", "boxes_o", "hoi", "verb", "object")
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), list) for k in keys):
            report.skip(
                "malformed annotation entry (needs lists boxes_h, boxes_o, hoi, verb, object)", filename
            )
            continue
        if len({len(entry[k]) for k in keys}) != 1:
            report.skip(
                "annotation lists of different lengths", filename, count=max(len(entry[k]) for k in keys)
            )
            continue
        for humans, objs, hoi, verb, obj in zip(*(entry[k] for k in keys), strict=True):
            where = f"{filename} (HOI {hoi})"
            if isinstance(hoi, bool) or not isinstance(hoi, int) or not 0 <= hoi < len(classes):
                report.skip("HOI index out of range", where)
                continue
            cls = classes[hoi]
            try:
                consistent = data["verbs"][verb] == cls.verb and data["objects"][obj] == cls.object
            except (IndexError, TypeError):
                consistent = False
            if not consistent:
                report.skip("verb/object index disagrees with the correspondence table", where)
                continue
            _add_pair(raw, humans, objs, cls, None if rare_ids is None else hoi in rare_ids, report, where)
        images.append(raw)
    if "empty" in data:
        listed = {filenames[i] for i in data["empty"] if isinstance(i, int) and 0 <= i < len(filenames)}
        unannotated = {raw.filename for raw in images if not raw.pairs}
        if listed != unannotated:
            report.note(
                f"'empty' lists {len(listed)} images but {len(unannotated)} have no pairs after loading"
            )
    return images, classes


def _mat_items(value: Any) -> list[Any]:
    array = np.asarray(value)
    if array.dtype == object and array.size == 1 and isinstance(array.ravel()[0], np.ndarray):
        array = np.asarray(array.ravel()[0])
    return list(array.ravel()) if array.size else []


def _mat_str(value: Any) -> str:
    items = _mat_items(value)
    if len(items) != 1:
        raise ValueError(f"expected one string, got {value!r}")
    return str(items[0]).strip()


def _mat_number(value: Any) -> float:
    items = _mat_items(value)
    if len(items) != 1:
        raise ValueError(f"expected one number, got {value!r}")
    return float(items[0])


def _mat_box(struct: Any) -> list[float]:
    return [_mat_number(struct[name]) for name in ("x1", "y1", "x2", "y2")]


def _mat_hoi_classes(mat: Mapping[str, Any], path: Path) -> list[HoiClass]:
    actions = _mat_items(mat["list_action"])
    try:
        return [HoiClass(i + 1, _mat_str(a["vname"]), _mat_str(a["nname"])) for i, a in enumerate(actions)]
    except (ValueError, KeyError, IndexError) as error:
        raise ValueError(
            f"{path}: list_action must be HICO-DET's struct array with fields 'vname' and 'nname' ({error})"
        ) from error


def _read_hicodet_mat(
    path: Path, split: str, report: LoadReport
) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    except Exception as error:  # scipy raises many types for files that are not v5 MAT files
        raise ValueError(
            f"cannot read {path} as a MATLAB v5 file ({error}); expected HICO-DET's anno_bbox.mat"
        ) from error
    key = f"bbox_{split}"
    if key not in mat or "list_action" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise ValueError(
            f"{path} lacks '{key}' and/or 'list_action' (found: {found}); expected anno_bbox.mat"
        )
    classes = _mat_hoi_classes(mat, path)
    images = []
    invisible = 0
    for index, entry in enumerate(_mat_items(mat[key])):
        try:
            filename = _mat_str(entry["filename"])
            size_struct = _mat_items(entry["size"])[0]
            size = _positive_size((_mat_number(size_struct["width"]), _mat_number(size_struct["height"])))
            hois = _mat_items(entry["hoi"])
        except (ValueError, KeyError, IndexError, TypeError):
            report.skip("malformed bbox entry (needs filename, size.width/height, hoi)", f"{key}[{index}]")
            continue
        if size is None:
            report.skip("image entry without a positive (width, height) size", filename)
            continue
        raw = _RawHicoImage(filename, size, [])
        for hoi_number, hoi in enumerate(hois, start=1):
            where = f"{filename} (hoi entry {hoi_number})"
            try:
                hoi_id = int(_mat_number(hoi["id"]))
                if "invis" in hoi.dtype.names and _mat_number(hoi["invis"]):
                    invisible += 1
                    continue
                humans = [_mat_box(b) for b in _mat_items(hoi["bboxhuman"])]
                objects = [_mat_box(b) for b in _mat_items(hoi["bboxobject"])]
                connections = np.asarray(hoi["connection"], dtype=float).reshape(-1, 2)
            except (ValueError, KeyError, IndexError, TypeError):
                report.skip("malformed hoi entry (needs id, bboxhuman, bboxobject, connection)", where)
                continue
            if not 1 <= hoi_id <= len(classes):
                report.skip("HOI id out of range", where, count=max(len(connections), 1))
                continue
            for human_index, object_index in connections.astype(int):
                if not (1 <= human_index <= len(humans) and 1 <= object_index <= len(objects)):
                    report.skip("connection index out of range", where)
                    continue
                _add_pair(
                    raw,
                    humans[human_index - 1],
                    objects[object_index - 1],
                    classes[hoi_id - 1],
                    None,
                    report,
                    where,
                )
        images.append(raw)
    if invisible:
        report.note(f"{invisible} HOI annotations are marked invisible (no boxes in the source)")
    return images, classes


def _resolve_annotation_path(annotation_path: str | Path, split: str) -> Path:
    path = Path(annotation_path).expanduser()
    if path.is_dir():
        for name in (f"instances_{split}2015.json", "anno_bbox.mat"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path} has neither instances_{split}2015.json nor anno_bbox.mat; pass the annotation file itself"
        )
    if not path.is_file():
        raise FileNotFoundError(f"HICO-DET annotation file {path} does not exist")
    if path.suffix.lower() not in (".json", ".mat"):
        raise ValueError(
            f"{path}: expected a .json (instances_<split>2015.json) or .mat (anno_bbox.mat) file"
        )
    return path


def _read_hicodet(path: Path, split: str, report: LoadReport) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    if path.suffix.lower() == ".json":
        return _read_hicodet_json(path, report)
    return _read_hicodet_mat(path, split, report)


def load_hoi_classes(annotation_path: str | Path, split: str = "test") -> tuple[HoiClass, ...]:
    """HICO-DET's 600 HOI categories (1-based ids, verb and object names) from a .json or .mat file."""
    path = _resolve_annotation_path(annotation_path, split)
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        if not isinstance(data, dict) or any(
            key not in data for key in ("verbs", "objects", "correspondence")
        ):
            raise ValueError(
                f"{path} lacks 'verbs', 'objects' or 'correspondence'; use instances_<split>.json"
            )
        return tuple(_json_hoi_classes(data, path))
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["list_action"])
    except Exception as error:  # scipy raises many types for files that are not v5 MAT files
        raise ValueError(
            f"cannot read {path} as a MATLAB v5 file ({error}); expected anno_bbox.mat"
        ) from error
    if "list_action" not in mat:
        raise ValueError(f"{path} has no 'list_action'; expected HICO-DET's anno_bbox.mat")
    return tuple(_mat_hoi_classes(mat, path))


def _default_image_dir(annotation: Path, split: str) -> Path:
    candidate = annotation.parent / "images" / f"{split}2015"
    return candidate if candidate.is_dir() else annotation.parent


def load_hicodet(
    annotation_path: str | Path,
    image_dir: str | Path | None = None,
    require_images: bool = True,
    *,
    split: str = "test",
) -> RecordList[InteractionRecord]:
    """Load HICO-DET pairs from ``anno_bbox.mat`` or ``instances_<split>2015.json``.

    Images are looked up in ``image_dir`` (default: ``images/<split>2015`` next to the annotation, else its
    folder). With ``require_images`` annotated images without a file are skipped and reported; without it
    every annotated image is returned (useful for statistics). Boxes are the source's pixel values.
    """
    path = _resolve_annotation_path(annotation_path, split)
    folder = Path(image_dir).expanduser() if image_dir is not None else _default_image_dir(path, split)
    if require_images and not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {folder} does not exist; pass image_dir=<folder with HICO_{split}2015_*.jpg> "
            "or require_images=False to load the annotations alone"
        )
    report = LoadReport("hicodet", path, item_name="pairs")
    raw_images, _ = _read_hicodet(path, split, report)

    records: list[InteractionRecord] = []
    missing: list[str] = []
    mismatched = 0
    for raw in raw_images:
        image_path = folder / raw.filename
        if image_path.is_file():
            try:
                if image_size(image_path) != raw.size:
                    mismatched += 1
            except (OSError, Image.DecompressionBombError) as error:
                if require_images:
                    report.skip("image file cannot be decoded (re-download it)", f"{raw.filename}: {error}")
                    continue
                report.note(f"{raw.filename} cannot be decoded ({error})")
        elif require_images:
            missing.append(raw.filename)
            continue
        else:
            missing.append(raw.filename)
        records.append(
            InteractionRecord(Path(raw.filename).stem, image_path, raw.size, tuple(raw.pairs), "hicodet")
        )
    if require_images and missing:
        if len(missing) == len(raw_images):
            raise FileNotFoundError(
                f"none of the {len(raw_images)} images annotated in {path.name} is in {folder}; point image_dir at "
                f"the folder with HICO_{split}2015_*.jpg, or pass require_images=False to load annotations only"
            )
        report.skip(f"image file not found in {folder}", count=len(missing))
        report.examples[f"image file not found in {folder}"] = missing[:MAX_EXAMPLES]
    elif missing:
        report.note(
            f"{len(missing)} of {len(raw_images)} annotated images have no file in {folder} "
            f"(kept because require_images=False), e.g. {', '.join(missing[:3])}"
        )
    if mismatched:
        report.note(
            f"{mismatched} image files differ in size from their annotation (the annotation size is used)"
        )
    unannotated = sum(1 for record in records if not record.interactions)
    if unannotated:
        report.note(f"{unannotated} images have no annotated human-object pair")
    return finish_report(records, report, sum(record.num_pairs for record in records))
