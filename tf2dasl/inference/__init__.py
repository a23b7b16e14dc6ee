"""Where a model runs, behind one contract: ``Predictor.predict(crops, maps=None) -> Prediction`` (raw parameters
``(B, 62)``, plus what the runtime computed anyway), implemented once per runtime.

Owns the contract (:mod:`.base`), the input checks and numpy normalisation (:mod:`.crops`), an export directory as
runtimes read it (:mod:`.export_dir`, :mod:`.exported`), one module per runtime — Keras (:mod:`.keras_runtime`: a
model directory), SavedModel, TFLite and ONNX (:mod:`.savedmodel_runtime`, :mod:`.tflite_runtime`,
:mod:`.onnx_runtime`: an export), TF Serving over gRPC and REST (:mod:`.serving_client`, :mod:`.grpc_runtime`,
:mod:`.rest_runtime`) — and :func:`load_predictor`, which picks one by name. Decoding parameters into points is
not here (:class:`tf2dasl.geometry.decoder.Decoder`). Must not import :mod:`tf2dasl.export`, the pipeline above it
(reconstruct, batch, video, texture, evaluate, training) or :mod:`tf2dasl.commands`; only the runtime modules import
their libraries, and :func:`load_predictor` imports only the one asked for.
"""
from .base import PASSES, Prediction, Predictor  # noqa: F401
from .crops import MAP_CHANNELS, InputError, normalize_crops  # noqa: F401
from .export_dir import (DEFAULT_VARIANT, EXPORT_JSON, INT8, ONNX_VARIANTS, TFLITE_VARIANTS,  # noqa: F401
                         RuntimeLoadError, read_export, require_export_dir)
from .loading import RUNTIMES, SERVER_PROTOCOLS, load_predictor, predictor_class  # noqa: F401
