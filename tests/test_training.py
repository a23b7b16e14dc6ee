"""2DASL training: losses on hand-made cases, gradient routing, alternating updates, MirroredStrategy, resume,
config errors. Uses a small synthetic morphable model and synthetic faces (no ../shared needed)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf2dasl import losses as L
from tf2dasl.cli import main
from tf2dasl.io.yaml_config import ConfigError, load_config
from tf2dasl.geometry.landmark_map import MAP_POINT_PAIRS, map_from_points
from helpers import WIDTH, one_line_error, train_config, write_aflw
from tf2dasl.io.model_dir import load_model_dir
from tf2dasl.models.critic import SelfCritic
from tf2dasl.models.dasl import SUPERVISED_TERMS, DASLModel, LossWeights, expand_to_four_channels
from tf2dasl.models.morphable import MorphableLayer
from tf2dasl.models.regressor import Regressor
from tf2dasl.models.spec import ModelSpec
from tf2dasl.models.task import FaceTask
from tf2dasl.training.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def make_dasl(mm, weights=None, teacher=True, channels=4, freeze_bn=True):
    """A small DASLModel starting exactly at a 3-channel model (its zero map slice); ``teacher``: that 3-channel
    model, to label batches (:func:`wild_batch`)."""
    reg3 = Regressor("mobilenet_v1", WIDTH, 120, 3, name="regressor")
    reg3.build()
    reg = expand_to_four_channels(reg3) if channels == 4 else reg3
    task = FaceTask(ModelSpec(name="t", width=WIDTH, channels=channels), mm, regressor=reg)
    model = DASLModel(task, SelfCritic((64, 32)), weights or LossWeights(), freeze_bn=freeze_bn)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), keras.optimizers.Adam(1e-4, 0.5, 0.999))
    model.build()
    model.build_optimizers()
    object.__setattr__(model, "teacher_regressor", reg3 if teacher else None)  # not tracked: not trained
    return model


def wild_batch(mm, model, n=4, seed=0, drop=()):
    """Wild faces labelled by the model's teacher: their 68 landmarks are the teacher's (``drop``: point indices
    made invisible, NaN), and ``teacher`` its raw parameters."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, 120, 120, 3)).astype(np.uint8)
    x = model.task.preprocessor.normalize(images)
    p = model.morphable.unwhiten(model.teacher_regressor(x, training=False))
    lm = model.morphable.landmarks(p).numpy()[..., :2]
    lm[:, list(drop)] = np.nan
    mp = (lm[:, [a for a, _ in MAP_POINT_PAIRS]] + lm[:, [b for _, b in MAP_POINT_PAIRS]]) / 2
    return {"wild": {"image": tf.constant(images), "landmarks": tf.constant(lm, tf.float32),
                     "map_points": tf.constant(mp, tf.float32), "map": tf.constant(map_from_points(mp)),
                     "teacher": tf.constant(p)}}


# ---------------------------------------------------------------------------- losses
def test_losses_zero_when_prediction_equals_target(mm):
    layer = MorphableLayer(mm, dense=False)
    rng = np.random.default_rng(0)
    p_w = tf.constant(rng.normal(0, 1, (3, 62)), tf.float32)
    assert float(L.wpdc_loss(p_w, p_w, layer.param_mean, layer.param_std, layer.u_base, layer.w_shp_base,
                             layer.w_exp_base)) == 0.0
    lm = tf.constant(rng.uniform(0, 120, (3, 68, 3)), tf.float32)
    assert float(L.landmark_loss(lm, lm)) < 1e-7
    assert float(L.landmark_loss(lm[..., :2], lm, L.point_weights("map18"))) < 1e-7
    assert float(L.vdc_loss(lm, lm)) < 1e-7


def test_landmark_loss_hand_made():
    target = np.zeros((1, 68, 2), np.float32)
    target[0, :, 0] = np.linspace(0, 100, 68)
    target[0, :, 1] = np.linspace(0, 25, 68)  # face size sqrt(100 * 25) = 50
    pred = target + np.array([3.0, 4.0], np.float32)  # 5 px everywhere
    assert float(L.landmark_loss(tf.constant(pred), tf.constant(target), eps=0.0)) == pytest.approx(0.1, rel=1e-5)
    smooth = (np.sqrt(25 + L.LANDMARK_EPS ** 2) - L.LANDMARK_EPS) / 50
    assert float(L.landmark_loss(tf.constant(pred), tf.constant(target))) == pytest.approx(smooth, rel=1e-5)
    # smooth at zero: agreeing sides give no gradient
    x = tf.Variable(target)
    with tf.GradientTape() as tape:
        loss = L.landmark_loss(x, tf.constant(target))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, x)))) == 0.0
    points = L.point_weights("map18")
    a, w = points
    assert a.shape == (18, 68) and w.sum() == pytest.approx(14.0) and np.allclose(a.sum(axis=1), 1.0)
    assert w[13] == 2.0 and not a[:, :17].any()  # the nose tip (30) counts double; the jaw is not used
    pred2 = target.copy()
    pred2[0, 0] += [30.0, 40.0]  # a jaw point moves: map18 does not see it
    assert float(L.landmark_loss(tf.constant(pred2), tf.constant(target), points)) < 1e-6
    pred3 = target.copy()
    pred3[0, 62, 1] -= 6.0  # the mouth opens symmetrically: the inner-lip centre (mean of 62 and 66) stays
    pred3[0, 66, 1] += 6.0
    assert float(L.landmark_loss(tf.constant(pred3), tf.constant(target), points)) < 1e-6
    pred3[0, 66, 1] += 6.0  # now the centre moves by 3 px: one map point of weight 2 out of 14
    expect = (np.sqrt(9 + L.LANDMARK_EPS ** 2) - L.LANDMARK_EPS) * 2 / 14 / 50
    assert float(L.landmark_loss(tf.constant(pred3), tf.constant(target), points)) == pytest.approx(expect, rel=1e-4)


def test_wpdc_weights_follow_3ddfa(mm):
    layer = MorphableLayer(mm, dense=False)
    rng = np.random.default_rng(1)
    target = rng.normal(0, 1, (2, 62)).astype(np.float32)
    pred = target + rng.normal(0, 0.1, (2, 62)).astype(np.float32)
    w = L.wpdc_weights(tf.constant(pred), tf.constant(target), layer.u_base, layer.w_shp_base,
                       layer.w_exp_base).numpy()
    assert np.allclose(w.max(axis=1), 1.0) and np.all(w[:, 11] == 0) and np.all(w[:, [0, 1, 2, 12, 61]] > 0)
    # pose weight of p[0] (multiplies x): |Δp0| * ||x of the target shape over the 68 points||
    shape = (mm.u_base + target[:, 12:52] @ mm.w_shp_base.T + target[:, 52:] @ mm.w_exp_base.T).reshape(2, -1, 3)
    raw = np.abs(pred[:, 0] - target[:, 0]) * np.linalg.norm(shape[:, :, 0], axis=1) + 1e-6
    full = L.wpdc_weights(tf.constant(pred), tf.constant(target), layer.u_base, layer.w_shp_base,
                          layer.w_exp_base, zero_z=False).numpy()
    ratio = raw / full[:, 0]
    assert np.allclose(w[:, 0] * ratio, raw, rtol=1e-4)
    # 3DDFA zeroes the z translation before normalising: a far-off tz changes no weight at all
    pred_tz = pred.copy()
    pred_tz[:, 11] += 1e3
    w_tz = L.wpdc_weights(tf.constant(pred_tz), tf.constant(target), layer.u_base, layer.w_shp_base,
                          layer.w_exp_base).numpy()
    np.testing.assert_allclose(w_tz, w, rtol=1e-6)


