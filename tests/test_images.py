"""images.load_image: every image a user may hand us becomes 8-bit RGB, or a clear error naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipcam_utils import images
from clipcam_utils.images import load_image


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _rgb(im: Image.Image) -> np.ndarray:
    assert isinstance(im, Image.Image) and im.mode == "RGB"
    return np.asarray(im)


# ---------------------------------------------------------------------------------------------- files that fail


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match=r"image not found: .*missing\.jpg \(check the path"):
        load_image(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        load_image(str(path))


def test_directory(tmp_path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder; give the path of one image file"):
        load_image(tmp_path)


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png is empty \(0 bytes\)"):
        load_image(path)


def test_random_bytes(tmp_path) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"garbage\.jpg is not an image PIL can read"):
        load_image(path)


def test_truncated_jpeg(tmp_path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(_noise(120, 160)).save(good, quality=90)
    data = good.read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    assert load_image(good).size == (160, 120)
    with pytest.raises(
        ValueError, match=r"truncated\.jpg could not be decoded .*probably truncated or corrupt"
    ):
        load_image(bad)


def test_wrong_source_type() -> None:
    with pytest.raises(TypeError, match="expected a path, PIL image or numpy array, got list"):
        load_image([[0, 0, 0]])


# ---------------------------------------------------------------------------------------------- modes


def test_rgb_file_round_trip(tmp_path) -> None:
    arr = _noise(30, 40)
    path = tmp_path / "rgb.png"
    Image.fromarray(arr).save(path)
    np.testing.assert_array_equal(_rgb(load_image(path)), arr)
    np.testing.assert_array_equal(_rgb(load_image(Path(path))), arr)
    im = Image.fromarray(arr)
    assert load_image(im) is im  # RGB PIL images pass through untouched


def test_grayscale(tmp_path) -> None:
    gray = np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "L"
    out = _rgb(load_image(path))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_composited_on_white(tmp_path) -> None:
    arr = np.zeros((10, 12, 4), np.uint8)
    arr[..., :3] = (255, 0, 0)
    arr[..., 3] = 255
    arr[0, 0] = (12, 34, 56, 0)  # fully transparent: white whatever its colour
    arr[0, 1, 3] = 128  # half-transparent red over white
    path = tmp_path / "rgba.png"
    Image.fromarray(arr).save(path)
    for source in (path, Image.open(path), arr):
        out = _rgb(load_image(source))
        assert tuple(out[0, 0]) == (255, 255, 255)
        assert tuple(out[5, 5]) == (255, 0, 0)
        assert out[0, 1, 0] == 255 and abs(int(out[0, 1, 1]) - 127) <= 1 and abs(int(out[0, 1, 2]) - 127) <= 1


def test_gray_with_alpha() -> None:
    la = Image.fromarray(np.stack([np.full((9, 9), 50, np.uint8), np.full((9, 9), 0, np.uint8)], -1), "LA")
    assert tuple(_rgb(load_image(la))[4, 4]) == (255, 255, 255)


def test_palette(tmp_path) -> None:
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((5, 5), 1)
    path = tmp_path / "palette.png"
    pal.save(path)
    out = _rgb(load_image(path))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[5, 5]) == (0, 255, 0)
    # Palette with a transparent index: that index is composited on white.
    pal.info["transparency"] = 0
    path_t = tmp_path / "palette_t.png"
    pal.save(path_t, transparency=0)
    assert Image.open(path_t).mode == "P"
    out = _rgb(load_image(path_t))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[5, 5]) == (0, 255, 0)


def test_16_bit_png_scaled_by_type_range(tmp_path) -> None:
    arr = np.zeros((10, 12), np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2], arr[0, 3] = 65535, 32768, 257, 200
    path = tmp_path / "sixteen.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I;16"
    for source in (path, arr):
        out = _rgb(load_image(source))
        assert tuple(out[0, 0]) == (255, 255, 255)
        assert out[0, 1, 0] == 128  # 32768 / 65535 * 255 = 127.5
        assert out[0, 2, 0] == 1  # 257 / 65535 * 255 = 1
        assert out[0, 3, 0] == 1  # a dark 16-bit value stays dark: scaled by the type, not by the image
        assert out[5, 5, 0] == 0


def test_16_bit_big_endian_dark_image() -> None:
    im = Image.frombytes("I;16B", (8, 8), np.full((8, 8), 200, ">u2").tobytes())
    assert _rgb(load_image(im))[0, 0, 0] == 1  # 200 / 65535 * 255


def test_cmyk_and_exif_rotation(tmp_path) -> None:
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # red
    assert _rgb(load_image(cmyk))[0, 0, 0] > 200
    arr = _noise(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    im = load_image(path)
    assert im.size == (40, 60)  # width and height swapped by the EXIF transpose


# ---------------------------------------------------------------------------------------------- sizes


def test_tiny_image_warns() -> None:
    with pytest.warns(UserWarning, match=r"image is only 2x2 px; it will be upsampled"):
        im = load_image(np.full((2, 2, 3), 7, np.uint8))
    assert im.size == (2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(np.zeros((images.MIN_SIDE, images.MIN_SIDE, 3), np.uint8))  # 8 px is fine


def test_huge_jpeg_decoded_at_reduced_size(tmp_path, monkeypatch) -> None:
    path = tmp_path / "huge.jpg"
    Image.fromarray(_noise(200, 400)).save(path)
    assert load_image(path).size == (400, 200) and images.original_size(load_image(path)) == (400, 200)
    monkeypatch.setattr(images, "DECODE_PIXELS", 10_000)
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (100, 50)  # JPEG draft mode: decoded at 1/4 scale
    assert images.original_size(im) == (400, 200)  # ... and it knows the file's own size
    assert images.to_original_pixels((10, 5, 20, 50), im) == (40, 20, 80, 200)
    assert images.to_decoded_pixels((40, 20, 80, 200), im) == (10, 5, 20, 50)
    assert images.original_size(im.crop((0, 0, 50, 50))) == (50, 50)  # a changed image is what it is


def test_huge_png_is_reduced_after_decoding(tmp_path, monkeypatch) -> None:
    """No draft mode for PNG: decoded in full (bounded by MAX_PIXELS), then reduced by a power of two."""
    path = tmp_path / "huge.png"
    Image.fromarray(_noise(300, 500)).save(path, compress_level=0)
    monkeypatch.setattr(images, "DECODE_PIXELS", 10_000)
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (125, 75) and images.original_size(im) == (500, 300)


def test_huge_jpeg_with_exif_rotation_keeps_the_upright_size(tmp_path, monkeypatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(_noise(200, 400)).save(path, exif=exif.tobytes())
    monkeypatch.setattr(images, "DECODE_PIXELS", 10_000)
    im = load_image(path)
    assert im.size == (50, 100) and images.original_size(im) == (200, 400)


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG with only its signature and header: enough for PIL to read the size, tiny on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


@pytest.mark.parametrize(("width", "height"), [(12_000, 10_000), (20_000, 10_000)])
def test_pixel_limit_is_ours_not_pils_bomb_notice(tmp_path, width, height) -> None:
    """120 M px (PIL would only warn) and 200 M px (PIL refuses) both get the documented limit, nothing else."""
    path = _png_header(tmp_path / "giant.png", width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(ValueError) as info:
            load_image(path)
    message = str(info.value)
    assert "giant.png" in message and f"{width * height:,} pixels" in message
    assert "pixel limit is 100,000,000" in message and "MAX_PIXELS" in message
    assert "decompression bomb" not in message.lower()


def test_image_beyond_pils_bomb_limit(tmp_path, monkeypatch) -> None:
    """Past twice PIL.Image.MAX_IMAGE_PIXELS, PIL refuses at open: the message is still ours."""
    path = tmp_path / "huge.jpg"
    Image.fromarray(_noise(200, 400)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 80,000 px > 2x the limit
    with pytest.raises(ValueError, match=r"huge\.jpg has 80,000 pixels; the pixel limit"):
        load_image(path)


@pytest.mark.parametrize(
    "url", ["http://example.com/a//b.jpg", "https://example.com/x.png?s=1", "HTTPS://x/y"]
)
def test_urls_are_refused_unmangled(url) -> None:
    with pytest.raises(ValueError) as info:
        load_image(url)
    assert url in str(info.value) and "URLs are not supported" in str(info.value)
    assert "download the file first" in str(info.value)


# ---------------------------------------------------------------------------------------------- arrays


def test_float_array_in_unit_range() -> None:
    arr = np.zeros((10, 10, 3), np.float32)
    arr[0, 0] = (1.0, 0.5, 0.0)
    out = _rgb(load_image(arr))
    assert tuple(out[0, 0]) == (255, 128, 0)
    arr255 = np.full((10, 10, 3), 200.0)
    assert _rgb(load_image(arr255))[0, 0, 0] == 200  # floats above 1 are read as 0..255
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_image(np.full((10, 10), np.nan))


def test_integer_and_bool_arrays() -> None:
    ints = np.full((10, 10, 3), 200, np.int64)
    assert _rgb(load_image(ints))[0, 0, 0] == 200
    gray = np.full((10, 10), 1000, np.int64)  # above 255: a 16-bit range
    assert _rgb(load_image(gray))[0, 0, 0] == round(1000 / 65535 * 255)
    mask = np.zeros((10, 10), bool)
    mask[2, 3] = True
    out = _rgb(load_image(mask))
    assert tuple(out[2, 3]) == (255, 255, 255) and tuple(out[0, 0]) == (0, 0, 0)
    one = np.full((10, 10, 1), 99, np.uint8)
    assert tuple(_rgb(load_image(one))[0, 0]) == (99, 99, 99)
    with pytest.raises(ValueError, match="unsupported image array dtype complex128"):
        load_image(np.zeros((10, 10), complex))


@pytest.mark.parametrize("shape", [(10, 10, 2), (10, 10, 5), (1, 10, 10, 3), (10,), (3, 10, 10)])
def test_bad_array_shapes(shape) -> None:
    with pytest.raises(
        ValueError, match=r"image array must be \(H, W\), \(H, W, 1\), \(H, W, 3\) or \(H, W, 4\)"
    ):
        load_image(np.zeros(shape, np.uint8))
