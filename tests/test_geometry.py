"""Morphable model geometry: numpy vs TF, pose round trips, dense vs sparse landmarks, roi rules, landmark maps."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf2dasl.geometry import camera, pose, roi, tf_ops
from tf2dasl.geometry.conventions import CROP_OFFSET_V1, CROP_OFFSET_V2
from tf2dasl.geometry.decoder import Decoder
from tf2dasl.geometry.landmark_map import landmark_map, map_from_points, map_points
from tf2dasl.geometry.morphable_model import MorphableModel, MorphableModelError
from tf2dasl.io.morphable_files import load_3ddfa_v1, load_3ddfa_v2, load_morphable_model
from tf2dasl.models.morphable import MorphableLayer


def random_model(n_vertices=500, seed=0) -> MorphableModel:
    """A random dense morphable model with 68 landmark vertices (a synthetic fixture)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 50, 3 * n_vertices).astype(np.float32)
    w_shp = rng.normal(0, 1, (3 * n_vertices, 40)).astype(np.float32)
    w_exp = rng.normal(0, 1, (3 * n_vertices, 10)).astype(np.float32)
    lmv = rng.choice(n_vertices, 68, replace=False).astype(np.int32)
    flat = (lmv[:, None] * 3 + np.arange(3)).reshape(-1)
    tri = rng.integers(0, n_vertices, (2 * n_vertices, 3)).astype(np.int32)
    return MorphableModel(u_base=u[flat], w_shp_base=w_shp[flat], w_exp_base=w_exp[flat],
                          param_mean=rng.normal(0, 1, 62).astype(np.float32),
                          param_std=rng.uniform(0.5, 2, 62).astype(np.float32),
                          u=u, w_shp=w_shp, w_exp=w_exp, landmark_vertices=lmv, triangles=tri)


