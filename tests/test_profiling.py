"""Face profiling (tf2dasl.profiling) on a small synthetic face: fits and their mirror images, the surroundings
sheet, views whose labels sit on their pixels, reproducible poses, and the cached, resumable set on disk."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_faces import uv_face_model

from tf2dasl.cli import main
from tf2dasl.data.data_config import WildDataConfig
from tf2dasl.data.sources import list_3ddfa_params
from tf2dasl.geometry.camera import model_to_crop
from tf2dasl.geometry.conventions import CROP_OFFSET_V2
from tf2dasl.geometry.decoder import Decoder
from tf2dasl.geometry.pose import angles_to_matrix, params_to_pose, params_to_sRt, sRt_to_params
from tf2dasl.geometry.roi import roi_from_landmarks
from tf2dasl.inference import Prediction, Predictor
from tf2dasl.io.model_dir import save_model_dir
from tf2dasl.models.spec import ModelSpec
from tf2dasl.models.task import FaceTask
from tf2dasl.profiling.config import PoseConfig, ProfiledDataConfig, SelectConfig
from tf2dasl.profiling.dataset import ProfileError, make_profiled_set
from tf2dasl.profiling.fitting import MeshFitter
from tf2dasl.profiling.frames import cut_crop, move_params
from tf2dasl.profiling.poses import plan_views
from tf2dasl.data.teacher import mirror_landmarks_68
from tf2dasl.profiling.refine import ALL_POINTS, refine_teacher_labels, refine_to_points
from tf2dasl.profiling.selection import ModelPoints, point_nme, select_sources
from tf2dasl.profiling.sources import fill_unknown, padding
from tf2dasl.profiling.teacher import Teacher
from tf2dasl.profiling.views import Profiler, Source, ViewPose

S = 120


@pytest.fixture(scope="module")
def mm():
    return uv_face_model()


def face_params(yaw=0.0, pitch=0.0, roll=0.0, expression=0.0, scale=4.5e-4, centre=(60.0, 62.0)) -> np.ndarray:
    """Raw params ``(62,)`` of the synthetic face (~65 px wide) at a pose in a 120-px crop."""
    p = np.zeros(62, np.float32)
    rot = angles_to_matrix(np.array([[yaw, pitch, roll]]))
    p[:12] = sRt_to_params(np.array([scale]), rot, np.array([[centre[0] + 1, S - centre[1], 0.0]]))[0]
    p[52] = expression
    return p


def textured_photo(size: int = 2 * S, seed: int = 0) -> np.ndarray:
    """A smooth colour field with fine stripes: every pixel differs from its neighbours, none is black."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (5, 5, 3)).astype(np.uint8)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img[:, ::4] += 25
    return np.clip(img, 30, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- fitting
def test_fit_recovers_a_mesh_and_mirroring_twice_is_the_identity(mm):
    fitter = MeshFitter(mm, S, CROP_OFFSET_V2)
    mesh = Decoder(mm, S, CROP_OFFSET_V2).vertices
    p = np.stack([face_params(20, -5, 8, 0.4), face_params(-35, 10, -4)])
    p[:, 12:20] = np.random.default_rng(0).normal(0, 0.3, (2, 8))
    refit = fitter.fit(fitter.fit_points(p), np.zeros_like(p))
    assert np.abs(fitter.fit_points(refit) - fitter.fit_points(p)).max() < 1e-3
    mirrored = fitter.mirror(p)
    assert np.allclose(params_to_pose(mirrored)[:, 0], -params_to_pose(p)[:, 0], atol=0.5)   # yaw flips
    assert np.abs(mesh(fitter.mirror(mirrored)) - mesh(p)).max() < 1e-2
    # a teacher that saw the mirror image exactly: the flip average is the fit itself
    assert np.abs(mesh(fitter.flip_average(p, mirrored)) - mesh(p)).max() < 1e-2


def test_flip_fit_views_makes_a_teachers_two_labels_one_fit(mm):
    """Labels that already agree stay (as meshes); labels that disagree become the flip average and its exact
    mirror image, between the two."""
    fitter = MeshFitter(mm, S, CROP_OFFSET_V2)
    mesh = Decoder(mm, S, CROP_OFFSET_V2).vertices
    p = np.stack([face_params(15, 5, 3, 0.3), face_params(-25, -5, 0)])
    agree = np.stack([p, fitter.mirror(p)], axis=1)                                 # (2, 2, 62)
    out = fitter.flip_fit_views(agree)
    assert out.shape == agree.shape
    assert np.abs(mesh(out[:, 0]) - mesh(p)).max() < 1e-2
    assert np.abs(mesh(out[:, 1]) - mesh(agree[:, 1])).max() < 1e-2
    wider = agree.copy()
    wider[:, 1, :12] *= 1.04                                                        # the mirror view's face 4 % bigger
    out = fitter.flip_fit_views(wider)
    assert np.abs(mesh(fitter.mirror(out[:, 0])) - mesh(out[:, 1])).max() < 1e-2   # exact mirror images
    size = lambda q: np.linalg.norm(q[:, :3, :3], axis=(1, 2))                     # noqa: E731
    cams = [x[:, 0, :12].reshape(-1, 3, 4) for x in (agree, out)]
    np.testing.assert_allclose(size(cams[1]) / size(cams[0]), 1.02, atol=2e-3)     # halfway


def test_refinement_moves_a_fit_to_the_manual_points_under_its_prior(mm):
    truth = face_params(12, 4, -3, expression=0.6)
    points = model_to_crop(mm.landmarks(truth[None]), S)[0, :, :2]
    start = face_params(8, 0, 0, scale=4.3e-4, centre=(61.0, 63.0))
    err = lambda p: np.abs(model_to_crop(mm.landmarks(p[None]), S)[0, 17:, :2] - points[17:]).mean()  # noqa: E731
    loose = refine_to_points(mm, start, points, S, CROP_OFFSET_V2, prior=1e-6)
    assert err(loose) < 0.05 * err(start) and loose[52] > 0.3                        # the mouth opens (truth 0.6)
    assert np.allclose(loose[12:52], start[12:52])                                   # the identity is held
    tight = refine_to_points(mm, start, points, S, CROP_OFFSET_V2, prior=1e6)
    assert abs(tight[52]) < 0.01 and err(tight) < err(start)                         # the camera still moves
    s, rot, _ = params_to_sRt(loose[None])
    np.testing.assert_allclose(loose[:12].reshape(3, 4)[:, :3], s[0] * rot[0], atol=1e-6)   # a scaled rotation

    # a jaw annotated 6 % wider than the model's: only a refinement that uses it (refine_jaw) widens the face for it
    wide = points.copy()
    centre = points[17:].mean(axis=0)
    wide[:17] = centre + (points[:17] - centre) * np.array([1.06, 1.0])
    jaw_err = lambda p: np.abs(model_to_crop(mm.landmarks(p[None]), S)[0, :17, :2] - wide[:17]).mean()  # noqa: E731
    inner = refine_to_points(mm, start, wide, S, CROP_OFFSET_V2, prior=1e-6)
    with_jaw = refine_to_points(mm, start, wide, S, CROP_OFFSET_V2, prior=1e-6, used=ALL_POINTS)
    assert jaw_err(with_jaw) < 0.8 * jaw_err(inner)
    assert params_to_sRt(with_jaw[None])[0][0] > params_to_sRt(inner[None])[0][0]
    np.testing.assert_allclose(inner, loose, atol=1e-5)                               # the jaw is not looked at


def test_teacher_labels_are_refined_to_the_annotated_jaw_near_frontal_only(mm):
    """Both views of a near-frontal face move to its points (the mirrored label to the mirrored points), jaw
    included; a face beyond ``max_yaw`` keeps its labels."""
    truth = face_params(10, 0, 0, scale=4.7e-4)
    points = model_to_crop(mm.landmarks(truth[None]), S)[0, :, :2]
    far = model_to_crop(mm.landmarks(face_params(60)[None]), S)[0, :, :2]
    labels = np.stack([[face_params(8), face_params(-8, centre=(S - 1 - 60.0, 62.0))],
                       [face_params(55), face_params(-55, centre=(S - 1 - 60.0, 62.0))]])
    mirrored = mirror_landmarks_68(points, S)
    out, refined = refine_teacher_labels(mm, labels, np.stack([points, far + 3.0]),
                                         np.stack([mirrored, mirror_landmarks_68(far, S)]), S, CROP_OFFSET_V2,
                                         max_yaw=30.0)
    assert refined == 2
    np.testing.assert_array_equal(out[1], labels[1])
    np.testing.assert_allclose(out[0, 0], refine_to_points(mm, labels[0, 0], points, S, CROP_OFFSET_V2,
                                                           used=ALL_POINTS))
    err = lambda p: np.abs(model_to_crop(mm.landmarks(p[None]), S)[0, :, :2] - mirrored).mean()  # noqa: E731
    assert err(out[0, 1]) < 0.3 * err(labels[0, 1])
    assert params_to_sRt(out[0, 1][None])[0][0] > params_to_sRt(labels[0, 1][None])[0][0]   # grown to the truth's size


def test_refine_jaw_is_part_of_the_cache_key_only_when_it_refines():
    base = ProfiledDataConfig().generation()
    assert "refine_jaw" not in base and ProfiledDataConfig(refine_jaw=True).generation() == base
    refined = ProfiledDataConfig(refine="expression").generation()
    jaw = ProfiledDataConfig(refine="expression", refine_jaw=True).generation()
    assert jaw != refined and jaw["refine_jaw"] is True and "refine_jaw" not in refined
    with pytest.raises(ValueError, match="refine_jaw needs refine"):
        ProfiledDataConfig(refine_jaw=True).validate()


# ---------------------------------------------------------------------------------------------- the sheet
def test_sheet_follows_the_face_and_fades_to_the_photo(mm):
    profiler = Profiler(mm, S, CROP_OFFSET_V2)
    prep = profiler.prepare(Source("f", textured_photo(S), np.array([0.0, 0, S, S]), face_params()))
    sheet, face = prep.sheet, prep.vertices
    inside = (np.abs(sheet.points[:, 0] - 60) < 5) & (np.abs(sheet.points[:, 1] - 62) < 5)
    assert inside.any() and np.all(sheet.weights[inside] == 1.0)
    n = int(np.sqrt(len(sheet.points)))
    border = np.r_[np.arange(n), np.arange(n * (n - 1), n * n), np.arange(0, n * n, n), np.arange(n - 1, n * n, n)]
    assert np.all(sheet.weights[border] == 0.0)                                     # continuous with the photo
    outside = sheet.weights == 0.0
    assert sheet.points[outside, 2].max() < face[:, 2].min() + 1.0                  # the surroundings recede
    assert len(sheet.triangles) == 2 * (n - 1) ** 2


# ---------------------------------------------------------------------------------------------- views
def test_a_view_at_the_source_pose_is_the_source_crop(mm):
    """Rendering the face where it is, uncropped by jitter, gives back the photo's crop: the pixel frames of the
    crop, the mesh and the remap agree to the half pixel."""
    photo = textured_photo()
    roi = np.array([60.0, 60.0, 180.0, 180.0])
    p = face_params()
    profiler = Profiler(mm, S, CROP_OFFSET_V2)
    prep = profiler.prepare(Source("f", photo, roi, p))
    pose = params_to_pose(p[None])[0]
    view = profiler.view(prep, ViewPose(*pose))
    expected = cut_crop(photo, view.roi, S)
    assert np.abs(view.image.astype(int) - expected.astype(int)).mean() < 1.0
    np.testing.assert_allclose(view.params[:12], move_params(p[None], roi[None], view.roi[None], S,
                                                             CROP_OFFSET_V2)[0, :12], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("yaw, pitch", [(75.0, 0.0), (-50.0, 12.0)])
def test_turned_views_are_labelled_exactly_and_have_no_holes(mm, yaw, pitch):
    photo = textured_photo()
    roi = np.array([60.0, 60.0, 180.0, 180.0])
    profiler = Profiler(mm, S, CROP_OFFSET_V2)
    prep = profiler.prepare(Source("f", photo, roi, face_params()))
    view = profiler.view(prep, ViewPose(yaw, pitch, 3.0, scale=1.04, shift=(0.02, -0.01)))
    got = params_to_pose(view.params[None])[0]
    assert abs(got[0] - yaw) < 0.5 and abs(got[1] - pitch) < 0.5
    # the label's 68 points are the stored landmarks, and their roi (3DDFA_V2's rule) is the crop, jittered
    lm = model_to_crop(mm.landmarks(view.params[None]), S)[0, :, :2]
    np.testing.assert_allclose(view.landmarks, lm, atol=1e-3)
    lo, hi = lm.min(0), lm.max(0)
    assert abs(np.sqrt(2) * (hi - lo).max() * 1.04 - S) < 0.5
    assert view.image.shape == (S, S, 3) and view.image.min() >= 30               # no hole, no black border
    # the face turned: its texture moved (the view is not the photo's crop)
    assert np.abs(view.image.astype(int) - cut_crop(photo, view.roi, S).astype(int)).mean() > 3


# ---------------------------------------------------------------------------------------------- poses, selection
def test_poses_are_reproducible_spread_and_turn_the_faces_way():
    cfg = PoseConfig(views=6, yaw=(20.0, 80.0), mirror=0.0)
    a = plan_views(np.array([25.0, 3.0, -2.0]), cfg, seed=3, index=17)
    assert a == plan_views(np.array([25.0, 3.0, -2.0]), cfg, seed=3, index=17)
    assert a != plan_views(np.array([25.0, 3.0, -2.0]), cfg, seed=3, index=18)
    yaws = np.sort([v.pose.yaw for v in a])
    assert np.all(yaws > 0)                                                         # turned further its own way
    assert np.all(np.floor((yaws - 20.0) / 10.0) == np.arange(6))                   # one per slice of 10 degrees
    mirrored = plan_views(np.array([25.0, 3.0, -2.0]), replace(cfg, mirror=1.0), seed=3, index=17)
    assert all(v.mirrored and v.pose.yaw < 0 for v in mirrored)


def test_model_points_are_the_landmarks_and_the_means_of_vertex_pairs(mm):
    pairs = np.random.default_rng(0).integers(0, mm.num_vertices, (21, 2))
    pairs[0, 1] = pairs[0, 0]                                                       # one vertex alone
    points = ModelPoints(mm, pairs, S, CROP_OFFSET_V2)
    p = np.stack([face_params(20, -5, 8, 0.4), face_params(-35, 10, -4)])
    decoder = Decoder(mm, S, CROP_OFFSET_V2)
    got = points(p)
    assert got.shape == (2, 68 + 21, 2)
    np.testing.assert_array_equal(got[:, points.slots("68")], decoder.landmarks(p)[..., :2])
    mesh = decoder.vertices(p)[..., :2]
    np.testing.assert_allclose(got[:, points.slots("aflw21")], (mesh[:, pairs[:, 0]] + mesh[:, pairs[:, 1]]) / 2,
                               atol=1e-3)
    assert ModelPoints(mm, None, S, CROP_OFFSET_V2)(p).shape == (2, 68, 2)


def test_selection_keeps_frontal_faces_whose_points_agree():
    params = np.stack([face_params(10), face_params(45), face_params(-5), face_params(0, 40)])
    points = np.tile(np.array([[10.0, 10], [50, 10], [30, 50], [np.nan, np.nan]]), (4, 1, 1))
    predicted = points.copy()
    predicted[2, :3] += 4.0                                                         # 10 % of sqrt(40 * 40)
    sel = select_sources(params, np.nan_to_num(predicted), points, SelectConfig(max_nme=5.0))
    assert sel.keep.tolist() == [True, False, False, False]
    assert sel.reasons == {"pose": 2, "points": 1}
    assert point_nme(predicted, points)[2] == pytest.approx(100 * np.sqrt(32) / 40)


def test_fill_keeps_the_photo_and_continues_its_colours_smoothly():
    photo = textured_photo(64)
    known = np.zeros((64, 64), bool)
    known[20:44, 16:40] = True
    filled = fill_unknown(np.where(known[..., None], photo, 0).astype(np.uint8), known)
    assert np.array_equal(filled[known], photo[known])
    inside = photo[known].astype(int)
    assert filled.min() >= inside.min() - 2 and filled.max() <= inside.max() + 2      # no black, no new colours
    far = filled[:6, :6].reshape(-1, 3).astype(int)
    assert np.ptp(far, axis=0).max() <= 12                                           # smooth away from the photo


def test_padding_finds_black_bands_but_never_cuts_the_face():
    img = np.full((120, 120, 3), 90, np.uint8)
    img[:, :14] = 3
    img[110:] = 0
    assert padding(img, np.array([20.0, 20, 100, 100])) == (0, 10, 14, 0)
    assert padding(img, np.array([5.0, 20, 100, 115])) == (0, 4, 5, 0)


# ---------------------------------------------------------------------------------------------- the set on disk
class StubPredictor(Predictor):
    """A teacher that fits every crop with the same ``params`` and counts the crops it was asked about."""

    def __init__(self, params):
        super().__init__("stub", S, 3)
        self.params, self.calls = params, 0

    def _predict(self, crops, maps):
        self.calls += len(crops)
        return Prediction(np.repeat(self.params[None], len(crops), axis=0))


def stub_teacher(mm, params) -> Teacher:
    """What profiling uses of a teacher: its decoder (morphable model, crop side, convention), a predictor, a key."""
    return Teacher(Decoder(mm, S, CROP_OFFSET_V2), StubPredictor(params), "stub-teacher")


def _photos(folder: Path, mm, n: int = 3) -> Path:
    """``n`` 300-W style photos (240 px) of the synthetic face with the .pts of its landmarks."""
    folder.mkdir(parents=True, exist_ok=True)
    p = face_params()
    lm = model_to_crop(mm.landmarks(p[None]), S)[0, :, :2] + 60.0
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), textured_photo(seed=i))
        (folder / f"f{i}.pts").write_text("version: 1\nn_points: 68\n{\n"
                                          + "".join(f"{x + 1:.3f} {y + 1:.3f}\n" for x, y in lm) + "}\n")
    return folder


