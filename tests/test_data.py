"""Training data: sample listings, augmentation geometry/colour, tf.data pipelines (shapes, determinism, skips)."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import tensorflow as tf

from helpers import affine_for_roi, apply_affine, augment_face, augment_faces, colour_of, write_aflw
from tf2dasl.data import pipeline
from tf2dasl.data.augment import NUM_RANDOM, AugmentConfig, gather_warp, sample_geometry, warp_images
from tf2dasl.data.data_config import LabelledDataConfig, WildDataConfig
from tf2dasl.data.datasets import steps_per_epoch
from tf2dasl.data.loading import load_labelled_crops, load_wild_faces
from tf2dasl.data.pipeline import labelled_dataset, mixed_dataset, wild_dataset
from tf2dasl.data.sources import list_300wlp, list_3ddfa_params, list_pts_faces, split_holdout
from tf2dasl.errors import UserError
from tf2dasl.geometry import tf_ops
from tf2dasl.geometry.camera import image_to_crop
from tf2dasl.geometry.landmark_map import MAP_POINT_PAIRS, landmark_map
from tf2dasl.geometry.morphable_model import FLIP_PERMUTATION_68
from tf2dasl.geometry.roi import crop_image, roi_from_landmarks
from tf2dasl.io.yaml_config import ConfigError, from_dict

S = 120
NO_COLOUR = dict(brightness=0.0, contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=0.0)


# ---------------------------------------------------------------------------- synthetic fixtures
def grid_landmarks(offset=(50.0, 46.0), step=12.0, seed=0) -> np.ndarray:
    """68 distinct points on a jittered 9 x 8 grid (0-based image px), at least ~9 px apart."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(9), np.arange(8)), -1).reshape(-1, 2)[:68].astype(np.float32)
    return (g * step + np.asarray(offset, np.float32) + rng.uniform(-1.5, 1.5, (68, 2))).astype(np.float32)


def dot_image(landmarks: np.ndarray, h=200, w=220, radius=2, colours=True) -> np.ndarray:
    """Black image with a (2r+1)^2 square dot at each rounded landmark, coloured by index (or white)."""
    img = np.zeros((h, w, 3), np.uint8)
    for i, (x, y) in enumerate(np.rint(landmarks).astype(int)):
        img[y - radius:y + radius + 1, x - radius:x + radius + 1] = colour_of(i) if colours else 255
    return img


def write_pts(path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)  # .pts files are 1-based
    path.write_text(f"version: 1\nn_points:  {len(pts)}\n{{\n{body}\n}}\n")


def smooth_image(h, w, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    """10 synthetic faces (dot images + .pts), one image without .pts, one unrelated file."""
    d = tmp_path_factory.mktemp("faces")
    for i in range(10):
        lm = grid_landmarks(offset=(45.0 + i, 40.0 + 2 * i), seed=i)
        cv2.imwrite(str(d / f"face_{i:02d}.png"), dot_image(lm))
        write_pts(d / f"face_{i:02d}.pts", lm)
    cv2.imwrite(str(d / "no_label.png"), np.zeros((20, 20, 3), np.uint8))
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def wild_faces(face_folder):
    return load_wild_faces(list_pts_faces(face_folder), cache="memory")


@pytest.fixture
def no_jit(monkeypatch):
    """Plain TF ops instead of XLA: no compile per shape (the XLA path is checked against it below)."""
    monkeypatch.setattr(pipeline, "JIT", False)


def take(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


# ---------------------------------------------------------------------------- sources
def test_list_pts_faces_and_errors(face_folder, tmp_path):
    faces = list_pts_faces(face_folder)
    assert [f.name for f in faces] == [f"face_{i:02d}.png" for i in range(10)]
    assert faces[3].landmarks.shape == (68, 2) and faces[3].landmarks.dtype == np.float32
    np.testing.assert_allclose(faces[3].landmarks, grid_landmarks(offset=(48.0, 46.0), seed=3), atol=1e-3)

    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "a.png"), np.zeros((20, 20, 3), np.uint8))
    write_pts(bad / "a.pts", grid_landmarks()[:60])
    with pytest.raises(UserError, match=r"a\.pts.*68 points"):
        list_pts_faces(bad)
    with pytest.raises(UserError, match="folder not found"):
        list_pts_faces(tmp_path / "missing")
    with pytest.raises(UserError, match="no image with a .pts"):
        list_pts_faces(tmp_path)


def test_split_holdout_is_deterministic_by_name(face_folder):
    faces = list_pts_faces(face_folder)
    train, held = split_holdout(faces, every=4, offset=1)
    assert [f.name for f in held] == ["face_01.png", "face_05.png", "face_09.png"]
    assert len(train) == 7 and not {f.name for f in train} & {f.name for f in held}
    train2, held2 = split_holdout(faces[::-1], every=4, offset=1)
    assert sorted(f.name for f in held2) == [f.name for f in held]
    assert split_holdout(faces, every=0)[1] == []