def random_params(batch=5, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angles = rng.uniform([-80, -40, -30], [80, 40, 30], (batch, 3))
    R = pose.angles_to_matrix(angles)
    s = rng.uniform(5e-4, 2e-3, batch)
    t = rng.uniform(40, 80, (batch, 3))
    p = np.concatenate([pose.sRt_to_params(s, R, t), rng.normal(0, 1e5, (batch, 40)), rng.normal(0, 1, (batch, 10))], 1)
    return p.astype(np.float32)


@pytest.fixture(scope="module")
def bfm(shared_dir):
    return load_3ddfa_v2(shared_dir / "assets/3ddfa_v2/configs")


def assert_rel(a, b, rtol=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(), 1e-12)
    assert np.abs(a - b).max() / scale < rtol, (np.abs(a - b).max(), scale)


def test_numpy_tf_vertices_agree_synthetic():
    mm = random_model()
    p = random_params()
    ref = mm.vertices(p, dense=True)
    got = tf_ops.vertices(tf.constant(p), mm.u, mm.w_shp, mm.w_exp).numpy()
    assert ref.shape == (5, 500, 3)
    assert_rel(got, ref)


def test_decoder_and_its_tf_twin_agree_real_bfm(bfm):
    """The numpy decoder and the Keras morphable layer give the same points in every frame and convention."""
    p = random_params(3)
    p[:, 12:52] = np.random.default_rng(2).normal(0, 2e5, (3, 40))
    pw = bfm.whiten(p)
    rois = np.array([[10, 20, 250, 260], [-30, 5, 90, 125], [0, 0, 120, 120]], np.float32)
    for conv in (CROP_OFFSET_V2, CROP_OFFSET_V1):
        dec, layer = Decoder(bfm, 120, conv), MorphableLayer(bfm, 120, conv.name, dense=True)
        assert_rel(layer.unwhiten(tf.constant(pw)).numpy(), p)
        lm = dec.landmarks(p)
        assert lm.shape == (3, 68, 3)
        np.testing.assert_allclose(lm, camera.model_to_crop(bfm.landmarks(p), 120, conv), atol=1e-3)
        assert_rel(layer.landmarks(tf.constant(p)).numpy(), lm)
        assert_rel(layer.landmarks(tf.constant(p), tf.constant(rois)).numpy(), dec.landmarks(p, rois))
        np.testing.assert_allclose(dec.landmarks(p, rois), camera.crop_to_image(lm, rois, 120), atol=1e-3)
    dense = dec.vertices(p)
    assert dense.shape == (3, 38365, 3)
    assert_rel(layer.vertices(tf.constant(p)).numpy(), dense)
    assert_rel(layer.vertices(tf.constant(p), tf.constant(rois)).numpy(), dec.vertices(p, rois))
    assert_rel(layer(tf.constant(pw))["pose"].numpy(), dec.pose(p), rtol=1e-3)


def test_dense_landmarks_equal_sparse_bases(bfm):
    p = random_params(4)
    dense = bfm.vertices(p, dense=True)[:, bfm.landmark_vertices]
    assert_rel(dense, bfm.landmarks(p), rtol=1e-5)


def test_v1_sparse_bases_match_v2_dense_bases(bfm, shared_dir):
    v1 = load_3ddfa_v1(shared_dir / "assets/3ddfa/train.configs")
    p = random_params(4)
    p[:, 12:52] = np.random.default_rng(3).normal(0, 2e5, (4, 40))
    # v1's sparse bases index the 53,215-vertex mesh, v2's dense bases the no-neck one: same 68 points
    assert_rel(v1.landmarks(p), bfm.vertices(p)[:, bfm.landmark_vertices], rtol=1e-3)
    assert not v1.is_dense and v1.u.shape == (159645,)
    with pytest.raises(MorphableModelError):
        v1.vertices(p, dense=True)


def test_load_morphable_model_dispatch_and_errors(shared_dir, tmp_path):
    assert load_morphable_model(shared_dir / "assets/3ddfa_v2").source["layout"] == "3ddfa_v2"
    assert load_morphable_model(shared_dir / "assets/3ddfa").source["layout"] == "3ddfa_v1"
    with pytest.raises(MorphableModelError, match="no morphable model"):
        load_morphable_model(tmp_path)


def test_pose_round_trips():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-85, -60, -60], [85, 60, 60], (200, 3))
    R = pose.angles_to_matrix(angles)
    np.testing.assert_allclose(R @ np.transpose(R, (0, 2, 1)), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(pose.matrix_to_angles(R), angles, atol=1e-8)
    s, t = rng.uniform(1e-4, 1e-2, 200), rng.normal(0, 50, (200, 3))
    p12 = pose.sRt_to_params(s, R, t)
    s2, R2, t2 = pose.params_to_sRt(p12)
    np.testing.assert_allclose(s2, s, rtol=1e-5)
    np.testing.assert_allclose(R2, R, atol=1e-5)
    np.testing.assert_allclose(t2, t, rtol=1e-5, atol=1e-4)


def test_pose_matches_3ddfa_v2_formula_and_tf():
    p = random_params(50, seed=5)
    P = p[:, :12].reshape(-1, 3, 4).astype(np.float64)
    # 3DDFA_V2's calc_pose, written out for one face at a time
    expected = []
    for Pi in P:
        r1, r2 = Pi[0, :3] / np.linalg.norm(Pi[0, :3]), Pi[1, :3] / np.linalg.norm(Pi[1, :3])
        R = np.stack([r1, r2, np.cross(r1, r2)])
        x = np.arcsin(R[2, 0])
        y = np.arctan2(R[2, 1] / np.cos(x), R[2, 2] / np.cos(x))
        z = np.arctan2(R[1, 0] / np.cos(x), R[0, 0] / np.cos(x))
        expected.append(np.degrees([x, y, z]))
    np.testing.assert_allclose(pose.params_to_pose(p), expected, atol=1e-3)
    np.testing.assert_allclose(tf_ops.params_to_pose(tf.constant(p)).numpy(), expected, atol=1e-2)


def test_gimbal_lock_branch():
    R = pose.angles_to_matrix(np.array([[89.99, 10.0, 0.0]]))
    yaw, _, roll = pose.matrix_to_angles(R)[0]
    assert yaw == pytest.approx(90.0) and roll == 0.0
    tf_angles = tf_ops.matrix_to_angles(tf.constant(R, tf.float32)).numpy()[0]
    assert tf_angles[0] == pytest.approx(90.0, abs=1e-3) and tf_angles[2] == 0.0


def test_crop_image_round_trips():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 120, (4, 68, 3)).astype(np.float32)
    boxes = np.array([[10, 20, 250, 260], [-30, 5, 90, 125], [0, 0, 120, 120], [100, 50, 160, 110]], np.float32)
    img = camera.crop_to_image(pts, boxes, 120)
    np.testing.assert_allclose(camera.image_to_crop(img, boxes, 120), pts, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(img[1, :, 0], pts[1, :, 0] + -30, rtol=1e-6)  # scale 1 box: a shift
    fine = pts[:1].astype(np.float64) + 1e-6                                       # below float32's resolution
    back = camera.image_to_crop(2 * fine + [10.0, 20.0, 0.0], boxes[:1], 120, np.float64)     # box 0: scale 2
    assert back.dtype == np.float64 and np.abs(back - fine).max() < 1e-9
    got = tf_ops.crop_to_image(tf.constant(pts), tf.constant(boxes), 120).numpy()
    np.testing.assert_allclose(got, img, rtol=1e-5, atol=1e-3)
    model = camera.crop_to_model(pts, 120, CROP_OFFSET_V1)
    np.testing.assert_allclose(camera.model_to_crop(model, 120, CROP_OFFSET_V1), pts, atol=1e-5)
    np.testing.assert_allclose(camera.model_to_crop(np.array([[[1.0, 120.0, 1.0]]]), 120), [[[0, 0, 0]]])


def test_roi_rules_match_3ddfa_v2():
    # parse_roi_box_from_bbox([100, 50, 200, 170]): old_size 110, centre (150, 110 + 15.4), size int(173.8)=173
    np.testing.assert_allclose(roi.roi_from_bbox(np.array([[100, 50, 200, 170]]))[0],
                               [150 - 86.5, 125.4 - 86.5, 150 + 86.5, 125.4 + 86.5], atol=1e-4)
    # parse_roi_box_from_landmark: square box of side 100 around (60, 80) → diagonal 141.42
    pts = np.array([[[10.0, 30.0], [110.0, 130.0], [60.0, 80.0]]])
    d = 100 * np.sqrt(2)
    np.testing.assert_allclose(roi.roi_from_landmarks(pts)[0], [60 - d / 2, 80 - d / 2, 60 + d / 2, 80 + d / 2],
                               atol=1e-4)


def test_crop_image_pads_outside():
    img = np.full((50, 80, 3), 200, np.uint8)
    crop = roi.crop_image(img, [-40, -10, 40, 70], size=80)
    assert crop.shape == (80, 80, 3)
    assert crop[40, 60].tolist() == [200] * 3 and crop[40, 10].tolist() == [0] * 3


def test_landmark_map_numpy_and_tf():
    rng = np.random.default_rng(0)
    lm = rng.uniform(-5, 125, (3, 68, 2)).astype(np.float32)
    m = landmark_map(lm)
    assert m.shape == (3, 120, 120) and set(np.unique(m)) <= {-1.0, 1.0}
    pts = np.floor(map_points(lm) + 0.5).astype(int)
    inside = ((pts >= 0) & (pts < 120)).all(-1)
    for b in range(3):
        assert (m[b] == 1).sum() == len({tuple(q) for q in pts[b][inside[b]]})
        for (x, y), ok in zip(pts[b], inside[b]):
            if ok:
                assert m[b, y, x] == 1.0
    np.testing.assert_array_equal(tf_ops.landmark_map(tf.constant(lm)).numpy(), m)
    assert (landmark_map(None, batch=2) == -1).all()


def test_landmark_map_of_partial_points_numpy_and_tf():
    """One builder per framework: invisible (NaN) and outside points mark nothing in either."""
    rng = np.random.default_rng(4)
    pts = rng.uniform(-10, 130, (6, 21, 2)).astype(np.float32)
    pts[rng.uniform(size=(6, 21)) < 0.3] = np.nan
    want = map_from_points(pts)
    np.testing.assert_array_equal(tf_ops.map_from_points(tf.constant(pts)).numpy(), want)
    np.testing.assert_array_equal(tf.function(tf_ops.map_from_points, jit_compile=True)(tf.constant(pts)).numpy(),
                                  want)
    assert (want == 1).sum() <= np.isfinite(pts).all(-1).sum()


def test_tf_geometry_compiles_with_xla_and_in_graph():
    mm = random_model()
    layer = MorphableLayer(mm, dense=True)
    pw = tf.constant(mm.whiten(random_params(4)))

    def run(p):
        out = layer(p)
        return out["landmarks"], out["pose"], layer.vertices(out["params"]), tf_ops.landmark_map(out["landmarks"])

    eager = run(pw)
    for fn in (tf.function(run), tf.function(run, jit_compile=True)):
        got = fn(pw)
        for a, b in zip(got[:3], eager[:3]):
            assert_rel(a.numpy(), b.numpy(), rtol=1e-4)
        # maps from rounded landmarks: equal except where a landmark sits on a pixel boundary
        assert np.mean(got[3].numpy() != eager[3].numpy()) < 1e-3


def test_roi_center_side_numpy_and_tf_twins_agree():
    rng = np.random.default_rng(3)
    lm = rng.uniform(0, 400, (5, 68, 2)).astype(np.float32)
    c_np, s_np = roi.roi_center_side(lm)
    c_tf, s_tf = tf_ops.roi_center_side(tf.constant(lm))
    np.testing.assert_allclose(c_tf.numpy(), c_np, rtol=1e-6)
    np.testing.assert_allclose(s_tf.numpy(), s_np, rtol=1e-6)
    box = roi.roi_from_landmarks(lm)
    np.testing.assert_allclose((box[:, 2] - box[:, 0]), s_np, rtol=1e-5)
    np.testing.assert_allclose((box[:, :2] + box[:, 2:]) / 2, c_np, rtol=1e-5)
