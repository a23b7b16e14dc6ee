"""Run an export (``tf2dasl export``) with SavedModel, TFLite (LiteRT) or ONNX Runtime behind one interface.

``load_runtime(kind, export_dir, variant="float32", num_threads=None)`` → a :class:`Runtime` with

* ``.name`` — e.g. ``"mb05_120x120 (tflite float16)"``;
* ``.predict_params(crops)`` — uint8 crops ``(B, S, S, 3)`` in the model's colour order → raw params ``(B, 62)``;
* ``.landmarks_crop(crops)`` — the same crops → 68 landmarks in crop pixels ``(B, 68, 3)``;
* ``.predict(crops)`` — both as ``{"params", "landmarks"}``.

The SavedModel runtime feeds uint8 crops to ``serving_default`` (normalisation in the graph); TFLite and
ONNX artifacts take normalised float32 crops, normalised here from ``export.json`` (TFLite NHWC, ONNX in the
``layout`` export.json names: NCHW for the direct graph, NHWC for older exports), except the int8 variants,
whose uint8 input reads the crops as they are (:func:`takes_raw_crops`). TFLite models are exported
with a fixed batch of 1 (mobile): faces run one at a time. Keras (the model directory itself) is
the caller's business (``tf2dasl.load_model``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError
from .io.descriptor import read_descriptor
from .preprocessing import normalize_crops

KINDS = ("savedmodel", "tflite", "onnx")
# the export format (written by tf2dasl.export; kept here so that runtimes load without TensorFlow)
EXPORT_FORMAT = "tf2dasl-export"
EXPORT_FORMAT_VERSION = 1
EXPORT_JSON = "export.json"
#: the full-integer variant (uint8 crops in, int8 backbone: ``tf2dasl.export.quantize``)
INT8 = "int8"
TFLITE_VARIANTS = ("float32", "float16", INT8)
ONNX_VARIANTS = ("float32", INT8)
#: the variants each runtime offers (the SavedModel: its one float32 graph)
VARIANTS = {"savedmodel": ("float32",), "tflite": TFLITE_VARIANTS, "onnx": ONNX_VARIANTS}
DEFAULT_VARIANT = TFLITE_VARIANTS[0]
#: every runtime a command offers: keras runs the model directory itself (``tf2dasl.load_model``), the others
#: an export directory (:data:`KINDS`)
RUNTIMES = ("keras",) + KINDS
EXPORT_HINT = "run `tf2dasl export MODEL_DIR --out {dir}`"


def takes_raw_crops(input_dtype) -> bool:
    """True for an artifact whose ``crops`` input is uint8 (the int8 variants): it reads the crops as they are and
    the host does not normalise them (the input's quantisation is the model's normalisation)."""
    return np.dtype(input_dtype) == np.uint8


def onnx_file(meta: dict, variant: str) -> tuple[str, str]:
    """``(file, layout)`` of the ONNX ``variant`` of an export (``NAME.onnx`` for float32, ``NAME_int8.onnx`` for
    int8; layout NCHW for the direct graphs, NHWC for exports before them)."""
    art = meta.get("artifacts", {}).get("onnx") or {}
    entry = art.get("variants", {}).get(variant) or (art if variant == DEFAULT_VARIANT else {})
    name = entry.get("file") or f"{meta['model_name']}{'' if variant == DEFAULT_VARIANT else '_' + variant}.onnx"
    return name, entry.get("layout", art.get("layout", "NHWC"))


class RuntimeLoadError(UserError):
    """An export directory or one of its artifacts is missing or unusable."""


def read_export(export_dir: str | Path) -> dict:
    """``export.json`` of an export directory, checked."""
    return read_descriptor(export_dir, EXPORT_JSON, EXPORT_FORMAT, EXPORT_FORMAT_VERSION, RuntimeLoadError,
                           "export directory", EXPORT_HINT.format(dir=export_dir))


def require_export_dir(kind: str, export_dir: str | Path | None) -> Path:
    """The export directory a non-Keras runtime ``kind`` needs; one line naming the flag and the fix when absent."""
    if not export_dir:
        raise RuntimeLoadError(f"--export-dir EXPORT_DIR is required with --runtime {kind} "
                               "(make one with `tf2dasl export`)")
    return Path(export_dir)


class Runtime:
    """Base: normalisation and batching shared by the runtimes (subclasses implement ``_run(x) -> (params, lm)``)."""

    kind = "?"
    needs_normalized = True

    def __init__(self, meta: dict, label: str):
        self.meta = meta
        self.model_name = meta["model_name"]
        self.size = int(meta["spec"]["input_size"])
        norm = meta["normalization"]
        self.norm_mean, self.norm_scale = float(norm["mean"]), float(norm["scale"])
        self.name = f"{self.model_name} ({label})"

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → float32 ``(x - mean) * scale`` (:func:`tf2dasl.preprocessing.normalize_crops`)."""
        return normalize_crops(crops, self.norm_mean, self.norm_scale)

    def _check(self, crops) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise UserError(f"crops must be (B, {self.size}, {self.size}, 3) uint8, got shape {crops.shape}")
        return crops

    def predict(self, crops: np.ndarray) -> dict:
        """uint8 crops ``(B, S, S, 3)`` → ``{"params": (B, 62), "landmarks": (B, 68, 3)}`` float32."""
        crops = self._check(crops)
        if len(crops) == 0:
            return {"params": np.zeros((0, 62), np.float32), "landmarks": np.zeros((0, 68, 3), np.float32)}
        params, lm = self._run(self.normalize(crops) if self.needs_normalized else crops)
        return {"params": np.asarray(params, np.float32), "landmarks": np.asarray(lm, np.float32)}

    def predict_params(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → raw params ``(B, 62)``."""
        return self.predict(crops)["params"]

    def landmarks_crop(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops ``(B, S, S, 3)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        return self.predict(crops)["landmarks"]

    def _run(self, x):  # pragma: no cover - abstract
        raise NotImplementedError


class SavedModelRuntime(Runtime):
    """``saved_model/NAME/V/`` (the highest version) through its ``serving_default`` signature."""

    kind = "savedmodel"
    needs_normalized = False

    def __init__(self, meta: dict, export_dir: Path, batch_size: int = 256):
        import tensorflow as tf

        art = meta.get("artifacts", {}).get("savedmodel")
        base = export_dir / "saved_model" / meta["model_name"]
        versions = sorted(int(p.name) for p in base.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()) \
            if base.is_dir() else []
        if art is None or not versions:
            raise RuntimeLoadError(f"{export_dir}: no SavedModel under saved_model/{meta['model_name']}/<version>/; "
                                   + EXPORT_HINT.format(dir=export_dir))
        self.path = base / str(versions[-1])
        super().__init__(meta, f"savedmodel v{versions[-1]}")
        try:
            self.loaded = tf.saved_model.load(str(self.path))
            self.fn = self.loaded.signatures["serving_default"]
        except Exception as exc:
            raise RuntimeLoadError(f"{self.path}: cannot load the SavedModel ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.batch_size = int(batch_size)
        self._tf = tf

    def run_signature(self, crops: np.ndarray) -> dict:
        """All ``serving_default`` outputs for uint8 crops ``(B, S, S, 3)`` (numpy dict)."""
        out = self.fn(crops=self._tf.constant(np.asarray(crops, np.uint8)))
        return {k: v.numpy() for k, v in out.items()}

    def _run(self, crops):
        outs = [self.run_signature(crops[i:i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        return (np.concatenate([o["params"] for o in outs]), np.concatenate([o["landmarks_3d"] for o in outs]))


class TFLiteRuntime(Runtime):
    """``NAME_<variant>.tflite`` with LiteRT's interpreter (XNNPACK, its default CPU delegate), one face a call."""

    kind = "tflite"

    def __init__(self, meta: dict, export_dir: Path, variant: str = "float32", num_threads: int | None = None,
                 use_xnnpack: bool = True):
        if variant not in TFLITE_VARIANTS:
            raise RuntimeLoadError(f"unknown TFLite variant {variant!r}; use one of {', '.join(TFLITE_VARIANTS)}")
        name = f"{meta['model_name']}_{variant}.tflite"
        self.path = export_dir / name
        if not self.path.is_file():
            raise RuntimeLoadError(f"{export_dir}: no {name}; " + EXPORT_HINT.format(dir=export_dir))
        super().__init__(meta, f"tflite {variant}")
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from .quiet import native_stderr_hidden

        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with native_stderr_hidden():  # LiteRT announces its XNNPACK delegate on stderr
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads,
                                               experimental_op_resolver_type=resolver)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(f"{self.path}: cannot load the TFLite model ({exc})") from None
        sig = self.interpreter._get_full_signature_list()["serving_default"]
        self.input_index = sig["inputs"]["crops"]
        self.needs_normalized = not takes_raw_crops(self._input_dtype())  # int8: raw uint8 crops
        self.params_index, self.landmarks_index = sig["outputs"]["params_whitened"], sig["outputs"]["landmarks"]
        self.variant = variant
        self.param_mean = np.asarray(meta["whitening"]["mean"], np.float32)
        self.param_std = np.asarray(meta["whitening"]["std"], np.float32)

    def _input_dtype(self):
        return next(d["dtype"] for d in self.interpreter.get_input_details() if d["index"] == self.input_index)

    def run_one(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One crop ``(1, S, S, 3)`` (normalised float32, or uint8 for the int8 variant) → whitened params
        ``(1, 62)``, landmarks ``(1, 68, 3)``."""
        it = self.interpreter
        it.set_tensor(self.input_index, x)
        it.invoke()
        return it.get_tensor(self.params_index), it.get_tensor(self.landmarks_index)

    def _run(self, x):
        outs = [self.run_one(np.ascontiguousarray(x[i:i + 1])) for i in range(len(x))]
        params_w = np.concatenate([o[0] for o in outs])
        return params_w * self.param_std + self.param_mean, np.concatenate([o[1] for o in outs])


class OnnxRuntime(Runtime):
    """``NAME.onnx`` with ONNX Runtime's CPU provider (all graph optimisations on)."""

    kind = "onnx"

    def __init__(self, meta: dict, export_dir: Path, num_threads: int | None = None, variant: str = DEFAULT_VARIANT):
        name, layout = onnx_file(meta, variant)
        self.path = export_dir / name
        if not self.path.is_file():
            raise RuntimeLoadError(f"{export_dir}: no {name}; " + EXPORT_HINT.format(dir=export_dir))
        super().__init__(meta, "onnx" if variant == DEFAULT_VARIANT else f"onnx {variant}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeLoadError(f"{self.path}: cannot load the ONNX model ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.needs_normalized = self.session.get_inputs()[0].type != "tensor(uint8)"  # int8: raw uint8 crops
        self.nchw = layout == "NCHW"

    def _run(self, x):
        if self.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        params, lm = self.session.run(["params", "landmarks"], {self.input_name: x})
        return params, lm


def load_runtime(kind: str, export_dir: str | Path, variant: str = DEFAULT_VARIANT, num_threads: int | None = None,
                 **kwargs) -> Runtime:
    """A runtime over an export directory. ``kind``: savedmodel | tflite | onnx; ``variant``: one of
    :data:`VARIANTS` of ``kind`` (TFLite float32 | float16 | int8, ONNX float32 | int8); ``num_threads``: TFLite
    and ONNX Runtime intra-op threads (None: their default)."""
    if kind not in KINDS:
        extra = " (keras runs the model directory: tf2dasl.load_model)" if kind == "keras" else ""
        raise RuntimeLoadError(f"unknown runtime {kind!r}; use one of {', '.join(KINDS)}{extra}")
    variant = DEFAULT_VARIANT if variant is None else variant
    if variant not in VARIANTS[kind]:
        if any(variant in v for v in VARIANTS.values()):
            raise RuntimeLoadError(f"variant {variant!r} does not apply to --runtime {kind} (it offers "
                                   f"{', '.join(VARIANTS[kind])})")
        label = {"savedmodel": "SavedModel", "tflite": "TFLite", "onnx": "ONNX"}[kind]
        raise RuntimeLoadError(f"unknown {label} variant {variant!r}; use one of {', '.join(VARIANTS[kind])}")
    d = Path(export_dir)
    meta = read_export(d)
    if kind == "savedmodel":
        return SavedModelRuntime(meta, d, **kwargs)
    if kind == "tflite":
        return TFLiteRuntime(meta, d, variant=variant, num_threads=num_threads, **kwargs)
    return OnnxRuntime(meta, d, num_threads=num_threads, variant=variant)