def test_list_3ddfa_params_raw_and_whitened(tmp_path):
    root = tmp_path / "crops"
    root.mkdir()
    names = [f"c{i}.png" for i in range(5)]
    for n in names:
        cv2.imwrite(str(root / n), np.zeros((S, S, 3), np.uint8))
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, (5, 62)).astype(np.float32)
    mean, std = rng.normal(0, 1, 62).astype(np.float32), rng.uniform(0.5, 2, 62).astype(np.float32)
    np.save(tmp_path / "raw.npy", raw)
    with open(tmp_path / "norm.pkl", "wb") as f:
        pickle.dump((raw - mean) / std, f)
    with open(tmp_path / "whitening.pkl", "wb") as f:
        pickle.dump({"param_mean": mean, "param_std": std}, f)
    a = list_3ddfa_params(root, tmp_path / "list.txt", tmp_path / "raw.npy")
    b = list_3ddfa_params(root, tmp_path / "list.txt", tmp_path / "norm.pkl", whitened=True,
                          whitening=tmp_path / "whitening.pkl")
    assert [s.name for s in a] == names and a[0].landmarks is None
    np.testing.assert_allclose(np.stack([s.params for s in b]), raw, atol=1e-5)
    np.save(tmp_path / "short.npy", raw[:4])
    with pytest.raises(UserError, match="4 parameter rows"):
        list_3ddfa_params(root, tmp_path / "list.txt", tmp_path / "short.npy")
    with pytest.raises(UserError, match="whitening"):
        list_3ddfa_params(root, tmp_path / "list.txt", tmp_path / "norm.pkl", whitened=True)


def test_list_300wlp_errors(tmp_path):
    import scipy.io as sio

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((20, 20, 3), np.uint8))
    sio.savemat(str(tmp_path / "a.mat"), {"pt2d": np.zeros((2, 60))})
    with pytest.raises(UserError, match=r"a\.mat.*\(2, 68\)"):
        list_300wlp(tmp_path)
    sio.savemat(str(tmp_path / "a.mat"), {"pt2d": np.ones((2, 68))})
    assert list_300wlp(tmp_path)[0].landmarks.shape == (68, 2)
    with pytest.raises(UserError, match="folder not found"):
        list_300wlp(tmp_path / "missing")


def test_list_300wlp(shared_dir):
    faces = list_300wlp(shared_dir / "data/300w_lp_sample")
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    img = cv2.imread(faces[0].image_path)
    assert (faces[0].landmarks >= 0).all() and (faces[0].landmarks < img.shape[1::-1]).all()


# ---------------------------------------------------------------------------- augmentation
def test_flip_permutation_is_an_involution_mirroring_eyes():
    p = FLIP_PERMUTATION_68
    assert sorted(p.tolist()) == list(range(68))
    np.testing.assert_array_equal(p[p], np.arange(68))
    assert (p[36], p[39], p[45], p[42]) == (45, 42, 36, 39)  # outer/inner eye corners swap sides
    assert (p[0], p[8], p[30], p[48], p[51], p[57], p[62], p[66]) == (16, 8, 30, 54, 51, 57, 62, 66)
    # the 18 map points mirror onto map points, except the eye centres mid(37,40) / mid(43,46): their
    # mirror images are mid(44,47) / mid(38,41), the other diagonals of the same eyes
    pairs = {tuple(sorted((int(p[a]), int(p[b])))) for a, b in MAP_POINT_PAIRS}
    assert pairs ^ {tuple(sorted(ab)) for ab in MAP_POINT_PAIRS} == {(37, 40), (43, 46), (38, 41), (44, 47)}


def test_plain_crop_matches_crop_image_and_labels_map_exactly():
    img = smooth_image(180, 200)
    # a landmark box with integer corners and roi_scale 1: crop_image's integer rounding changes nothing
    lm = grid_landmarks(offset=(40.3, 30.6))
    lm[:, 0] = np.clip(lm[:, 0], 41.0, 131.0)
    lm[:, 1] = np.clip(lm[:, 1], 31.0, 121.0)
    lm[0], lm[1] = (41.0, 31.0), (131.0, 121.0)
    cfg = AugmentConfig(roi_scale=1.0)
    roi = np.array([41.0, 31.0, 131.0, 121.0], np.float32)
    crop, labels = augment_face(img, lm, np.zeros(NUM_RANDOM, np.float32), cfg, augment=False)
    ref = crop_image(img, roi, S)
    assert crop.dtype == tf.uint8 and crop.shape == (S, S, 3)
    # (cv2.resize replicates the border of the cut-out roi; the warp reads the image's real neighbours)
    assert np.abs(crop.numpy()[1:-1, 1:-1].astype(float) - ref[1:-1, 1:-1]).max() <= 1.0
    np.testing.assert_allclose(labels.numpy(), image_to_crop(lm[None], roi[None], S)[0], atol=1e-3)
    np.testing.assert_allclose(apply_affine(affine_for_roi(roi, S), labels.numpy()), lm, atol=1e-3)
    # default roi rule (sqrt 2, fractional box): close to crop_image, labels exact
    cfg = AugmentConfig()
    crop, labels = augment_face(img, grid_landmarks(), np.zeros(NUM_RANDOM, np.float32), cfg, augment=False)
    roi = roi_from_landmarks(grid_landmarks()[None])[0]
    assert np.abs(crop.numpy().astype(float) - crop_image(img, roi, S)).mean() < 3.0
    np.testing.assert_allclose(labels.numpy(), image_to_crop(grid_landmarks()[None], roi[None], S)[0], atol=1e-3)


