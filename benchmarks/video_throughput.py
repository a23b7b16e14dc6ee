"""Video throughput: frames/s on a real clip, tracking vs detecting every frame, JSON lines only and with the
overlay video, side by side in one run.

    python benchmarks/video_throughput.py --model models/mb05 [--runtime keras tflite tflite:int8] [--repeats 3]

Clip: ``../shared/data/videos/hamilton_clip.mp4`` (275 frames, 640x360, H.264, shot cuts, 1-5 faces). Rows:

* **tracking** — :func:`tf2dasl.video.reconstruct_video` as ``tf2dasl reconstruct clip.mp4`` runs it (default
  config: re-detection every 10 frames and on loss, causal smoothing), decode to files;
* **detect every frame** — the photo pipeline on each frame (detector → box crop → regression → landmark crop
  → regression, :class:`tf2dasl.reconstruct.Reconstructor`), with the same JSON line per frame and the same
  overlay drawing and encoder: what a video costs without tracking.

Each with ``jsonl`` only and ``jsonl + overlay`` (``<stem>_overlay.mp4``: landmarks, pose axes, boxes, ids;
MPEG-4), per ``--runtime`` (``tflite``/``onnx``/``savedmodel`` need ``--export-dir``, made by ``tf2dasl
export``; ``KIND:VARIANT`` picks a variant, e.g. ``tflite:int8``). frames/s = frames / wall time of the whole
loop (decode, model, smoothing, JSON, overlay, files),
best of ``--repeats`` after a warm-up; the load average before the run is printed (the machine is shared), and
frames per CPU second (``time.process_time``, every thread of the process) beside it: on a loaded machine the
wall-clock rate falls with the share of the cores the process gets, the CPU rate much less.
Goal (on the 2-core machine): >= 100 frames/s JSON only, >= 30 frames/s with the overlay video.
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

TARGETS = {"jsonl": 100.0, "jsonl + overlay": 30.0}


def detect_every_frame(rec, clip: Path, out: Path, overlay: bool) -> int:
    """The photo pipeline on every frame, written like the video pipeline writes (JSON lines, overlay MP4)."""
    import cv2

    from tf2dasl.io.streams import JsonLines
    from tf2dasl.video import open_video
    from tf2dasl.video.tracker import TrackedFace, TrackedFrame
    from tf2dasl.video.writer import draw_frame, frame_record

    n = 0
    with open_video(clip) as video:
        lines = JsonLines(out / "per_frame.jsonl")
        writer = (cv2.VideoWriter(str(out / "per_frame_overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), video.fps,
                                  (video.width, video.height)) if overlay else None)
        for f in video:
            faces = [TrackedFace(i + 1, face, True) for i, face in enumerate(rec(f.image))]
            frame = TrackedFrame(f.index, f.time, f.image, faces, detected=True)
            lines.append(frame_record(frame))
            if writer is not None:
                writer.write(draw_frame(f.image, faces))
            n += 1
        lines.close()
        if writer is not None:
            writer.release()
    return n


def tracking(rec, clip: Path, out: Path, overlay: bool) -> int:
    from tf2dasl.video import reconstruct_video

    s = reconstruct_video(clip, rec, out, outputs=["overlay"] if overlay else [], force=True, progress=False)
    return s.frames


def best_rate(fn, repeats: int) -> tuple[float, float]:
    """Best frames per wall-clock second and per CPU second (all the process's threads) over ``repeats``."""
    wall, cpu = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.perf_counter(), time.process_time()
            frames = fn(Path(tmp))
            wall.append(frames / (time.perf_counter() - t))
            cpu.append(frames / (time.process_time() - c))
    return max(wall), max(cpu)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--runtime", nargs="+", default=["keras", "tflite"], metavar="KIND[:VARIANT]",
                    help="keras, savedmodel, tflite or onnx, with an optional variant (tflite:int8, onnx:int8)")
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--shared", type=Path, default=shared_dir())
    ap.add_argument("--clip", type=Path, default=None, help="default: SHARED/data/videos/hamilton_clip.mp4")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from tf2dasl.api import make_reconstructor

    clip = args.clip or args.shared / "data" / "videos" / "hamilton_clip.mp4"
    load = os.getloadavg()
    print(f"clip {clip.name}; {os.cpu_count()} CPUs, load average before the run {load[0]:.2f} / {load[1]:.2f} / "
          f"{load[2]:.2f} (1 / 5 / 15 min); best of {args.repeats}\n")
    rows, verdicts = [], []
    for runtime in args.runtime:  # KIND or KIND:VARIANT (tflite:int8)
        kind, _, variant = runtime.partition(":")
        rec = make_reconstructor(args.model, runtime=kind, export_dir=args.export_dir if kind != "keras" else None,
                                 variant=variant or None)
        with tempfile.TemporaryDirectory() as tmp:  # warm-up: traces, first detector and encoder calls
            tracking(rec, clip, Path(tmp), True)
        for label, overlay in (("jsonl", False), ("jsonl + overlay", True)):
            (r_track, c_track) = best_rate(lambda out: tracking(rec, clip, out, overlay), args.repeats)
            (r_every, c_every) = best_rate(lambda out: detect_every_frame(rec, clip, out, overlay), args.repeats)
            rows.append([runtime, label, round(r_track, 1), round(c_track, 1), round(r_every, 1), round(c_every, 1),
                         f"{r_track / r_every:.2f}x"])
            ok = r_track >= TARGETS[label]
            verdicts.append(f"{runtime}, {label}: tracking {r_track:.1f} frames/s (target >= {TARGETS[label]:g}): "
                            f"{'PASS' if ok else 'FAIL'}" + ("" if ok else f"; {c_track:.1f} frames per CPU second"))
    print_table(["runtime", "outputs", "tracking frames/s", "tracking frames/CPU-s", "detect every frame frames/s",
                 "detect every frame frames/CPU-s", "tracking speed-up (wall)"], rows)
    print("\n" + "\n".join(verdicts))
    print(f"load average after the run {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
