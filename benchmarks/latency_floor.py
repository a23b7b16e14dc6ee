"""How fast can the mb05 regressor run at batch 1 on this machine at all? A roofline next to the measured runtimes.

    python benchmarks/latency_floor.py [--model models/mb05] [--export-dir export/mb05] [--repeat 1000]
                                       [--shared ../shared] [--no-int8]
    python benchmarks/latency_floor.py --peak-only      # the CPU, its GEMM peaks and the floor, in seconds

Prints, in one run:

1. the network's multiply-accumulates, counted from the Keras layers (convolutions, depthwise convolutions,
   the final dense layer);
2. the machine's float32 matrix-multiply peak: the best of repeated 2048x2048x2048 MatMuls with ONNX Runtime's
   GEMM (MLAS, the kernels its convolutions use) and with numpy's BLAS (OpenBLAS), at 1 and 2 threads, and the
   **floor**: MACs / the higher peak, the latency the network would have if every layer ran as efficiently as
   one large GEMM (no per-layer overheads, no memory-bound depthwise layers). No float32 runtime can beat it;
3. side by side at 1 and 2 threads: the ideal graph a PyTorch export of 3DDFA_V2's mb05 would have (NCHW,
   BatchNorm folded, padding inside each Conv, bare regressor, no transposes; from the model directory's
   weights, checked against Keras), our exported ``NAME.onnx`` (regressor + landmark head) and
   ``NAME_float32.tflite`` (XNNPACK), and the two
   int8 routes below float32's floor: ONNX Runtime static int8 (QDQ, per-channel int8 weights, uint8
   activations) of the ideal graph and a full-integer TFLite model of the bare regressor under XNNPACK;
   All graphs of one thread count are timed in 10 interleaved rounds (medians), so load changes hit all alike;
4. for each, the AFLW2000-3D dev NME (original ground truth) through that graph, when ``--shared`` holds the
   data. The int8 models are calibrated on 200 300-W faces (afw + helen_train, landmark roi boxes, fixed seed),
   never on the evaluation faces.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import REPO, cpu_description, print_table, shared_dir, timeit  # noqa: E402

from tf2dasl.inference.crops import normalize_crops  # noqa: E402  (numpy only)

GEMM_SIZE = 2048
CALIBRATION_FACES = 200
ROUNDS = 10
CALIBRATION_FOLDERS = ("afw", "helen_train")


# ============================================================================ counting and the GEMM peak
def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of the regressor at batch 1."""
    import keras

    total = 0
    for layer in model.regressor.backbone.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw * layer.input.shape[-1]
    fw = model.regressor.head.get_weights()[0]
    return int(total + fw.size)


def gemm_peak(threads: int, repeat: int = 20) -> float:
    """ONNX Runtime's float32 MatMul rate, GMAC/s (best of ``repeat``: the peak, not the typical)."""
    import time

    from onnx import TensorProto, helper, numpy_helper

    n = GEMM_SIZE
    b = numpy_helper.from_array(np.random.default_rng(1).random((n, n), np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])], [b])
    s = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), threads)
    a = np.random.default_rng(0).random((n, n), np.float32)
    for _ in range(3):
        s.run(None, {"a": a})
    best = min(_timed(lambda: s.run(None, {"a": a}), time) for _ in range(repeat))
    return n ** 3 / best / 1e9


def blas_peak(threads: int, repeat: int = 10) -> float:
    """numpy's BLAS (OpenBLAS in the wheels) float32 matmul rate, GMAC/s, best of ``repeat``: in a subprocess,
    because BLAS fixes its thread count when numpy is imported."""
    import subprocess

    code = ("import numpy as np, time\n"
            f"n = {GEMM_SIZE}\n"
            "a, b = (np.random.default_rng(i).random((n, n), np.float32) for i in (0, 1))\n"
            "a @ b\n"
            "best = 1e9\n"
            f"for _ in range({repeat}):\n"
            "    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
            "print(n ** 3 / best / 1e9)\n")
    env = dict(os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())


