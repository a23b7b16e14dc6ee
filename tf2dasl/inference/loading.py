"""``load_predictor``: a runtime by name → a :class:`~tf2dasl.inference.base.Predictor`, with one-line errors for
settings that runtime would ignore.

The runtimes are a registry of module names, imported when asked for (:data:`RUNTIME_CLASSES`): each runtime's
module imports its library at its top (TensorFlow, LiteRT, ONNX Runtime, gRPC), and a process pays only for the one
it runs — the numpy pipeline with a TFLite export never imports TensorFlow.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import UserError
from ..io.model_files import check_model_dir, read_model_spec
from .base import PASSES, Predictor
from .crops import MAP_CHANNELS
from .export_dir import DEFAULT_VARIANT, ONNX_VARIANTS, TFLITE_VARIANTS, require_export_dir

#: ``--runtime`` choices: keras runs a model directory, the others an export directory
RUNTIMES = ("keras", "savedmodel", "tflite", "onnx")
#: how a TF Serving server is called
SERVER_PROTOCOLS = ("grpc", "rest")
#: runtime → (module of tf2dasl.inference, predictor class)
RUNTIME_CLASSES = {"keras": ("keras_runtime", "KerasPredictor"),
                   "savedmodel": ("savedmodel_runtime", "SavedModelPredictor"),
                   "tflite": ("tflite_runtime", "TFLitePredictor"), "onnx": ("onnx_runtime", "OnnxPredictor"),
                   "grpc": ("grpc_runtime", "GrpcClient"), "rest": ("rest_runtime", "RestClient")}
#: variants each export runtime has (TFLite's and ONNX's files; the SavedModel runs float32 only)
VARIANTS = {"tflite": TFLITE_VARIANTS, "onnx": ONNX_VARIANTS}


def predictor_class(runtime: str) -> type:
    """The predictor class of ``runtime`` (its module imported now)."""
    module, name = RUNTIME_CLASSES[runtime]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def load_predictor(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                   passes: int | None = None, server: str | None = None, server_model: str | None = None,
                   protocol: str = "grpc", num_threads: int | None = None) -> Predictor:
    """The predictor of one runtime.

    ``runtime="keras"``: ``model`` (a model directory or a loaded :class:`~tf2dasl.models.task.FaceTask`), with
    ``passes`` (1 or 2, 4-channel models only; None: 2). ``savedmodel`` | ``tflite`` | ``onnx``: the export in
    ``export_dir`` (``variant``: a TFLite or ONNX file, default float32; ``num_threads``: TFLite and ONNX Runtime
    intra-op threads). ``server="HOST:PORT"``: the model served by TF Serving over ``protocol`` (grpc or rest),
    named ``server_model`` (default: the model's name); ``model`` (a model directory), when given, tells its
    crop side and channels. A setting the chosen runtime would ignore is a :class:`~tf2dasl.errors.UserError`."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if server:
        return _server_predictor(runtime, model, export_dir, server, server_model, protocol)
    if variant is not None and runtime not in VARIANTS:
        raise UserError(f"--variant {variant} applies to --runtime {' or '.join(VARIANTS)}; --runtime {runtime} has "
                        "no variants (drop --variant)")
    if variant is not None and variant not in VARIANTS[runtime]:
        raise UserError(f"--variant {variant}: --runtime {runtime} has variants {', '.join(VARIANTS[runtime])}")
    if passes is not None and runtime != "keras":
        raise UserError("--passes applies to --runtime keras; exported artifacts always run the model's own passes "
                        "(drop --passes)")
    if runtime == "keras":
        return _keras_predictor(model, export_dir, passes)
    export_dir = require_export_dir(runtime, export_dir)
    if runtime == "tflite":
        return predictor_class(runtime)(export_dir, variant=variant or DEFAULT_VARIANT, num_threads=num_threads)
    if runtime == "onnx":
        return predictor_class(runtime)(export_dir, variant=variant or DEFAULT_VARIANT, num_threads=num_threads)
    return predictor_class(runtime)(export_dir)


def _keras_predictor(model, export_dir, passes) -> Predictor:
    if export_dir:
        raise UserError("--export-dir applies to --runtime savedmodel|tflite|onnx; --runtime keras runs the "
                        "model directory given by --model (drop --export-dir, or name the export's runtime)")
    if model is None or model == "":
        raise UserError("--model MODEL_DIR is required with --runtime keras")
    if passes is not None and passes not in PASSES:
        raise UserError(f"--passes {passes}: use one of {', '.join(map(str, PASSES))}")
    # a model directory is checked whole (spec, files, array headers) before TensorFlow starts: one line if bad
    spec = check_model_dir(model) if isinstance(model, (str, Path)) else model.spec
    if passes is not None and spec.channels != MAP_CHANNELS:
        raise UserError(f"--passes applies to {MAP_CHANNELS}-channel (2DASL) models; {spec.name} takes "
                        f"{spec.channels}-channel crops and always runs one pass (drop --passes)")
    keras_predictor = predictor_class("keras")
    passes = 2 if passes is None else passes
    if isinstance(model, (str, Path)):
        return keras_predictor.from_model_dir(model, passes=passes)
    return keras_predictor(model, passes=passes)


def _server_predictor(runtime, model, export_dir, server, server_model, protocol) -> Predictor:
    local = [f"--runtime {runtime}"] * (runtime != "keras") + [f"--export-dir {export_dir}"] * bool(export_dir)
    if local:
        raise UserError(f"--server {server} runs the model on the server: drop {' and '.join(local)}, "
                        "or drop --server to run locally")
    if protocol not in SERVER_PROTOCOLS:
        raise UserError(f"unknown server protocol {protocol!r}; use one of {', '.join(SERVER_PROTOCOLS)}")
    spec = None
    if model is not None:
        spec = read_model_spec(model) if isinstance(model, (str, Path)) else model.spec
    name = server_model or (spec.name if spec else None)
    if not name:
        raise UserError(f"--server {server}: name the served model (--server-model NAME) or give --model MODEL_DIR")
    return predictor_class(protocol)(server, name, input_size=spec.input_size if spec else None,
                                     channels=spec.channels if spec else 3)
