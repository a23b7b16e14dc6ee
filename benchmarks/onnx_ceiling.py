"""The latency ceiling of the mb05 regressor under ONNX Runtime on this machine, side by side with our export.

    python benchmarks/onnx_ceiling.py [--model models/mb05] [--export-dir export/mb05]

Builds, with onnx.helper, the graph a PyTorch export of 3DDFA_V2's mb05 would have: NCHW input, BatchNorm
folded into the convolutions, padding inside each Conv, ReLU, global pooling, one Gemm — no landmark head,
no transposes — from the model directory's weights (checked against Keras), and times it next to the
exported ``NAME.onnx`` (regressor + landmark head, NHWC) at batch 1 with 1 and 2 intra-op threads.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _common import REPO, print_table, timeit  # noqa: E402


def direct_graph(model):
    """An ONNX ModelProto of the bare MobileNetV1 regressor, NCHW, BN folded (what a PyTorch export gives)."""
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
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("params_whitened", TensorProto.FLOAT, [1, 62])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def session(proto_or_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    src = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else str(proto_or_path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"))
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    from tf2dasl import load_model

    model = load_model(args.model)
    x = np.random.default_rng(0).normal(0, 1, (1, 120, 120, model.spec.channels)).astype(np.float32)
    direct = direct_graph(model)
    ref = model.regressor(x).numpy()
    exported = sorted(Path(args.export_dir).glob("*.onnx"))
    exported = [p for p in exported if not p.name.startswith("bench_")]
    rows = []
    for threads in (1, 2):
        s = session(direct, threads)
        xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        diff = float(np.abs(s.run(None, {"x": xc})[0] - ref).max())
        row = [threads, timeit(lambda: s.run(None, {"x": xc}), args.repeat, 50)]
        if exported:
            e = session(exported[0], threads)
            name = e.get_inputs()[0].name
            row.append(timeit(lambda: e.run(None, {name: x}), args.repeat, 50))
            row.append(row[2] / row[1])
        rows.append(row)
    print(f"direct graph vs Keras: max |difference| {diff:.2e}; load average {os.getloadavg()[0]:.2f}")
    print_table(["threads", "direct NCHW graph, bare regressor (ms)", f"exported {exported[0].name if exported else '-'} (ms)",
                 "exported / direct"], rows)


if __name__ == "__main__":
    main()
