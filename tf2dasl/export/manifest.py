"""``export.json``: the description of an export directory (files, their inputs and outputs, normalisation,
whitening, the model spec), read by :mod:`tf2dasl.inference`'s export runtimes and by people.

Every input/output description (shape with -1 for a free dimension, dtype, layout) is read from the artifact
itself — the traced ``tf.function`` of a SavedModel signature (:func:`describe_function`), the converted TFLite
flatbuffer's signature (:func:`describe_tflite`), the ONNX graph (:func:`describe_onnx`) — so it cannot drift
from the files; only the one-line ``note`` per tensor name is written by hand (``NOTES`` of each exporter).
The format only grows: keys are added, never renamed or removed (``format_version`` counts breaking changes).
"""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from onnx import helper

from .. import __version__
from ..inference.export_dir import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_JSON, RuntimeLoadError, read_export
from .common import ExportError

#: Layout of rank-4 image tensors in the TensorFlow graphs (TF's native layout).
TF_IMAGE_LAYOUT = "NHWC"


def tensor_desc(shape, dtype: str, layout: str | None = None, note: str | None = None) -> dict:
    """``{"shape": [...], "dtype": ..., "layout"?: ..., "note"?: ...}``; unknown dimensions become -1."""
    d = {"shape": [-1 if v is None or int(v) < 0 else int(v) for v in shape], "dtype": str(dtype)}
    if layout:
        d["layout"] = layout
    if note:
        d["note"] = note
    return d


def _describe(name: str, shape, dtype: str, notes: dict, layout: str | None) -> dict:
    return tensor_desc(shape, dtype, layout if len(shape) == 4 else None, notes.get(name))


def describe_function(fn, notes: dict, layout: str = TF_IMAGE_LAYOUT) -> dict:
    """``{"inputs": {...}, "outputs": {...}}`` of a ``tf.function`` with an ``input_signature``, from its concrete
    function's structured input signature and structured outputs (what the SavedModel's SignatureDef holds)."""
    cf = fn.get_concrete_function()
    args, kwargs = cf.structured_input_signature
    specs = tf.nest.flatten((args, kwargs))
    inputs = {s.name: _describe(s.name, s.shape.as_list(), s.dtype.name, notes, layout) for s in specs}
    outs = cf.structured_outputs
    if not isinstance(outs, dict):
        raise ExportError(f"{fn.__name__}: a signature must return a dict of named tensors")
    outputs = {k: _describe(k, t.shape.as_list(), t.dtype.name, notes, layout) for k, t in outs.items()}
    return {"inputs": inputs, "outputs": outputs}


def describe_tflite(content: bytes, notes: dict, signature: str = "serving_default",
                    layout: str = TF_IMAGE_LAYOUT) -> dict:
    """Inputs/outputs of a TFLite flatbuffer's signature, as LiteRT's interpreter reads them."""
    runner = Interpreter(model_content=content).get_signature_runner(signature)

    def desc(details):
        return {k: _describe(k, list(d["shape_signature"]), np.dtype(d["dtype"]).name, notes, layout)
                for k, d in details.items()}
    return {"inputs": desc(runner.get_input_details()), "outputs": desc(runner.get_output_details())}


def describe_onnx(model_proto, notes: dict, layouts: dict | None = None) -> dict:
    """Inputs/outputs of an ONNX graph (``dim_param`` dimensions become -1); ``layouts``: by input name."""
    def desc(values):
        out = {}
        for v in values:
            tt = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
            out[v.name] = tensor_desc(shape, dtype, (layouts or {}).get(v.name), notes.get(v.name))
        return out
    return {"inputs": desc(model_proto.graph.input), "outputs": desc(model_proto.graph.output)}


def crops_note(spec, normalized: bool) -> str:
    """The ``note`` of a ``crops`` input: colour order and who normalises."""
    if normalized:
        return f"{spec.color_order} crops normalised as (x - {spec.norm_mean}) * {spec.norm_scale}"
    return f"{spec.color_order} crops, 0..255; normalised in the graph"


def previous_manifest(out_dir, model_name: str) -> dict:
    """The export.json already in ``out_dir`` when it describes ``model_name`` ({} when there is none, or when
    it describes another model: a fresh description starts and that model's files stay). Any other file named
    export.json is the user's: an :class:`ExportError`, nothing is overwritten."""
    if not (out_dir / EXPORT_JSON).exists():
        return {}
    try:
        manifest = read_export(out_dir)
    except RuntimeLoadError as exc:
        raise ExportError(f"{exc} — not overwriting it: choose another --out") from None
    return manifest if manifest.get("model_name") == model_name else {}


def new_manifest(model, model_dir, previous: dict) -> dict:
    """export.json's model-level part (artifacts carried over from ``previous``, the same model's export)."""
    spec, mm = model.spec, model.mm
    manifest = dict(previous)
    manifest.update({
        "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "tf2dasl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model_name": spec.name, "model_dir": str(model_dir),
        "spec": spec.to_dict(),
        "morphable_model": {"vertices": mm.num_vertices, "dense": mm.is_dense, "uv": mm.has_uv, "source": mm.source},
        "normalization": {"formula": "(x - mean) * scale", "mean": spec.norm_mean, "scale": spec.norm_scale,
                          "color_order": spec.color_order, "channels_in": 3, "model_channels": spec.channels,
                          "two_pass_landmark_map": spec.channels == 4},
        "whitening": {"formula": "params = params_whitened * std + mean",
                      "mean": [float(v) for v in model.mm.param_mean],
                      "std": [float(v) for v in model.mm.param_std]},
        "artifacts": dict(previous.get("artifacts", {}))})
    return manifest