def test_gather_warp_equals_projective_transform():
    rng = np.random.default_rng(1)
    imgs = np.stack([smooth_image(150, 160, s) for s in range(3)])
    lm = np.stack([grid_landmarks(seed=s) for s in range(3)])
    tr, _ = sample_geometry(lm, rng.uniform(size=(3, NUM_RANDOM)).astype(np.float32), AugmentConfig(rotation=30.0))
    a = warp_images(imgs, tr, S).numpy()
    b = gather_warp(imgs, tf.constant([0, 1, 2]), tr, S).numpy()
    assert np.abs(a - b).max() < 0.05


def test_augmented_landmarks_stay_on_their_dots():
    """Geometric jitter + mirror, no colour: the crop's pixel at each label has that landmark's dot colour."""
    lm = grid_landmarks()
    img = dot_image(lm)
    cfg = AugmentConfig(scale=(0.85, 1.15), shift=0.08, rotation=25.0, flip=0.5, **NO_COLOUR)
    rand = tf.random.stateless_uniform((16, NUM_RANDOM), seed=[3, 4])
    crops, labels = augment_faces(np.repeat(img[None], 16, 0), np.repeat(lm[None], 16, 0), rand, cfg)
    crops, labels, flips = crops.numpy(), labels.numpy(), rand.numpy()[:, 4] < cfg.flip
    assert 0 < flips.sum() < 16
    checked = 0
    for crop, lab, flipped in zip(crops, labels, flips):
        src = FLIP_PERMUTATION_68 if flipped else np.arange(68)
        for i, (x, y) in enumerate(np.rint(lab).astype(int)):
            if 2 <= x < S - 2 and 2 <= y < S - 2:  # a grid's corners may leave a rotated crop; faces are round
                np.testing.assert_allclose(crop[y, x].astype(int), colour_of(src[i]), atol=12)
                checked += 1
    assert checked > 0.9 * labels.shape[0] * 68


def test_mirror_is_the_mirrored_crop_with_unbiased_labels():
    img, lm = smooth_image(200, 220), grid_landmarks()
    cfg = AugmentConfig(rotation=0.0, flip=0.5, **NO_COLOUR)
    rand = np.full((2, NUM_RANDOM), 0.7, np.float32)
    rand[0, 4], rand[1, 4] = 0.9, 0.1  # same window, second one mirrored
    crops, labels = augment_faces(np.repeat(img[None], 2, 0), np.repeat(lm[None], 2, 0), rand, cfg)
    crops, labels = crops.numpy().astype(int), labels.numpy()
    assert np.abs(crops[1] - crops[0][:, ::-1]).max() <= 1
    lo, hi = lm.min(0), lm.max(0)
    k = cfg.roi_scale * (hi - lo).max() * (0.9 + 0.2 * 0.7) / S  # image px per crop px
    mirrored = labels[1][FLIP_PERMUTATION_68]
    np.testing.assert_allclose(mirrored[:, 0], S - 1 / k - labels[0][:, 0], atol=1e-3)
    np.testing.assert_allclose(mirrored[:, 1], labels[0][:, 1], atol=1e-3)


def test_colour_jitter_keeps_dots_bright():
    lm = grid_landmarks()
    img = dot_image(lm, colours=False)
    cfg = AugmentConfig(rotation=20.0)
    rand = tf.random.stateless_uniform((8, NUM_RANDOM), seed=[5, 6])
    crops, labels = augment_faces(np.repeat(img[None], 8, 0), np.repeat(lm[None], 8, 0), rand, cfg)
    grey = crops.numpy().astype(float).mean(-1)
    for g, lab in zip(grey, labels.numpy()):
        x, y = np.rint(lab).astype(int).T
        assert g[y, x].min() > 150 and np.median(g) < 60


def test_config_nests_and_validates():
    cfg = from_dict(WildDataConfig, {"pts_folders": ["a"], "augment": {"rotation": 10, "scale": [0.8, 1.2]}})
    assert cfg.augment.scale == (0.8, 1.2) and cfg.augment.rotation == 10.0
    with pytest.raises(ConfigError, match="flip"):
        from_dict(WildDataConfig, {"augment": {"flip": 2}})
    with pytest.raises(ConfigError, match="cache"):
        from_dict(LabelledDataConfig, {"cache": "disk"})


# ---------------------------------------------------------------------------- pipelines
def test_wild_batches_shapes_labels_and_maps(wild_faces, monkeypatch):
    assert len(wild_faces) == 10 and wild_faces.stats.skipped == []
    (b,) = take(wild_dataset(wild_faces, AugmentConfig(), 4, seed=1), 1)
    assert b["image"].shape == (4, S, S, 3) and b["image"].dtype == np.uint8
    assert b["landmarks"].shape == (4, 68, 2) and b["landmarks"].dtype == np.float32
    assert b["map"].shape == (4, S, S) and b["map"].dtype == np.float32
    np.testing.assert_array_equal(b["map"], landmark_map(b["landmarks"], S))
    np.testing.assert_array_equal(b["map"], tf_ops.landmark_map(tf.constant(b["landmarks"]), S).numpy())
    for m, lab in zip(b["map"], b["landmarks"]):
        pts = np.rint((lab[[a for a, _ in MAP_POINT_PAIRS]] + lab[[c for _, c in MAP_POINT_PAIRS]]) / 2).astype(int)
        assert (m[pts[:, 1], pts[:, 0]] == 1.0).all()
        assert (m == 1.0).sum() == len({tuple(p) for p in pts}) and set(np.unique(m)) == {-1.0, 1.0}
    # the cached path keeps landmarks on the dots too (no colour jitter)
    monkeypatch.setattr(pipeline, "JIT", False)
    cfg = AugmentConfig(rotation=20.0, **NO_COLOUR)
    (b,) = take(wild_dataset(wild_faces, cfg, 4, seed=2), 1)
    for crop, lab in zip(b["image"], b["landmarks"]):
        x, y = np.rint(lab).astype(int).T
        assert crop[y, x].astype(int).min(axis=1).min() >= 25


