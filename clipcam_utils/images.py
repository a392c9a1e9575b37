"""Read any image a user may hand us and turn it into 8-bit RGB, with clear errors for what cannot be read."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 8  # smaller images are upsampled; their saliency maps carry little information
MAX_PIXELS = 100_000_000  # the pixel limit (e.g. 10000 x 10000): larger image files are refused
DECODE_PIXELS = 16_000_000  # larger files are decoded reduced (by 2, 4, 8, ...) so that memory stays bounded
ORIGINAL_SIZE = "clipcam_original_size"  # Image.info key: (file width, height, decoded width, height)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit / float images to 0..255 (by their type's range, not by their own min and max)."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        top = (
            65535 if arr.max(initial=0) > 255 or arr.dtype.newbyteorder("=") in (np.uint16, np.int32) else 255
        )
        return np.clip(arr.astype(np.float64) / top * 255.0, 0, 255).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("image array contains NaN or infinite values")
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        return np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    raise ValueError(f"unsupported image array dtype {arr.dtype}")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 2:
        return Image.fromarray(_to_uint8(arr)).convert("RGB")
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = _to_uint8(arr)
        if arr.shape[2] == 1:
            return Image.fromarray(arr[..., 0]).convert("RGB")
        return _flatten_alpha(Image.fromarray(arr)) if arr.shape[2] == 4 else Image.fromarray(arr)
    raise ValueError(f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {arr.shape}")


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite transparency onto white, as a viewer would show it (CLIP has no alpha channel)."""
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def load_image(source: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """Open a path, PIL image or array as 8-bit RGB.

    Conversions: grayscale -> RGB, RGBA / palette with transparency -> composited on white, 16-bit -> scaled
    to 8 bits, EXIF rotation applied. Tiny images (under 8 px a side) and files of several frames (only the first is
    used) load with a warning. Missing, empty or
    corrupt files, URLs and files over `MAX_PIXELS` raise an error that names the file. Files over
    `DECODE_PIXELS` are decoded reduced (JPEG draft mode, else `Image.reduce`); `original_size` gives the
    file's own size, and `to_original_pixels` maps boxes found on the decoded image back to it.
    """
    original = None
    if isinstance(source, np.ndarray):
        im = _from_array(source)
    elif isinstance(source, Image.Image):
        im = source
        original = _recorded_original(source)
    elif isinstance(source, (str, Path)):
        if isinstance(source, str) and _URL.match(source.strip()):
            raise ValueError(
                f"URLs are not supported: {source.strip()}; download the file first and give its path"
            )
        im, original = _open_file(Path(source))
    else:
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")
    im = _normalise_mode(im)
    if original is not None and original != im.size:
        im.info[ORIGINAL_SIZE] = (*original, *im.size)
    if min(original or im.size) < MIN_SIDE:
        warnings.warn(
            f"image is only {im.size[0]}x{im.size[1]} px; it will be upsampled", UserWarning, stacklevel=2
        )
    return im


def _open_file(path: Path) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image file (reduced when it is large); returns the image and the file's size (EXIF-upright)."""
    if not path.exists():
        raise FileNotFoundError(
            f"image not found: {path} (check the path; relative paths start at {Path.cwd()})"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the path of one image file")
    if path.stat().st_size == 0:
        raise ValueError(f"image file {path} is empty (0 bytes); re-download or re-export it")
    limit = f"the pixel limit is {MAX_PIXELS:,} (clipcam_utils.images.MAX_PIXELS); downscale the file first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            opened = Image.open(path)
        with opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise ValueError(f"{path} has {width}x{height} = {width * height:,} pixels; {limit}")
            factor = _reduction(width * height)
            if factor > 1:  # JPEG decodes directly at 1/2, 1/4 or 1/8 scale; other formats ignore this
                opened.draft("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:  # GIF/TIFF/WebP animations and multi-page files: say which one is used
                warnings.warn(
                    f"{path} holds {frames} frames or pages; only the first is used",
                    UserWarning,
                    stacklevel=3,
                )
            opened.load()
            im = ImageOps.exif_transpose(opened)
        if im.size != opened.size and im.size == (opened.height, opened.width):
            width, height = height, width  # EXIF rotated the picture by 90 degrees
        factor = _reduction(im.width * im.height)
        if factor > 1:  # no draft mode for this format: decode in full (bounded by MAX_PIXELS), then reduce
            im = _normalise_mode(im).reduce(factor)
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than PIL allows"
        raise ValueError(f"{path} has {size}; {limit}") from err
    except UnidentifiedImageError as err:
        raise ValueError(f"{path} is not an image PIL can read (corrupt or unsupported format)") from err
    except (OSError, SyntaxError) as err:
        raise ValueError(
            f"{path} could not be decoded ({err}); the file is probably truncated or corrupt"
        ) from err
    return im, (width, height)


def _reduction(pixels: int) -> int:
    """The power of two by which to divide each side so that at most DECODE_PIXELS remain."""
    factor = 1
    while pixels / factor**2 > DECODE_PIXELS:
        factor *= 2
    return factor


def _recorded_original(im: Image.Image) -> tuple[int, int] | None:
    """The file size `load_image` recorded on a reduced decode; None if absent or the image has changed size."""
    value = im.info.get(ORIGINAL_SIZE)
    if isinstance(value, tuple) and len(value) == 4 and tuple(value[2:]) == im.size:
        return int(value[0]), int(value[1])
    return None


def original_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of the file `im` was loaded from when `load_image` decoded it reduced, else `im.size`."""
    return _recorded_original(im) or im.size


def to_original_pixels(
    box: Sequence[float] | None, im: Image.Image
) -> tuple[float, float, float, float] | None:
    """A box in the pixels of `im` (as decoded) mapped to the pixels of its file (`original_size`)."""
    return _rescale(box, im.size, original_size(im))


def to_decoded_pixels(
    box: Sequence[float] | None, im: Image.Image
) -> tuple[float, float, float, float] | None:
    """The inverse of `to_original_pixels`: a box in the file's pixels mapped onto `im` as decoded."""
    return _rescale(box, original_size(im), im.size)


def _rescale(box, src: tuple[int, int], dst: tuple[int, int]):
    if box is None:
        return None
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def _normalise_mode(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _from_array(np.asarray(im))
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        return _flatten_alpha(im)
    return im.convert("RGB")