def test_critic_losses_hand_made():
    big = tf.constant([[20.0]])
    assert float(L.critic_loss(big, -big)) < 1e-6          # perfect critic
    assert float(L.adversarial_loss(big)) < 1e-6           # regressor fooling it
    zero = tf.zeros((4, 1))
    assert float(L.critic_loss(zero, zero)) == pytest.approx(2 * np.log(2), rel=1e-6)


# ---------------------------------------------------------------------------- masks
def test_masked_landmark_loss_ignores_invisible_points_and_their_gradient_is_zero():
    rng = np.random.default_rng(3)
    target = rng.uniform(20, 100, (2, 21, 2)).astype(np.float32)
    pred = target + rng.normal(0, 2, target.shape).astype(np.float32)
    masked = target.copy()
    masked[0, [3, 12, 20]] = np.nan                              # invisible points of face 0
    moved = pred.copy()
    moved[0, [3, 12, 20]] += 500.0                               # anything predicted there counts for nothing
    ref = L.landmark_loss(tf.constant(np.delete(pred[:1], [3, 12, 20], 1)),
                          tf.constant(np.delete(target[:1], [3, 12, 20], 1)))
    one = L.landmark_loss(tf.constant(moved[:1]), tf.constant(masked[:1]))
    assert float(one) == pytest.approx(float(ref), rel=1e-6)     # as if the points did not exist (not zero coords)
    x = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss = L.landmark_loss(x, tf.constant(masked))
    g = tape.gradient(loss, x).numpy()
    assert np.isfinite(loss.numpy()) and np.isfinite(g).all()
    assert (g[0, [3, 12, 20]] == 0).all() and np.abs(g[0, 0]).sum() > 0 and np.abs(g[1]).sum() > 0
    # a compared point made of two (a map midpoint) needs both: one missing drops the row
    a = np.zeros((2, 21), np.float32)
    a[0, [3, 4]] = 0.5
    a[1, [5, 5]] = 1.0
    with tf.GradientTape() as tape:
        loss = L.landmark_loss(x, tf.constant(masked), (a, np.ones(2, np.float32)))
    g = tape.gradient(loss, x).numpy()
    assert np.isfinite(g).all() and (g[0, [3, 4]] == 0).all() and np.abs(g[0, 5]).sum() > 0
    # a face with no visible point at all contributes nothing (and no NaN)
    none = np.full_like(target, np.nan)
    assert float(L.landmark_loss(tf.constant(pred), tf.constant(none))) == 0.0


def test_face_size_uses_visible_points_only():
    pts = np.array([[[0, 0], [100, 25], [np.nan, np.nan], [50, 10]]], np.float32)
    assert float(L.face_size(tf.constant(pts))[0]) == pytest.approx(50.0)


def test_invisible_points_mark_nothing_on_the_map_and_self_terms_stay_finite(mm):
    model = make_dasl(mm)
    drop = [17, 19, 36, 37, 40, 30, 48]  # brow, eye corner, an eye-centre lid point, nose tip, mouth corner
    batch = wild_batch(mm, model, drop=drop)
    full = wild_batch(mm, model)
    vis = np.isfinite(batch["wild"]["map_points"].numpy()).all(-1)
    assert (~vis).sum(1).tolist() == [6] * 4                  # 17, 19, 36, mid(37, 40), 30, 48
    assert (batch["wild"]["map"].numpy() == 1).sum() < (full["wild"]["map"].numpy() == 1).sum()
    second = model._map_of(tf.constant(full["wild"]["landmarks"].numpy()), tf.constant(vis)).numpy()
    np.testing.assert_array_equal(second, batch["wild"]["map"].numpy())  # pass 2 marks the same points as pass 1
    with tf.GradientTape() as tape:
        terms, _ = model.compute_terms(batch)
        total = model._total(terms)
    grads = tape.gradient(total, model.regressor.trainable_variables)
    assert all(np.isfinite(float(v)) for v in terms.values())
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


# ---------------------------------------------------------------------------- the model
def test_terms_zero_at_start_with_teacher(mm):
    model = make_dasl(mm, LossWeights(param_l2=1.0, vdc=1.0, anchor68=1.0))
    terms, pairs = model.compute_terms(wild_batch(mm, model))
    for name in ("wpdc", "param_l2", "vdc", "anchor68", "landmark", "self_2d", "self_3d", "cycle"):
        assert float(terms[name]) < 1e-5, (name, float(terms[name]))
    assert pairs is not None and "adversarial" in terms


def test_anchor68_follows_the_flip_averaged_teacher_landmarks_when_given(mm):
    model = make_dasl(mm, LossWeights(wpdc=0.0, anchor68=1.0, landmark=0.0, self_2d=0.0, self_3d=0.0, cycle=0.0,
                                      adversarial=0.0))
    batch = wild_batch(mm, model)
    lm = batch["wild"]["landmarks"]
    assert float(model.compute_terms(batch)[0]["anchor68"]) < 1e-5      # the plain projection: zero at the start
    batch["wild"]["teacher_landmarks"] = lm                               # the same points given explicitly
    assert float(model.compute_terms(batch)[0]["anchor68"]) < 1e-5
    batch["wild"]["teacher_landmarks"] = lm + tf.constant([3.0, 0.0])     # a target 3 px to the right
    moved = float(model.compute_terms(batch)[0]["anchor68"])
    # landmark_loss: mean Charbonnier point distance over the face size (the box of the points' target)
    size = np.sqrt(np.prod(np.ptp(lm.numpy(), axis=1), axis=-1))
    eps = L.LANDMARK_EPS
    np.testing.assert_allclose(moved, np.mean((np.sqrt(9.0 + eps**2) - eps) / size), rtol=1e-3)


def test_target_scale_scales_the_terms_against_the_target_not_the_points(mm):
    model = make_dasl(mm, LossWeights(wpdc=1.0, param_l2=1.0, vdc=1.0, anchor68=1.0, landmark=1.0))
    wild = wild_batch(mm, model)["wild"]
    first = model._pass(model.task.preprocessor.normalize(wild["image"]), None, False)
    target = wild["teacher"] + tf.constant([[0.0] * 12 + [2e4] + [0.0] * 49])
    points = wild["landmarks"] + tf.constant([2.0, 0.0])

    def terms(scale):
        return {n: float(v) for n, v in model.supervised_terms(first, target, points, target_scale=scale).items()}

    whole, half, none = terms(1.0), terms(0.5), terms(0.0)
    assert set(whole) == set(SUPERVISED_TERMS) and min(whole.values()) > 1e-4
    for n in ("wpdc", "param_l2", "vdc", "anchor68"):
        assert half[n] == pytest.approx(0.5 * whole[n], rel=1e-6)
    assert half["landmark"] == whole["landmark"]
    assert none == {**dict.fromkeys(("wpdc", "param_l2", "vdc", "anchor68"), 0.0), "landmark": whole["landmark"]}