def _timed(fn, time) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ============================================================================ the graphs
def direct_graph(model, batch: int | str = 1):
    """An ONNX ModelProto of the bare MobileNetV1 regressor, NCHW, BN folded (what a PyTorch export gives);
    ``batch``: the input's batch dimension (3DDFA_V2's export fixes 1; a name such as ``"N"`` leaves it free)."""
    from onnx import TensorProto, helper, numpy_helper

    from tf2dasl.models.mobilenet_v1 import BLOCKS, BN_EPSILON

    bb = model.regressor.backbone
    nodes, inits = [], []

    def conv(x, conv_name, bn_name, stride, pad, depthwise):
        k = bb.get_layer(conv_name).get_weights()[0]
        gamma, beta, mean, var = bb.get_layer(bn_name).get_weights()
        scale = gamma / np.sqrt(var + BN_EPSILON)
        w = np.transpose(k, (2, 3, 0, 1) if depthwise else (3, 2, 0, 1)) * scale[:, None, None, None]
        inits.extend([numpy_helper.from_array(w.astype(np.float32), conv_name + "_w"),
                      numpy_helper.from_array((beta - mean * scale).astype(np.float32), conv_name + "_b")])
        nodes.append(helper.make_node("Conv", [x, conv_name + "_w", conv_name + "_b"], [conv_name], strides=[stride] * 2,
                                      pads=[pad] * 4, group=w.shape[0] if depthwise else 1))
        nodes.append(helper.make_node("Relu", [conv_name], [conv_name + "_relu"]))
        return conv_name + "_relu"

    x = conv("x", "conv1", "bn1", 2, 1, False)
    for block, _, _, stride in BLOCKS:
        x = conv(x, f"{block}_conv_dw", f"{block}_bn_dw", stride, 1, True)
        x = conv(x, f"{block}_conv_sep", f"{block}_bn_sep", 1, 0, False)
    fw, fb = model.regressor.head.get_weights()
    inits += [numpy_helper.from_array(fw.astype(np.float32), "fc_w"), numpy_helper.from_array(fb.astype(np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["feat"]),
              helper.make_node("Gemm", ["feat", "fc_w", "fc_b"], ["params_whitened"])]
    size = model.spec.input_size
    graph = helper.make_graph(nodes, "mb05_direct",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
                              [helper.make_tensor_value_info("params_whitened", TensorProto.FLOAT, [batch, 62])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def session(proto_or_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    src = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else str(proto_or_path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def calibration_inputs(model, shared: Path) -> np.ndarray:
    """``(CALIBRATION_FACES, S, S, 3)`` normalised float32 crops of 300-W faces (landmark roi boxes)."""
    from tf2dasl.data.sources import list_pts_faces
    from tf2dasl.geometry.roi import crop_image, roi_from_landmarks
    from tf2dasl.io.images import read_image

    faces = list_pts_faces([shared / "data" / "300w" / f for f in CALIBRATION_FOLDERS])
    pick = np.random.default_rng(0).choice(len(faces), min(CALIBRATION_FACES, len(faces)), replace=False)
    crops = [crop_image(read_image(faces[i].image_path), roi_from_landmarks(faces[i].landmarks[None])[0],
                        model.spec.input_size) for i in pick]
    return normalize_crops(np.stack(crops), model.spec.norm_mean, model.spec.norm_scale)


def onnx_int8(fp32_proto, calib_nchw: np.ndarray, tmp: Path) -> Path:
    """ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations) of the ideal graph."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib_nchw):
                return None
            self.i += 1
            return {"x": calib_nchw[self.i - 1:self.i]}

    src, dst = tmp / "direct.onnx", tmp / "direct_int8.onnx"
    onnx.save(fp32_proto, str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return dst


def tflite_full_int8(model, calib: np.ndarray, tmp: Path) -> bytes:
    """A full-integer (int8 weights and activations, float input/output) TFLite model of the bare regressor."""
    import tensorflow as tf

    from tf2dasl.export import tf_variables_of

    s = model.spec.input_size
    module = tf.Module()
    module.v = tf_variables_of(model.regressor)
    module.f = tf.function(lambda x: {"params_whitened": model.regressor(x, training=False)},
                           input_signature=[tf.TensorSpec([1, s, s, model.spec.channels], tf.float32)])
    tf.saved_model.save(module, str(tmp / "regressor"), signatures={"serving_default": module.f})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp / "regressor"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def tflite_runner(content: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content, num_threads=threads)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = next(d["index"] for d in it.get_output_details() if tuple(d["shape"]) == (1, 62))  # params_whitened

    def run(x):
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)
    return run


# ============================================================================ main
def print_peaks(macs: int, size: int) -> None:
    """The CPU, the network's MACs, the GEMM peaks at 1 and 2 threads and the float32 floor they give."""
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.2f} before the peaks")
    print(f"network: {macs / 1e6:.1f} M multiply-accumulates per face (batch 1, {size}x{size})")
    for t in (1, 2):
        by_lib = {"ONNX Runtime (MLAS)": gemm_peak(t), "numpy (OpenBLAS)": blas_peak(t)}
        th = f"{t} thread{'s' if t > 1 else ''}"
        print(f"float32 GEMM peak, {GEMM_SIZE}^3 MatMul, best run, {th}: "
              + ", ".join(f"{lib} {p:.1f} GMAC/s" for lib, p in by_lib.items())
              + f" -> float32 floor (MACs / best peak) {macs / max(by_lib.values()) / 1e6:.3f} ms")
    print(f"load average {os.getloadavg()[0]:.2f}")


def _model_or_mb05(model_dir: str):
    """The model directory's model, or (for its MAC count only) mb05's architecture with random weights."""
    from types import SimpleNamespace

    from tf2dasl.api import load_model
    from tf2dasl.models.regressor import Regressor

    if Path(model_dir).is_dir():
        return load_model(model_dir)
    regressor = Regressor("mobilenet_v1", 0.5)
    regressor.build()
    return SimpleNamespace(regressor=regressor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"))
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--shared", default=None, help="the shared assets/data folder (default $TF2DASL_SHARED or ../shared)")
    ap.add_argument("--repeat", type=int, default=1000)
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 rows (they need 300-W for calibration)")
    ap.add_argument("--peak-only", action="store_true",
                    help="print the CPU, the GEMM peaks and the float32 floor only (MACs of --model, or of mb05's "
                         "architecture when that directory does not exist); no runtime timings")
    args = ap.parse_args()
    from tf2dasl.api import load_model
    from tf2dasl.quiet import native_stderr_hidden

    if args.peak_only:
        print_peaks(count_macs(_model_or_mb05(args.model)), 120)
        return
    shared = shared_dir(args.shared)
    model = load_model(args.model)
    if model.spec.channels != 3:
        raise SystemExit("latency_floor.py times the bare 3-channel regressor; this model has a landmark-map channel")
    size = model.spec.input_size
    macs = count_macs(model)
    x = np.random.default_rng(0).normal(0, 1, (1, size, size, 3)).astype(np.float32)
    direct = direct_graph(model)
    ref = model.regressor(x).numpy()
    exported = sorted(p for p in Path(args.export_dir).glob("*.onnx") if not p.name.startswith("bench_"))

    aflw = None
    if (shared / "data" / "aflw2000_3d_dev").is_dir():
        from tf2dasl.evaluate import load_aflw2000
        aflw = load_aflw2000(shared / "data" / "aflw2000_3d_dev", size)
    want_int8 = not args.no_int8
    if want_int8 and not (shared / "data" / "300w").is_dir():
        print(f"int8 rows skipped: no 300-W faces under {shared / 'data' / '300w'} to calibrate on (--shared)")
        want_int8 = False

    with tempfile.TemporaryDirectory(prefix="tf2dasl_floor_") as tmpd, native_stderr_hidden():
        tmp = Path(tmpd)
        graphs = {}  # name -> (make(threads) -> run(x NHWC float32) -> whitened params (B, 62))

        def onnx_nchw(proto_or_path):
            def make(threads):
                s = session(proto_or_path, threads)
                return lambda t: s.run(None, {"x": np.ascontiguousarray(t.transpose(0, 3, 1, 2))})[0]
            return make

        graphs["ideal NCHW graph, float32 (ONNX Runtime)"] = onnx_nchw(direct)
        if exported:
            def make_exported(threads, path=exported[0]):
                s = session(path, threads)
                name = s.get_inputs()[0].name
                nchw = s.get_inputs()[0].shape[1] == 3  # the direct graph (export.json "layout": NCHW)
                mean, std = model.mm.param_mean, model.mm.param_std
                return lambda t: (s.run(["params"], {name: np.ascontiguousarray(t.transpose(0, 3, 1, 2)) if nchw
                                                     else t})[0] - mean) / std
            graphs[f"exported {exported[0].name}, float32 (ONNX Runtime)"] = make_exported
        tfl = sorted(Path(args.export_dir).glob("*_float32.tflite"))
        if tfl:
            graphs[f"exported {tfl[0].name} (TFLite + XNNPACK)"] = \
                lambda threads, c=tfl[0].read_bytes(): tflite_runner(c, threads)
        if want_int8:
            calib = calibration_inputs(model, shared)
            q = onnx_int8(direct, np.ascontiguousarray(calib.transpose(0, 3, 1, 2)), tmp)
            graphs["ideal graph, static int8 QDQ (ONNX Runtime)"] = onnx_nchw(q)
            content = tflite_full_int8(model, calib, tmp)
            graphs["bare regressor, full int8 (TFLite + XNNPACK)"] = lambda threads: tflite_runner(content, threads)

        rows = {name: [name] for name in graphs}
        for threads in (1, 2):
            runners = {name: make(threads) for name, make in graphs.items()}
            times = {name: [] for name in graphs}
            for run in runners.values():
                for _ in range(50):
                    run(x)
            for _ in range(ROUNDS):
                for name, run in runners.items():
                    times[name].append(timeit(lambda: run(x), max(1, args.repeat // ROUNDS), 3))
            for name in graphs:
                rows[name].append(float(np.median(times[name])))
        for name, make in graphs.items():
            run = make(1)
            rows[name].append(f"{float(np.abs(run(x) - ref).max()):.1e}")
            if aflw is not None:
                from tf2dasl.evaluate import Predictions, score_aflw2000

                xs = normalize_crops(aflw.crops, model.spec.norm_mean, model.spec.norm_scale)
                pw = np.concatenate([run(xs[i:i + 1]) for i in range(len(xs))])
                res = score_aflw2000(aflw, Predictions(model.decoder.landmarks(model.mm.unwhiten(pw))), size)
                rows[name].append(res["nme_2d_68"]["original"]["mean"])
        rows = list(rows.values())

    print_peaks(macs, size)
    headers = ["graph", "batch 1, 1 thread (ms)", "batch 1, 2 threads (ms)", "max |Δ whitened params| vs Keras"]
    if aflw is not None:
        headers.append(f"AFLW2000-3D dev NME, original (%, {len(aflw.names)} faces)")
    print_table(headers, rows)


if __name__ == "__main__":
    main()
