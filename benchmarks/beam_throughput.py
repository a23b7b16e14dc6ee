"""photos/s of `tf2dasl reconstruct-beam` (DirectRunner, multi-process) and `tf2dasl reconstruct`, side by side.

    python benchmarks/beam_throughput.py --model models/mb05 --export-dir export/mb05 [--photos 2000] [--workers 2]

The photos are made from ../shared's 300-W faces (afw + helen_train, 1,207 crops of about 384x384 with one face
each): crop ``i % 1207`` scaled to 200-330 px and pasted at a random position on a 640x480 canvas of the crop's mean
colour and smooth noise, JPEG quality 90 — ``--photos`` distinct photos in a temp folder (some 300-W crops show
part of a second face: 2,000 photos hold 2,174 detected faces).

Each command runs as a fresh process over the same folder, one after the other, timed by wall clock from start
to exit (so TensorFlow's import, model loading, Beam's pipeline start-up and the workers' start are in the time):

  reconstruct (keras)         `tf2dasl reconstruct DIR --model M --out OUT`: one process, JSON per photo
  reconstruct (savedmodel)    the same with `--runtime savedmodel --export-dir E`: the regressor Beam runs
  reconstruct-beam N workers  `tf2dasl reconstruct-beam 'DIR/*.jpg' ... --direct_num_workers=N
                              --direct_running_mode=multi_processing`: N worker processes
  reconstruct-beam in-process the same with --direct_num_workers=1 --direct_running_mode=in_memory

``--runs`` picks them by name (keras, savedmodel, beam, in-process); a name + ``-1pass`` adds ``--no-refine`` (one
regression per face: ``reconstruct``'s second pass, the pipeline's second RunInference stage, left out).

The photos and faces each command wrote are counted from its outputs (they must agree). Wall time and CPU time
(user + system of the command and of the processes it waited for, Beam's workers included) are both reported: on
a shared machine wall time moves with the others' load, CPU time much less. ``--repeat N`` runs the list N times
round-robin and reports medians; the load average is printed before and after.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_description, shared_dir

REPO = Path(__file__).resolve().parents[1]
#: the photos' canvas (width, height), the range of face-crop sides pasted on it, and the JPEG quality
CANVAS, FACE_SIDES, JPEG_QUALITY = (640, 480), (200, 330), 90
#: the background: the face's mean colour plus smooth noise (this many grey levels, cells of this many pixels)
NOISE_LEVEL, NOISE_CELL = 25.0, 16
#: the 300-W folders the faces come from
FACE_FOLDERS = ("data/300w/afw", "data/300w/helen_train")
#: the runs by name (module docstring), the Beam ones, and the suffix of a run with --no-refine
DEFAULT_RUNS, BEAM_RUNS, ONE_PASS = ("keras", "savedmodel", "beam", "in-process"), ("beam", "in-process"), "-1pass"


def make_photos(shared: Path, out: Path, n: int) -> list[Path]:
    """``n`` one-face JPEG photos in ``out`` (module docstring)."""
    import cv2
    import numpy as np

    faces = sorted(p for folder in FACE_FOLDERS for p in (shared / folder).glob("*.jpg"))
    if not faces:
        sys.exit(f"no 300-W faces under {shared}/data/300w (set TF2DASL_SHARED)")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = CANVAS
    paths = []
    for i in range(n):
        face = cv2.imread(str(faces[i % len(faces)]), cv2.IMREAD_COLOR)
        noise = rng.normal(0, NOISE_LEVEL, (h // NOISE_CELL, w // NOISE_CELL, 3)).astype(np.float32)
        canvas = np.clip(face.mean(axis=(0, 1)) + cv2.resize(noise, CANVAS), 0, 255).astype(np.uint8)
        side = int(rng.integers(*FACE_SIDES))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        path = out / f"photo_{i:05d}.jpg"
        cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        paths.append(path)
    return paths


def timed(argv: list[str], log: Path) -> tuple[float, float]:
    """Run ``python -m tf2dasl.cli argv`` from the repository (output in ``log``): its wall time and the CPU time
    (user + system) of it and every process it waited for (Beam's workers), in seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "tf2dasl.cli", *argv], cwd=REPO, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc not in (0, 1):
        sys.exit(f"{' '.join(argv)} exited {rc}; see {log}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def counted(key: str, out: Path) -> tuple[int, int]:
    """Photos and faces a run wrote: ``reconstruct``'s JSON files or ``reconstruct-beam``'s JSON lines."""
    if key.startswith(BEAM_RUNS):
        lines = [line for f in glob.glob(f"{out}/photos-*-of-*.jsonl") for line in open(f)]
    else:
        lines = [p.read_text() for p in out.glob("photo_*.json")]
    records = [json.loads(line) for line in lines]
    return len(records), sum(len(r["faces"]) for r in records)


def command(key: str, photos: Path, out: Path, model: str, export: str, workers: int) -> tuple[str, list[str]]:
    """A run's label and ``tf2dasl`` arguments; a key ending in ``-1pass`` adds ``--no-refine``."""
    base = key.removesuffix(ONE_PASS)
    if base == "keras":
        label, argv = "reconstruct (keras)", ["reconstruct", str(photos), "--model", model, "--out", str(out)]
    elif base == "savedmodel":
        label, argv = "reconstruct (savedmodel)", ["reconstruct", str(photos), "--model", model, "--runtime",
                                                   "savedmodel", "--export-dir", export, "--out", str(out)]
    else:
        mode = ([f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"] if base == "beam" else
                ["--direct_num_workers=1", "--direct_running_mode=in_memory"])
        label = f"reconstruct-beam {workers} workers" if base == "beam" else "reconstruct-beam in-process"
        argv = ["reconstruct-beam", str(photos / "*.jpg"), "--model", model, "--export-dir", export,
                "--out", f"{out}/", *mode]
    if key.endswith(ONE_PASS):
        label, argv = f"{label}, --no-refine", [*argv, "--no-refine"]
    return label, argv


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"))
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    ap.add_argument("--shared", default=None, help="the shared/ folder (default: $TF2DASL_SHARED or ../shared)")
    ap.add_argument("--runs", nargs="*", default=list(DEFAULT_RUNS),
                    help=f"which runs, in order (default: {' '.join(DEFAULT_RUNS)}); a name + '{ONE_PASS}' adds "
                         "--no-refine (one regression per face: what the second pass and stage cost)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the runs (medians reported)")
    args = ap.parse_args(argv)
    model, export = str(Path(args.model).resolve()), str(Path(args.export_dir).resolve())
    work = Path(tempfile.mkdtemp(prefix="tf2dasl-beam-bench-"))
    photos = work / "photos"
    t = time.perf_counter()
    make_photos(shared_dir(args.shared), photos, args.photos)
    print(f"{args.photos} photos of {CANVAS[0]}x{CANVAS[1]} in {photos} ({time.perf_counter() - t:.0f} s to make)")
    print(f"cpu: {cpu_description()}; load average before: {os.getloadavg()}")
    results: dict[str, list] = {key: [] for key in args.runs}
    for round_ in range(args.repeat):  # round-robin: every run sees the machine's load of the same minutes
        for key in args.runs:
            label, cli = command(key, photos, work / f"{key}_{round_}", model, export, args.workers)
            seconds, cpu = timed(cli, work / f"{key}_{round_}.log")
            n, faces = counted(key, work / f"{key}_{round_}")
            results[key].append((n, faces, seconds, cpu))
            print(f"  {label:40s} {n} photos, {faces} faces, {seconds:7.1f} s wall, {cpu:7.1f} s CPU, "
                  f"{n / seconds:6.1f} photos/s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"load average after: {os.getloadavg()}")
    rows = []
    for key, runs in results.items():
        n, faces = runs[0][:2]
        assert all(r[:2] == (n, faces) for r in runs), f"{key}: runs wrote different outputs {runs}"
        wall, cpu = statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs)
        rows.append((command(key, photos, work, model, export, args.workers)[0], n, faces, wall, cpu))
    base = rows[0][1] / rows[0][3]
    print(f"\n| command | photos | faces | wall s | photos/s | vs {rows[0][0]} | CPU ms/photo |\n"
          "|---|---|---|---|---|---|---|")
    for label, n, faces, wall, cpu in rows:
        print(f"| {label} | {n} | {faces} | {wall:.1f} | {n / wall:.1f} | {(n / wall) / base:.2f}x | "
              f"{1000 * cpu / n:.1f} |")
    print(f"(medians of {args.repeat} rounds)")
    print(f"\noutputs kept in {work}")


if __name__ == "__main__":
    main()
