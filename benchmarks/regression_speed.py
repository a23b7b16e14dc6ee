"""Regression latency of the imported model (batch 1 and 64) and dense reconstruction time per face.

    python benchmarks/regression_speed.py [--shared ../shared] [--weights mb05_120x120]

Keras eager call vs a compiled ``tf.function`` (and with XLA), measured side by side in one run.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _common import imported_model, print_table, shared_dir, timeit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared")
    ap.add_argument("--weights", default="mb05_120x120")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    model = imported_model(shared_dir(args.shared), args.weights)
    reg = model.regressor
    graph = tf.function(lambda x: reg(x, training=False))
    xla = tf.function(lambda x: reg(x, training=False), jit_compile=True)
    rows = []
    for batch in (1, 64):
        x = tf.constant(np.random.default_rng(0).normal(0, 1, (batch, 120, 120, 3)).astype(np.float32))
        eager = timeit(lambda: reg(x, training=False).numpy(), args.repeat)
        compiled = timeit(lambda: graph(x).numpy(), args.repeat)
        jit = timeit(lambda: xla(x).numpy(), args.repeat)
        rows.append([batch, eager, compiled, jit, eager / batch, compiled / batch, jit / batch, eager / compiled])
    print(f"tf {tf.__version__}, {os.cpu_count()} CPU cores, {args.weights}")
    print_table(["batch", "Keras call ms", "tf.function ms", "tf.function+XLA ms", "Keras ms/face",
                 "tf.function ms/face", "XLA ms/face", "speed-up tf.function"], rows)

    from tf2dasl.inference.keras_runtime import KerasPredictor
    from tf2dasl.models.morphable import MorphableLayer

    params = KerasPredictor(model).predict(np.zeros((64, 120, 120, 3), np.uint8)).params
    layer = MorphableLayer(model.mm, dense=True)
    dense_tf = tf.function(lambda p: layer.vertices(p))
    p1, p64 = params[:1], params
    decode = model.decoder
    rows = [["numpy", timeit(lambda: decode.vertices(p1), 20), timeit(lambda: decode.vertices(p64), 5) / 64],
            ["TF (tf.function)", timeit(lambda: dense_tf(tf.constant(p1)).numpy(), 20),
             timeit(lambda: dense_tf(tf.constant(p64)).numpy(), 5) / 64]]
    print("\ndense reconstruction (38,365 vertices, crop pixels)")
    print_table(["implementation", "1 face ms", "ms/face at batch 64"], rows)


if __name__ == "__main__":
    main()