def test_profiled_set_is_made_once_resumed_and_read_as_3d_labelled_crops(mm, tmp_path):
    photos = _photos(tmp_path / "photos", mm)
    wild = WildDataConfig(pts_folders=[str(photos)])
    # the teacher fits the face exactly, in the crop of its landmark roi
    lm = model_to_crop(mm.landmarks(face_params()[None]), S)[0, :, :2] + 60.0
    box = np.array([[60.0, 60.0, 180.0, 180.0]])
    roi = roi_from_landmarks(lm[None]).astype(np.float64)
    teacher = stub_teacher(mm, move_params(face_params()[None], box, roi, S, CROP_OFFSET_V2)[0])
    cfg = ProfiledDataConfig(poses=PoseConfig(views=3), workers=1, shard_sources=2, folder=str(tmp_path / "cache"))
    quiet = dict(progress=False, log=lambda *a: None, teacher_cache=str(tmp_path / "teacher"))
    made = make_profiled_set(cfg, wild, teacher, **quiet)
    assert made.folder.parent == tmp_path / "cache" and made.views == 9 and made.sources == 3
    samples = list_3ddfa_params(made.folder, made.list_file, made.params_file)
    assert len(samples) == 9 and cv2.imread(samples[0].image_path).shape == (S, S, 3)
    lm = np.load(made.landmarks_file)
    np.testing.assert_allclose(lm[4], model_to_crop(mm.landmarks(samples[4].params[None]), S)[0, :, :2], atol=1e-3)
    # the teacher's labels are cached: a second set with other poses asks it nothing
    calls = teacher.predictor.calls
    other = make_profiled_set(replace(cfg, poses=PoseConfig(views=2)), wild, teacher, **quiet)
    assert other.folder != made.folder and other.views == 6 and teacher.predictor.calls == calls
    # resumable: a lost shard and index are remade, the rest reused; a finished set is reused as it is
    shard = made.folder / "shards" / "00001"
    before = (made.folder / "shards/00000/shard.npz").stat().st_mtime_ns
    shutil.rmtree(shard)
    (made.folder / "profile.json").unlink()
    again = make_profiled_set(cfg, wild, teacher, **quiet)
    assert again.meta["seconds"]["views_made_now"] == 3 and again.views == 9
    assert (made.folder / "shards/00000/shard.npz").stat().st_mtime_ns == before
    assert np.array_equal(np.load(again.params_file), np.load(made.params_file))
    # a folder holding another set is refused, never mixed
    with pytest.raises(ProfileError, match="other faces, settings or teacher"):
        make_profiled_set(replace(cfg, seed=1), wild, teacher, made.folder, **quiet)
    assert json.loads((made.folder / "profile.json").read_text())["key"] in made.folder.name


