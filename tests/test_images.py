"""tf2dasl.io.images: read_image always returns (H, W, 3) uint8 BGR, upright, or raises ImageError."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from tf2dasl.io.images import IMAGE_EXTENSIONS, ImageError, apply_exif_orientation, iter_image_paths, read_image


def _bgr_pattern(h: int = 20, w: int = 40) -> np.ndarray:
    """Left half red, right half green, top-left 4x4 white: every flip/rotation is distinguishable."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)
    img[:, w // 2 :] = (0, 255, 0)
    img[:4, :4] = 255
    return img


def test_png_roundtrip_is_bgr(tmp_path):
    img = _bgr_pattern()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (20, 40, 3)
    np.testing.assert_array_equal(out, img)


def test_exif_orientation_6_is_applied(tmp_path):
    rgb = _bgr_pattern()[:, :, ::-1].copy()
    pil = Image.fromarray(rgb)
    exif = pil.getexif()
    exif[0x0112] = 6  # stored pixels must be rotated 90 degrees clockwise for display
    path = tmp_path / "rot6.jpg"
    pil.save(path, "JPEG", quality=95, exif=exif)
    out = read_image(path)
    assert out.shape == (40, 20, 3)  # width and height swapped
    expected = cv2.rotate(_bgr_pattern(), cv2.ROTATE_90_CLOCKWISE)
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 6  # JPEG loss only
    # agrees with OpenCV's own EXIF handling (IMREAD_COLOR) and with Pillow's exif_transpose
    np.testing.assert_array_equal(out, cv2.imread(str(path), cv2.IMREAD_COLOR))
    from PIL import ImageOps

    pil_upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))[:, :, ::-1]
    assert np.abs(out.astype(int) - pil_upright.astype(int)).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_exif_orientation_matches_pillow(orientation):
    arr = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    pil = Image.fromarray(arr)
    exif = pil.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, "PNG", exif=exif)
    from PIL import ImageOps

    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    np.testing.assert_array_equal(apply_exif_orientation(arr, orientation), expected)


def test_grayscale_becomes_three_channels(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (8, 1))
    for ext in (".png", ".pgm"):
        path = tmp_path / f"g{ext}"
        cv2.imwrite(str(path), gray)
        out = read_image(path)
        assert out.shape == (8, 25, 3) and out.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], gray)


def test_16bit_png_scaled_to_8bit(tmp_path):
    img16 = np.zeros((4, 6, 3), np.uint16)
    img16[..., 0] = 65535
    img16[..., 1] = 257 * 128  # -> 128
    img16[..., 2] = 1000  # -> round(1000 * 255 / 65535) = 4
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), img16)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    assert (out[..., 0] == 255).all() and (out[..., 1] == 128).all() and (out[..., 2] == 4).all()
    gray16 = np.full((3, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    assert (read_image(tmp_path / "g16.png") == 255).all()


def test_rgba_alpha_dropped_on_black(tmp_path):
    bgra = np.zeros((5, 5, 4), np.uint8)
    bgra[..., :3] = (200, 100, 50)
    bgra[:, :2, 3] = 255  # opaque
    bgra[:, 2:, 3] = 0  # transparent -> black
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), bgra)
    out = read_image(path)
    assert out.shape == (5, 5, 3)
    assert (out[:, :2] == (200, 100, 50)).all()
    assert (out[:, 2:] == 0).all()
    # gray + alpha (Pillow "LA")
    gray_alpha = np.dstack([np.full((3, 3), 90, np.uint8), np.full((3, 3), 255, np.uint8)])
    Image.fromarray(gray_alpha).save(tmp_path / "la.png")  # mode LA
    assert (read_image(tmp_path / "la.png") == 90).all()


def test_webp_and_ppm_and_bmp(tmp_path):
    img = _bgr_pattern(16, 24)
    for ext, params in ((".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".ppm", []), (".bmp", []), (".tiff", [])):
        path = tmp_path / f"x{ext}"
        assert cv2.imwrite(str(path), img, params)
        out = read_image(path)
        assert out.shape == (16, 24, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, img)  # all lossless here (webp quality > 100)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=r"nope\.jpg: file not found"):
        read_image(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.png", b"hello, I am not an image\n" * 10, "cannot decode image"),
        ("noise.jpg", bytes(range(256)) * 8, "cannot decode image"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        read_image(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_truncated_jpeg(tmp_path):
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert ok
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.tobytes()[:200])
    with pytest.raises(ImageError, match="cannot decode image"):
        read_image(path)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)


def test_image_error_is_value_error():
    assert issubclass(ImageError, ValueError)


def test_iter_image_paths(tmp_path):
    png = cv2.imencode(".png", _bgr_pattern(4, 4))[1].tobytes()
    for name in ("b.png", "a.JPG", "c.webp", "d.tiff"):
        (tmp_path / name).write_bytes(png)  # listing goes by extension only
    (tmp_path / "notes.txt").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "deep.png").write_bytes(png)  # not listed: no recursion
    found = iter_image_paths([tmp_path, tmp_path / "notes.txt", tmp_path / "b.png"])
    # folder: image extensions (any case), sorted; an explicit file is kept whatever its extension; no duplicates
    assert [p.name for p in found] == ["a.JPG", "b.png", "c.webp", "d.tiff", "notes.txt"]
    assert [p.name for p in iter_image_paths(str(tmp_path / "c.webp"))] == ["c.webp"]
    with pytest.raises(ImageError, match="missing_dir: file not found"):
        iter_image_paths([tmp_path, tmp_path / "missing_dir"])
    assert ".jpg" in IMAGE_EXTENSIONS and ".pgm" in IMAGE_EXTENSIONS
