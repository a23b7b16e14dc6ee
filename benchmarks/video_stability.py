"""Temporal stability against known motion: 300-W photos moved along smooth random similarity trajectories into
60-frame MP4 clips, tracked, and scored per smoothing mode (NME and jitter against the moved ground truth).

    python benchmarks/video_stability.py --model models/mb05 [--folder afw] [--clips 60] [--runtime tflite]
    python benchmarks/video_stability.py --folder helen_train --grid      # tune the filters (validation photos)

Clips (``make_clip``): each photo of ``../shared/data/300w/FOLDER`` (a seeded random subset of ``--clips``)
is warped by a similarity transform about its centre, per frame, into a canvas of its own size (border
replicated): rotation, log-scale and translation each follow a cubic spline through random keyframes every
``KEY_EVERY`` frames (rotation within +-``MAX_ROTATION`` degrees, scale within +-``MAX_LOG_SCALE`` in log,
translation within +-``MAX_SHIFT`` of the side). The 60 frames are encoded with OpenCV's MPEG-4 (``mp4v``)
writer and decoded back (real compression) before anything else sees them. The 68 ground-truth points move
with the same transforms.

Per clip the tracker (:class:`tf2dasl.video.FaceTracker`, default config) runs once; its per-frame faces then go
through each smoother (the smoothers never change what the tracker sees), so the modes are compared on the same
regressions. The reference row "photo pipeline per frame" runs the photo :class:`Reconstructor` (detection →
box crop → regression → landmark crop → regression) on every frame independently, as without video support.

Scores, on the face matching the ground truth (IoU >= 0.3 of the landmark boxes) in every frame of the clip:

* **NME**: mean 68-point error over the moved outer inter-ocular distance (points 36, 45), %, over frames;
* **jitter**: the second difference of the landmark error, ``|e_t - 2 e_(t-1) + e_(t-2)|`` per point (``e`` the
  prediction minus the moved ground truth, so the true motion cancels and a smooth lag costs little), over the
  inter-ocular distance, mean over points and frames, %.

Clips where some frame has no matching face are counted and left out (the same clips for every mode).
Targets: offline jitter -50 % with NME +<= 2 %; causal jitter -30 % with NME +<= 3 % (vs ``off``).
``--grid`` scans the Kalman noise settings and the offline sigma and prints each one's jitter and NME change:
run it on ``helen_train`` (validation) and keep ``afw`` (the reported clips) out of the choice.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import REPO, print_table, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FRAMES = 60
KEY_EVERY = 15
MAX_ROTATION = 20.0  # degrees
MAX_LOG_SCALE = 0.15
MAX_SHIFT = 0.10  # of the canvas side
FPS = 30.0
MATCH_IOU = 0.3
TARGETS = {"offline": (50.0, 2.0), "causal": (30.0, 3.0)}  # jitter cut %, NME rise % allowed


# ------------------------------------------------------------------------------------------------- clips
def trajectory(rng: np.random.Generator, frames: int = FRAMES) -> np.ndarray:
    """``(frames, 4)`` rotation (deg), log-scale, shift x, shift y (fractions of the side): cubic splines through
    random keyframes every ``KEY_EVERY`` frames."""
    from scipy.interpolate import CubicSpline

    keys = np.arange(0, frames + KEY_EVERY, KEY_EVERY)
    lim = np.array([MAX_ROTATION, MAX_LOG_SCALE, MAX_SHIFT, MAX_SHIFT])
    values = rng.uniform(-1, 1, (len(keys), 4)) * lim
    return np.clip(CubicSpline(keys, values, axis=0)(np.arange(frames)), -lim, lim)


def similarity(params: np.ndarray, w: int, h: int) -> np.ndarray:
    """The 2x3 matrix of one trajectory sample: rotate and scale about the centre, then shift."""
    angle, log_s, sx, sy = params
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(angle), float(np.exp(log_s)))
    m[:, 2] += (sx * w, sy * h)
    return m


def make_clip(image: np.ndarray, pts: np.ndarray, rng: np.random.Generator, path: Path):
    """Write the moved photo as an MP4 at ``path``; return the moved ground truth ``(FRAMES, 68, 2)``."""
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    gts = []
    for p in trajectory(rng):
        m = similarity(p, w, h)
        writer.write(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        gts.append(pts @ m[:, :2].T + m[:, 2])
    writer.release()
    return np.asarray(gts)


# ---------------------------------------------------------------------------------------------- scoring
def interocular(gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(gt[..., 36, :] - gt[..., 45, :], axis=-1)


def scores(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """NME % and jitter % of one clip's ``(T, 68, 2)`` predictions against the moved ground truth."""
    iod = interocular(gt)
    e = pred - gt
    nme = np.linalg.norm(e, axis=-1).mean(-1) / iod
    d2 = e[2:] - 2 * e[1:-1] + e[:-2]
    jitter = np.linalg.norm(d2, axis=-1).mean(-1) / iod[2:]
    return 100 * float(nme.mean()), 100 * float(jitter.mean())


def matching(faces, gt: np.ndarray):
    """The face of ``faces`` (objects with ``landmarks_2d``) matching the ground truth ``(68, 2)``, or None."""
    from tf2dasl.detect.base import box_iou

    if not faces:
        return None
    box = lambda p: np.concatenate([p.min(0), p.max(0)])[None]  # noqa: E731
    ious = [box_iou(box(np.asarray(f.landmarks_2d)), box(gt))[0, 0] for f in faces]
    k = int(np.argmax(ious))
    return faces[k] if ious[k] >= MATCH_IOU else None