# ---------------------------------------------------------------------------------------------- the recipe, end to end
@pytest.mark.slow
def test_profile_command_then_train_reuses_the_set(mm, tmp_path, capsys):
    """``tf2dasl profile`` (two worker processes) makes the set and its contact sheet; ``tf2dasl train`` with the same
    config finds it in the cache and trains on it beside the wild faces."""
    # a model whose untrained predictions are near its whitening mean: a valid face (the teacher must fit faces)
    teacher_mm = replace(mm, param_mean=face_params(), param_std=np.r_[np.full(12, 1e-6), np.full(50, 1e-3)]
                         .astype(np.float32))
    spec = ModelSpec(name="tiny", width=0.25)
    init = save_model_dir(FaceTask(spec, teacher_mm), tmp_path / "init")
    photos = _photos(tmp_path / "photos", mm, n=4)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
name: tiny
epochs: 1
steps_per_epoch: 2
model: {{width: 0.25, channels: 4, critic_hidden: [16, 8]}}
loss: {{wpdc: 0.0, param_l2: 1.0, anchor68: 1.0, landmark: 1.0, self_2d: 1.0, self_3d: 0.0, cycle: 0.0,
       adversarial: 0.0}}
optim: {{optimizer: adam, lr: 0.0001}}
data:
  wild: {{pts_folders: ["{photos}"], batch_size: 2}}
  profiled:
    select: {{max_nme: 100.0}}
    poses: {{views: 2}}
    folder: "{tmp_path / 'profiled'}"
    batch_size: 2
  teacher_cache: "{tmp_path / 'teacher'}"
""")
    assert main(["profile", "--config", str(cfg), "--model", str(init), "--workers", "2",
                 "--draw", str(tmp_path / "sheet.png")]) == 0
    out = capsys.readouterr().out
    assert "8 views of 4 faces" in out and cv2.imread(str(tmp_path / "sheet.png")).shape[1] == 3 * S + 2 * 2
    assert main(["train", "--config", str(cfg), "--init", str(init), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "made before, reused" in out and (tmp_path / "run/model/model.json").is_file()
    history = (tmp_path / "run/history.csv").read_text().splitlines()[0]
    assert "param_l2" in history and "anchor68" in history