def test_labelled_faces_and_the_wild_teacher_share_the_supervised_terms(mm):
    """With 3D-labelled (e.g. profiled) faces in the batch, the wild faces keep their annotated points at full
    weight and their teacher terms scaled by wild_teacher (by default none, as when a labelled part replaced the
    teacher's labels); without them, the wild faces' terms are whole."""
    model = make_dasl(mm, LossWeights(wpdc=0.0, param_l2=1.0, anchor68=1.0, landmark=1.0, self_2d=0.0, self_3d=0.0,
                                      cycle=0.0, adversarial=0.0))
    batch = wild_batch(mm, model)
    wild = dict(batch["wild"], teacher=batch["wild"]["teacher"] + tf.constant([[0.0] * 12 + [2e4] + [0.0] * 49]),
                landmarks=batch["wild"]["landmarks"] + tf.constant([2.0, 0.0]))
    labelled = {"image": wild["image"][::-1], "params": batch["wild"]["teacher"][::-1] * 1.01}

    def terms(**parts):
        return {n: float(v) for n, v in model.compute_terms(parts)[0].items()}

    lab, wild_only = terms(labelled=labelled), terms(wild=wild)
    assert set(lab) == {"param_l2", "anchor68"} and min(lab.values()) > 1e-4            # no points of their own
    assert min(wild_only.values()) > 1e-4
    assert model.loss_weights.wild_teacher == 0.0                                       # the default
    assert terms(labelled=labelled, wild=wild) == pytest.approx({**lab, "landmark": wild_only["landmark"]}, rel=1e-4)
    for share in (1.0, 0.5, 0.0):
        model.loss_weights.wild_teacher = share
        both = terms(labelled=labelled, wild=wild)
        for n in ("param_l2", "anchor68"):
            assert both[n] == pytest.approx(lab[n] + share * wild_only[n], rel=1e-4)
        assert both["landmark"] == pytest.approx(wild_only["landmark"], rel=1e-4)      # the points: always whole
    del wild["teacher"]                                                                 # no teacher: as 2DASL
    assert terms(labelled=labelled, wild=wild) == pytest.approx(lab, rel=1e-5)


def test_the_wild_teacher_can_anchor_shape_and_expression_only(mm):
    """wild_teacher_part shape_expression: beside labelled faces the wild faces' teacher terms are only the whitened
    L2 of the 50 shape and expression coefficients (scaled by wild_teacher); a changed pose in the teacher's label
    changes nothing, a changed shape coefficient does."""
    model = make_dasl(mm, LossWeights(wpdc=0.0, param_l2=1.0, anchor68=1.0, landmark=1.0, self_2d=0.0, self_3d=0.0,
                                      cycle=0.0, adversarial=0.0, wild_teacher=0.5,
                                      wild_teacher_part="shape_expression"))
    batch = wild_batch(mm, model)
    wild = batch["wild"]
    labelled = {"image": wild["image"][::-1], "params": wild["teacher"][::-1] * 1.01}

    def terms(teacher):
        return {n: float(v) for n, v in model.compute_terms({"labelled": labelled,
                                                              "wild": dict(wild, teacher=teacher)})[0].items()}

    lab = {n: float(v) for n, v in model.compute_terms({"labelled": labelled})[0].items()}
    base = terms(wild["teacher"])
    assert set(base) == {"param_l2", "anchor68", "landmark"}
    assert base["anchor68"] == pytest.approx(lab["anchor68"], rel=1e-5)                 # no teacher anchor68
    first = model._pass(model.task.preprocessor.normalize(wild["image"]), None, False)
    teacher_w = model.morphable.whiten(tf.cast(wild["teacher"], tf.float32))
    own = float(L.param_l2_loss(first.params_w[:, 12:], teacher_w[:, 12:]))
    assert base["param_l2"] == pytest.approx(lab["param_l2"] + 0.5 * own, rel=1e-4)
    pose_moved = wild["teacher"] + tf.constant([[0.0] * 3 + [7.0] + [0.0] * 58])
    assert terms(pose_moved)["param_l2"] == pytest.approx(base["param_l2"], rel=1e-6)
    shape_moved = wild["teacher"] + tf.constant([[0.0] * 12 + [2e4] + [0.0] * 49])
    assert terms(shape_moved)["param_l2"] > base["param_l2"] * 1.01
    with pytest.raises(ValueError, match="wild_teacher_part"):
        LossWeights(wild_teacher_part="pose").validate()


def test_face_masks_keep_only_the_chosen_faces_in_the_mean():
    """param_l2 / WPDC / landmark terms over the faces of a ``faces`` mask are the terms of those faces alone; a
    ``(B, 62)`` mask averages the parameters it keeps."""
    rng = np.random.default_rng(1)
    a, b = (tf.constant(rng.normal(0, 1, (4, 62)), tf.float32) for _ in range(2))
    p, q = (tf.constant(rng.uniform(0, 120, (4, 68, 2)), tf.float32) for _ in range(2))
    keep = tf.constant([True, False, True, False])
    assert float(L.param_l2_loss(a, b, keep)) == pytest.approx(float(L.param_l2_loss(a[::2], b[::2])), rel=1e-6)
    assert float(L.landmark_loss(p, q, faces=keep)) == pytest.approx(float(L.landmark_loss(p[::2], q[::2])), rel=1e-6)
    some = np.zeros((4, 62), bool)
    some[0, :12], some[3, 40:] = True, True
    sq = np.square(a.numpy() - b.numpy())
    assert float(L.param_l2_loss(a, b, tf.constant(some))) == pytest.approx(sq[some].mean(), rel=1e-5)
    none = tf.zeros(4, tf.bool)
    assert float(L.param_l2_loss(a, b, none)) == 0.0 and float(L.landmark_loss(p, q, faces=none)) == 0.0


