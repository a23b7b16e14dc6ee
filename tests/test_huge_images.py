"""Bounded memory on huge images: the size is read from the header, large JPEGs are decoded at 1/2,
1/4 or 1/8 (their faces still in full-image pixels), anything else above --max-pixels is refused in one line
before decoding, pictures are drawn at a bounded size; and the 20000x20000 PNG stays under 1 GB in a fresh
process (slow). Images are made in temporary folders, small ones with a tiny ``max_pixels`` where possible."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tf2dasl.geometry.camera import resize_points
from tf2dasl import api
from tf2dasl.batch import files as batch_files
from tf2dasl.io import images
from tf2dasl.io.images import ImageError, decode_image, read_header, read_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from huge_image import LIMIT_MB, error_lines, peak_rss_mb, write_flat_png  # noqa: E402


def _pattern(h: int = 300, w: int = 400) -> np.ndarray:
    """Smooth gradients (JPEG and INTER_AREA agree on them) with a white corner block to see orientation."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)
    img[: h // 5, : w // 5] = 255
    return img


def _jpeg(path: Path, image: np.ndarray, orientation: int = 1) -> Path:
    pil = Image.fromarray(image[:, :, ::-1].copy())
    exif = pil.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    pil.save(path, "JPEG", quality=95, exif=exif)
    return path


@pytest.mark.parametrize("max_pixels, reduction", [(None, 1), (120_000, 1), (119_999, 2), (30_000, 2),
                                                    (29_999, 4), (7_500, 4), (1_900, 8)])
def test_large_jpegs_are_decoded_at_a_reduced_size(tmp_path, max_pixels, reduction):
    full = _pattern()
    path = _jpeg(tmp_path / "a.jpg", full)
    d = decode_image(path, max_pixels)
    assert (d.width, d.height, d.reduction) == (400, 300, reduction)
    assert d.image.shape == (-(-300 // reduction), -(-400 // reduction), 3) and d.image.dtype == np.uint8
    expected = cv2.resize(full, d.image.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(d.image.astype(int) - expected.astype(int)).mean() < 4


def test_reduced_decode_keeps_the_exif_orientation(tmp_path):
    path = _jpeg(tmp_path / "rot6.jpg", _pattern(), orientation=6)
    d = decode_image(path, max_pixels=10_000)
    assert (d.width, d.height, d.reduction) == (300, 400, 4)  # upright size
    expected = cv2.resize(cv2.rotate(_pattern(), cv2.ROTATE_90_CLOCKWISE), (75, 100), interpolation=cv2.INTER_AREA)
    assert d.image.shape == (100, 75, 3) and np.abs(d.image.astype(int) - expected.astype(int)).mean() < 4


def test_too_large_images_are_refused_before_decoding(tmp_path, monkeypatch):
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), _pattern())
    jpg = _jpeg(tmp_path / "a.jpg", _pattern())

    def no_decoding(*a, **k):
        raise AssertionError("decoded an image above the limit")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    cases = [(lambda: decode_image(png, 119_999), png, ""),       # not a JPEG: no reduced decoding
             (lambda: decode_image(jpg, 1_000), jpg, " even decoded at 1/8"),
             (lambda: read_image(jpg, 119_999), jpg, "")]         # read_image never reduces
    for call, path, why in cases:
        with pytest.raises(ImageError) as exc:
            call()
        assert str(exc.value).startswith(f"{path}: 400x300 pixels is more than --max-pixels ")
        assert why in str(exc.value) and "raise --max-pixels" in str(exc.value) and "\n" not in str(exc.value)


def test_png_exif_orientation_is_read_without_decoding_the_png(tmp_path, monkeypatch):
    pil = Image.fromarray(_pattern()[:, :, ::-1].copy())
    exif = pil.getexif()
    exif[0x0112] = 8
    path = tmp_path / "rot8.png"
    pil.save(path, "PNG", exif=exif)
    monkeypatch.setattr(Image.Image, "load", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    header = read_header(path.read_bytes())
    assert (header.width, header.height, header.format, header.orientation) == (400, 300, "PNG", 8)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(path), cv2.rotate(_pattern(), cv2.ROTATE_90_COUNTERCLOCKWISE))


def test_huge_png_header_is_read_without_the_pixels(tmp_path):
    path = write_flat_png(tmp_path / "huge.png", 20000, 20000)
    assert path.stat().st_size < 2_000_000
    header = read_header(path.read_bytes())  # Pillow's decompression-bomb limit does not hide the size
    assert (header.width, header.height, header.format) == (20000, 20000, "PNG")
    with pytest.raises(ImageError, match=r"huge\.png: 20000x20000 pixels is more than --max-pixels 24,000,000"):
        decode_image(path, images.DEFAULT_MAX_PIXELS)


def test_resize_points_keeps_pixel_centres():
    p = np.array([[0.0, 0.0, 2.0], [3.0, 1.0, -1.0]], np.float32)
    up = resize_points(p, 4.0)
    np.testing.assert_allclose(up, [[1.5, 1.5, 8.0], [13.5, 5.5, -4.0]])  # pixel 0 of 1/4 covers 0..3: centre 1.5
    np.testing.assert_allclose(resize_points(up, 0.25), p, atol=1e-6)
    fine = np.array([[1000.123456789, 7.0]])                                      # float32 keeps ~1e-4 of it
    assert resize_points(fine, 3.0).dtype == np.float32
    got = resize_points(fine, 3.0, np.float64)
    assert got.dtype == np.float64 and got[0, 0] == 3 * 1000.123456789 + 1.0


# ---------------------------------------------------------------------------------------- through the model
def test_reduced_decode_gives_full_image_coordinates(mb05_dir, shared_dir, tmp_path, monkeypatch):
    """A photo upscaled 4x and decoded at 1/4 gives 4x the landmarks of the original (within JPEG noise); its
    JSON names the full size and the reduction; pictures are drawn at most PICTURE_MAX_PIXELS."""
    src = cv2.imread(str(shared_dir / "data" / "images" / "JianzhuGuo.jpg"))  # 413x551, one face
    h, w = src.shape[:2]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    orig = tmp_path / "a" / "guo.jpg"
    cv2.imwrite(str(orig), src, [cv2.IMWRITE_JPEG_QUALITY, 98])
    big = tmp_path / "b" / "guo.jpg"
    cv2.imwrite(str(big), cv2.resize(src, (4 * w, 4 * h), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, 98])
    box = [60.0, 90.0, 330.0, 400.0]
    s1 = api.reconstruct_paths([orig], mb05_dir, tmp_path / "o1", detector="haar", progress=False,
                               boxes={"guo.jpg": [box]})
    big_box = resize_points(np.reshape(box, (2, 2)), 4.0).reshape(4).tolist()
    monkeypatch.setattr(batch_files, "PICTURE_MAX_PIXELS", 40_000)
    s4 = api.reconstruct_paths([big], mb05_dir, tmp_path / "o4", outputs=["overlay"], detector="haar",
                               progress=False, boxes={"guo.jpg": [big_box]}, max_pixels=w * h + 1)
    assert s1.complete and s4.complete
    r1 = json.loads((tmp_path / "o1" / "guo.json").read_text())
    r4 = json.loads((tmp_path / "o4" / "guo.json").read_text())
    assert "decode_reduction" not in r1 and r4["decode_reduction"] == 4
    assert (r4["width"], r4["height"]) == (4 * w, 4 * h)
    lm1 = np.array(r1["faces"][0]["landmarks_3d"])
    lm4 = np.array(r4["faces"][0]["landmarks_3d"])
    err = np.linalg.norm(lm4[:, :2] - resize_points(lm1, 4.0)[:, :2], axis=1)
    face = np.ptp(lm4[:, 0])  # ~ 4 * 200 px
    assert np.median(err) < 0.01 * face, (np.median(err), face)
    np.testing.assert_allclose(r4["faces"][0]["pose"]["yaw"], r1["faces"][0]["pose"]["yaw"], atol=2.0)
    overlay = read_header((tmp_path / "o4" / "guo_overlay.png").read_bytes())
    assert overlay.width * overlay.height <= 40_000 and abs(overlay.width / overlay.height - w / h) < 0.02


# ------------------------------------------------------------------------------------- peak memory (slow)
@pytest.mark.slow
def test_20000x20000_png_stays_under_1_gb(mb05_dir, tmp_path):
    huge = write_flat_png(tmp_path / "huge.png", 20000, 20000)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tf2dasl.cli", "reconstruct", str(huge), "--model", str(mb05_dir),
           "--out", str(out), "--overlay", "--detector", "haar"]
    mb, rc, err, _ = peak_rss_mb(cmd)
    assert rc == 1 and mb < LIMIT_MB, (mb, err)
    assert error_lines(err) == [f"failed: {huge}: 20000x20000 pixels is more than --max-pixels 24,000,000; resize "
                                "the image, or raise --max-pixels (decoding takes about 3 bytes per pixel)"]
    assert "Traceback" not in err and not (out / "huge_overlay.png").exists()
    assert json.loads((out / "summary.json").read_text())["failures"][0]["image"] == str(huge)
