"""The pieces of the benchmarks that carry claims the docs quote: the MAC count behind the latency floor and the ideal
ONNX graph it is timed against (docs/deployment.md; random weights), and the reconstruction diagnostic's size measures
(docs/profiling.md). No shared data needed."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from synthetic import random_morphable_model  # noqa: E402

from tf2dasl.models.mobilenet_v1 import BLOCKS  # noqa: E402
from tf2dasl.models.spec import STEM_CHANNELS, ModelSpec  # noqa: E402
from tf2dasl.models.task import FaceTask  # noqa: E402


@pytest.fixture(scope="module")
def random_mb05():
    task = FaceTask(ModelSpec(name="mb05_random", width=0.5), random_morphable_model())
    rng = np.random.default_rng(0)
    for layer in task.regressor.backbone.layers:  # random BN statistics too, so that folding them is exercised
        ws = layer.get_weights()
        if len(ws) == 4:  # gamma, beta, moving mean, moving variance
            c = ws[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 2.0, c)])
    return task


def _macs_by_hand(width: float, size: int, params: int) -> int:
    """MobileNetV1 from its block table: stem 3x3/2 conv, then per block a 3x3 depthwise and a 1x1 conv."""
    side = (size + 1) // 2
    c = int(STEM_CHANNELS * width)
    total = side * side * c * 9 * 3
    for _, _, cout, stride in BLOCKS:
        side = (side + 1) // 2 if stride == 2 else side
        total += side * side * c * 9 + side * side * c * int(cout * width)
        c = int(cout * width)
    return total + c * params


def test_mac_count_matches_the_block_table(random_mb05):
    from latency_floor import count_macs

    macs = count_macs(random_mb05)
    assert macs == _macs_by_hand(0.5, 120, 62)
    assert 46e6 < macs < 47e6  # the figure docs/deployment.md's floor divides by


@pytest.mark.parametrize("batch,n", [(1, 1), ("N", 3)])  # 3DDFA_V2's fixed batch 1; free for export_speed's batch 8
def test_ideal_onnx_graph_equals_keras(random_mb05, batch, n):
    from latency_floor import direct_graph, session

    x = np.random.default_rng(1).normal(0, 1, (n, 120, 120, 3)).astype(np.float32)
    want = random_mb05.regressor(x, training=False).numpy()
    got = session(direct_graph(random_mb05, batch), 1).run(None, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_reconstruction_diagnostic_size_measures():
    """The size measures docs/profiling.md quotes: a mesh scaled by its size ratio has the truth's size, a scaled
    rotation's depth row is 1, and a flattened camera's is its flattening."""
    from reconstruction_diagnostic import depth_row, rms_size, scaled

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 500, 3))
    pred = truth * np.array([1.1, 0.9, 1.3])[:, None, None] + rng.normal(size=(3, 1, 3))
    ratio = rms_size(truth) / rms_size(pred)
    np.testing.assert_allclose(ratio, [1 / 1.1, 1 / 0.9, 1 / 1.3], rtol=1e-9)
    np.testing.assert_allclose(rms_size(scaled(pred, ratio)), rms_size(truth), rtol=1e-9)
    np.testing.assert_allclose(scaled(pred, ratio).mean(axis=1), pred.mean(axis=1), atol=1e-9)  # about the centroid

    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    cam = np.concatenate([2.5 * q, rng.normal(size=(3, 1))], axis=1)  # a scaled rotation and a translation
    flat = cam.copy()
    flat[2, :3] *= 0.96
    params = np.zeros((2, 62))
    params[:, :12] = np.stack([cam, flat]).reshape(2, 12)
    np.testing.assert_allclose(depth_row(params), [1.0, 0.96], rtol=1e-9)


def test_size_sources_oracle_fit_and_jitters():
    """size_sources.py's oracle recovers a size error that is a line in the second opinion (per bin), and its jitters
    are similarities about the crop's centre whose inverses map back."""
    import cv2
    from reconstruction_diagnostic import rms_size
    from size_sources import JITTERS, fused_ratios, jitter_affine

    rng = np.random.default_rng(0)
    opinion = rng.normal(size=90)
    masks = {"a": np.arange(90) < 50, "b": np.arange(90) >= 50}
    error = np.where(masks["a"], 0.4 * opinion + 0.01, -0.2 * opinion - 0.03)
    np.testing.assert_allclose(np.log(fused_ratios(error, opinion, masks)), error, atol=1e-12)
    noisy = fused_ratios(error + rng.normal(size=90), opinion, masks)   # a least-squares line: no exact fit
    assert not np.allclose(np.log(noisy), error, atol=0.1)
    pts = rng.normal(size=(2, 468, 3))
    np.testing.assert_allclose(rms_size(pts * [[[2.0]], [[0.5]]] + 7.0, step=1), rms_size(pts, step=1) * [2.0, 0.5])
    one = np.zeros((1, 468, 3))
    one[0, 1] = [0.0, 0.0, 468.0]                                             # all 468 points, not every 50th
    np.testing.assert_allclose(rms_size(one, step=1), [np.sqrt(467.0)])

    centre = np.array([(120 - 1) / 2] * 2 + [1.0])
    for scale, dx, dy in JITTERS:
        a = jitter_affine(scale, dx, dy, 120)
        np.testing.assert_allclose(a @ centre, centre[:2] + [dx, dy], atol=1e-5)
        np.testing.assert_allclose(a[:, :2], scale * np.eye(2), atol=1e-7)
        back = cv2.invertAffineTransform(a)
        np.testing.assert_allclose(back @ np.r_[a @ centre, 1.0], centre[:2], atol=1e-4)


def test_size_sources_mediapipe_points_land_on_the_face(aflw_dev_dir, shared_dir):
    """MediaPipe's face mesh read back into crop pixels: on near-frontal dev-slice faces its nose tip and mouth
    corners are within 4 % of the crop of the ground truth's 68 points (the padding and scaling are undone)."""
    from size_sources import mediapipe_points

    from tf2dasl.evaluate import load_aflw2000
    from tf2dasl.geometry.camera import image_to_crop

    model = shared_dir / "assets" / "detectors" / "face_landmark.tflite"
    if not model.is_file():
        pytest.skip(f"MediaPipe face mesh not found at {model}")
    data = load_aflw2000(aflw_dev_dir, 120)
    near = np.flatnonzero(np.abs(data.yaws) < 20)[:6]
    pts = mediapipe_points(data.crops[near], model)
    assert pts.shape == (len(near), 468, 3)
    truth = image_to_crop(data.ground_truth["original"][near], data.roi_boxes[near], 120, np.float64)
    # MediaPipe's nose tip 1, mouth corners 61 / 291 against the 68 points' 30, 48, 54
    err = np.linalg.norm(pts[:, [1, 61, 291], :2] - truth[:, [30, 48, 54]], axis=-1)
    assert np.median(err) < 0.04 * 120, err
