"""Training data: sample listings, augmentation geometry/colour, tf.data pipelines (shapes, determinism, skips)."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tf2dasl.config import ConfigError, from_dict
from tf2dasl.data import (FLIP_PERMUTATION_68, AugmentConfig, LabelledDataConfig, WildDataConfig, labelled_dataset,
                          list_300wlp, list_3ddfa_params, list_pts_faces, load_labelled_crops, load_wild_faces,
                          mixed_dataset, split_holdout, steps_per_epoch, wild_dataset)
from tf2dasl.data.augment import (NUM_RANDOM, affine_for_roi, apply_affine, augment_face, augment_faces, gather_warp,
                                  sample_geometry, warp_images)
from tf2dasl.data import pipeline
from tf2dasl.data.pipeline import landmark_map_batch
from tf2dasl.errors import UserError
from tf2dasl.geometry.camera import image_to_crop
from tf2dasl.geometry.landmark_map import MAP_POINT_PAIRS, landmark_map, tf_landmark_map
from tf2dasl.geometry.roi import crop_image, roi_from_landmarks

S = 120
NO_COLOUR = dict(brightness=0.0, contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=0.0)


# ---------------------------------------------------------------------------- synthetic fixtures
def grid_landmarks(offset=(50.0, 46.0), step=12.0, seed=0) -> np.ndarray:
    """68 distinct points on a jittered 9 x 8 grid (0-based image px), at least ~9 px apart."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(9), np.arange(8)), -1).reshape(-1, 2)[:68].astype(np.float32)
    return (g * step + np.asarray(offset, np.float32) + rng.uniform(-1.5, 1.5, (68, 2))).astype(np.float32)


def colour_of(i: int) -> np.ndarray:
    """A distinct BGR colour per landmark index (all channels >= 40)."""
    return np.array([40 + (i * 37) % 216, 40 + (i * 71) % 216, 40 + (i * 113) % 216], np.uint8)


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
    np.testing.assert_array_equal(b["map"], tf_landmark_map(tf.constant(b["landmarks"]), S).numpy())
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


def test_landmark_map_batch_outside_points():
    lm = np.full((2, 68, 2), 500.0, np.float32)
    lm[1] = grid_landmarks(offset=(10.0, 10.0), step=10.0)
    m = landmark_map_batch(tf.constant(lm), S).numpy()
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
