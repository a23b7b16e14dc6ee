"""Throughput of the in-the-wild input pipeline (tf2dasl.data.wild_dataset): faces per second.

Usage: python benchmarks/input_pipeline.py [--shared DIR] [--batch 64] [--steps 40] [--warmup 5]
       [--cache memory|none] [--no-augment]
       python benchmarks/input_pipeline.py --config configs/dasl_mb05_aflw.yaml [--steps 40]

``--config``: the training pipeline of a config instead (all its in-the-wild sources mixed per batch, with teacher
labels transformed per crop; the labels are stand-ins here, the maths is the same).

Data (read from ``--shared``, never copied): the 1,207 300-W faces of ``data/300w/afw`` and
``data/300w/helen_train``. Reports the one-time load (decode + cache) and, after ``--warmup`` batches,
faces/s over ``--steps`` batches of the infinite, shuffled, augmented stream (wall clock and per CPU
second: the CPU figure is less sensitive to other processes sharing the cores). The training step of
the mb05 model at batch 64 on a small CPU runs roughly 100-300 faces/s: the pipeline should be well above.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")),
                    help="the shared/ folder (data/300w)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40, help="timed batches")
    ap.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    ap.add_argument("--cache", choices=("memory", "none"), default="memory")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--config", help="a training config: time its mixed in-the-wild pipeline (batch from the config)")
    args = ap.parse_args(argv)

    import tensorflow as tf  # noqa: F401  (import time not counted below)

    if args.config:
        return config_pipeline(args)

    from tf2dasl.data.augment import AugmentConfig
    from tf2dasl.data.loading import load_wild_faces
    from tf2dasl.data.pipeline import wild_dataset
    from tf2dasl.data.sources import list_pts_faces

    folders = [args.shared / "data" / "300w" / n for n in ("afw", "helen_train")]
    samples = list_pts_faces(folders)
    t0, c0 = time.perf_counter(), time.process_time()
    faces = load_wild_faces(samples, cache=args.cache)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"faces: {len(faces)} of {len(samples)} ({len(faces.stats.skipped)} skipped), cache={faces.mode}, "
          f"load {load_s:.1f} s wall / {load_cpu:.1f} s CPU")

    ds = wild_dataset(faces, AugmentConfig(), args.batch, seed=0, augment=not args.no_augment)
    _, wall, cpu = _time_batches(iter(ds), args.warmup, args.steps)
    n = args.steps * args.batch
    print(f"wild_dataset batch {args.batch}, augment={'off' if args.no_augment else 'on'}: "
          f"{n / wall:.0f} faces/s wall ({wall / args.steps * 1e3:.1f} ms/batch), "
          f"{n / cpu:.0f} faces per CPU-second, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f})")
    return 0


def _time_batches(it, warmup: int, steps: int):
    """``(last batch, wall s, CPU s)`` of ``steps`` batches of ``it`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        next(it)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        batch = next(it)
    batch["image"].numpy()
    return batch, time.perf_counter() - t0, time.process_time() - c0


def config_pipeline(args) -> int:
    import numpy as np

    from tf2dasl.io.yaml_config import load_config
    from tf2dasl.data.datasets import load_wild_data
    from tf2dasl.data.pipeline import wild_sources_dataset
    from tf2dasl.geometry.conventions import CROP_OFFSET_V2
    from tf2dasl.training.train_config import TrainConfig, expand_data_paths

    cfg = load_config(args.config, TrainConfig)
    expand_data_paths(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    wild = load_wild_data(cfg.data.wild, log=lambda *a: None)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    for src in wild.sources:
        src.faces.teacher = np.zeros((len(src.faces), 2, 62), np.float32)
    print(f"sources: {', '.join(f'{s.landmark_set} ({len(s.faces)} faces, {s.count}/batch)' for s in wild.sources)}; "
          f"load {load_s:.1f} s wall / {load_cpu:.1f} s CPU")
    it = iter(wild_sources_dataset(wild.sources, wild.layout, seed=0, convention=CROP_OFFSET_V2))
    batch, wall, cpu = _time_batches(it, args.warmup, args.steps)
    b = int(batch["image"].shape[0])
    n = args.steps * b
    print(f"wild_sources_dataset batch {b} (teacher labels on): {n / wall:.0f} faces/s wall "
          f"({wall / args.steps * 1e3:.1f} ms/batch), {n / cpu:.0f} faces per CPU-second, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
