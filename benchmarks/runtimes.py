"""Regressor speed across runtimes, side by side: batch-1 latency (1 and 2 threads) and batch-32 throughput.

Usage (from the repo root)::

    python benchmarks/runtimes.py --model models/mb05 --export-dir export/mb05 [--threads 1,2] [--iters 300]
                                  [--only onnx,tflite-float32] [--json OUT]

``--export-dir`` is made with ``tf2dasl export MODEL --out EXPORT_DIR`` first when it holds no export.json.
Each thread count runs in its own subprocess (TensorFlow's thread pools are fixed at start-up); inside it
every runtime is loaded and warmed up, then all are timed in 10 interleaved rounds, so that the machine's
load (shared machines move) hits every row alike. The table is markdown. Rows:

* ``keras``: the regressor as a compiled ``tf.function`` (normalised float32 crops → 62 whitened params);
  ``keras-xla`` the same with ``jit_compile=True``;
* ``savedmodel``: the export's ``serving_default`` (uint8 crops; normalisation, parameters, landmarks, pose);
* ``tflite-float32/float16/int8``: LiteRT's interpreter with XNNPACK (its default CPU delegate), batch 1 as
  exported, batch 32 through ``resize_tensor_input``; normalised crops → params + landmarks;
* ``onnx``: ONNX Runtime, CPU provider, ``ORT_ENABLE_ALL``, the export's graph in its layout (NCHW for the
  direct graph; ``benchmarks/onnx_ceiling.py`` compares it with 3DDFA_V2's graph and tf2onnx's conversion);
* ``predict_image``: the SavedModel's ``predict_image`` on a real JPEG (decode, crop, resize in the graph),
  compared with ``savedmodel`` on ready crops: the overhead of serving images instead of crops.

Latency is the median of ``--iters`` batch-1 calls (p10 and min in the JSON), throughput the median of 10
batch calls; the machine's load average is printed before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, os.path.dirname(__file__))

from _common import cpu_description, cpu_name  # noqa: E402

ROWS = ("keras", "keras-xla", "savedmodel", "tflite-float32", "tflite-float16", "tflite-int8", "onnx", "predict_image")
DESCRIPTION = {
    "keras": "Keras regressor, tf.function",
    "keras-xla": "Keras regressor, tf.function(jit_compile=True)",
    "savedmodel": "SavedModel serving_default (uint8 in, all heads)",
    "tflite-float32": "TFLite float32 + XNNPACK",
    "tflite-float16": "TFLite float16 weights + XNNPACK",
    "tflite-int8": "TFLite int8 dynamic-range + XNNPACK",
    "onnx": "ONNX Runtime (the exported graph)",
    "predict_image": "SavedModel predict_image (JPEG bytes + roi in)",
}


# ============================================================================ worker (one subprocess per thread count)
def make_runners(row: str, threads: int, args, meta: dict, crops: np.ndarray, x: np.ndarray):
    """``(run_batch1, run_batchN)`` callables for one row."""
    export_dir = Path(args.export_dir)
    s = meta["spec"]["input_size"]
    x1 = np.ascontiguousarray(x[:1])
    if row in ("keras", "keras-xla", "savedmodel", "predict_image"):
        import tensorflow as tf
    if row in ("keras", "keras-xla"):
        from tf2dasl.api import load_model

        model = load_model(args.model)
        fn = tf.function(lambda t: model.regressor(t, training=False), jit_compile=(row == "keras-xla"),
                         input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32)])
        t1, tb = tf.constant(x1), tf.constant(x)
        return (lambda: fn(t1).numpy()), (lambda: fn(tb).numpy())
    if row in ("savedmodel", "predict_image"):
        from tf2dasl.inference.savedmodel_runtime import SavedModelPredictor

        rt = SavedModelPredictor(export_dir)
        if row == "savedmodel":
            c1, cb = tf.constant(crops[:1]), tf.constant(crops)
            sd = rt.signature("serving_default")
            return (lambda: sd(crops=c1)["params"].numpy()), (lambda: sd(crops=cb)["params"].numpy())
        jpg, roi = _photo(args)
        fn = rt.loaded.signatures["predict_image"]
        i1, r1 = tf.constant([jpg]), tf.constant(roi[None])
        ib, rb = tf.constant([jpg] * len(x)), tf.constant(np.repeat(roi[None], len(x), 0))
        return (lambda: fn(images=i1, roi_boxes=r1)["params"].numpy()), \
            (lambda: fn(images=ib, roi_boxes=rb)["params"].numpy())
    if row.startswith("tflite-"):
        from ai_edge_litert.interpreter import Interpreter

        path = export_dir / meta["artifacts"]["tflite"]["variants"][row.split("-", 1)[1]]["file"]
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        sig = it._get_full_signature_list()["serving_default"]
        i_in, i_out = sig["inputs"]["crops"], sig["outputs"]["landmarks"]
        itb = Interpreter(model_path=str(path), num_threads=threads)
        itb.resize_tensor_input(i_in, list(x.shape))
        itb.allocate_tensors()

        def run(interp, data):
            interp.set_tensor(i_in, data)
            interp.invoke()
            return interp.get_tensor(i_out)

        return (lambda: run(it, x1)), (lambda: run(itb, x))
    if row == "onnx":
        import onnxruntime as ort

        art = meta["artifacts"]["onnx"]
        if art.get("layout", "NHWC") == "NCHW":
            x1, x = np.ascontiguousarray(x1.transpose(0, 3, 1, 2)), np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(str(export_dir / art["file"]), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return (lambda: sess.run(["landmarks"], {name: x1})), (lambda: sess.run(["landmarks"], {name: x}))
    raise SystemExit(f"unknown row {row}")


def worker(rows: list[str], threads: int, args) -> list[dict]:
    """All rows in one process, measured in interleaved rounds so that a change in the machine's load
    hits every row alike (the comparison is side by side, not one row after the other)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if any(r in ("keras", "keras-xla", "savedmodel", "predict_image") for r in rows):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    meta = json.loads((Path(args.export_dir) / "export.json").read_text())
    s = meta["spec"]["input_size"]
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (args.batch, s, s, 3), dtype=np.uint8)
    x = ((crops.astype(np.float32) - meta["normalization"]["mean"]) * meta["normalization"]["scale"]).astype(np.float32)
    runners = {r: make_runners(r, threads, args, meta, crops, x) for r in rows}
    for one, big in runners.values():  # warm-up (XLA compiles, kernels are packed, pools spin up)
        for _ in range(20):
            one()
        for _ in range(2):
            big()
    rounds = 10
    per_round = max(1, args.iters // rounds)
    t1 = {r: [] for r in rows}
    tn = {r: [] for r in rows}
    for _ in range(rounds):
        for r, (one, big) in runners.items():
            for _ in range(3):
                one()
            for _ in range(per_round):
                t = time.perf_counter()
                one()
                t1[r].append(time.perf_counter() - t)
            t = time.perf_counter()
            big()
            tn[r].append(time.perf_counter() - t)

    def stats(ts):
        ts = np.asarray(ts) * 1e3
        return {"median_ms": float(np.median(ts)), "p10_ms": float(np.percentile(ts, 10)), "min_ms": float(ts.min()),
                "n": int(len(ts))}

    return [{"row": r, "threads": threads, "batch1": stats(t1[r]), "batchN": stats(tn[r]), "batch": args.batch}
            for r in rows]


def _photo(args):
    """A real JPEG and a face roi in it (AFLW2000 dev image + its protocol roi box, or a grey image)."""
    shared = Path(args.shared)
    d = shared / "data" / "aflw2000_3d_dev"
    try:
        names = (d / "AFLW2000-3D_crop.list").read_text().split()
        roi = np.load(d / "AFLW2000-3D_crop.roi_box.npy")[0].astype(np.float32)
        return (d / "AFLW2000" / names[0]).read_bytes(), roi
    except OSError:
        import cv2

        ok, buf = cv2.imencode(".jpg", np.full((450, 450, 3), 128, np.uint8))
        return buf.tobytes(), np.array([100, 100, 350, 350], np.float32)


# ============================================================================ driver
def run_worker(rows: list[str], threads: int, args) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", ",".join(rows), "--threads", str(threads), "--model", args.model,
           "--export-dir", args.export_dir, "--iters", str(args.iters), "--batch", str(args.batch),
           "--shared", args.shared]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=str(threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"  {threads} thread(s): worker failed\n{r.stderr[-3000:]}", file=sys.stderr)
        return []
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory (Keras rows)")
    p.add_argument("--export-dir", default=str(REPO / "export" / "mb05"), help="export of that model")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts for batch-1 latency")
    p.add_argument("--iters", type=int, default=300, help="timed batch-1 calls per row")
    p.add_argument("--batch", type=int, default=32, help="batch size for throughput")
    p.add_argument("--only", help="comma-separated subset of rows: " + ",".join(ROWS))
    p.add_argument("--shared", default=str(REPO.parent / "shared"), help="shared/ (a real JPEG for predict_image)")
    p.add_argument("--json", help="write all measurements here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker.split(","), threads[0], args)))
        return 0

    if not (Path(args.export_dir) / "export.json").is_file():
        print(f"exporting {args.model} -> {args.export_dir}")
        subprocess.run([sys.executable, "-m", "tf2dasl.cli", "export", args.model, "--out", args.export_dir], check=True)
    rows = [r.strip() for r in args.only.split(",")] if args.only else list(ROWS)
    bad = [r for r in rows if r not in ROWS]
    if bad:
        p.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
    tmax = max(threads)
    load0 = os.getloadavg()
    print(f"CPU: {cpu_description()}; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results = {}
    for t in threads:
        for res in run_worker(rows, t, args):
            row = res["row"]
            results[(row, t)] = res
            print(f"  {row:16s} x{t}: batch-1 {res['batch1']['median_ms']:.3f} ms (p10 {res['batch1']['p10_ms']:.3f}), "
                  f"batch-{args.batch} {res['batchN']['median_ms'] / args.batch:.3f} ms/face", flush=True)
    load1 = os.getloadavg()
    head = ["runtime", "what runs"] + [f"batch 1, {t} thread{'s' if t > 1 else ''} (ms)" for t in threads] + \
           [f"batch 1, {min(threads)} thread{'s' if min(threads) > 1 else ''}, p10 (ms)",
            f"batch {args.batch}, {tmax} threads (ms/face)", "faces/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row, DESCRIPTION[row]]
        for t in threads:
            r = results.get((row, t))
            cells.append(f"{r['batch1']['median_ms']:.3f}" if r else "—")
        r0 = results.get((row, min(threads)))
        cells.append(f"{r0['batch1']['p10_ms']:.3f}" if r0 else "—")
        r = results.get((row, tmax))
        cells += [f"{r['batchN']['median_ms'] / args.batch:.3f}" if r else "—",
                  f"{args.batch / r['batchN']['median_ms'] * 1e3:.0f}" if r else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    print()
    print("\n".join(lines))
    fast = [(r["batch1"]["median_ms"], k) for k, r in results.items() if k[0] not in ("predict_image",)]
    if fast:
        best, (row, t) = min(fast)
        print(f"\nfastest batch-1: {row} with {t} thread(s), {best:.3f} ms per face (median)")
    sm, pi = results.get(("savedmodel", tmax)), results.get(("predict_image", tmax))
    if sm and pi:
        print(f"predict_image overhead over ready crops (SavedModel, {tmax} threads): batch 1 "
              f"{pi['batch1']['median_ms'] - sm['batch1']['median_ms']:+.3f} ms, batch {args.batch} "
              f"{(pi['batchN']['median_ms'] - sm['batchN']['median_ms']) / args.batch:+.3f} ms/face")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} (1 min)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "load_before": load0,
                                               "load_after": load1,
                                               "results": [v for v in results.values()]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
