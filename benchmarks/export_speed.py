"""Every export of a model next to 3DDFA_V2's own fp32 ONNX graph, side by side in one run: batch 1 and 8, 1 and 2
threads, and each one's ratio to 3DDFA_V2's graph.

    python benchmarks/export_speed.py [--model models/mb05] [--export-dir export/mb05] [--threads 1,2]
                                      [--batches 1,8] [--rounds 20] [--calls 100] [--json OUT]

The reference is the graph 3DDFA_V2 ships (its ``convert_to_onnx.py``: the bare regressor, NCHW, BatchNorm
folded, 62 whitened parameters out), built here from the model directory's weights
(``latency_floor.direct_graph``, with a free batch dimension for the batch-8 rows). Against it, every artifact of
the export that runs on a CPU: ``NAME.onnx`` and ``NAME_int8.onnx`` under ONNX Runtime (CPU provider,
``ORT_ENABLE_ALL``, sequential, ``intra_op_num_threads`` = the thread count), ``NAME_{float32,float16,int8}.tflite``
under LiteRT with XNNPACK (``num_threads`` = the thread count; batch 8 through ``resize_tensor_input``). Each gets
its input as an app would hand it over: normalised float32 crops (host normalisation not timed) for the float
artifacts, raw uint8 crops for the int8 ones (which need none).

For each thread count and batch size, the rows take turns call by call over ``--rounds`` rounds of ``--calls``
calls (who goes first rotates), so a change in the machine's load hits every row alike; the ratio is the median
over rounds of the row's per-round median over the reference's, with its range. The CPU, its SIMD flags and the
load average before and after are printed: the machine is shared, compare within one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import REPO, cpu_description, interleaved_times, print_table  # noqa: E402

sys.path.insert(0, str(REPO))

REFERENCE = "3DDFA_V2 fp32 ONNX graph (reference)"
#: the goal (docs/deployment.md): the fastest int8 export at batch 1, 1 thread, at most this fraction of the reference
TARGET_RATIO = 0.6
WARMUP_CALLS = 50


def onnx_runner(proto_or_path, threads: int, x: np.ndarray):
    """One ONNX Runtime call on ``x`` (the graph's first input)."""
    from latency_floor import session

    s = session(proto_or_path, threads)
    feed = {s.get_inputs()[0].name: x}
    return lambda: s.run(None, feed)


def tflite_runner(path: Path, threads: int, x: np.ndarray):
    """One LiteRT (XNNPACK) invoke on ``x``, the interpreter resized to its batch."""
    from ai_edge_litert.interpreter import Interpreter

    from tf2dasl.quiet import native_stderr_hidden

    with native_stderr_hidden():  # LiteRT announces its XNNPACK delegate
        it = Interpreter(model_path=str(path), num_threads=threads)
        sig = it._get_full_signature_list()["serving_default"]  # noqa: SLF001 - the signature's tensor indices
        i_in, outs = sig["inputs"]["crops"], list(sig["outputs"].values())
        it.resize_tensor_input(i_in, list(x.shape))
        it.allocate_tensors()

    def run():
        it.set_tensor(i_in, x)
        it.invoke()
        return [it.get_tensor(o) for o in outs]
    return run


def artifacts(meta: dict, export_dir: Path) -> dict[str, tuple[str, Path, bool]]:
    """``{row: (runtime, file, takes uint8)}`` for every CPU artifact of the export."""
    from tf2dasl.inference.export_dir import INT8, ONNX_VARIANTS, RuntimeLoadError, onnx_artifact

    rows = {}
    for variant in ONNX_VARIANTS:
        try:
            entry = onnx_artifact(meta, export_dir, variant)
        except RuntimeLoadError:  # a variant the export left out
            continue
        rows[f"onnx {variant}"] = ("onnx", export_dir / entry["file"], variant == INT8)
    for variant, entry in meta["artifacts"].get("tflite", {}).get("variants", {}).items():
        raw = entry.get("input", {}).get("dtype") == "uint8"
        rows[f"tflite {variant}"] = ("tflite", export_dir / entry["file"], raw)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory (the reference's weights)")
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"), help="its export (tf2dasl export)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=100, help="timed calls per row per round")
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args(argv)

    from latency_floor import direct_graph

    from tf2dasl.api import load_model
    from tf2dasl.inference import read_export

    model = load_model(args.model)
    meta = read_export(args.export_dir)
    export_dir = Path(args.export_dir)
    size = int(meta["spec"]["input_size"])
    norm = meta["normalization"]
    rows = artifacts(meta, export_dir)
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    load0 = os.getloadavg()
    print(f"CPU: {cpu_description()}; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} before")
    results = []
    for b in batches:
        crops = np.random.default_rng(0).integers(0, 256, (b, size, size, 3), np.uint8)
        x = ((crops.astype(np.float32) - norm["mean"]) * norm["scale"]).astype(np.float32)
        nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
        ref = direct_graph(model, batch=b)
        for t in threads:
            runners = {REFERENCE: onnx_runner(ref, t, nchw(x))}
            for name, (kind, path, raw) in rows.items():
                data = crops if raw else x
                runners[name] = onnx_runner(path, t, nchw(data)) if kind == "onnx" else tflite_runner(path, t, data)
            every, per_round = interleaved_times(runners, args.rounds, args.calls, WARMUP_CALLS)
            base = np.asarray(per_round[REFERENCE])
            for name in runners:
                r = np.asarray(per_round[name]) / base
                results.append({"row": name, "batch": b, "threads": t, "median_ms": float(np.median(every[name]) * 1e3),
                                "p10_ms": float(np.percentile(every[name], 10) * 1e3),
                                "ratio": float(np.median(r)), "ratio_min": float(r.min()), "ratio_max": float(r.max())})
    load1 = os.getloadavg()
    print(f"{args.rounds} interleaved rounds x {args.calls} calls per row; load average {load1[0]:.2f} after")
    names = [REFERENCE] + list(rows)
    cells = {(r["row"], r["batch"], r["threads"]): r for r in results}
    heads = ["artifact"] + [f"b{b} t{t}: ms (ratio)" for b in batches for t in threads]
    table = []
    for name in names:
        line = [name]
        for b in batches:
            for t in threads:
                c = cells[name, b, t]
                per_face = c["median_ms"] / b
                ms = f"{per_face:.3f}/face" if b > 1 else f"{c['median_ms']:.3f}"
                line.append(f"{ms} ({c['ratio']:.3f})")
        table.append(line)
    print_table(heads, table)
    int8 = [cells[n, batches[0], threads[0]] for n in rows if n.endswith("int8")]
    if int8 and batches[0] == 1 and threads[0] == 1:
        best = min(int8, key=lambda c: c["ratio"])
        verdict = "met" if best["ratio"] <= TARGET_RATIO else "NOT met"
        print(f"fastest int8 export at batch 1, 1 thread: {best['row']} {best['median_ms']:.3f} ms = "
              f"{best['ratio']:.3f}x the reference (range over rounds {best['ratio_min']:.3f}-"
              f"{best['ratio_max']:.3f}); "
              f"target <= {TARGET_RATIO}: {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_description(), "load_before": load0, "load_after": load1,
                                               "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
