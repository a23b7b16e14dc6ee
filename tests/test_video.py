"""tf2dasl.video: reader errors, filters, smoothing, tracking (on a synthetic world with a fake regressor), the
JSON-lines/overlay writer and the pipeline; real-clip tests on ../shared/data/videos (skipped without it)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthetic import random_morphable_model
from tf2dasl.io.yaml_config import ConfigError, from_dict, load_config
from tf2dasl.geometry.camera import crop_to_image, model_to_crop, reframe_params
from tf2dasl.geometry.conventions import CROP_OFFSET_V1, CROP_OFFSET_V2
from tf2dasl.geometry.pose import angles_to_matrix, sRt_to_params
from tf2dasl.geometry.decoder import Decoder
from tf2dasl.reconstruct import Reconstructor
from tf2dasl.video import (
    FaceTracker,
    SmoothingConfig,
    TrackingConfig,
    VideoConfig,
    VideoError,
    open_camera,
    open_video,
    reconstruct_video,
)
from tf2dasl.video.filters import KalmanCV, OneEuro, gaussian_weights, window_radius
from tf2dasl.video.pipeline import reconstruct_sources, smooth_frames
from tf2dasl.video.smoothing import make_smoother
from tf2dasl.video.tracker import TrackedFace, TrackedFrame
from tf2dasl.video.writer import read_jsonl

REPO = Path(__file__).resolve().parents[1]
W, H = 160, 120  # synthetic frame size


def write_clip(path: Path, n: int, fourcc: str = "mp4v", size=(W, H), fps: float = 25.0, draw=None) -> Path:
    """A small clip: frame i is a flat grey level (or ``draw(i)``)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(draw(i) if draw else np.full((size[1], size[0], 3), (40 + 5 * i) % 255, np.uint8))
    writer.release()
    return path


