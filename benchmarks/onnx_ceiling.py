"""Our exported ONNX next to the graph 3DDFA_V2 ships, side by side in one run: batch-1 latency and the ratio.

    python benchmarks/onnx_ceiling.py [--model models/mb05] [--export-dir export/mb05] [--threads 1,2]
                                      [--rounds 20] [--calls 200]

The reference is the graph a PyTorch export of 3DDFA_V2's network gives (its ``convert_to_onnx.py``:
``torch.onnx.export`` of the bare regressor in eval mode, batch 1): NCHW, BatchNorm folded, padding inside each
Conv, 62 whitened parameters out, nothing else. It is built here from the model directory's weights and
MobileNetV1's block table (``latency_floor.direct_graph``, independent of the exporter's layer walker) and
checked against Keras. Against it run, under the same ONNX Runtime settings (CPU provider, ``ORT_ENABLE_ALL``,
``intra_op_num_threads`` = the thread count, sequential):

* ``exported``: ``EXPORT_DIR/NAME.onnx`` as ``tf2dasl export`` wrote it (any batch; raw params *and* the 68
  landmarks in crop pixels);
* ``exported, cut``: the same graph cut after the Gemm that gives raw parameters (what the landmark decoding costs);
* ``exported, NHWC input``: the same graph behind one input Transpose (what keeping TFLite's layout would cost);
* ``tf2onnx``: tf2onnx's conversion of the TFLite-style mobile graph (NHWC, the export before the direct graph);
* the reference followed by what 3DDFA_V2's ``TDDFA_ONNX`` does after its graph to get the same outputs: un-whiten
  and decode the 68 landmarks in numpy (tf2dasl's numpy morphable model).

Every graph of a thread count is timed in ``--rounds`` rounds of ``--calls`` batch-1 calls each, the graphs taking
turns call by call (who goes first rotates), so a change in the machine's load hits all alike; the ratio is the
median over rounds of (graph / reference) per-round medians, with its range. The machine's load average is
printed before and after: on a loaded machine the range is wide; compare rows within one run only.
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

from _common import REPO, interleaved_times, print_table  # noqa: E402


def _with_transpose(proto):
    """The graph with an NHWC input ``crops`` and one Transpose to the NCHW graph."""
    import onnx
    from onnx import TensorProto, helper

    q = onnx.ModelProto()
    q.CopyFrom(proto)
    g = q.graph
    name = g.input[0].name
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    for node in g.node:
        node.input[:] = ["crops_nchw" if v == name else v for v in node.input]
    g.node.insert(0, helper.make_node("Transpose", [name], ["crops_nchw"], perm=[0, 3, 1, 2]))
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [dims[0], dims[2], dims[3], dims[1]]))
    return q


def _regressor_part(proto):
    """The exported graph cut after its first Gemm (raw parameters): the regressor without the landmark decoding."""
    import onnx
    from onnx import TensorProto, helper

    q = onnx.ModelProto()
    q.CopyFrom(proto)
    g = q.graph
    nodes = list(g.node)
    first_gemm = next(i for i, n in enumerate(nodes) if n.op_type == "Gemm")
    out = nodes[first_gemm].output[0]
    del g.node[first_gemm + 1:]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 62]))
    used = {v for n in g.node for v in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return q


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"), help="its export (tf2dasl export)")
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=200, help="timed batch-1 calls per graph per round")
    ap.add_argument("--no-tf2onnx", action="store_true", help="skip the tf2onnx row (it needs TensorFlow's converter)")
    args = ap.parse_args(argv)

    from latency_floor import direct_graph, session

    from tf2dasl.api import load_model
    from tf2dasl.export.onnx_graph import convert_with_tf2onnx
    from tf2dasl.inference.export_dir import read_export
    from tf2dasl.quiet import native_stderr_hidden

    model = load_model(args.model)
    if model.spec.backbone != "mobilenet_v1" or model.spec.channels != 3:
        raise SystemExit("the reference graph is 3DDFA_V2's MobileNetV1 regressor (3 channels)")
    meta = read_export(args.export_dir)
    art = meta["artifacts"].get("onnx")
    if art is None:
        raise SystemExit(f"{args.export_dir}: no ONNX artifact; run `tf2dasl export {args.model} "
                         f"--out {args.export_dir}`")
    import onnx

    exported = onnx.load(str(Path(args.export_dir) / art["file"]))
    layout = art.get("layout", "NHWC")
    size = model.spec.input_size
    x = np.random.default_rng(0).normal(0, 1, (1, size, size, 3)).astype(np.float32)
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    graphs = {"3DDFA_V2-style graph (reference: bare regressor, batch 1)": (direct_graph(model), xc),
              f"exported {art['file']} ({layout}; params + landmarks, any batch)":
                  (exported, xc if layout == "NCHW" else x)}
    if layout == "NCHW":
        graphs["exported graph cut after its raw-params Gemm (no landmark decoding)"] = (_regressor_part(exported), xc)
        graphs["exported graph behind an NHWC input Transpose"] = (_with_transpose(exported), x)
    if not args.no_tf2onnx:
        with native_stderr_hidden():
            graphs["tf2onnx conversion of the mobile graph (NHWC, the earlier export)"] = \
                (convert_with_tf2onnx(model)[0], x)
    names = list(graphs)
    ref_name, ours_name = names[0], names[1]
    decoded_name = "3DDFA_V2-style graph + numpy decoding to the same outputs (raw params, 68 landmarks)"

    # agreement: the reference vs Keras (whitened params), ours vs Keras (landmarks)
    want_pw = model.regressor(x, training=False).numpy()
    want_lm = model.decoder.landmarks(model.mm.unwhiten(want_pw))
    agree = {}
    for name, (proto, inp) in graphs.items():
        outs = session(proto, 1).run(None, {proto.graph.input[0].name: inp})
        out_names = [o.name for o in proto.graph.output]
        if "landmarks" in out_names:
            agree[name] = f"{np.abs(outs[out_names.index('landmarks')] - want_lm).max():.1e} px (landmarks)"
        elif name != ref_name:
            want_params = model.mm.unwhiten(want_pw)
            rel = np.abs(outs[0] - want_params).max() / np.abs(want_params).max()
            agree[name] = f"{rel:.1e} (raw params, relative)"
        else:
            agree[name] = f"{np.abs(outs[0] - want_pw).max():.1e} (whitened params)"

    load0 = os.getloadavg()
    threads = [int(t) for t in args.threads.split(",")]
    med, p10, ratios = {}, {}, {}
    for t in threads:
        runners = {}
        for name, (proto, inp) in graphs.items():
            s = session(proto, t)
            feed = {proto.graph.input[0].name: inp}
            runners[name] = (lambda s=s, feed=feed: s.run(None, feed))
        # what 3DDFA_V2's TDDFA_ONNX does after its graph: un-whiten, then the 68 landmarks (numpy)
        ref_session = session(graphs[ref_name][0], t)
        ref_feed = {graphs[ref_name][0].graph.input[0].name: graphs[ref_name][1]}

        def decoded(s=ref_session, feed=ref_feed):
            params = model.mm.unwhiten(s.run(None, feed)[0])
            return params, model.decoder.landmarks(params)
        runners[decoded_name] = decoded
        every, per_round = interleaved_times(runners, args.rounds, args.calls, warmup=100)
        for name in runners:
            med[name, t] = float(np.median(every[name]) * 1e3)
            p10[name, t] = float(np.percentile(every[name], 10) * 1e3)
            ratios[name, t] = np.asarray(per_round[name]) / np.asarray(per_round[ref_name])
    load1 = os.getloadavg()

    print(f"ONNX Runtime, CPU provider, ORT_ENABLE_ALL, batch 1; {args.rounds} interleaved rounds x {args.calls} "
          "calls; "
          f"load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    headers = ["graph"] + [f"{t} thread{'s' if t > 1 else ''}: median (ms)" for t in threads] + \
        [f"{threads[0]} thread{'s' if threads[0] > 1 else ''}: p10 (ms)", "ratio to the reference (1 thread)",
         "max abs Δ vs Keras"]
    names.insert(1, decoded_name)
    agree[decoded_name] = agree[ref_name]
    rows = []
    for name in names:
        r = ratios[name, threads[0]]
        rows.append([name] + [med[name, t] for t in threads] + [p10[name, threads[0]],
                     f"{np.median(r):.3f} ({np.min(r):.3f}-{np.max(r):.3f})", agree[name]])
    print_table(headers, rows)
    summary = {"load_before": load0[0], "load_after": load1[0]}
    for t in threads:
        th = f"{t} thread{'s' if t > 1 else ''}"
        for what, base in (("the 3DDFA_V2-style graph", ref_name), ("it + numpy decoding", decoded_name)):
            r = ratios[ours_name, t] / ratios[base, t]
            verdict = "no slower" if np.median(r) <= 1.0 else "slower"
            print(f"exported / {what}, batch 1, {th}: {np.median(r):.3f} (median of {len(r)} per-round ratios, "
                  f"range {r.min():.3f}-{r.max():.3f}): {verdict}")
            summary[f"ratio_{t}_thread{'s' if t > 1 else ''}_vs_{'graph' if base == ref_name else 'decoded'}"] = \
                float(np.median(r))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
