"""Temporal stability against known motion: 300-W photos moved along smooth random similarity trajectories into
60-frame MP4 clips, tracked, and scored per smoothing mode (NME and jitter against the moved ground truth).

    python benchmarks/video_stability.py --model models/mb05 [--folder afw] [--clips 60] [--motion fast]
    python benchmarks/video_stability.py --folder helen_train --motion fast --grid  # tune (faces held out of afw)
    python benchmarks/video_stability.py --real-clip ../shared/data/videos/hamilton_clip.mp4   # a real video

Clips (``make_clip``): each photo of ``../shared/data/300w/FOLDER`` (a seeded random subset of ``--clips``)
is warped by a similarity transform about its centre, per frame, into a canvas of its own size (border
replicated): rotation, log-scale and translation each follow a cubic spline through random keyframes every
``key_every`` frames (rotation within +-``max_rotation`` degrees, scale within +-``max_log_scale`` in log,
translation within +-``max_shift`` of the side: :class:`Motion`; ``--motion smooth`` keyframes every 15 frames,
``--motion fast`` every 8, each field overridable, e.g. ``--key-every 10``). The 60 frames are encoded with
OpenCV's MPEG-4 (``mp4v``) writer and decoded back (real compression) before anything else sees them. The 68
ground-truth points move with the same transforms. ``--cache DIR`` keeps the tracked clips (a pickle per folder,
seed, clip count and motion) so that reruns and scans skip the regressions.

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
Targets (vs ``off``): offline jitter <= x0.5 with NME <= x1.02; causal jitter <= x0.7 with NME <= x1.03, on
smooth and on fast clips. ``--grid`` scans the causal filters' settings (Kalman
with fixed gains and adaptive, One-Euro) and the offline sigma and prints each one's jitter and NME against
``off``: run it on ``helen_train`` (tuning) and keep ``afw`` (the reported clips) out of every choice.

``--real-clip VIDEO`` scores a real video instead, which has no ground truth: the mean second difference of each
track's landmarks over the face's size, per setting (:func:`real_clip`). It shows how much of the real noise a
setting removes, not how accurate it is. docs/video_smoothing.md has every figure and the commands behind them.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import REPO, print_table, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FRAMES = 60
FPS = 30.0


@dataclass(frozen=True)
class Motion:
    """A clip's trajectory recipe: keyframes every ``key_every`` frames, rotation within +-``max_rotation``
    degrees, log-scale within +-``max_log_scale``, translation within +-``max_shift`` of the side."""

    key_every: int = 15
    max_rotation: float = 20.0
    max_log_scale: float = 0.15
    max_shift: float = 0.10

    def describe(self) -> str:
        return (f"rotation +-{self.max_rotation:g} deg, scale x{np.exp(-self.max_log_scale):.2f}-"
                f"{np.exp(self.max_log_scale):.2f}, shift +-{self.max_shift:.0%} of the side, keyframes every "
                f"{self.key_every} frames")


#: ``smooth``: the clips of docs/results.md's stability table; ``fast``: keyframes every 8 frames (a new direction ~4
#: times a second at 30 fps) with the same ranges, the motion under which a lagging causal filter costs accuracy.
MOTIONS = {"smooth": Motion(), "fast": Motion(key_every=8)}
MATCH_IOU = 0.3
TARGETS = {"offline": (50.0, 2.0), "causal": (30.0, 3.0)}  # jitter cut %, NME rise % allowed


# ------------------------------------------------------------------------------------------------- clips
def trajectory(rng: np.random.Generator, frames: int = FRAMES, motion: Motion = Motion()) -> np.ndarray:
    """``(frames, 4)`` rotation (deg), log-scale, shift x, shift y (fractions of the side): cubic splines through
    random keyframes every ``motion.key_every`` frames."""
    from scipy.interpolate import CubicSpline

    keys = np.arange(0, frames + motion.key_every, motion.key_every)
    lim = np.array([motion.max_rotation, motion.max_log_scale, motion.max_shift, motion.max_shift])
    values = rng.uniform(-1, 1, (len(keys), 4)) * lim
    return np.clip(CubicSpline(keys, values, axis=0)(np.arange(frames)), -lim, lim)


def similarity(params: np.ndarray, w: int, h: int) -> np.ndarray:
    """The 2x3 matrix of one trajectory sample: rotate and scale about the centre, then shift."""
    angle, log_s, sx, sy = params
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(angle), float(np.exp(log_s)))
    m[:, 2] += (sx * w, sy * h)
    return m


def make_clip(image: np.ndarray, pts: np.ndarray, rng: np.random.Generator, path: Path, motion: Motion = Motion()):
    """Write the moved photo as an MP4 at ``path``; return the moved ground truth ``(FRAMES, 68, 2)``."""
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    gts = []
    for p in trajectory(rng, FRAMES, motion):
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


def grid_modes() -> dict:
    """The settings ``--grid`` scans: Kalman (fixed gains and adaptive), expression noise, One-Euro, offline sigma."""
    from tf2dasl.video import SmoothingConfig

    modes = {}
    for q in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0):
        for k in (0.0, 10.0, 20.0, 50.0, 100.0, 200.0):
            modes[f"causal pose_noise={q} pose_adaptation={k:g}"] = SmoothingConfig(
                mode="causal", pose_noise=q, pose_adaptation=k)
    for qe in (0.03, 0.3, 1.0):
        modes[f"causal expression_noise={qe}"] = SmoothingConfig(mode="causal", expression_noise=qe)
    for mc in (0.05, 0.1, 0.2, 0.3):
        for beta in (2.0, 5.0, 10.0, 20.0):
            for dc in (0.1, 1.0):
                modes[f"one_euro min_cutoff={mc} beta={beta} d_cutoff={dc}"] = SmoothingConfig(
                    mode="causal", causal_filter="one_euro", one_euro_min_cutoff=mc, one_euro_beta=beta,
                    one_euro_d_cutoff=dc)
    for sigma in (0.75, 1.0, 1.5, 2.0, 3.0):
        modes[f"offline sigma={sigma}"] = SmoothingConfig(mode="offline", offline_sigma=sigma)
    return modes


def tracked_clips(args, motion: Motion):
    """Per clip ``(name, tracker frames, photo-pipeline faces per frame, ground truth)``: tracked once, kept in
    ``args.cache`` (a pickle per folder, seed, clip count and motion) when given, so that scans of the smoothing
    settings redo no regression."""
    cache = None
    if args.cache:
        key = "_".join(f"{f.name}={getattr(motion, f.name):g}" for f in fields(motion))
        cache = Path(args.cache) / f"{args.folder}_seed{args.seed}_clips{args.clips}_{key}_{args.runtime}.pkl"
        if cache.exists():
            with open(cache, "rb") as f:
                return pickle.load(f)
    from tf2dasl.io.images import read_image
    from tf2dasl.io.pts import read_pts
    from tf2dasl.video import VideoConfig

    rng = np.random.default_rng(args.seed)
    photos = sorted((args.shared / "data" / "300w" / args.folder).glob("*.jpg"))
    photos = [photos[i] for i in sorted(rng.choice(len(photos), min(args.clips, len(photos)), replace=False))]
    rec = reconstructor(args)
    config = VideoConfig()
    clips, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n, photo in enumerate(photos):
            clip = Path(tmp) / f"{photo.stem}.mp4"
            gt = make_clip(read_image(photo), read_pts(photo.with_suffix(".pts")), rng, clip, motion)
            clips.append((photo.stem, *track_clip(rec, clip, config), gt))
            print(f"\r{n + 1}/{len(photos)} clips tracked ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as f:
            pickle.dump(clips, f)
    return clips


def reconstructor(args):
    from tf2dasl.api import make_reconstructor

    return make_reconstructor(args.model, runtime=args.runtime,
                              export_dir=args.export_dir if args.runtime != "keras" else None)


def track_steadiness(frames) -> float:
    """Mean size of the second difference of each track's 68 landmarks over consecutive frames, over the face's
    size (mean side of the landmark box), %: noise and true motion alike (no ground truth)."""
    tracks: dict[int, list] = {}
    for f in frames:
        for t in f.faces:
            tracks.setdefault(t.track_id, []).append((f.index, np.asarray(t.face.landmarks_2d)))
    vals = []
    for seq in tracks.values():
        for (i0, a), (_, b), (i2, c) in zip(seq, seq[1:], seq[2:]):
            if i2 - i0 == 2:
                vals.append(np.linalg.norm(c - 2 * b + a, axis=1).mean() / np.ptp(b, axis=0).mean())
    return 100 * float(np.mean(vals))


def real_clip(args, modes: dict) -> int:
    """``--real-clip``: the clip tracked once, each setting's track steadiness against ``off``'s. At 30 fps a head's
    true motion changes little from frame to frame, so what a setting removes here is mostly the regressor's
    noise: a filter that smooths less here than on the synthetic clips takes real noise for motion."""
    from tf2dasl.video import FaceTracker, VideoConfig, open_video
    from tf2dasl.video.pipeline import smooth_frames

    rec = reconstructor(args)
    tracker = FaceTracker(rec, VideoConfig().tracking)
    with open_video(args.real_clip) as video:
        frames = []
        for f in video:
            tf = tracker.step(f.image, f.index, f.time)
            tf.image = None
            frames.append(tf)
    steadiness = {name: track_steadiness(smooth_frames(rec, frames, cfg)) for name, cfg in modes.items()}
    print(f"{args.real_clip.name}: {len(frames)} frames, {len({t.track_id for f in frames for t in f.faces})} "
          f"tracks; model {rec.model.spec.name}, runtime {args.runtime}\n")
    print_table(["smoothing", "landmark 2nd difference, % of face size", "/ off"],
                [[name, round(v, 3), f"x{v / steadiness['off']:.3f}"] for name, v in steadiness.items()])
    if args.json:
        Path(args.json).write_text(json.dumps({"clip": str(args.real_clip), "modes": steadiness}, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--runtime", default="keras", choices=("keras", "savedmodel", "tflite", "onnx"))
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--shared", type=Path, default=shared_dir())
    ap.add_argument("--folder", default="afw", help="folder of SHARED/data/300w (afw: reported; helen_train: tuning)")
    ap.add_argument("--clips", type=int, default=60, help="photos (clips) drawn from the folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--motion", default="smooth", choices=sorted(MOTIONS), help="the clips' trajectory recipe")
    for f in fields(Motion):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), help=f"override the recipe's {f.name}")
    ap.add_argument("--cache", help="folder keeping the tracked clips (reruns and scans skip the regressions)")
    ap.add_argument("--grid", action="store_true", help="scan the smoothing settings (tuning; use helen_train)")
    ap.add_argument("--json", help="also write the table to this JSON file")
    ap.add_argument("--real-clip", type=Path, help="instead: how much each setting steadies the tracks of this real "
                                                   "video (no ground truth; e.g. SHARED/data/videos/hamilton_clip.mp4)")
    args = ap.parse_args(argv)

    from tf2dasl.video import SmoothingConfig

    motion = replace(MOTIONS[args.motion], **{f.name: getattr(args, f.name) for f in fields(Motion)
                                              if getattr(args, f.name) is not None})
    modes = {"off": SmoothingConfig(mode="off"),
             "causal (Kalman, default)": SmoothingConfig(mode="causal"),
             "causal (Kalman, fixed gains, pose_noise 0.2: the former default)": SmoothingConfig(
                 mode="causal", pose_noise=0.2, pose_adaptation=0.0),
             "causal (Kalman, fixed gains, pose_noise 0.5)": SmoothingConfig(mode="causal", pose_noise=0.5,
                                                                             pose_adaptation=0.0),
             "causal (One-Euro)": SmoothingConfig(mode="causal", causal_filter="one_euro"),
             "offline (default)": SmoothingConfig(mode="offline")}
    if args.grid:
        modes.update(grid_modes())
    if args.real_clip:
        return real_clip(args, modes)
    clips = tracked_clips(args, motion)
    rec = reconstructor(args)
    results = {name: [] for name in modes}
    results["photo pipeline per frame"] = []
    skipped = 0
    for _, frames, photo_faces, gt in clips:
        per_mode = {name: clip_scores(smooth(rec, frames, cfg), gt) for name, cfg in modes.items()}
        per_mode["photo pipeline per frame"] = clip_scores(photo_faces, gt)
        if any(v is None for v in per_mode.values()):
            skipped += 1
            continue
        for name, v in per_mode.items():
            results[name].append(v)
    used = len(results["off"])
    print(f"{used} clips of {FRAMES} frames from 300-W {args.folder} ({skipped} left out: the face was not found "
          f"in every frame); model {rec.model.spec.name}, runtime {args.runtime}, seed {args.seed}")
    print(f"motion ({args.motion}): {motion.describe()}; mp4v-encoded\n")
    ref_nme, ref_jit = np.mean(results["off"], axis=0)
    rows, verdicts, table = [], [], {}
    for name, vals in results.items():
        nme, jit = np.mean(vals, axis=0)
        table[name] = {"nme": float(nme), "jitter": float(jit), "nme_ratio": float(nme / ref_nme),
                       "jitter_ratio": float(jit / ref_jit)}
        rows.append([name, round(nme, 3), round(jit, 3), f"x{jit / ref_jit:.3f}", f"x{nme / ref_nme:.3f}"])
        for mode, (cut, rise) in TARGETS.items():
            if name == f"{mode} (Kalman, default)" or name == f"{mode} (default)":
                ok = 100 * (1 - jit / ref_jit) >= cut and 100 * (nme / ref_nme - 1) <= rise
                verdicts.append(f"{mode}: jitter x{jit / ref_jit:.3f} (target <= x{1 - cut / 100:g}), NME "
                                f"x{nme / ref_nme:.3f} (target <= x{1 + rise / 100:g}): {'PASS' if ok else 'FAIL'}")
    print_table(["smoothing", "NME %", "jitter %", "jitter / off", "NME / off"], rows)
    print("\n" + "\n".join(verdicts))
    if args.json:
        Path(args.json).write_text(json.dumps({"folder": args.folder, "clips": used, "skipped": skipped,
                                               "seed": args.seed, "motion": asdict(motion), "modes": table},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