def test_the_wild_teacher_can_be_kept_to_faces_near_frontal(mm):
    """wild_teacher_max_yaw: beside labelled faces only the wild faces whose teacher's |yaw| is within the limit get
    its terms (the terms of those faces alone); every face keeps its annotated points."""
    from tf2dasl.geometry.pose import angles_to_matrix, params_to_sRt, sRt_to_params

    model = make_dasl(mm, LossWeights(wpdc=0.0, param_l2=1.0, anchor68=1.0, landmark=1.0, self_2d=0.0, self_3d=0.0,
                                      cycle=0.0, adversarial=0.0, wild_teacher=1.0))
    wild = dict(wild_batch(mm, model)["wild"])
    s, _, t = params_to_sRt(wild["teacher"].numpy())
    yaws = np.array([10.0, -50.0, 70.0, -85.0])
    pose = sRt_to_params(s, angles_to_matrix(np.stack([yaws, np.zeros(4), np.zeros(4)], 1)), t)
    labelled = {"image": wild["image"][::-1], "params": wild["teacher"][::-1] * 1.01}
    teacher = np.concatenate([pose, wild["teacher"].numpy()[:, 12:]], axis=1).astype(np.float32)
    wild = dict(wild, teacher=tf.constant(teacher), landmarks=wild["landmarks"] + tf.constant([2.0, 0.0]))
    near = {k: v[:2] for k, v in wild.items()}

    def terms(**parts):
        return {n: float(v) for n, v in model.compute_terms(parts)[0].items()}

    lab, whole = terms(labelled=labelled), terms(labelled=labelled, wild=wild)
    model.loss_weights.wild_teacher_max_yaw = 60.0
    within, beyond = model.teacher_faces(wild["teacher"])
    assert within.numpy().tolist() == [True, True, False, False] and beyond is None
    gated, near_only = terms(labelled=labelled, wild=wild), terms(wild=near)
    for n in ("param_l2", "anchor68"):
        assert gated[n] == pytest.approx(lab[n] + near_only[n], rel=1e-4)
        assert gated[n] != pytest.approx(whole[n], rel=1e-3)
    assert gated["landmark"] == pytest.approx(whole["landmark"], rel=1e-6)            # every face's points
    # beyond the limit, the teacher's shape and expression alone: one mean over every compared coefficient
    model.loss_weights.wild_teacher_beyond = "shape_expression"
    first = model._pass(model.task.preprocessor.normalize(wild["image"]), None, False)
    sq = np.square(first.params_w.numpy() - model.morphable.whiten(wild["teacher"]).numpy())
    by_hand = (sq[:2].sum() + sq[2:, 12:].sum()) / (2 * 62 + 2 * 50)
    kept = terms(labelled=labelled, wild=wild)
    assert kept["param_l2"] == pytest.approx(lab["param_l2"] + by_hand, rel=1e-4)
    assert kept["anchor68"] == pytest.approx(gated["anchor68"], rel=1e-6)                # no pose term beyond
    model.loss_weights.wild_teacher_beyond = "none"
    model.loss_weights.wild_teacher_max_yaw = 5.0                                       # no face near enough
    assert terms(labelled=labelled, wild=wild) == pytest.approx({**lab, "landmark": whole["landmark"]}, rel=1e-5)
    model.loss_weights.wild_teacher_max_yaw = None
    assert model.teacher_faces(wild["teacher"]) == (None, None)
    for bad in (0.0, 95.0):
        with pytest.raises(ValueError, match="wild_teacher_max_yaw"):
            LossWeights(wild_teacher_max_yaw=bad).validate()
    with pytest.raises(ValueError, match="wild_teacher_beyond"):
        LossWeights(wild_teacher_beyond="pose").validate()


def test_held_out_nme_counts_visible_points_over_the_face_or_a_given_box():
    """nme_visible, hand-made: the mean distance of the visible points over sqrt(w * h) of their box, or of the box
    of ``normaliser`` (a group of points scored over the whole face)."""
    from tf2dasl.training.validation import nme_visible

    gt = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 40.0], [np.nan, np.nan]]])      # box 10 x 40: size 20
    pred = gt + np.array([[[3.0, 4.0], [0.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])         # distances 5, 0, 1, -
    assert nme_visible(pred, gt) == pytest.approx([2.0 / 20])
    group = [0, 1]                                                                  # box 10 x 0: the group's own
    assert nme_visible(pred[:, group], gt[:, group], gt) == pytest.approx([2.5 / 20])


def test_camera_prior_sees_the_depth_row_only(mm):
    """camera_loss: 0 for a scaled rotation (3DDFA's convention, params_to_sRt's third row), the squared relative
    error of a depth row off by 3 %, a gradient on that row alone; on in DASLModel's map pass with loss.camera."""
    from tf2dasl.geometry.pose import angles_to_matrix, sRt_to_params

    rng = np.random.default_rng(3)
    rot = angles_to_matrix(rng.uniform(-80, 80, (5, 3)))
    pose = sRt_to_params(rng.uniform(5e-4, 2e-3, 5), rot, rng.normal(0, 50, (5, 3)))
    params = tf.constant(np.concatenate([pose, rng.normal(0, 1, (5, 50))], axis=1), tf.float32)
    assert float(L.camera_loss(params)) < 1e-10
    flat = params.numpy()
    flat[:, 8:11] *= 0.97
    flat = tf.Variable(flat)
    with tf.GradientTape() as tape:
        loss = L.camera_loss(flat)
    assert float(loss) == pytest.approx(0.03 ** 2, rel=1e-3)
    grad = tape.gradient(loss, flat).numpy()
    assert np.abs(grad[:, 8:11]).min() > 0 and np.abs(np.delete(grad, [8, 9, 10], axis=1)).max() == 0
    model = make_dasl(mm, LossWeights(wpdc=0.0, landmark=0.0, self_2d=0.0, self_3d=0.0, cycle=0.0, adversarial=0.0,
                                      camera=1.0))
    terms = model.compute_terms(wild_batch(mm, model))[0]
    assert set(terms) == {"camera"} and np.isfinite(float(terms["camera"]))


def test_gradients_reach_the_right_sub_model(mm):
    model = make_dasl(mm)
    batch = wild_batch(mm, model)
    with tf.GradientTape(persistent=True) as tape:
        terms, (real, fake) = model.compute_terms(batch)
        total = model._total(terms)
        c_loss = L.critic_loss(model.critic(tuple(tf.stop_gradient(t) for t in real)),
                               model.critic(tuple(tf.stop_gradient(t) for t in fake)))
    reg_grads = tape.gradient(total, model.regressor.trainable_variables)
    assert all(g is not None for g in reg_grads)
    assert not model.morphable.trainable_variables and not model.points.trainable_variables
    assert all(g is None for g in tape.gradient(c_loss, model.regressor.trainable_variables))
    assert all(g is not None for g in tape.gradient(c_loss, model.critic.trainable_variables))
    # the adversarial term alone reaches the regressor through the predicted parameters
    adv = tape.gradient(terms["adversarial"], model.regressor.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in adv)


def test_critic_pairs_real_and_fake(mm):
    model = make_dasl(mm)
    batch = wild_batch(mm, model)["wild"]
    given = model._pass(model.task.preprocessor.normalize(batch["image"]), batch["map"], False)
    real, fake = model.critic_pairs(given, batch["teacher"])
    np.testing.assert_array_equal(real[0].numpy(), fake[0].numpy())   # the same image feature (the map(X) pass)
    np.testing.assert_allclose(real[1].numpy(), model.morphable.whiten(batch["teacher"]).numpy(), atol=1e-5)
    np.testing.assert_array_equal(fake[1].numpy(), given.params_w.numpy())


def test_critic_and_regressor_updates_alternate(mm):
    model = make_dasl(mm)
    batch = wild_batch(mm, model)
    for step in range(1, 4):
        reg_before = [w.copy() for w in model.regressor.get_weights()]
        critic_before = [w.copy() for w in model.critic.get_weights()]
        logs = model.train_step(batch)
        assert int(model.reg_optimizer.iterations) == step and int(model.critic_optimizer.iterations) == step
        assert any(not np.array_equal(a, b) for a, b in zip(reg_before, model.regressor.get_weights()))
        assert any(not np.array_equal(a, b) for a, b in zip(critic_before, model.critic.get_weights()))
        assert "critic" in logs and "adversarial" in logs


def test_switching_terms_off(mm):
    model = make_dasl(mm, LossWeights(self_3d=0.0, cycle=0.0, adversarial=0.0))
    terms, pairs = model.compute_terms(wild_batch(mm, model))
    assert set(terms) == {"wpdc", "landmark", "self_2d"} and pairs is None
    logs = model.train_step(wild_batch(mm, model))
    assert "critic" not in logs and int(model.critic_optimizer.iterations) == 0


def test_test_step_does_not_update_batchnorm_statistics(mm):
    model = make_dasl(mm, LossWeights(self_3d=0.0, cycle=0.0, adversarial=0.0), freeze_bn=False)
    stats = [v for v in model.regressor.non_trainable_variables if "moving" in v.path]
    assert stats
    before = [v.numpy().copy() for v in stats]
    batch = wild_batch(mm, model)
    model.test_step(batch)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, stats))
    model.train_step(batch)  # freeze_bn off: training updates them
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, stats))


