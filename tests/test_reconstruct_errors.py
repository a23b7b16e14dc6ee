"""``tf2dasl reconstruct`` on user mistakes: missing inputs, bad ``--boxes``, output-name collisions, a wrong
``--assets``, images without faces, one-line failure reports and ``--server`` conflicts.

The unit tests need nothing; the end-to-end ones use mb05 imported from ../shared (``mb05_dir`` of
conftest.py; they skip without it) on small synthetic images with ``--detector haar`` (no face: no model call).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf2dasl.api import (MIN_BOX_SIDE, NO_FACE_HINTS, BoxesError, Summary, load_predictor, output_stems,
                         read_boxes_file)
from tf2dasl.cli import build_parser, main
from tf2dasl.io.boxes import given_boxes
from tf2dasl.detect import DetectorError, HaarDetector, make_detector
from tf2dasl.errors import UserError
from tf2dasl.io.images import ImageError, iter_image_paths

#: Synthetic photo size (pixels): small, so Haar and the crops are fast.
H, W = 120, 160
#: A box inside the synthetic photo.
INSIDE_BOX = [20.0, 10.0, 100.0, 90.0]


def _gray(path: Path, value: int = 128) -> Path:
    """A flat gray image (no face anywhere) written at ``path`` (format from the extension)."""
    assert cv2.imwrite(str(path), np.full((H, W, 3), value, np.uint8))
    return path


def _noise(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 37, dtype=np.uint8).tobytes())
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["reconstruct", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def the_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------------- 1. missing inputs
def test_iter_image_paths_collects_problems_and_goes_on(tmp_path):
    good = _gray(tmp_path / "good.png")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    problems: list[tuple[str, str]] = []
    found = iter_image_paths([tmp_path / "missing.jpg", empty, good], problems=problems)
    assert found == [good]
    assert [p for p, _ in problems] == [str(tmp_path / "missing.jpg"), str(empty)]
    assert problems[0][1] == f"{tmp_path / 'missing.jpg'}: file not found"
    assert problems[1][1].startswith(f"{empty}: folder holds no image files")
    # without a list: the first problem is one ImageError line
    with pytest.raises(ImageError, match="empty_dir: folder holds no image files"):
        iter_image_paths([good, empty])


def test_missing_and_corrupt_inputs_fail_by_name_and_the_rest_go_on(mb05_dir, tmp_path, capsys):
    missing = tmp_path / "nonexistent.jpg"
    corrupt = _corrupt(tmp_path / "corrupt.jpg")
    empty = tmp_path / "no_images"
    empty.mkdir()
    good = _gray(tmp_path / "good.png")
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, missing, corrupt, empty, good, "--model", mb05_dir, "--out", out,
                           "--detector", "haar")
    assert rc == 1, err
    assert (out / "good.json").is_file()  # processed after the missing input
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 4
    assert [f["image"] for f in summary["failures"]] == [str(missing), str(empty), str(corrupt)]
    assert summary["failures"][0]["error"] == f"{missing}: file not found"
    assert "1/4 images reconstructed" in stdout
    # 6. each failure line names its path once
    failed = [ln.strip() for ln in err.splitlines() if ln.strip().startswith("failed:")]
    assert failed[0] == f"failed: {missing}: file not found"
    assert failed[2] == f"failed: {corrupt}: cannot decode image (corrupt or not an image)"
    for path in (missing, empty, corrupt):
        assert err.count(str(path)) == 1, (path, err)


# ------------------------------------------------------------------------------------------------ 2. --boxes
@pytest.mark.parametrize("box, why", [
    ([10, 10, 5, 5], "x0 < x1 and y0 < y1"),  # inverted
    ([10, 10, 100, 10], "x0 < x1 and y0 < y1"),  # zero height
    ([10, 10, 10 + MIN_BOX_SIDE / 2, 50], "x0 < x1 and y0 < y1"),  # too thin for a crop
    ("NaN", "non-finite"),
    ("Infinity", "non-finite"),
])
def test_read_boxes_file_rejects_unusable_boxes(tmp_path, box, why):
    path = tmp_path / "boxes.json"
    text = json.dumps(box) if isinstance(box, list) else f"[{box}, 1, 100, 100]"
    path.write_text('{"ok.jpg": [[1, 2, 50, 60]], "face.jpg": [%s]}' % text)
    with pytest.raises(BoxesError) as exc:
        read_boxes_file(path)
    msg = str(exc.value)
    assert str(path) in msg and "'face.jpg'" in msg and why in msg and "\n" not in msg
    assert isinstance(exc.value, UserError)


def test_read_boxes_file_keeps_good_boxes_and_rejects_non_numbers(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text('{"a.jpg": [[1, 2, 50.5, 60]], "b.jpg": []}')
    assert read_boxes_file(path) == {"a.jpg": [[1, 2, 50.5, 60]], "b.jpg": []}
    path.write_text('{"a.jpg": [[true, 2, 50, 60]]}')
    with pytest.raises(BoxesError, match="expected"):
        read_boxes_file(path)


def test_given_box_outside_the_image_is_named():
    np.testing.assert_array_equal(given_boxes(Path("p.jpg"), (W, H), [[-30, -30, 10, 10]]),
                                  [[-30, -30, 10, 10]])  # partly inside: kept
    for box in ([W + 1, 0, W + 50, 50], [0, H, 50, H + 40], [-80, 0, -1, 50], [0, -90, 50, 0]):
        with pytest.raises(BoxesError, match=rf"p\.jpg: given box .* lies outside the {W}x{H} image"):
            given_boxes(Path("p.jpg"), (W, H), [INSIDE_BOX, box])
    with pytest.raises(BoxesError, match="non-finite"):
        given_boxes(Path("p.jpg"), (W, H), [[np.nan, 0, 50, 50]])
    with pytest.raises(BoxesError, match="not a list of"):
        given_boxes(Path("p.jpg"), (W, H), [[1, 2, 3]])


def test_bad_boxes_cli(mb05_dir, tmp_path, capsys):
    inside, outside = _noise(tmp_path / "inside.png"), _noise(tmp_path / "outside.png", seed=2)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"inside.png": [[10, 10, 5, 5]]}))
    out = tmp_path / "out"
    rc, _, err = _run(capsys, inside, "--model", mb05_dir, "--out", out, "--boxes", boxes)
    line = the_line(err)
    assert rc == 2 and str(boxes) in line and "inside.png" in line and "[10, 10, 5, 5]" in line
    boxes.write_text('{"inside.png": [[NaN, 1, 100, 100]]}')
    rc, _, err = _run(capsys, inside, "--model", mb05_dir, "--out", out, "--boxes", boxes)
    assert rc == 2 and "non-finite" in the_line(err)
    # a box that misses its image fails that image only; the other image's box gives its face
    boxes.write_text(json.dumps({"inside.png": [INSIDE_BOX], "outside.png": [[W + 10, 0, W + 90, 80]]}))
    rc, _, err = _run(capsys, inside, outside, "--model", mb05_dir, "--out", out, "--boxes", boxes,
                      "--detector", "haar")
    assert rc == 1, err
    assert f"failed: {outside}: given box" in err and "outside" in err
    assert not (out / "outside.json").exists()
    faces = json.loads((out / "inside.json").read_text())["faces"]
    assert len(faces) == 1 and faces[0]["bbox"] == INSIDE_BOX
    summary = json.loads((out / "summary.json").read_text())
    assert [f["image"] for f in summary["failures"]] == [str(outside)] and summary["faces"] == 1


# ------------------------------------------------------------------------------------------ 3. output names
def test_output_stems_are_unique_and_deterministic():
    paths = [Path(p) for p in ("x/a.png", "x/a.bmp", "x/a_1.png", "y/a.png", "x/a_bmp.jpg", "x/summary.png",
                               "y/a.bmp", "x/a")]
    stems = output_stems(paths)
    assert stems == ["a", "a_bmp", "a_1", "a_png", "a_bmp_jpg", "summary_png", "a_bmp_2", "a_2"]
    assert len(set(stems)) == len(stems) and "summary" not in stems
    assert output_stems(paths) == stems


def test_colliding_stems_write_every_json(mb05_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [_gray(folder / "a.png", 100), _gray(folder / "a.bmp", 110), _gray(folder / "a_1.png", 120),
              _gray(folder / "summary.png", 130)]
    out = tmp_path / "out"
    rc, _, err = _run(capsys, *inputs, "--model", mb05_dir, "--out", out, "--detector", "haar")
    assert rc == 0, err
    jsons = sorted(p.name for p in out.glob("*.json"))
    assert jsons == ["a.json", "a_1.json", "a_bmp.json", "summary.json", "summary_png.json"]
    images = {json.loads((out / n).read_text())["image"] for n in jsons if n != "summary.json"}
    assert images == {str(p) for p in inputs}  # each image has its own JSON: nothing overwritten
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 4
    assert summary["renamed"] == {str(folder / "a.bmp"): "a_bmp", str(folder / "summary.png"): "summary_png"}
    assert f"renamed: {folder / 'a.bmp'} -> a_bmp.json" in err


# ------------------------------------------------------------------------------------------------ 4. --assets
def test_auto_detector_with_a_wrong_assets_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    missing = tmp_path / "does_not_exist"
    with pytest.raises(DetectorError) as exc:
        make_detector("auto", missing)  # a folder that does not exist is an error even for the library
    msg = str(exc.value)
    assert f"--assets {missing}: folder not found" in msg and "face_detection_short_range.tflite" in msg
    with pytest.raises(DetectorError, match="no BlazeFace model in it"):
        make_detector("auto", tmp_path)
    monkeypatch.setenv("TF2DASL_ASSETS", str(tmp_path))
    with pytest.raises(DetectorError, match=r"\$TF2DASL_ASSETS=.*no BlazeFace model"):
        make_detector("auto")
    monkeypatch.delenv("TF2DASL_ASSETS")
    assert not isinstance(make_detector("auto"), HaarDetector)  # no location given: the packaged BlazeFace


def test_assets_cli_errors(mb05_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    image = _gray(tmp_path / "flat.png")
    out = tmp_path / "out"
    rc, _, err = _run(capsys, image, "--model", mb05_dir, "--out", out,
                      "--assets", tmp_path / "does_not_exist")
    line = the_line(err)
    assert rc == 2 and "does_not_exist" in line and "face_detection_full_range_sparse.tflite" in line
    empty = tmp_path / "empty_assets"
    empty.mkdir()
    monkeypatch.setenv("TF2DASL_ASSETS", str(empty))
    rc, _, err = _run(capsys, image, "--model", mb05_dir, "--out", out)
    assert rc == 2 and f"$TF2DASL_ASSETS={empty}" in the_line(err)
    assert not (out / "flat.json").exists()


def test_assets_folder_with_blazeface_is_used(shared_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    det = make_detector("auto", shared_dir / "assets", num_threads=1)
    assert det.name.startswith("blazeface")


# --------------------------------------------------------------------------------------------- 5. no faces
def test_no_face_lines_and_hints():
    s = Summary(images=3, without_faces=["/p/a.jpg", "/p/b.jpg"], failures=[("/p/c.jpg", "/p/c.jpg: empty file")],
                detector="haar")
    lines = s.report_lines()
    assert lines == [f"no face: /p/a.jpg ({NO_FACE_HINTS['haar']})", f"no face: /p/b.jpg ({NO_FACE_HINTS['haar']})",
                     "failed: /p/c.jpg: empty file"]
    assert "drop --detector haar" in lines[0] and "--boxes" in lines[0]
    s.detector = "blazeface-full"
    assert s.report_lines()[0] == f"no face: /p/a.jpg ({NO_FACE_HINTS['blazeface']})"
    # 6. a reason that does not start with the path gets it once
    assert Summary(failures=[("/p/d.jpg", "boom")]).report_lines() == ["failed: /p/d.jpg: boom"]


def test_no_face_images_are_listed_and_exit_0(mb05_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    flat = _gray(tmp_path / "flat.png")
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, flat, "--model", mb05_dir, "--out", out)  # packaged BlazeFace
    assert rc == 0, err
    assert f"no face: {flat} (try a lower --score-threshold, or give --boxes or --pts)" in err
    assert "1/1 images reconstructed, 0 faces, 1 without faces, 0 failed" in stdout
    assert json.loads((out / "summary.json").read_text())["without_faces"] == [str(flat)]
    assert json.loads((out / "flat.json").read_text())["faces"] == []


def test_help_documents_exit_status_and_names():
    sub = next(a for a in build_parser(["reconstruct"])._actions if a.dest == "command")
    text = sub.choices["reconstruct"].format_help()
    assert "exit status" in text and "images without faces are listed but are not failures" in text
    assert "<stem>_<ext>" in text and "renamed" in text


# ------------------------------------------------------------------------------------------------ 7. --server
@pytest.mark.parametrize("extra", [["--runtime", "tflite"], ["--export-dir", "export/mb05"],
                                   ["--runtime", "onnx", "--export-dir", "export/mb05"]])
def test_server_with_a_local_runtime_is_rejected(tmp_path, capsys, extra):
    # the model folder does not exist: the conflict is reported first, before anything is loaded
    rc, _, err = _run(capsys, tmp_path / "x.jpg", "--model", tmp_path / "no_model", "--out", tmp_path / "o",
                      "--server", "localhost:8500", *extra)
    line = the_line(err)
    assert rc == 2 and "--server localhost:8500" in line and "drop" in line and "no_model" not in line
    assert ("--runtime" in line) == ("--runtime" in extra) and ("--export-dir" in line) == ("--export-dir" in extra)


def test_load_predictor_rejects_server_with_runtime(tmp_path):
    with pytest.raises(UserError, match="--server h:1 runs the model on the server"):
        load_predictor("savedmodel", tmp_path / "no_model", server="h:1")

