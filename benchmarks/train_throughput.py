"""Training throughput (faces/s) of DASLModel.train_step for the imported mb05 at batch 64, side by side:
supervised only (teacher WPDC + landmarks, from cached teacher labels), + the 2D self-prediction pass, and all four
self-supervision terms.

    python benchmarks/train_throughput.py [--shared ../shared] [--batch 64] [--steps 5]

The input pipeline alone is measured by benchmarks/input_pipeline.py (it must be much faster than this).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _common import imported_model, print_table, shared_dir  # noqa: E402
from tf2dasl.geometry.landmark_map import landmark_map, map_points  # noqa: E402
from tf2dasl.models.critic import SelfCritic  # noqa: E402
from tf2dasl.models.dasl import DASLModel, LossWeights, expand_to_four_channels  # noqa: E402
from tf2dasl.inference.keras_runtime import KerasPredictor  # noqa: E402
from tf2dasl.models.task import FaceTask  # noqa: E402

VARIANTS = {
    "supervised only (teacher WPDC + 2D landmarks)": LossWeights(self_2d=0, self_3d=0, cycle=0, adversarial=0),
    "+ 2D self-prediction": LossWeights(self_3d=0, cycle=0, adversarial=0),
    "+ 3D consistency, cycle, self-critic (full 2DASL)": LossWeights(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    base = imported_model(shared_dir(args.shared))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (args.batch, 120, 120, 3)).astype(np.uint8)
    params = KerasPredictor(base).predict(images).params
    lm = base.decoder.landmarks(params)[..., :2].astype(np.float32)
    batch = {"wild": {"image": tf.constant(images), "landmarks": tf.constant(lm), "map": tf.constant(landmark_map(lm)),
                      "map_points": tf.constant(map_points(lm)), "teacher": tf.constant(params)}}
    rows = []
    for name, weights in VARIANTS.items():
        task = FaceTask(base.spec.replace(channels=4), base.mm, regressor=expand_to_four_channels(base.regressor))
        model = DASLModel(task, SelfCritic(), weights)
        model.compile(keras.optimizers.SGD(1e-5, momentum=0.9), keras.optimizers.Adam(1e-5))
        model.build()
        model.build_optimizers()
        step = tf.function(model.train_step)
        step(batch)  # trace
        t = time.perf_counter()
        for _ in range(args.steps):
            logs = step(batch)
        float(logs["loss"])
        dt = (time.perf_counter() - t) / args.steps
        rows.append([name, dt * 1000, args.batch / dt])
    print(f"tf {tf.__version__}, {os.cpu_count()} CPU cores, mb05 (4-channel), batch {args.batch}, BN frozen")
    print_table(["train_step", "ms/step", "faces/s"], rows)


if __name__ == "__main__":
    main()
