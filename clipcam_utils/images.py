"""Read any image a user may hand us and turn it into 8-bit RGB, with clear errors for what cannot be read."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 8  # smaller images are upsampled; their saliency maps carry little information
MAX_PIXELS = 40_000_000  # decode larger JPEGs at reduced size instead of exhausting memory


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
    to 8 bits, EXIF rotation applied. Tiny images (under 8 px a side) load with a warning. Missing, empty or
    corrupt files raise an error that names the file.
    """
    if isinstance(source, np.ndarray):
        im = _from_array(source)
    elif isinstance(source, Image.Image):
        im = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"image not found: {path} (check the path; relative paths start at {Path.cwd()})"
            )
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give the path of one image file")
        if path.stat().st_size == 0:
            raise ValueError(f"image file {path} is empty (0 bytes); re-download or re-export it")
        try:
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    opened.draft(
                        "RGB", (opened.width // 4, opened.height // 4)
                    )  # JPEG: decode at reduced size
                opened.load()
                im = ImageOps.exif_transpose(opened)
        except Image.DecompressionBombError as err:
            raise ValueError(
                f"{path} is too large to decode safely ({err}); downscale it first, or raise "
                "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
            ) from err
        except UnidentifiedImageError as err:
            raise ValueError(f"{path} is not an image PIL can read (corrupt or unsupported format)") from err
        except (OSError, SyntaxError) as err:
            raise ValueError(
                f"{path} could not be decoded ({err}); the file is probably truncated or corrupt"
            ) from err
    else:
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")
    im = _normalise_mode(im)
    if min(im.size) < MIN_SIDE:
        warnings.warn(
            f"image is only {im.size[0]}x{im.size[1]} px; it will be upsampled", UserWarning, stacklevel=2
        )
    return im


def _normalise_mode(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _from_array(np.asarray(im))
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        return _flatten_alpha(im)
    return im.convert("RGB")