def test_get_config_round_trip(mm, tmp_path):
    model = make_dasl(mm)
    clone = DASLModel.from_config(model.get_config())
    clone.build()
    path = tmp_path / "dasl.weights.h5"
    model.save_weights(str(path))
    clone.load_weights(str(path))
    x = tf.constant(np.random.default_rng(0).integers(0, 255, (2, 120, 120, 3)), tf.uint8)
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert clone.loss_weights == model.loss_weights and clone.points.num_points == 68


# ---------------------------------------------------------------------------- fit, distribution, resume
@pytest.mark.slow
def test_two_step_fit_under_mirrored_strategy(synth, tmp_path):
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from synthetic import random_morphable_model
        from tf2dasl.geometry.landmark_map import landmark_map, map_points
        from tf2dasl.models.critic import SelfCritic
        from tf2dasl.models.dasl import DASLModel, expand_to_four_channels
        from tf2dasl.models.regressor import Regressor
        from tf2dasl.models.spec import ModelSpec
        from tf2dasl.models.task import FaceTask
        mm = random_morphable_model()
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            reg3 = Regressor("mobilenet_v1", {WIDTH}, 120, 3); reg3.build()
            task = FaceTask(ModelSpec(width={WIDTH}, channels=4), mm, regressor=expand_to_four_channels(reg3))
            model = DASLModel(task, SelfCritic((64, 32)))
            model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), keras.optimizers.Adam(1e-4, 0.5, 0.999))
            model.build(); model.build_optimizers()
        rng = np.random.default_rng(0)
        lm = rng.uniform(30, 90, (8, 68, 2)).astype(np.float32)
        teacher = np.tile(mm.param_mean, (8, 1)).astype(np.float32)
        data = {{"wild": {{"image": rng.integers(0, 255, (8, 120, 120, 3)).astype(np.uint8), "landmarks": lm,
                         "map_points": map_points(lm), "map": landmark_map(lm), "teacher": teacher}}}}
        ds = tf.data.Dataset.from_tensor_slices(data).batch(4, drop_remainder=True).repeat()
        hist = model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
        assert int(model.reg_optimizer.iterations.numpy()) == 2 and int(model.critic_optimizer.iterations.numpy()) == 2
        assert all(np.isfinite(v[-1]) for v in hist.history.values()), hist.history
        print("MIRRORED_OK", sorted(hist.history))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert "MIRRORED_OK" in res.stdout, res.stdout[-2000:] + res.stderr[-4000:]