# ------------------------------------------------------------------------------------------------ runs
def track_clip(rec, path: Path, config):
    """The tracker's frames of one clip (images dropped) and the photo pipeline's per-frame faces."""
    from tf2dasl.video import FaceTracker, open_video

    tracker = FaceTracker(rec, config.tracking)
    frames, photo = [], []
    with open_video(path) as video:
        for f in video:
            tf = tracker.step(f.image, f.index, f.time)
            tf.image = None
            frames.append(tf)
            photo.append(rec(f.image))
    return frames, photo


def smooth(rec, frames, smoothing):
    """One smoother over the recorded tracker frames: the faces of each frame."""
    from tf2dasl.video.pipeline import smooth_frames

    return [[t.face for t in f.faces] for f in smooth_frames(rec, frames, smoothing)]


def clip_scores(per_frame_faces, gt) -> tuple[float, float] | None:
    preds = []
    for faces, g in zip(per_frame_faces, gt):
        m = matching(faces, g)
        if m is None:
            return None
        preds.append(np.asarray(m.landmarks_2d))
    return scores(np.asarray(preds), gt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--runtime", default="keras", choices=("keras", "savedmodel", "tflite", "onnx"))
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--shared", type=Path, default=shared_dir())
    ap.add_argument("--folder", default="afw", help="folder of SHARED/data/300w (afw: reported; helen_train: tuning)")
    ap.add_argument("--clips", type=int, default=60, help="photos (clips) drawn from the folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", action="store_true", help="scan the smoothing settings (tuning; use helen_train)")
    args = ap.parse_args(argv)

    from tf2dasl.api import make_reconstructor
    from tf2dasl.io.images import read_image
    from tf2dasl.io.pts import read_pts
    from tf2dasl.video import SmoothingConfig, VideoConfig

    rng = np.random.default_rng(args.seed)
    photos = sorted((args.shared / "data" / "300w" / args.folder).glob("*.jpg"))
    photos = [photos[i] for i in sorted(rng.choice(len(photos), min(args.clips, len(photos)), replace=False))]
    rec = make_reconstructor(args.model, runtime=args.runtime,
                             export_dir=args.export_dir if args.runtime != "keras" else None)
    config = VideoConfig()
    modes = {"off": SmoothingConfig(mode="off"),
             "causal (Kalman, default)": SmoothingConfig(mode="causal"),
             "causal (One-Euro)": SmoothingConfig(mode="causal", causal_filter="one_euro"),
             "offline (default)": SmoothingConfig(mode="offline")}
    if args.grid:
        for q in (0.01, 0.03, 0.1, 0.2, 0.3, 0.5):
            for qe in (0.03, 0.1, 0.3):
                modes[f"causal pose_noise={q} expression_noise={qe}"] = SmoothingConfig(
                    mode="causal", pose_noise=q, expression_noise=qe)
        for sigma in (0.75, 1.0, 1.5, 2.0, 3.0):
            modes[f"offline sigma={sigma}"] = SmoothingConfig(mode="offline", offline_sigma=sigma)
        for mc in (0.05, 0.1, 0.2, 0.3, 0.5):
            for beta in (0.5, 2.0, 5.0):
                modes[f"one_euro min_cutoff={mc} beta={beta}"] = SmoothingConfig(
                    mode="causal", causal_filter="one_euro", one_euro_min_cutoff=mc, one_euro_beta=beta)
    results = {name: [] for name in modes}
    results["photo pipeline per frame"] = []
    skipped, t0 = 0, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n, photo in enumerate(photos):
            clip = Path(tmp) / f"{photo.stem}.mp4"
            gt = make_clip(read_image(photo), read_pts(photo.with_suffix(".pts")), rng, clip)
            frames, photo_faces = track_clip(rec, clip, config)
            per_mode = {name: clip_scores(smooth(rec, frames, cfg), gt) for name, cfg in modes.items()}
            per_mode["photo pipeline per frame"] = clip_scores(photo_faces, gt)
            if any(v is None for v in per_mode.values()):
                skipped += 1
                continue
            for name, v in per_mode.items():
                results[name].append(v)
            print(f"\r{n + 1}/{len(photos)} clips ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    used = len(results["off"])
    print(f"{used} clips of {FRAMES} frames from 300-W {args.folder} ({skipped} left out: the face was not found "
          f"in every frame); model {rec.model.spec.name}, runtime {args.runtime}, seed {args.seed}")
    print(f"motion: rotation +-{MAX_ROTATION:g} deg, scale x{np.exp(-MAX_LOG_SCALE):.2f}-{np.exp(MAX_LOG_SCALE):.2f}, "
          f"shift +-{MAX_SHIFT:.0%} of the side, keyframes every {KEY_EVERY} frames; mp4v-encoded\n")
    ref_nme, ref_jit = np.mean(results["off"], axis=0)
    rows = []
    verdicts = []
    for name, vals in results.items():
        nme, jit = np.mean(vals, axis=0)
        rows.append([name, round(nme, 3), round(jit, 3), f"{100 * (jit / ref_jit - 1):+.1f} %",
                     f"{100 * (nme / ref_nme - 1):+.1f} %"])
        for mode, (cut, rise) in TARGETS.items():
            if name.startswith(mode) and "default" in name:
                ok = 100 * (1 - jit / ref_jit) >= cut and 100 * (nme / ref_nme - 1) <= rise
                verdicts.append(f"{mode}: jitter {100 * (jit / ref_jit - 1):+.1f} % (target <= -{cut:g} %), NME "
                                f"{100 * (nme / ref_nme - 1):+.1f} % (target <= +{rise:g} %): {'PASS' if ok else 'FAIL'}")
    print_table(["smoothing", "NME %", "jitter %", "jitter vs off", "NME vs off"], rows)
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