# ============================================================================================== reader
def test_reader_yields_every_frame_with_times(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", 12)
    with open_video(clip) as v:
        assert (v.width, v.height, v.fps, v.frame_count) == (W, H, 25.0, 12)
        frames = list(v)
    assert [f.index for f in frames] == list(range(12)) and v.problem is None
    assert frames[0].image.shape == (H, W, 3) and frames[0].image.dtype == np.uint8
    np.testing.assert_allclose([f.time for f in frames], np.arange(12) / 25.0, atol=1e-3)


def test_reader_errors_are_one_clear_line(tmp_path):
    with pytest.raises(VideoError, match=r"missing\.mp4: file not found"):
        open_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file \(0 bytes\), no frames"):
        open_video(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video " * 200)
    with pytest.raises(VideoError, match=r"junk\.mp4: OpenCV cannot read it as a video"):
        open_video(tmp_path / "junk.mp4")
    zero = write_clip(tmp_path / "zero.mp4", 0)  # a container with no frame in it
    with pytest.raises(VideoError, match=r"zero\.mp4: (OpenCV cannot read it as a video.*without frames|no frames)"):
        open_video(zero)
    with pytest.raises(VideoError, match=r"is a folder"):
        open_video(tmp_path)
    with pytest.raises(VideoError, match=r"camera 57: cannot be opened.*--camera N"):
        open_camera(57)
    with pytest.raises(VideoError, match=r"camera -1: camera numbers start at 0"):
        open_camera(-1)


def _truncated_avi(tmp_path: Path, n: int = 40) -> Path:
    full = write_clip(tmp_path / "full.avi", n, "MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_reader_reports_a_stream_that_breaks_part_way(tmp_path):
    with open_video(_truncated_avi(tmp_path)) as v:
        n = sum(1 for _ in v)
    assert 0 < n < 40
    assert v.problem == (f"{tmp_path / 'cut.avi'}: the stream breaks after frame {n - 1} of the 40 its header "
                         "announces (a truncated or damaged file); the frames before are kept")


# ============================================================================================= filters
def test_kalman_follows_constant_velocity_and_cuts_noise():
    rng = np.random.default_rng(0)
    t = np.arange(200, dtype=float)
    truth = np.stack([3.0 * t, -0.5 * t + 10], 1)
    k = KalmanCV(2, 0.01)
    assert np.array_equal(k.update(truth[0]), truth[0])  # the first measurement as it is
    clean = np.array([k.update(z) for z in truth[1:]])
    np.testing.assert_allclose(clean[-50:], truth[-50:], atol=1e-3)  # no lag on constant velocity
    k = KalmanCV(2, 0.01)
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    out = np.array([k.update(z) for z in noisy])
    rms = lambda e: float(np.sqrt((e ** 2).mean()))  # noqa: E731
    assert rms(out[50:] - truth[50:]) < 0.6 * rms(noisy[50:] - truth[50:])


def test_kalman_gains_do_not_depend_on_units():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, (50, 3)).cumsum(0)
    a, b = KalmanCV(3, 0.2), KalmanCV(3, 0.2)
    out_a = np.array([a.update(v) for v in z])
    out_b = np.array([b.update(1000 * v) for v in z])
    np.testing.assert_allclose(out_b, 1000 * out_a, rtol=1e-9)


def test_kalman_picks_up_the_speed_of_a_face_already_moving():
    ramp = 4.0 * np.arange(12, dtype=float)[:, None]  # a track that starts on a moving face, no noise
    k = KalmanCV(1, 0.2)
    out = np.array([k.update(z) for z in ramp])
    assert np.abs(out[2:] - ramp[2:]).max() < 0.05 * 4.0  # the second measurement sets the speed


def test_adaptive_kalman_smooths_like_fixed_gains_at_rest_and_follows_a_turn():
    rng = np.random.default_rng(4)
    truth = np.r_[np.zeros(60), 3.0 * np.arange(1, 21)][:, None]  # still, then off at 6 sigma a frame
    z = truth + rng.normal(0, 0.5, truth.shape)
    fixed, adaptive = KalmanCV(1, 0.1), KalmanCV(1, 0.1, adaptation=30.0)
    a = np.array([fixed.update(v) for v in z])
    b = np.array([adaptive.update(v) for v in z])
    jitter = lambda x: np.abs(np.diff(x[20:60], 2, axis=0)).mean()  # noqa: E731
    assert jitter(b) < 1.3 * jitter(a) and jitter(b) < 0.6 * jitter(z)  # at rest: a smoother still
    lag = lambda x: np.abs(x[60:70] - truth[60:70]).mean()  # noqa: E731
    assert lag(b) < 0.8 * lag(a)  # after the turn: catches up sooner
    c = KalmanCV(1, 0.1, adaptation=30.0)
    np.testing.assert_allclose([c.update(1000 * v) for v in z], 1000 * b, rtol=1e-9)  # whatever the units


def _kalman_two_noise_terms(k: KalmanCV, z: np.ndarray, dt: float) -> np.ndarray:
    """One step of ``k`` (past its first measurement) as the adaptive filter was first written: the base process
    noise added, then the boost's own (``q * boost``) on top of it."""
    k.x = k.x + dt * k.v
    q = k.q
    p00 = k.p00 + 2 * dt * k.p01 + dt * dt * k.p11 + q * dt ** 3 / 3
    p01 = k.p01 + dt * k.p11 + q * dt * dt / 2
    p11 = k.p11 + q * dt
    y = z - k.x
    boost = k.adaptation * k.persistence_excess(y)
    if boost > 0:
        p00, p01, p11 = p00 + q * boost * dt ** 3 / 3, p01 + q * boost * dt * dt / 2, p11 + q * boost * dt
    s = p00 + 1.0
    k0, k1 = p00 / s, p01 / s
    k.x, k.v = k.x + k0 * y, k.v + k1 * y
    k.p00, k.p01, k.p11 = (1 - k0) * p00, (1 - k0) * p01, p11 - k1 * p01
    return k.x.copy()


@pytest.mark.parametrize("adaptation", [0.0, 30.0])
def test_kalman_process_noise_in_one_term_equals_base_plus_boost(adaptation):
    """The process noise is linear in q: added once as ``q * (1 + boost)`` it filters as the base and the boost
    added one after the other, to float round-off (exactly with fixed gains), also across dropped frames."""
    rng = np.random.default_rng(5)
    truth = np.r_[np.zeros(40), 2.5 * np.arange(1, 31)][:, None] * [1.0, -0.5, 2.0]  # still, then a turn
    z = truth + rng.normal(0, 0.5, truth.shape)
    dts = rng.choice([1.0, 2.0], len(z), p=[0.8, 0.2])
    new, old = KalmanCV(3, [0.1, 0.05, 0.2], adaptation), KalmanCV(3, [0.1, 0.05, 0.2], adaptation)
    old.update(z[0])
    a = np.array([new.update(z[0])] + [new.update(v, dt) for v, dt in zip(z[1:], dts[1:])])
    b = np.array([z[0]] + [_kalman_two_noise_terms(old, v, dt) for v, dt in zip(z[1:], dts[1:])])
    if adaptation:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(new.p00, old.p00, rtol=1e-12)
    else:
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(new.p00, old.p00)


def test_one_euro_smooths_rest_and_follows_motion():
    rng = np.random.default_rng(2)
    f = OneEuro(1, min_cutoff=0.05, beta=5.0, d_cutoff=0.1)
    still = 5 + rng.normal(0, 0.1, (100, 1))
    out = np.array([f.update(v, scale=100.0) for v in still])  # noise is slow next to the scale: low cutoff
    assert out[20:].std() < 0.5 * still[20:].std()
    f = OneEuro(1, min_cutoff=0.05, beta=5.0, d_cutoff=0.1)
    ramp = np.arange(100, dtype=float)[:, None] * 2
    out = np.array([f.update(v, scale=1.0) for v in ramp])
    assert abs(out[-1, 0] - ramp[-1, 0]) < 0.05 * ramp[-1, 0]  # a fast move raises the cutoff: little lag


def test_gaussian_window():
    assert window_radius(1.0) == 3 and window_radius(1.5) == 5
    w = gaussian_weights(np.array([-2, -1, 0, 1, 2]), 1.0)
    assert abs(w.sum() - 1) < 1e-12 and np.allclose(w, w[::-1]) and w.argmax() == 2
    np.testing.assert_allclose(gaussian_weights(np.array([0, 1]), 1.0).sum(), 1.0)  # cut by a track's end


# =========================================================================================== smoothing
@pytest.fixture(scope="module")
def mm():
    return random_morphable_model()


def _params(angles, scale, t, rng=None):
    p = np.zeros(62, np.float32)
    p[:12] = sRt_to_params(np.array([scale]), angles_to_matrix(np.asarray(angles, float)[None]),
                           np.asarray(t, float)[None])[0]
    if rng is not None:
        p[12:52] = rng.normal(0, 1e4, 40)
        p[52:] = rng.normal(0, 0.5, 10)
    return p


def _image_landmarks(mm, params, rois, conv=CROP_OFFSET_V2):
    return crop_to_image(model_to_crop(mm.landmarks(np.asarray(params)), 120, conv), rois, 120)


@pytest.mark.parametrize("conv", [CROP_OFFSET_V2, CROP_OFFSET_V1])
def test_reframe_params_keeps_the_image_points(mm, conv):
    rng = np.random.default_rng(0)
    p = np.stack([_params([10, -5, 3], 0.4, [60, 60, 10], rng) for _ in range(3)])
    a = np.array([[10, 20, 110, 120], [0, 0, 50, 50], [-30, 40, 170, 240]], np.float32)
    b = np.array([[0, 0, 120, 120], [5, 7, 305, 307], [100, 0, 140, 40]], np.float32)
    q = reframe_params(p, a, b, 120, conv)
    np.testing.assert_allclose(_image_landmarks(mm, q, b, conv), _image_landmarks(mm, p, a, conv), atol=2e-3)
    np.testing.assert_array_equal(q[:, 12:], p[:, 12:])
    np.testing.assert_allclose(reframe_params(q, b, a, 120, conv), p, rtol=1e-5, atol=1e-4)


class _F:  # the face fields a smoother reads
    def __init__(self, tid, roi, params, lm):
        self.track_id, self.roi_box, self.params, self.landmarks_3d = tid, roi, params, lm


class _Fr:
    def __init__(self, index, faces):
        self.index, self.faces = index, faces


def _moving_crop_frames(mm, n=20):
    """One face standing still in the image while its crop moves and scales every frame."""
    still = _params([15, 5, -3], 0.5, [60, 60, 0])
    ref = np.array([[0, 0, 120, 120]], np.float32)
    frames = []
    for i in range(n):
        roi = np.array([[5 * np.sin(i), 3 * i % 7, 120 + 4 * np.cos(i) + 5 * np.sin(i), 120 + 4 * np.cos(i)
                         + 3 * i % 7]], np.float32)
        p = reframe_params(still[None], ref, roi, 120)[0]
        frames.append(_Fr(i, [_F(1, roi[0], p, _image_landmarks(mm, p[None], roi)[0])]))
    return frames, _image_landmarks(mm, still[None], ref)[0]


@pytest.mark.parametrize("mode", ["off", "causal", "offline"])
@pytest.mark.parametrize("filt", ["kalman", "one_euro"])
def test_smoothers_leave_a_still_face_still_whatever_its_crops_do(mm, mode, filt):
    frames, truth = _moving_crop_frames(mm)
    sm = make_smoother(SmoothingConfig(mode=mode, causal_filter=filt))
    out = [s for f in frames for s in sm.push(f)] + sm.flush()
    assert [s.frame.index for s in out] == list(range(len(frames)))
    for s in out:
        lm = _image_landmarks(mm, s.params, s.frame.faces[0].roi_box[None])[0]
        np.testing.assert_allclose(lm, truth, atol=0.05)


def test_offline_smoother_holds_back_its_window(mm):
    frames, _ = _moving_crop_frames(mm, 10)
    sm = make_smoother(SmoothingConfig(mode="offline", offline_sigma=1.0))
    assert sm.delay == 3
    got = [[s.frame.index for s in sm.push(f)] for f in frames]
    assert got[:3] == [[], [], []] and got[3] == [0] and got[9] == [6]
    assert [s.frame.index for s in sm.flush()] == [7, 8, 9]


def test_smoothing_cuts_jitter_and_averages_identity(mm):
    rng = np.random.default_rng(3)
    roi = np.array([0, 0, 120, 120], np.float32)
    shape = rng.normal(0, 1e4, 40)
    frames, clean = [], []
    for i in range(60):
        p = _params([10 * np.sin(i / 10), 0, 0], 0.5, [60 + i * 0.5, 60, 0])
        p[12:52] = shape
        clean.append(p.copy())
        noisy = p.copy()
        noisy[[3, 7]] += rng.normal(0, 1.5, 2)
        noisy[12:52] += rng.normal(0, 3e3, 40)
        frames.append(_Fr(i, [_F(7, roi, noisy, np.zeros((68, 3)))]))
    clean = np.array(clean)

    def jitter(ps):
        return np.abs(np.diff(ps[:, [3, 7]] - clean[:, [3, 7]], 2, axis=0)).mean()

    raw = jitter(np.array([f.faces[0].params for f in frames]))
    for mode, cut in (("causal", 0.3), ("offline", 0.5)):
        sm = make_smoother(SmoothingConfig(mode=mode))
        out = np.array([s.params[0] for f in frames for s in sm.push(f)] + [s.params[0] for s in sm.flush()])
        assert jitter(out) < (1 - cut) * raw, mode
        assert np.abs(out[-1, 12:52] - shape).mean() < 0.3 * 3e3  # the identity is the track's mean


def test_video_config_from_yaml_and_its_errors(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("tracking:\n  redetect_every: 5\nsmoothing:\n  mode: offline\n  offline_sigma: 2\n")
    cfg = load_config(f, VideoConfig)
    assert cfg.tracking.redetect_every == 5 and cfg.smoothing.mode == "offline" and cfg.smoothing.offline_sigma == 2
    with pytest.raises(ConfigError, match="smoothing.mode must be one of off, causal, offline"):
        from_dict(VideoConfig, {"smoothing": {"mode": "fast"}})
    assert from_dict(VideoConfig, {"smoothing": {"pose_adaptation": 0}}).smoothing.pose_adaptation == 0
    with pytest.raises(ConfigError, match="smoothing.pose_adaptation must be >= 0"):
        from_dict(VideoConfig, {"smoothing": {"pose_adaptation": -1}})
    with pytest.raises(ConfigError, match="redetect_every must be >= 1"):
        from_dict(VideoConfig, {"tracking": {"redetect_every": 0}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(VideoConfig, {"tracking": {"redetect": 3}})


# ============================================================================ tracking in a synthetic world
TEMPLATE = np.random.default_rng(5).uniform(0, 1, (68, 2))
TEMPLATE = (TEMPLATE - TEMPLATE.min(0)) / np.ptp(TEMPLATE, axis=0)  # spans the unit square


class _Detector:
    name = "fake"

    def __init__(self, world):
        self.world, self.calls = world, 0

    def box_to_faceboxes(self, boxes):
        return np.asarray(boxes, np.float32)


class FakeReconstructor:
    """A perfect regressor in a world of square faces ``world.faces[frame] = [(x0, y0, side), ...]``: a crop that
    holds most of a face returns its landmarks; a crop without one returns a face shrunk into the crop's
    centre (as the real regressor does on background). Detection returns the faces' boxes unless the frame is
    in ``world.undetected``."""

    size, convention = 120, CROP_OFFSET_V2
    make_faces = staticmethod(Reconstructor.make_faces)

    def __init__(self):
        self.faces: dict[int, list] = {}
        self.undetected: set[int] = set()
        self.frame = 0
        self.detector = _Detector(self)
        self.mm = None
        self.follow_images, self._last = False, None

    def _sync(self, image):
        """With ``follow_images``, each new image (a reader's next frame) is the world's next frame."""
        if self.follow_images and image is not self._last:
            self.frame = 0 if self._last is None else self.frame + 1
            self._last = image

    def truth(self, frame=None):
        return self.faces.get(self.frame if frame is None else frame, [])

    def regress(self, image, rois, maps=None, one_pass=False):
        from tf2dasl.detect.base import box_iou
        from tf2dasl.geometry.roi import roi_from_landmarks

        self._sync(image)
        lms = []
        for roi in np.asarray(rois, np.float64):
            best, best_iou = None, 0.3
            for x, y, s in self.truth():
                lm = TEMPLATE * s + (x, y)
                iou = box_iou(roi[None], roi_from_landmarks(lm[None]))[0, 0]
                if iou > best_iou:
                    best, best_iou = lm, iou
            if best is None:  # background: a smaller face in the middle of the crop
                c, side = (roi[:2] + roi[2:]) / 2, (roi[2] - roi[0]) / np.sqrt(2) * 0.8
                best = TEMPLATE * side + c - side / 2
            lms.append(np.concatenate([best, np.zeros((68, 1))], 1))
        params = np.tile(_params([0, 0, 0], 0.5, [60, 60, 0]), (len(lms), 1))
        return params, np.asarray(lms, np.float32)

    def landmarks(self, params, rois):
        raise AssertionError("not used with smoothing off")

    def detect(self, image):
        self._sync(image)
        self.detector.calls += 1
        if self.frame in self.undetected or not self.truth():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes = []
        for x, y, s in self.truth():
            # a FaceBoxes-like box whose bbox roi is about the landmark roi
            side = s * np.sqrt(2) / 1.58
            cx, cy = x + s / 2, y + s / 2 - 0.14 * side
            boxes.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
        return np.asarray(boxes, np.float32), np.full(len(boxes), 0.9, np.float32)


def _scene(hue: int = 20) -> np.ndarray:
    hsv = np.zeros((H, W, 3), np.uint8)
    hsv[..., 0], hsv[..., 1], hsv[..., 2] = hue, 200, 180
    hsv[: H // 2, :, 2] = 90
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _run_world(rec: FakeReconstructor, n: int, config: TrackingConfig | None = None, scene=None):
    tracker = FaceTracker(rec, config or TrackingConfig(verify_score=1.0))
    out = []
    for i in range(n):
        rec.frame = i
        out.append(tracker.step(scene(i) if scene else _scene(), i))
    return tracker, out


def test_one_moving_face_keeps_its_id_with_detection_every_n_frames():
    rec = FakeReconstructor()
    for i in range(30):
        rec.faces[i] = [(20 + 2 * i, 30 + i, 40)]
    tracker, frames = _run_world(rec, 30, TrackingConfig(redetect_every=10))
    assert [[f.track_id for f in fr.faces] for fr in frames] == [[1]] * 30
    assert [fr.index for fr in frames if fr.detected] == [0, 10, 20] and rec.detector.calls == 3
    last = frames[-1].faces[0].face
    np.testing.assert_allclose(last.landmarks_2d, TEMPLATE * 40 + (20 + 58, 30 + 29), atol=1e-3)
    np.testing.assert_allclose(last.bbox, [78, 59, 118, 99], atol=1e-3)  # the landmarks' box in every frame
    assert isinstance(frames[-1].faces[0], TrackedFace) and frames[-1].faces[0].to_json()["track_id"] == 1


def test_two_faces_keep_their_ids_a_new_face_gets_the_next():
    rec = FakeReconstructor()
    for i in range(25):
        rec.faces[i] = [(10 + i, 20, 36), (100 - i, 60, 30)] + ([(60, 5, 28)] if i >= 12 else [])
    _, frames = _run_world(rec, 25, TrackingConfig(redetect_every=5))
    ids = [[f.track_id for f in fr.faces] for fr in frames]
    assert ids[:10] == [[1, 2]] * 10 and ids[15:] == [[1, 2, 3]] * 10
    # each id stays on its face
    for fr in frames:
        xs = {f.track_id: float(f.face.landmarks_2d[:, 0].min()) for f in fr.faces}
        assert abs(xs[1] - (10 + fr.index)) < 1e-3 and abs(xs[2] - (100 - fr.index)) < 1e-3


def test_a_lost_face_that_returns_later_gets_a_new_id():
    rec = FakeReconstructor()
    for i in range(40):
        if i < 10 or i >= 30:
            rec.faces[i] = [(50, 40, 40)]
    tracker, frames = _run_world(rec, 40, TrackingConfig(redetect_every=10, reattach_frames=5))
    assert [f.track_id for f in frames[9].faces] == [1]
    assert frames[12].faces == []  # the crop holds no face: its roi collapses, the track ends
    assert [f.track_id for f in frames[35].faces] == [2]
    assert tracker.stats["lost"] >= 1 and tracker.stats.get("lost_collapse", 0) >= 1


def test_a_face_lost_for_a_frame_and_found_again_in_place_keeps_its_id():
    rec = FakeReconstructor()
    for i in range(20):
        rec.faces[i] = [(50, 40, 40)]
    rec.faces[8] = []  # the regressor loses it for one frame (an occlusion) ...
    rec.undetected = {8}
    tracker, frames = _run_world(rec, 20)
    assert frames[8].faces == []
    assert [f.track_id for f in frames[9].faces] == [1]  # ... found again at once, in place: the same track
    assert tracker.stats["reattached"] == 1


def test_a_shot_cut_ends_every_track():
    rec = FakeReconstructor()
    for i in range(20):
        rec.faces[i] = [(50, 40, 40)]
    tracker, frames = _run_world(rec, 20, scene=lambda i: _scene(20 if i < 10 else 110))
    assert [fr.index for fr in frames if fr.cut] == [10]
    assert {f.track_id for fr in frames[:10] for f in fr.faces} == {1}
    assert {f.track_id for fr in frames[10:] for f in fr.faces} == {2}
    assert tracker.cuts.last_distance < 0.1  # the frames after the cut are alike again


def test_unconfirmed_tracks_end_after_max_missed_redetections():
    rec = FakeReconstructor()
    for i in range(40):
        rec.faces[i] = [(50, 40, 40)]
    rec.undetected = set(range(5, 40))  # the detector stops seeing a face the tracker still follows
    tracker, frames = _run_world(rec, 40, TrackingConfig(redetect_every=5, max_missed=2, verify_score=1.0))
    ended = next(fr.index for fr in frames if not fr.faces)
    assert ended == 10  # missed at the re-detections of frames 5 and 10
    assert tracker.stats["lost_missed"] == 1


def test_max_faces_and_duplicates():
    rec = FakeReconstructor()
    rec.faces[0] = [(10, 10, 30), (60, 10, 30), (110, 10, 30)]
    _, frames = _run_world(rec, 1, TrackingConfig(max_faces=2))
    assert len(frames[0].faces) == 2


def test_tracker_needs_a_detector():
    rec = FakeReconstructor()
    rec.detector = None
    with pytest.raises(ValueError, match="needs a Reconstructor with a detector"):
        FaceTracker(rec)


# ============================================================================ pipeline and files (fake model)
def _world_clip(tmp_path: Path, n: int = 20, fourcc="mp4v", name="clip.mp4") -> tuple[Path, FakeReconstructor]:
    rec = FakeReconstructor()
    for i in range(n):
        rec.faces[i] = [(30 + i, 30, 40)]
    return write_clip(tmp_path / name, n, fourcc, draw=lambda i: _scene()), rec


def _run_pipeline(rec, clip, out, **kw):
    """reconstruct_video in the fake world, its frame following the reader's."""
    rec.follow_images = True
    config = kw.pop("config", VideoConfig(smoothing=SmoothingConfig(mode="off")))
    return reconstruct_video(clip, rec, out, progress=False, config=config, **kw)


def test_pipeline_writes_a_line_per_frame_and_an_overlay_video(tmp_path):
    clip, rec = _world_clip(tmp_path)
    s = _run_pipeline(rec, clip, tmp_path / "out", outputs=["overlay"])
    assert s.ok and s.frames == 20 and s.faces == 20 and s.tracks == 1
    assert s.files == ["clip.jsonl", "clip_overlay.mp4"]
    lines = read_jsonl(tmp_path / "out" / "clip.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(20))
    assert all(ln["faces"][0]["track_id"] == 1 for ln in lines) and lines[0]["detected"] and not lines[1]["detected"]
    assert set(lines[3]["faces"][0]) >= {"track_id", "bbox", "roi_box", "landmarks_2d", "landmarks_3d", "pose",
                                         "params"}
    np.testing.assert_allclose(lines[4]["time"], 4 / 25, atol=1e-3)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip_overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 20 and (cap.get(3), cap.get(4)) == (W, H)
    ok, first = cap.read()
    assert ok and np.abs(first.astype(int) - _scene().astype(int)).max() > 100  # something was drawn
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left
    # a rerun with the same settings keeps the complete outputs; --force redoes them
    assert _run_pipeline(rec, clip, tmp_path / "out", outputs=["overlay"]).skipped
    assert not _run_pipeline(rec, clip, tmp_path / "out", outputs=["overlay"], force=True).skipped


def test_pipeline_keeps_every_frame_of_a_video_that_breaks(tmp_path):
    full, rec = _world_clip(tmp_path, 40, "MJPG", "full.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    s = _run_pipeline(rec, cut, tmp_path / "out", outputs=["overlay"])
    assert not s.ok and s.problem and "breaks after frame" in s.problem
    lines = (tmp_path / "out" / "cut.jsonl").read_text().splitlines()
    assert len(lines) == s.frames > 0 and all(json.loads(ln)["frame"] == i for i, ln in enumerate(lines))
    cap = cv2.VideoCapture(str(tmp_path / "out" / "cut_overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == s.frames
    assert "incomplete: " in s.report_lines()[0]


def test_pipeline_never_replaces_a_users_file(tmp_path):
    clip, rec = _world_clip(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.jsonl").write_text("mine\n")
    s = _run_pipeline(rec, clip, out)
    assert (out / "clip.jsonl").read_text() == "mine\n"
    assert s.stem == "clip_mp4" and (out / "clip_mp4.jsonl").is_file() and "was not written by tf2dasl" in s.renamed


def test_pipeline_offline_smoothing_writes_every_frame_in_order(tmp_path, mm):
    clip, rec = _world_clip(tmp_path)
    rec.landmarks = lambda params, rois: np.zeros((len(params), 68, 3), np.float32)
    s = _run_pipeline(rec, clip, tmp_path / "out", config=VideoConfig(smoothing=SmoothingConfig(mode="offline")))
    assert s.frames == 20
    assert [ln["frame"] for ln in read_jsonl(tmp_path / "out" / "clip.jsonl")] == list(range(20))


def test_reconstruct_sources_goes_on_past_unreadable_ones(tmp_path):
    clip, rec = _world_clip(tmp_path)
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    run = reconstruct_sources([tmp_path / "junk.mp4", 57], rec, tmp_path / "out", progress=False)
    results = run.results
    assert [type(r).__name__ for r in results] == ["VideoFailure", "VideoFailure"]
    assert results[0].describe().startswith(f"failed: {tmp_path / 'junk.mp4'}: OpenCV cannot read it")
    assert results[1].describe() == ("failed: camera 57: cannot be opened (no such camera, no permission, or in "
                                     "use); check --camera N")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # written in every case
    assert summary["complete"] is False and [v["input"] for v in summary["videos"]] == [str(tmp_path / "junk.mp4"),
                                                                                         "camera 57"]


def test_smooth_frames_rebuilds_faces_from_smoothed_params(mm):
    """smooth_frames on tracked frames: landmarks and pose follow the smoothed parameters."""
    rec = Reconstructor(type("P", (), {"input_size": 120, "channels": 3})(), Decoder(mm, 120, "3ddfa_v2"))
    rng = np.random.default_rng(0)
    frames = []
    roi = np.array([[0, 0, 120, 120]], np.float32)
    for i in range(10):
        p = _params([5 * i, 0, 0], 0.5, [60 + rng.normal(0, 2), 60, 0], rng)[None]
        lm = rec.landmarks(p, roi)
        face = rec.make_faces(np.r_[lm[0, :, :2].min(0), lm[0, :, :2].max(0)][None], np.ones(1), roi, p, lm)[0]
        frames.append(TrackedFrame(i, i / 30, None, [TrackedFace(1, face, i == 0)]))
    out = smooth_frames(rec, frames, SmoothingConfig(mode="causal"))
    assert [f.index for f in out] == list(range(10))
    for f in out:
        face = f.faces[0].face
        np.testing.assert_allclose(face.landmarks_3d, rec.landmarks(face.params[None], roi)[0], atol=1e-4)
        np.testing.assert_allclose(face.bbox, np.r_[face.landmarks_2d.min(0), face.landmarks_2d.max(0)], atol=1e-4)
    assert not np.allclose(out[5].faces[0].face.params, frames[5].faces[0].face.params)


# =================================================================== the stability benchmark's pieces
def test_stability_benchmark_scores_and_clips(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import video_stability as vs

    rng = np.random.default_rng(0)
    gt = np.tile(rng.uniform(0, 100, (1, 68, 2)), (30, 1, 1)) + np.arange(30)[:, None, None]
    iod = np.linalg.norm(gt[0, 36] - gt[0, 45])
    nme, jitter = vs.scores(gt + 2.0, gt)  # a constant offset: error, no jitter
    assert abs(nme - 100 * np.sqrt(8) / iod) < 1e-6 and jitter < 1e-9
    lag = gt + np.linspace(0, 3, 30)[:, None, None]  # a smooth drift costs (almost) no jitter
    assert vs.scores(lag, gt)[1] < 1e-6
    shaky = gt + np.where(np.arange(30) % 2, 1.0, -1.0)[:, None, None]  # +-1 px in x and y, alternating
    assert abs(vs.scores(shaky, gt)[1] - 100 * 4 * np.sqrt(2) / iod) < 1e-6
    image = np.zeros((96, 128, 3), np.uint8)
    image[40:56, 60:68] = 255
    pts = np.array([[60.0, 40.0], [67.0, 55.0]])
    moved = vs.make_clip(image, pts, rng, tmp_path / "c.mp4")
    with open_video(tmp_path / "c.mp4") as v:
        frames = [f.image for f in v]
    assert len(frames) == vs.FRAMES == len(moved)
    for f, p in zip(frames[::15], moved[::15]):
        ys, xs = np.nonzero(f[..., 0] > 128)
        assert abs(xs.mean() - p[:, 0].mean()) < 2 and abs(ys.mean() - p[:, 1].mean()) < 2


def test_stability_benchmark_motions_and_real_clip_steadiness():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import video_stability as vs

    fast = vs.MOTIONS["fast"]
    traj = vs.trajectory(np.random.default_rng(0), vs.FRAMES, fast)
    lim = np.array([fast.max_rotation, fast.max_log_scale, fast.max_shift, fast.max_shift])
    assert traj.shape == (vs.FRAMES, 4) and (np.abs(traj) <= lim + 1e-12).all()

    def motion(name):  # over a few clips: mean |acceleration| (of each range) and direction changes per clip
        trajs = [vs.trajectory(np.random.default_rng(seed), vs.FRAMES, vs.MOTIONS[name]) for seed in range(8)]
        accel = np.mean([np.abs(np.diff(t, 2, axis=0)).mean(0) / lim for t in trajs])
        turns = np.mean([(np.diff(np.sign(np.diff(t, axis=0)), axis=0) != 0).sum() for t in trajs])
        return accel, turns

    (smooth_accel, smooth_turns), (fast_accel, fast_turns) = motion("smooth"), motion("fast")
    assert fast_accel > 2 * smooth_accel and fast_turns > 1.5 * smooth_turns  # fast: changes direction more often
    face = np.random.default_rng(1).uniform(0, 100, (68, 2))
    face = (face - face.min(0)) / np.ptp(face, axis=0) * 100  # a 100 px face

    def frames(offsets):  # one track, the face moved by offsets (T, 2)
        return [type("Fr", (), {"index": i, "faces": [TrackedFace(3, type("Fa", (), {"landmarks_2d": face + o})(),
                                                                  False)]})() for i, o in enumerate(offsets)]

    assert vs.track_steadiness(frames(np.arange(10)[:, None] * [2.0, 1.0])) < 1e-9  # constant speed: steady
    shaky = np.where(np.arange(10) % 2, 1.0, -1.0)[:, None] * [1.0, 0.0]  # +-1 px in x
    assert abs(vs.track_steadiness(frames(shaky)) - 4.0) < 1e-9  # |2nd difference| 4 px of a 100 px face


# ==================================================================== the command line (real model)
def _cli(capsys, *argv):
    from tf2dasl.cli import main

    rc = main(["reconstruct", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _moving_photo_clip(shared_dir: Path, path: Path, n: int = 24) -> Path:
    image = cv2.imread(str(shared_dir / "data" / "300w" / "afw" / "1051618982_1.jpg"))  # one face
    image = cv2.resize(image, (320, int(320 * image.shape[0] / image.shape[1])))
    h, w = image.shape[:2]

    def draw(i):
        m = np.float32([[1, 0, 3 * np.sin(i / 4)], [0, 1, 2 * i / n]])
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)

    return write_clip(path, n, size=(w, h), draw=draw)


def test_cli_video_bad_inputs_are_one_line_each(mb05_dir, tmp_path, capsys):
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 300)
    zero = write_clip(tmp_path / "zero.mp4", 0)
    cut = _truncated_avi(tmp_path)
    out = tmp_path / "out"
    rc, stdout, err = _cli(capsys, tmp_path / "junk.mp4", zero, cut, "--camera", 57, "--model",
                           mb05_dir, "--out", out, "--detector", "haar")
    assert rc == 1 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("  ")]  # the rest: progress bars
    assert lines[0].startswith(f"  failed: {tmp_path / 'junk.mp4'}: OpenCV cannot read it as a video")
    assert lines[1].startswith(f"  failed: {zero}: OpenCV cannot read it as a video")
    assert lines[2].startswith(f"  incomplete: {cut}: the stream breaks after frame")
    assert lines[3] == "  failed: camera 57: cannot be opened (no such camera, no permission, or in use); check --camera N"
    assert len(lines) == 4
    kept = (out / "cut.jsonl").read_text().splitlines()
    assert kept and [json.loads(ln)["frame"] for ln in kept] == list(range(len(kept)))
    rc, _, err = _cli(capsys, cut, "--pts", "--model", mb05_dir, "--out", out)
    assert rc == 2 and err.strip() == ("tf2dasl reconstruct: error: --pts apply to photos; for videos use --overlay, "
                                       "--obj, --ply")
    rc, _, err = _cli(capsys, "--model", mb05_dir, "--out", out)
    assert rc == 2 and "nothing to reconstruct" in err


def test_cli_video_end_to_end(mb05_dir, shared_dir, tmp_path, capsys):
    clip = _moving_photo_clip(shared_dir, tmp_path / "face_moving.mp4")
    out = tmp_path / "out"
    rc, stdout, err = _cli(capsys, clip, "--model", mb05_dir, "--out", out, "--overlay", "--obj",
                           "--smooth", "offline")
    assert rc == 0, err
    assert f"{clip}: 24 frames" in stdout and "1 tracks" in stdout and "+ 24 meshes" in stdout
    lines = read_jsonl(out / "face_moving.jsonl")
    assert len(lines) == 24 and {f["track_id"] for ln in lines for f in ln["faces"]} == {1}
    assert all(len(ln["faces"]) == 1 and len(ln["faces"][0]["landmarks_2d"]) == 68 for ln in lines)
    assert len(list((out / "face_moving_meshes").glob("face_moving_*_1.obj"))) == 24
    cap = cv2.VideoCapture(str(out / "face_moving_overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 24


# ====================================================================== the real clip (../shared/data/videos)
HAMILTON_CUTS = [20, 82, 211]  # the clip's shot cuts (first frame of each new shot)


@pytest.fixture(scope="module")
def hamilton(shared_dir):
    path = shared_dir / "data" / "videos" / "hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def mb05_rec(mb05_dir):
    from tf2dasl.api import make_reconstructor

    return make_reconstructor(mb05_dir)


def test_hamilton_first_shot(hamilton, mb05_rec, tmp_path):
    s = reconstruct_video(hamilton, mb05_rec, tmp_path, max_frames=25, progress=False)
    assert s.ok and s.frames == 25
    lines = read_jsonl(tmp_path / "hamilton_clip.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(25))
    assert [ln["frame"] for ln in lines if ln["cut"]] == [20]
    # the singer is track 1 from the first frame to the cut
    assert all(1 in [f["track_id"] for f in ln["faces"]] for ln in lines[:20])
    assert all(1 not in [f["track_id"] for f in ln["faces"]] for ln in lines[20:])


@pytest.mark.slow
def test_hamilton_end_to_end(hamilton, mb05_rec, tmp_path):
    s = reconstruct_video(hamilton, mb05_rec, tmp_path, outputs=["overlay"], progress=False)
    assert s.ok and s.frames == 275 and s.stats["cuts"] == 3
    lines = read_jsonl(tmp_path / "hamilton_clip.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(275))
    assert [ln["frame"] for ln in lines if ln["cut"]] == HAMILTON_CUTS
    # the singer's close shot (82-210): one face, one id throughout
    ids = {tuple(f["track_id"] for f in ln["faces"]) for ln in lines[82:211]}
    assert len(ids) == 1 and len(next(iter(ids))) == 1
    # the last shot: the four faces found at the cut keep their ids to the end
    first = sorted(f["track_id"] for f in lines[211]["faces"])
    assert len(first) >= 3 and all(sorted(f["track_id"] for f in ln["faces"]) == first for ln in lines[211:])
    cap = cv2.VideoCapture(str(tmp_path / "hamilton_clip_overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 275 and (cap.get(3), cap.get(4)) == (640, 360)