class _StopAfter(keras.callbacks.Callback):
    """Simulates a kill right after the checkpoint of epoch ``n``."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            self.model.stop_training = True


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(synth, tmp_path):
    from tf2dasl.training.trainer import train

    cfg = load_config(train_config(synth, tmp_path, epochs=3), TrainConfig)
    full = train(cfg, tmp_path / "full", verbose=0)
    cfg = load_config(train_config(synth, tmp_path, epochs=3), TrainConfig)
    train(cfg, tmp_path / "cut", verbose=0, extra_callbacks=[_StopAfter(1)])
    assert tf.train.latest_checkpoint(str(tmp_path / "cut/checkpoints")).endswith("ckpt-1")
    cfg = load_config(train_config(synth, tmp_path, epochs=3), TrainConfig)
    resumed = train(cfg, tmp_path / "cut", resume=True, verbose=0)
    a, b = load_model_dir(full).regressor.get_weights(), load_model_dir(resumed).regressor.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # bit for bit
    assert (tmp_path / "full/history.csv").read_text().count("\n") == 4  # header + 3 epochs


def test_train_bad_input(synth, tmp_path, capsys):
    out = str(tmp_path / "run")
    cfg = train_config(synth, tmp_path)
    cfg.write_text(cfg.read_text() + "learning_rate: 0.1\n")
    one_line_error(capsys, ["train", "--config", str(cfg), "--out", out], "unknown key", "learning_rate")
    cfg = train_config(synth, tmp_path)
    cfg.write_text(cfg.read_text().replace("epochs: 2", "epochs: two"))
    one_line_error(capsys, ["train", "--config", str(cfg), "--out", out], "epochs", "integer")
    cfg = train_config(synth, tmp_path)
    cfg.write_text(cfg.read_text().replace(str(synth["wild"]), str(tmp_path / "missing")))
    one_line_error(capsys, ["train", "--config", str(cfg), "--out", out], "missing")
    bad = tmp_path / "badpts"
    bad.mkdir()
    (bad / "a.png").write_bytes((synth["wild"] / "face_000.png").read_bytes())
    (bad / "a.pts").write_text("version: 1\nn_points: 5\n{\n1 2\n3 4\n5 6\n7 8\n9 10\n}\n")
    cfg = train_config(synth, tmp_path)
    cfg.write_text(cfg.read_text().replace(str(synth["wild"]), str(bad)))
    one_line_error(capsys, ["train", "--config", str(cfg), "--out", out], "a.pts")
    one_line_error(capsys, ["train", "--config", str(tmp_path / "nope.yaml"), "--out", out], "not found")
    one_line_error(capsys, ["train", "--config", str(train_config(synth, tmp_path)), "--out", out, "--resume"],
               "nothing to resume")
    profiled = train_config(synth, tmp_path)
    profiled.write_text(profiled.read_text().replace("  wild:", "  profiled: {batch_size: 2}\n  wild:"))
    one_line_error(capsys, ["train", "--config", str(profiled), "--out", out], "data.profiled needs --init")
    profiled.write_text(profiled.read_text().replace("  wild:", "  labelled: {root: x}\n  wild:"))
    one_line_error(capsys, ["train", "--config", str(profiled), "--out", out], "data.labelled and data.profiled")
    one_line_error(capsys, ["profile", "--config", str(profiled), "--model", out], "data.labelled and data.profiled")
    with pytest.raises(ConfigError, match="cycle must be >= 0"):
        cfg = train_config(synth, tmp_path)
        cfg.write_text(cfg.read_text().replace("cycle: 1.0", "cycle: -1.0"))
        load_config(cfg, TrainConfig)


@pytest.mark.slow
def test_resnet50_300wlp_config_smoke(synth, mm, tmp_path):
    """configs/dasl_resnet50_300wlp.yaml, pointed at tiny synthetic data: one short epoch of the full setting."""
    import yaml
    from synthetic import write_labelled_crops

    from tf2dasl.io.yaml_config import from_dict
    from tf2dasl.training.trainer import train

    lab = write_labelled_crops(tmp_path / "lab", mm, n=4)
    raw = yaml.safe_load((REPO / "configs/dasl_resnet50_300wlp.yaml").read_text())
    raw.update(epochs=1, steps_per_epoch=1, mixed_precision=False)
    raw["model"]["morphable_model"] = str(synth["checkout"])
    raw["data"]["labelled"].update(root=str(lab["root"]), list_file=str(lab["list"]), params_file=str(lab["params"]),
                                   params_whitened=False, whitening_file="", batch_size=2)
    raw["data"]["wild"].update(pts_folders=[str(synth["wild"])], batch_size=2)
    raw["data"]["validation"] = None
    cfg = from_dict(TrainConfig, raw)
    model_dir = train(cfg, tmp_path / "run", verbose=0)
    model = load_model_dir(model_dir)
    assert model.spec.backbone == "resnet50" and model.spec.channels == 4
    history = (tmp_path / "run/history.csv").read_text()
    for term in ("wpdc", "self_2d", "self_3d", "cycle", "adversarial", "critic"):
        assert term in history.splitlines()[0], history


def test_map_lr_multiplier_scales_only_the_map_slice(mm):
    model = make_dasl(mm)
    model.map_lr_multiplier = 10.0
    variables = model.regressor.trainable_variables
    grads = [tf.ones(v.shape) for v in variables]
    scaled = model._scale_map_gradient(grads, variables)
    first = next(i for i, v in enumerate(variables) if len(v.shape) == 4 and v.shape[2] == 4)
    assert np.all(scaled[first].numpy()[:, :, 3] == 10.0) and np.all(scaled[first].numpy()[:, :, :3] == 1.0)
    assert all(np.all(g.numpy() == 1.0) for i, g in enumerate(scaled) if i != first)


def test_set_overrides_reach_the_dataclass_with_types_and_strict_keys(synth, tmp_path, capsys):
    path = train_config(synth, tmp_path)
    cfg = load_config(path, TrainConfig, overrides=["optim.lr=0.05", "loss.cycle=0", "optim.map_lr_multiplier=100",
                                                    "model.critic_hidden=[8, 4]", "mixed_precision=true"])
    assert cfg.optim.lr == 0.05 and cfg.loss.cycle == 0.0 and cfg.optim.map_lr_multiplier == 100.0
    assert list(cfg.model.critic_hidden) == [8, 4] and cfg.mixed_precision is True
    assert cfg.loss.self_2d == 1.0  # untouched keys keep the file's value
    plain = load_config(path, TrainConfig)
    assert plain.optim.lr == 0.001 and plain.loss.cycle == 1.0  # the file itself is not changed
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) lrr"):
        load_config(path, TrainConfig, overrides=["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(path, TrainConfig, overrides=["optim.lr=fast"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(path, TrainConfig, overrides=["optim.lr"])
    with pytest.raises(ConfigError, match="seed is not a section"):
        load_config(path, TrainConfig, overrides=["seed.x=1"])
    one_line_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run"), "--set", "loss.cycle=-1"],
               "cycle must be >= 0")


@pytest.mark.slow
def test_deterministic_runs_are_identical_bit_for_bit(synth, tmp_path):
    """Two fresh processes with ``deterministic: true`` end with the same weights and metrics, bit for bit."""
    cfg = train_config(synth, tmp_path, epochs=1, deterministic="true")
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        # batches of 16 at width 0.25 are big enough for TF's CPU kernels to split work across threads
        proc = subprocess.run([sys.executable, "-m", "tf2dasl.cli", "train", "--config", str(cfg), "--out", str(out),
                               "--set", "data.wild.batch_size=16", "--set", "steps_per_epoch=3"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(out)
    a, b = (tf.train.load_checkpoint(tf.train.latest_checkpoint(str(r / "checkpoints"))) for r in runs)
    names = sorted(a.get_variable_to_shape_map())
    assert names == sorted(b.get_variable_to_shape_map()) and len(names) > 10
    assert all(np.array_equal(a.get_tensor(k), b.get_tensor(k)) for k in names if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert (runs[0] / "history.csv").read_text() == (runs[1] / "history.csv").read_text()


def test_deterministic_needs_a_fresh_process():
    from tf2dasl.training.trainer import TrainingError, make_deterministic

    tf.constant(1.0) + 1.0  # the thread pools exist now
    if tf.config.threading.get_intra_op_parallelism_threads() == 1:
        pytest.skip("this process already runs TensorFlow single-threaded")
    with pytest.raises(TrainingError, match="fresh process"):
        make_deterministic()


@pytest.fixture(scope="module")
def init_model_dir(mm, tmp_path_factory):
    """A tiny 3-channel model directory to start (and teach) from."""
    from tf2dasl.io.model_dir import save_model_dir

    return save_model_dir(FaceTask(ModelSpec(name="tiny", width=WIDTH), mm), tmp_path_factory.mktemp("init") / "tiny")


TEACHER_CRITIC = ["--set", "teacher=true", "--set", "loss.wpdc=1.0", "--set", "loss.adversarial=0.01"]


@pytest.mark.slow
def test_train_command_under_mirrored_strategy_with_teacher_and_critic(synth, init_model_dir, tmp_path):
    """``distribute: mirrored`` through the real trainer (models, teacher, critic, optimizers all created in the
    strategy's scope) on 2 logical CPUs."""
    cfg = train_config(synth, tmp_path, epochs=1)
    script = textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tf2dasl.training import trainer
        assert trainer._strategy("mirrored").num_replicas_in_sync == 2
        from tf2dasl.cli import main
        rc = main(["train", "--config", {str(cfg)!r}, "--init", {str(init_model_dir)!r}, "--out",
                   {str(tmp_path / "run")!r}, "--set", "distribute=mirrored",
                   "--set", "data.teacher_cache={tmp_path / 'cache'}"] + {TEACHER_CRITIC!r})
        print("RC", rc)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert "RC 0" in res.stdout, res.stdout[-2000:] + res.stderr[-4000:]
    hist = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert "adversarial" in hist[0] and "critic" in hist[0] and len(hist) == 2
    assert (tmp_path / "run" / "model" / "model.json").is_file()


@pytest.mark.slow
def test_train_command_with_mixed_precision_teacher_and_critic(synth, init_model_dir, tmp_path):
    """``mixed_precision: true``: float16 regressor, float32 losses and critic (a fresh process: the policy is global)."""
    cfg = train_config(synth, tmp_path, epochs=1)
    res = subprocess.run([sys.executable, "-m", "tf2dasl.cli", "train", "--config", str(cfg), "--init",
                          str(init_model_dir), "--out", str(tmp_path / "run"), "--set", "mixed_precision=true",
                          "--set", f"data.teacher_cache={tmp_path / 'cache'}"] + TEACHER_CRITIC,
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    header, row = (tmp_path / "run" / "history.csv").read_text().splitlines()[:2]
    values = dict(zip(header.split(","), row.split(",")))
    assert all(np.isfinite(float(values[k])) for k in ("loss", "adversarial", "critic", "wpdc"))


def test_cosine_warmup_ramps_from_zero():
    from tf2dasl.training.train_config import OptimConfig
    from tf2dasl.training.trainer import _optimizers

    cfg = TrainConfig(optim=OptimConfig(lr=0.004, lr_schedule="cosine", warmup_steps=10))
    reg, _ = _optimizers(cfg, total_steps=50)
    lr = [float(reg.learning_rate if not callable(reg._learning_rate) else reg._learning_rate(s)) for s in (0, 5, 10, 49)]
    assert lr[0] == pytest.approx(0.0, abs=1e-9) and lr[1] == pytest.approx(0.002, rel=1e-4)
    assert lr[2] == pytest.approx(0.004, rel=1e-4) and lr[3] < 0.001


@pytest.mark.slow
def test_mirrored_clipping_is_global_and_matches_one_device():
    """Under MirroredStrategy the clip applies to the all-reduced gradient: one clipped SGD step on 2 replicas
    (4 faces each) moves the weights as the same step on one device with the whole batch of 8."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from synthetic import random_morphable_model
        from tf2dasl.geometry.landmark_map import landmark_map, map_points
        from tf2dasl.models.critic import SelfCritic
        from tf2dasl.models.dasl import DASLModel, LossWeights, expand_to_four_channels
        from tf2dasl.models.regressor import Regressor
        from tf2dasl.models.spec import ModelSpec
        from tf2dasl.models.task import FaceTask
        mm = random_morphable_model()
        rng = np.random.default_rng(0)
        lm = rng.uniform(30, 90, (8, 68, 2)).astype(np.float32)
        data = {{"wild": {{"image": rng.integers(0, 255, (8, 120, 120, 3)).astype(np.uint8), "landmarks": lm,
                         "map_points": map_points(lm), "map": landmark_map(lm)}}}}
        weights = LossWeights(wpdc=0, landmark=0, self_2d=1.0, self_3d=0, cycle=0, adversarial=0)
        CLIP = 1e-3
        init = None

        def one_step(strategy, mirrored):
            global init
            with strategy.scope():
                reg3 = Regressor("mobilenet_v1", {WIDTH}, 120, 3); reg3.build()
                task = FaceTask(ModelSpec(width={WIDTH}, channels=4), mm, regressor=expand_to_four_channels(reg3))
                model = DASLModel(task, SelfCritic((16, 8)), weights, replica_clip_norm=CLIP if mirrored else None)
                opt = keras.optimizers.SGD(0.1) if mirrored else keras.optimizers.SGD(0.1, global_clipnorm=CLIP)
                model.compile(opt, keras.optimizers.Adam(1e-4))
                model.build(); model.build_optimizers()
                if init is None:
                    init = [w.copy() for w in model.regressor.get_weights()]
                model.regressor.set_weights(init)
            ds = tf.data.Dataset.from_tensor_slices(data).batch(8)
            model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
            return model.regressor.get_weights()

        one = one_step(tf.distribute.get_strategy(), False)
        two = one_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), True)
        step = max(float(np.abs(a - b).max()) for a, b in zip(one, init))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
        norm = float(np.sqrt(sum(float(np.sum(np.square(a - b))) for a, b in zip(one, init)))) / 0.1
        print("STEP", step, "DIFF", diff, "NORM", norm)
        assert step > 0 and abs(norm - CLIP) < 1e-2 * CLIP, (step, norm)  # the clip was active: |update| = lr * CLIP
        assert diff < 1e-3 * step, (diff, step)
        print("CLIP_OK")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert "CLIP_OK" in res.stdout, res.stdout[-2000:] + res.stderr[-4000:]


# ---------------------------------------------------------------------------- run folders, NaN stop
def test_nan_stop_is_a_public_result():
    from tf2dasl.training.callbacks import StopOnNaN

    class Model:
        stop_training = False

    cb = StopOnNaN()
    cb.set_model(Model())
    cb.on_epoch_begin(2)
    cb.on_batch_end(4, {"loss": 0.5, "cycle": 0.1})
    assert cb.stopped is None and not cb.model.stop_training
    cb.on_batch_end(5, {"loss": float("nan"), "cycle": float("inf")})
    assert cb.stopped is not None and (cb.stopped.epoch, cb.stopped.step) == (3, 6) and cb.model.stop_training
    msg = cb.stopped.message()
    assert "epoch 3 step 6" in msg and "cycle=inf" in msg and "\n" not in msg


@pytest.mark.slow
def test_diverging_training_stops_with_one_line_and_keeps_the_last_good_epoch(synth, tmp_path, capsys):
    cfg = train_config(synth, tmp_path, epochs=2)
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "--config", str(cfg), "--out", str(out), "--set", "optim.lr=1.0e+30",
                        "--set", "optim.clip_norm=null", "--set", "steps_per_epoch=1"], "non-finite loss", "--resume")
    assert tf.train.latest_checkpoint(str(out / "checkpoints")) is None or \
        tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-1")
    assert not (out / "model").exists()


def test_landmark_points_per_set():
    from tf2dasl.data.landmark_sets import AFLW_21, LANDMARKS_68, PointLayout

    layout = PointLayout((LANDMARKS_68, AFLW_21), {"aflw21": np.tile(np.arange(21)[:, None], (1, 2))})
    a, w = layout.loss_points({"68": "map18", "aflw21": "all"})
    assert a.shape == (18 + 21, 89) and not a[:, :17].any()  # no jaw point of the 68
    np.testing.assert_array_equal(a[18:, 68:], np.eye(21))
    assert w[:18].sum() == pytest.approx(14.0) and (w[18:] == 1).all()
    with pytest.raises(ConfigError, match="landmark_points"):
        from tf2dasl.io.yaml_config import from_dict
        from_dict(LossWeights, {"landmark_points": {"68": "jaw"}})


# ---------------------------------------------------------------------------- MultiWorkerMirroredStrategy
def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tf_config(ports, index):
    import json

    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker",
                                                                                         "index": index}})


MULTI_WORKER_STEP = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorflow as tf
    mode, out, init = sys.argv[1:4]
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if mode == "multi" else tf.distribute.get_strategy()
    import keras
    sys.path.insert(0, {tests!r})
    from synthetic import random_morphable_model
    from tf2dasl.geometry.landmark_map import landmark_map, map_points
    from tf2dasl.models.critic import SelfCritic
    from tf2dasl.models.dasl import DASLModel, LossWeights, expand_to_four_channels
    from tf2dasl.models.regressor import Regressor
    from tf2dasl.models.spec import ModelSpec
    from tf2dasl.models.task import FaceTask


    class Probe(DASLModel):
        def train_step(self, data):
            tf.print("LOCAL_BATCH", tf.shape(data["wild"]["image"])[0], output_stream=sys.stdout)
            return super().train_step(data)


    mm = random_morphable_model()
    rng = np.random.default_rng(0)
    lm = rng.uniform(30, 90, (8, 68, 2)).astype(np.float32)
    teacher = np.tile(mm.param_mean, (8, 1)).astype(np.float32) + rng.normal(0, 0.01, (8, 62)).astype(np.float32)
    data = {{"wild": {{"image": rng.integers(0, 255, (8, 120, 120, 3)).astype(np.uint8), "landmarks": lm,
                     "map_points": map_points(lm), "map": landmark_map(lm), "teacher": teacher}}}}
    CLIP = 1e-3
    with strategy.scope():
        reg3 = Regressor("mobilenet_v1", {width}, 120, 3); reg3.build()
        with np.load(init) as z:
            reg3.set_weights([z[f"w{{i}}"] for i in range(len(z.files))])
        multi = strategy.num_replicas_in_sync > 1
        task = FaceTask(ModelSpec(width={width}, channels=4), mm, regressor=expand_to_four_channels(reg3))
        weights = LossWeights(wpdc=1.0, landmark=1.0, self_2d=1.0, self_3d=0.5, cycle=1.0, adversarial=0.0)
        model = Probe(task, SelfCritic((16, 8)), weights, replica_clip_norm=CLIP if multi else None)
        opt = keras.optimizers.SGD(0.1) if multi else keras.optimizers.SGD(0.1, global_clipnorm=CLIP)
        model.compile(opt, keras.optimizers.Adam(1e-4))
        model.build(); model.build_optimizers()
    before = [w.copy() for w in model.regressor.get_weights()]
    ds = tf.data.Dataset.from_tensor_slices(data).batch(8)  # the global batch
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    after = model.regressor.get_weights()
    np.savez(out, *after)
    print("REPLICAS", strategy.num_replicas_in_sync)
    print("STEP", max(float(np.abs(a - b).max()) for a, b in zip(after, before)))
""")


@pytest.mark.slow
def test_one_step_on_two_workers_equals_the_global_batch_on_one_worker(tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG, two worker processes on 127.0.0.1: each computes half of the
    global batch of 8, and after one (clipped) step both hold what one worker holds after the step on all 8."""
    import os

    init = tmp_path / "init.npz"
    reg = Regressor("mobilenet_v1", WIDTH, 120, 3)
    reg.build()
    np.savez(init, **{f"w{i}": w for i, w in enumerate(reg.get_weights())})
    script = tmp_path / "step.py"
    script.write_text(MULTI_WORKER_STEP.format(tests=str(REPO / "tests"), width=WIDTH))
    ports = _free_ports(2)
    procs = [subprocess.Popen([sys.executable, str(script), "multi", str(tmp_path / f"w{i}.npz"), str(init)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                              env={**os.environ, "TF_CONFIG": _tf_config(ports, i)}) for i in range(2)]
    single = subprocess.run([sys.executable, str(script), "single", str(tmp_path / "one.npz"), str(init)],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-3000:]
    for o, p in zip(outs, procs):
        assert p.returncode == 0 and "REPLICAS 2" in o and "LOCAL_BATCH 4" in o, o[-3000:]
    assert "LOCAL_BATCH 8" in single.stdout
    w0, w1, one = (np.load(tmp_path / f) for f in ("w0.npz", "w1.npz", "one.npz"))
    step = float(single.stdout.split("STEP")[1].split()[0])
    assert step > 0
    for k in one.files:
        np.testing.assert_array_equal(w0[k], w1[k])             # the workers agree exactly
        np.testing.assert_allclose(w0[k], one[k], rtol=0, atol=1e-3 * step)


def test_tf_config_picks_multi_worker(monkeypatch):
    from tf2dasl.training.trainer import TrainingError, _tf_config_workers

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert _tf_config_workers() == 0
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 0))
    assert _tf_config_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TrainingError, match="TF_CONFIG"):
        _tf_config_workers()


@pytest.mark.slow
def test_train_command_on_two_workers(synth, init_model_dir, tmp_path):
    """``tf2dasl train`` picks MultiWorkerMirroredStrategy up from TF_CONFIG: two worker processes on 127.0.0.1
    train one epoch with teacher labels; the chief writes the run folder, the other worker nothing."""
    import os

    cfg = train_config(synth, tmp_path, epochs=1)
    ports = _free_ports(2)
    runs = [tmp_path / "chief", tmp_path / "worker"]
    procs = [subprocess.Popen([sys.executable, "-m", "tf2dasl.cli", "train", "--config", str(cfg), "--init",
                               str(init_model_dir), "--out", str(run), "--set", f"data.teacher_cache={tmp_path / 'c'}"]
                              + TEACHER_CRITIC, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                              env={**os.environ, "TF_CONFIG": _tf_config(ports, i)}) for i, run in enumerate(runs)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for o, p in zip(outs, procs):
        assert p.returncode == 0, o[-4000:]
    assert (runs[0] / "model/model.json").is_file() and tf.train.latest_checkpoint(str(runs[0] / "checkpoints"))
    assert len((runs[0] / "history.csv").read_text().splitlines()) == 2
    assert not runs[1].exists() or not any(runs[1].iterdir())


def test_fit_landmarks_command_writes_the_points_file_and_a_picture(mm, init_model_dir, tmp_path, capsys):
    from tf2dasl.data.landmark_sets import read_points_file

    root = write_aflw(tmp_path / "aflw", n=8)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data:
          wild:
            aflw: {{root: "{root}", points_file: "{tmp_path / 'points.yaml'}", val_every: 4}}
    """))
    assert main(["fit-landmarks", "--config", str(cfg), "--model", str(init_model_dir), "--faces", "5",
                 "--draw", str(tmp_path / "pics")]) == 0
    out = capsys.readouterr().out
    assert "fitting on 5 of 6 AFLW training faces (2 validation faces excluded" in out
    pairs = read_points_file(tmp_path / "points.yaml", "aflw21")
    assert pairs.shape == (21, 2) and (pairs >= 0).all() and (pairs < mm.num_vertices).all()
    import cv2

    pic = cv2.imread(str(tmp_path / "pics/points_fit.png"))
    assert pic is not None and pic.shape[0] > 300 and pic.std() > 5
    one_line_error(capsys, ["fit-landmarks", "--config", str(train_config({"checkout": "x", "wild": "y"}, tmp_path)),
                        "--model", str(init_model_dir)], "no data.wild.aflw")