def test_landmark_map_of_outside_points():
    lm = np.full((2, 68, 2), 500.0, np.float32)
    lm[1] = grid_landmarks(offset=(10.0, 10.0), step=10.0)
    m = tf_ops.landmark_map(tf.constant(lm), S).numpy()
    np.testing.assert_array_equal(m, landmark_map(lm, S))
    assert (m[0] == -1).all()


def test_determinism_and_resume(wild_faces):
    cfg = AugmentConfig()
    assert steps_per_epoch(len(wild_faces), 4) == 2
    run = take(wild_dataset(wild_faces, cfg, 4, seed=7), 6)  # 3 epochs of 2 batches
    again = take(wild_dataset(wild_faces, cfg, 4, seed=7), 6)
    resumed = take(wild_dataset(wild_faces, cfg, 4, seed=7, start_epoch=1), 4)
    mid = take(wild_dataset(wild_faces, cfg, 4, seed=7, start_step=3), 2)
    other = take(wild_dataset(wild_faces, cfg, 4, seed=8), 2)
    for a, b in zip(run, again):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    for a, b in zip(run[2:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    for a, b in zip(run[3:], mid):
        np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(run[0]["image"], other[0]["image"])
    assert not np.array_equal(run[0]["image"], run[2]["image"])  # epochs differ


def test_xla_path_equals_plain_tf(wild_faces, monkeypatch):
    a = take(wild_dataset(wild_faces, AugmentConfig(), 4, seed=7), 1)[0]
    monkeypatch.setattr(pipeline, "JIT", False)
    b = take(wild_dataset(wild_faces, AugmentConfig(), 4, seed=7), 1)[0]
    np.testing.assert_allclose(a["landmarks"], b["landmarks"], atol=1e-3)
    np.testing.assert_array_equal(a["map"], b["map"])
    assert np.abs(a["image"].astype(int) - b["image"]).max() <= 1


def test_corrupt_image_is_skipped_and_counted(face_folder, tmp_path, caplog, no_jit):
    d = tmp_path / "mixed"
    d.mkdir()
    for i in range(3):
        src = face_folder / f"face_{i:02d}.png"
        (d / src.name).write_bytes(src.read_bytes())
        (d / f"face_{i:02d}.pts").write_text((face_folder / f"face_{i:02d}.pts").read_text())
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    write_pts(d / "broken.pts", grid_landmarks())
    good = (face_folder / "face_03.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 3])
    write_pts(d / "truncated.pts", grid_landmarks())
    samples = list_pts_faces(d)
    assert len(samples) == 5
    with caplog.at_level("WARNING"):
        faces = load_wild_faces(samples, cache="memory")
    assert len(faces) == 3 and faces.stats.total == 5 and faces.stats.used == 3
    assert sorted(p.split("/")[-1] for p in faces.stats.skipped) == ["broken.jpg", "truncated.png"]
    assert "2 skipped" in caplog.text and "broken.jpg" in caplog.text
    streamed = load_wild_faces(samples, cache="none")
    assert streamed.mode == "none" and streamed.stats.skipped == faces.stats.skipped
    (b,) = take(wild_dataset(streamed, AugmentConfig(), 3, seed=0), 1)
    assert b["image"].shape == (3, S, S, 3) and b["map"].shape == (3, S, S)


def test_streaming_matches_cached_without_augmentation(wild_faces, no_jit):
    streamed = load_wild_faces(wild_faces.samples, cache="none")
    kw = dict(shuffle=False, augment=False, epochs=1, drop_remainder=False)
    a = take(wild_dataset(wild_faces, AugmentConfig(), 4, **kw), 3)
    b = take(wild_dataset(streamed, AugmentConfig(), 4, **kw), 3)
    assert [x["image"].shape[0] for x in a] == [4, 4, 2]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x["landmarks"], y["landmarks"], atol=1e-3)
        assert np.abs(x["image"].astype(float) - y["image"]).mean() < 4.0


@pytest.fixture(scope="module")
def labelled_crops(tmp_path_factory):
    """7 uniform-colour 120x120 crops (colour encodes the index) with params[i] = i."""
    d = tmp_path_factory.mktemp("crops")
    names = []
    for i in range(7):
        names.append(f"c{i}.png")
        cv2.imwrite(str(d / names[-1]), np.full((S, S, 3), 30 * i + 10, np.uint8))
    (d / "list.txt").write_text("\n".join(names))
    np.save(d / "params.npy", np.repeat(np.arange(7, dtype=np.float32)[:, None], 62, 1))
    return load_labelled_crops(list_3ddfa_params(d, d / "list.txt", d / "params.npy"), S, cache="memory")


def test_labelled_and_mixed_batches(labelled_crops, wild_faces):
    (b,) = take(labelled_dataset(labelled_crops, AugmentConfig(), 3, seed=1, augment=False), 1)
    assert b["image"].shape == (3, S, S, 3) and b["image"].dtype == np.uint8 and b["params"].shape == (3, 62)
    idx = b["params"][:, 0].astype(int)
    np.testing.assert_array_equal(b["image"][:, 5, 5, 0], 30 * idx + 10)  # images and params stay paired
    jittered = take(labelled_dataset(labelled_crops, AugmentConfig(), 3, seed=1), 1)[0]
    np.testing.assert_array_equal(jittered["params"], b["params"])
    assert not np.array_equal(jittered["image"], b["image"])
    mixed = mixed_dataset(labelled_dataset(labelled_crops, AugmentConfig(), 3, seed=1),
                          wild_dataset(wild_faces, AugmentConfig(), 4, seed=1))
    (m,) = take_nested(mixed, 1)
    assert m["labelled"]["image"].shape == (3, S, S, 3) and m["labelled"]["params"].shape == (3, 62)
    assert m["wild"]["image"].shape == (4, S, S, 3) and m["wild"]["map"].shape == (4, S, S)


def take_nested(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


# ---------------------------------------------------------------------------- real faces
def test_real_faces_crop_and_stay_inside(shared_dir, no_jit):
    samples = list_pts_faces(shared_dir / "data/300w/afw")[:12]
    faces = load_wild_faces(samples, cache="memory")
    plain = take(wild_dataset(faces, AugmentConfig(), 12, shuffle=False, augment=False, epochs=1), 1)[0]
    lm = np.stack([s.landmarks for s in samples])
    rois = roi_from_landmarks(lm)
    np.testing.assert_allclose(plain["landmarks"], image_to_crop(lm, rois, S), atol=2e-3)
    from tf2dasl.io.images import read_image

    mad = [np.abs(c.astype(float) - crop_image(read_image(s.image_path), r, S)).mean()
           for c, s, r in zip(plain["image"], samples, rois)]
    assert max(mad) < 6.0, mad
    aug = take(wild_dataset(faces, AugmentConfig(rotation=20.0), 12, seed=3), 2)
    labels = np.concatenate([b["landmarks"] for b in aug])
    inside = ((labels >= 0) & (labels < S)).all(-1)
    assert inside.mean() > 0.995 and (labels > -6).all() and (labels < S + 6).all()
    # a mirrored face keeps its left eye on the image's left: label 36 (outer corner) left of 45
    assert (labels[:, 36, 0] < labels[:, 45, 0]).all()


# ---------------------------------------------------------------------------- AFLW: partial landmark sets
from tf2dasl.data.augment import crop_to_crop  # noqa: E402
from tf2dasl.data.datasets import WildSource  # noqa: E402
from tf2dasl.data.landmark_sets import AFLW_21, FLIP_PERMUTATION_21, LANDMARKS_68, PointLayout  # noqa: E402
from tf2dasl.data.pipeline import wild_sources_dataset  # noqa: E402
from tf2dasl.data.sources import DataSourceError, list_aflw_wild  # noqa: E402


def test_aflw_source_reads_the_layout_and_refuses_malformed_annotations(tmp_path):
    root = write_aflw(tmp_path / "aflw")
    faces = list_aflw_wild(root)
    assert len(faces) == 6 and faces[0].landmark_set == "aflw21" and faces[0].landmarks.shape == (21, 2)
    assert np.isnan(faces[0].landmarks).any() and list(faces[0].roi) == [0, 0, 120, 120]
    pts = np.load(root / "annotations.npz")["pts21_crop"]
    cases = {"missing array(s) yaw": dict(yaw=None), "pts21_crop has shape": dict(pts21_crop=pts[:, :20]),
             "finite (x, y) pairs or NaN": dict(pts21_crop=np.where(np.isnan(pts), np.inf, pts)),
             "at least 4": dict(pts21_crop=np.where(np.arange(21)[None, :, None] < 18, np.nan, pts))}
    for needle, override in cases.items():
        bad = tmp_path / needle.split()[0]
        write_aflw(bad)
        arrays = dict(np.load(bad / "annotations.npz"))
        for k, v in override.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v
        np.savez(bad / "annotations.npz", **arrays)
        with pytest.raises(DataSourceError) as err:
            list_aflw_wild(bad)
        msg = str(err.value)
        assert needle in msg and "annotations.npz" in msg and "\n" not in msg, msg
    (bad / "annotations.npz").write_bytes(b"not a zip")
    with pytest.raises(DataSourceError, match="cannot read"):
        list_aflw_wild(bad)
    (bad / "annotations.npz").unlink()
    with pytest.raises(DataSourceError, match="not found"):
        list_aflw_wild(bad)
    # a face whose visible points lie outside its crop is left out, by name
    far = np.load(root / "annotations.npz")
    arrays = dict(far)
    arrays["pts21_crop"] = arrays["pts21_crop"].copy()
    arrays["pts21_crop"][2, :, 0] += 200
    np.savez(root / "annotations.npz", **arrays)
    dropped = []
    assert len(list_aflw_wild(root, dropped)) == 5 and dropped == ["image00002.jpg"]


def test_aflw_shared_layout(shared_dir):
    root = shared_dir / "data/aflw_wild"
    if not (root / "annotations.npz").is_file():
        pytest.skip(f"{root} not found")
    dropped = []
    faces = list_aflw_wild(root, dropped)
    assert len(faces) + len(dropped) == 19080 and len(dropped) < 100
    vis = np.isfinite(np.stack([f.landmarks for f in faces])[..., 0])
    assert vis.sum(1).min() >= 4 and 15 < vis.sum(1).mean() < 16.5
    train, val = split_holdout(faces, 19)
    assert 950 < len(val) < 1050 and not {f.name for f in train} & {f.name for f in val}


@pytest.fixture(scope="module")
def aflw_faces(tmp_path_factory):
    root = write_aflw(tmp_path_factory.mktemp("aflw"), n=8)
    return load_wild_faces(list_aflw_wild(root), cache="memory", cache_size=S, cache_margin=1.0)


def test_plain_aflw_crop_is_the_stored_crop(aflw_faces, no_jit):
    (b,) = take(wild_dataset(aflw_faces, AugmentConfig(), 8, shuffle=False, augment=False, epochs=1), 1)
    stored = np.stack([cv2.imread(s.image_path) for s in aflw_faces.samples])
    np.testing.assert_array_equal(b["image"], stored)
    np.testing.assert_array_equal(b["landmarks"], np.stack([s.landmarks for s in aflw_faces.samples]))
    # map points: AFLW's 18 map points (all but ears and chin), NaN where not visible; only those are marked
    mp = b["map_points"]
    np.testing.assert_array_equal(mp, b["landmarks"][:, [i for i, _ in AFLW_21.map_pairs]])
    for m, p in zip(b["map"], mp):
        vis = np.isfinite(p).all(-1)
        x, y = np.floor(p[vis] + 0.5).astype(int).T
        assert (m[y, x] == 1).all() and (m == 1).sum() == len({(a, c) for a, c in zip(x, y)})


def test_mixed_sources_in_one_batch(wild_faces, aflw_faces, no_jit):
    pairs = np.tile(np.arange(21)[:, None], (1, 2))
    layout = PointLayout((LANDMARKS_68, AFLW_21), {"aflw21": pairs})
    cfg = AugmentConfig(rotation=10.0, flip=0.0, **NO_COLOUR)  # (mirrored labels: test_teacher_labels_follow_...)
    sources = [WildSource(wild_faces, 1, cfg), WildSource(aflw_faces, 3, cfg)]
    batches = take(wild_sources_dataset(sources, layout, seed=4), 3)
    for b in batches:
        lm = b["landmarks"]
        assert lm.shape == (4, 89, 2) and b["map_points"].shape == (4, 18, 2) and b["map"].shape == (4, S, S)
        assert np.isfinite(lm[0, :68]).all() and np.isnan(lm[0, 68:]).all()          # 300-W face: its 68 slots
        assert np.isnan(lm[1:, :68]).all() and np.isnan(lm[1:, 68:]).any()           # AFLW faces: 21 slots, some NaN
        assert np.isfinite(lm[1:, 68:]).sum(-1).sum(-1).min() >= 2 * 4
        # augmented AFLW labels stay on their dots (colour coded by point)
        for crop, pts in zip(b["image"][1:], lm[1:, 68:]):
            for k, (x, y) in enumerate(pts):
                if np.isfinite(x) and 1 <= x < S - 1 and 1 <= y < S - 1:
                    assert np.abs(crop[int(round(y)), int(round(x))].astype(int) - colour_of(k)).max() < 60
    assert split_counts_ok()


def split_counts_ok():
    from tf2dasl.data.data_config import split_counts

    assert split_counts(32, {"68": 0.25, "aflw21": 0.75}) == {"68": 8, "aflw21": 24}
    assert split_counts(5, {"68": 0.1, "aflw21": 0.9}) == {"68": 1, "aflw21": 4}
    with pytest.raises(UserError, match="cannot hold"):
        split_counts(1, {"68": 1, "aflw21": 1})
    return True


def test_crop_to_crop_maps_plain_labels_onto_augmented_ones():
    lm = grid_landmarks()
    rand = tf.random.stateless_uniform((16, NUM_RANDOM), seed=[7, 8])
    cfg = AugmentConfig(scale=(0.8, 1.2), shift=0.08, rotation=30.0, flip=0.5)
    lms = np.repeat(lm[None], 16, 0)
    plain, plain_lab = sample_geometry(lms, rand, cfg, augment=False)
    aug, aug_lab = sample_geometry(lms, rand, cfg)
    affine, mirrored = crop_to_crop(plain, aug, S)
    affine, mirrored, plain_lab, aug_lab = affine.numpy(), mirrored.numpy(), plain_lab.numpy(), aug_lab.numpy()
    assert 0 < mirrored.sum() < 16
    for a, m, p, q in zip(affine, mirrored, plain_lab, aug_lab):
        if m:  # the mirrored plain crop: x -> S - 1 - x, points permuted
            p = np.stack([S - 1 - p[:, 0], p[:, 1]], -1)[FLIP_PERMUTATION_68]
        got = p @ a[:, :2].T + a[:, 2]
        assert np.abs(got - q).max() < 0.6  # labels sit up to 0.5 px from pixel content (the half-pixel rule)
        assert np.linalg.det(a[:, :2]) > 0  # always a scaled rotation
    assert list(FLIP_PERMUTATION_21[[0, 6, 12, 14, 17, 20]]) == [5, 11, 16, 14, 19, 20]


def test_mirror_labels_are_the_pipelines_labels_of_the_mirrored_crop():
    """A mirrored, otherwise plain crop's labels (``sample_geometry`` with flip certain) are the plain labels through
    ``mirror_labels`` (``x' = S - 1/k - x``), for sources at several pixel scales."""
    from tf2dasl.data.augment import landmark_roi, mirror_labels

    lms = np.stack([grid_landmarks() * f for f in (0.5, 1.0, 3.0)]).astype(np.float32)
    ps = np.array([1.0, 2.0, 0.7], np.float32)
    centre, side = landmark_roi(lms, ps, AugmentConfig().roi_scale)
    cfg = AugmentConfig(scale=(1.0, 1.0), shift=0.0, rotation=0.0, flip=1.0)
    rand = np.full((3, NUM_RANDOM), 0.5, np.float32)
    _, plain = sample_geometry(lms, rand, cfg, augment=False, pixel_scale=ps, roi=(centre, side))
    _, mirrored = sample_geometry(lms, rand, cfg, pixel_scale=ps, roi=(centre, side))
    got = mirror_labels(plain.numpy(), S, side * ps / S)
    np.testing.assert_allclose(got, mirrored.numpy(), atol=2e-4)
    assert np.abs(got[:, :, 0] - (S - 1 - plain.numpy()[:, FLIP_PERMUTATION_68, 0])).min() > 0.1   # not S - 1 - x


# ---------------------------------------------------------------------------- teacher labels
def test_teacher_labels_follow_augmentation_and_mirroring(tmp_path, no_jit):
    from synthetic import random_morphable_model, write_wild_faces

    from tf2dasl.geometry.camera import model_to_crop
    from tf2dasl.geometry.conventions import CROP_OFFSET_V2
    from tf2dasl.data.teacher import flip_average_landmarks, mirror_landmarks_68, transform_params

    mm = random_morphable_model()
    folder = write_wild_faces(tmp_path / "w", mm, 6, seed=2)
    faces = load_wild_faces(list_pts_faces(folder), cache="memory")
    # exact teacher labels: the params whose landmarks are the plain crop's labels (a similarity of the image's)
    rng = np.random.default_rng(2)
    params_img = []
    for i in range(6):  # the generator's params, re-drawn in the same order
        from tf2dasl.geometry.pose import angles_to_matrix, sRt_to_params
        angles = rng.uniform([-30, -15, -15], [30, 15, 15], (1, 3))
        p = np.zeros((1, 62), np.float32)
        p[0, :12] = sRt_to_params(np.array([0.45]), angles_to_matrix(angles), np.array([[80.0, 80.0, 0]]))[0]
        params_img.append(p[0])
    params_img = np.stack(params_img)
    img_lm = model_to_crop(mm.landmarks(params_img), 160)[..., :2]
    np.testing.assert_allclose(img_lm, np.stack([s.landmarks for s in faces.samples]), atol=2e-3)
    cfg = AugmentConfig(**NO_COLOUR)
    (plain,) = take(wild_dataset(faces, cfg, 6, shuffle=False, augment=False, epochs=1), 1)
    # image → plain crop: a scale + shift fitted on the labels (exact up to float error)
    dc = plain["landmarks"] - plain["landmarks"].mean(1, keepdims=True)
    di = img_lm - img_lm.mean(1, keepdims=True)
    k = (dc * di).sum((1, 2)) / (di * di).sum((1, 2))
    off = plain["landmarks"].mean(1) - k[:, None] * img_lm.mean(1)
    to_crop = np.zeros((6, 2, 3), np.float32)
    to_crop[:, 0, 0], to_crop[:, 1, 1], to_crop[:, :, 2] = k, k, off
    p_plain = transform_params(params_img, to_crop, 160, CROP_OFFSET_V2).numpy()  # in the 160-px image's frame,
    p_plain[:, 7] -= 160 - S                                                           # then the crop's (y_c = S - y)
    np.testing.assert_allclose(model_to_crop(mm.landmarks(p_plain), S)[..., :2], plain["landmarks"], atol=1e-2)
    reflect = np.tile(np.array([[[-1, 0, S - 1], [0, 1, 0]]], np.float32), (6, 1, 1))
    p_mirror = transform_params(p_plain, reflect, S, CROP_OFFSET_V2).numpy()  # its points: x -> S - 1 - x
    faces.teacher = np.stack([p_plain, p_mirror], 1)
    aug_cfg = AugmentConfig(scale=(0.85, 1.15), shift=0.06, rotation=25.0, flip=0.5, **NO_COLOUR)
    batches = take(wild_dataset(faces, aug_cfg, 6, seed=5, convention=CROP_OFFSET_V2), 4)
    mirrored_seen = 0
    for b in batches:
        t_lm = model_to_crop(mm.landmarks(b["teacher"]), S)[..., :2]
        for got, lab, params in zip(t_lm, b["landmarks"], b["teacher"]):
            direct = np.abs(got - lab).max()
            flipped = np.abs(got[FLIP_PERMUTATION_68] - lab).max()
            assert min(direct, flipped) < 0.6, (direct, flipped)
            mirrored_seen += flipped < direct
    assert 0 < mirrored_seen < 24
    # the flip-averaged anchor: the teacher's landmarks on the mirror image (named as the face's points) mirrored
    # back onto the plain crop's average with its own; they follow every augmentation, mirrors included, as labels
    plain_lm = model_to_crop(mm.landmarks(p_plain), S)[..., :2]
    faces.teacher_landmarks = flip_average_landmarks(plain_lm, mirror_landmarks_68(plain_lm, S), S)
    np.testing.assert_allclose(faces.teacher_landmarks, plain_lm, atol=1e-4)
    np.testing.assert_allclose(mirror_landmarks_68(mirror_landmarks_68(plain_lm, S), S), plain_lm, atol=1e-5)
    for b in take(wild_dataset(faces, aug_cfg, 6, seed=5, convention=CROP_OFFSET_V2), 4):
        assert b["teacher_landmarks"].shape == (6, 68, 2)
        np.testing.assert_allclose(b["teacher_landmarks"], b["landmarks"], atol=0.6)


def test_flip_average_of_a_biased_teacher_cancels_its_mirror_asymmetric_error():
    from tf2dasl.data.teacher import flip_average_landmarks, mirror_landmarks_68

    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 100, (5, 68, 2)).astype(np.float32)
    bias = np.array([1.5, -0.5], np.float32)     # a teacher that predicts every point 1.5 px right, 0.5 px up
    on_crop = truth + bias
    on_mirror = mirror_landmarks_68(truth, S) + bias   # the same teacher on the mirror image
    avg = flip_average_landmarks(on_crop, on_mirror, S)
    np.testing.assert_allclose(avg[..., 0], truth[..., 0], atol=1e-4)   # the horizontal bias cancels
    np.testing.assert_allclose(avg[..., 1], truth[..., 1] + bias[1], atol=1e-4)  # a vertical one cannot


def test_teacher_cache_is_reused_and_invalidated_when_the_teacher_changes(tmp_path):
    from tf2dasl.data.teacher import TeacherCache, TeacherCacheError, teacher_labels

    crops = np.random.default_rng(0).integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    calls = []

    def teacher(scale):
        def predict(c):
            calls.append(len(c))
            return np.tile(c.reshape(len(c), -1)[:, :62].astype(np.float32) * scale, 1)
        return predict

    first, n1 = teacher_labels(crops, teacher(1.0), TeacherCache(tmp_path, "teacher-a"), batch_size=4)
    assert n1 == 7 and sum(calls) == 14  # plain and mirrored crops
    np.testing.assert_array_equal(first[:, 1], crops[:, :, ::-1].reshape(7, -1)[:, :62])
    calls.clear()
    again, n2 = teacher_labels(crops, teacher(1.0), TeacherCache(tmp_path, "teacher-a"))
    assert n2 == 0 and not calls and np.array_equal(again, first)  # a new process reads the file: reused
    more = np.concatenate([crops, crops[:2] // 2])
    _, n3 = teacher_labels(more, teacher(1.0), TeacherCache(tmp_path, "teacher-a"))
    assert n3 == 2  # only the new crops
    other, n4 = teacher_labels(crops, teacher(2.0), TeacherCache(tmp_path, "teacher-b"))
    assert n4 == 7 and np.array_equal(other, 2 * first)  # another teacher: nothing stale is read
    (tmp_path / "teacher-teacher-a.npz").write_bytes(b"garbage")
    with pytest.raises(TeacherCacheError, match="teacher-a.npz.*delete it"):
        TeacherCache(tmp_path, "teacher-a")


def test_vertex_fitter_finds_the_vertex_that_fits_best():
    from tf2dasl.data.correspondence import VertexFitter

    rng = np.random.default_rng(0)
    verts = rng.uniform(0, 120, (10, 50, 2)).astype(np.float32)          # 10 faces, 50 vertices
    points = verts[:, [7, 22, 40]] + rng.normal(0, 0.3, (10, 3, 2)).astype(np.float32)
    points[3, 1] = np.nan                                                 # not visible in face 3
    points[:, 2] = (verts[:, 40] + verts[:, 41]) / 2                      # exactly a vertex pair's midpoint
    fitter = VertexFitter(50, np.array([[0, 1], [2, 3], [40, 41]]))
    fitter.add(verts[:6], points[:6])
    fitter.add(verts[6:], points[6:])
    fit = fitter.result()
    assert fit.pairs.tolist() == [[7, 7], [22, 22], [40, 41]] and fit.count.tolist() == [10, 9, 10]
    assert fit.error[2] < 1e-4 and fit.pair_error[2] < 1e-4 and fit.error[0] < 3.0  # 0.3 px noise


def test_yaw_balanced_sampling_draws_each_bin_equally(aflw_faces, no_jit):
    from tf2dasl.data.datasets import yaw_weights
    from tf2dasl.data.pipeline import _index_stream

    yaws = np.array([5.0] * 12 + [45.0] * 3 + [80.0] * 1)
    w = yaw_weights(yaws, 1.0)
    assert yaw_weights(yaws, 0.0) is None and np.allclose([w[:12].sum(), w[12:15].sum(), w[15:].sum()], w[15])
    idx = np.concatenate([i.numpy() for i, _ in _index_stream(16, 16, 0, 3, 0, 0, True, 200, True, w).batch(16)])
    share = np.bincount(np.digitize(yaws[idx], [30, 60], right=True), minlength=3) / len(idx)
    assert np.allclose(share, 1 / 3, atol=0.04), share
    again = np.concatenate([i.numpy() for i, _ in _index_stream(16, 16, 0, 3, 0, 0, True, 200, True, w).batch(16)])
    np.testing.assert_array_equal(idx, again)  # stateless: a resumed run draws the same faces