def test_teacher_labels_are_refined_to_manual_points_or_flip_fitted_when_asked(synth, mm, tmp_path):
    """``teacher_refine_max_yaw``: the trainer's teacher labels of a 300-W-style source move to the faces' manual
    points (both views; the mirrored one to the mirrored points), and the run's log says how many.
    ``teacher_flip_fit``: the two views' labels become one fit and its mirror image."""
    from tf2dasl.data.augment import mirror_labels
    from tf2dasl.data.datasets import load_wild_data
    from tf2dasl.data.pipeline import plain_crops
    from tf2dasl.profiling.fitting import MeshFitter
    from tf2dasl.training.trainer import _attach_teacher_labels

    teacher = FaceTask(ModelSpec(name="tiny", width=WIDTH), mm)

    def attach(*overrides):
        cfg = load_config(train_config(synth, tmp_path), TrainConfig,
                          overrides=["teacher=true", f"data.teacher_cache={tmp_path / 'cache'}", *overrides])
        wild, logs = load_wild_data(cfg.data.wild), []
        _attach_teacher_labels(cfg, wild, teacher, log=logs.append)
        return wild.sources[0], logs

    as_taught, _ = attach()
    refined, logs = attach("teacher_refine_max_yaw=90")
    crops, points = plain_crops(refined.faces, refined.augment)
    n = len(crops)
    assert f"{2 * n} of {2 * n} refined to the manual points" in logs[0]
    # the synthetic faces' points are the model's own (reached exactly); its random model is not mirror-symmetric, so
    # the mirrored points are only approached
    k = refined.faces.roi_side * refined.faces.pixel_scale / crops.shape[1]
    for view, target, gain in ((0, points, 1e-3), (1, mirror_labels(points, crops.shape[1], k), 0.7)):
        err = [np.abs(teacher.decoder.landmarks(f.teacher[:, view])[..., :2] - target).mean()
               for f in (as_taught.faces, refined.faces)]
        assert err[1] < gain * err[0], (view, err)

    flipped, logs = attach("teacher_flip_fit=true")                # both views one fit: exact mirror images
    assert "both views one flip-averaged fit" in logs[0]
    fitter = MeshFitter(mm, crops.shape[1], teacher.decoder.convention)
    np.testing.assert_allclose(flipped.faces.teacher[:, 1], fitter.mirror(flipped.faces.teacher[:, 0]), atol=1e-4)
    assert not np.allclose(as_taught.faces.teacher[:, 1], fitter.mirror(as_taught.faces.teacher[:, 0]), atol=1e-2)
