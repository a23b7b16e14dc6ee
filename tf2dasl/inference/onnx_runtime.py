"""The ONNX runtime: an export's ``NAME.onnx`` (normalised float32 crops in) or ``NAME_int8.onnx`` (uint8 crops in)
with ONNX Runtime's CPU provider (all graph optimisations on), in the layout export.json names (NCHW for the direct
graph, NHWC for tf2onnx's); raw parameters and the 68 landmarks out. A 4-channel model's one-pass graph with a
landmark-map input is its own file, ``NAME_with_map.onnx`` (an ONNX graph has no optional inputs; float32 only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .base import Prediction
from .export_dir import (DEFAULT_VARIANT, EXPORT_HINT, MAP_SIGNATURE, ONNX_VARIANTS, RuntimeLoadError, artifact_path,
                         missing_map_signature, onnx_artifact, read_export)
from .exported import ExportedPredictor

#: ONNX Runtime's log level for the sessions (3: errors only)
LOG_SEVERITY = 3


def onnx_session(path: Path, num_threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session on ``path`` (``num_threads``: intra-op threads, None: ORT's default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = LOG_SEVERITY
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeLoadError(f"{path}: cannot load the ONNX model ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


class OnnxPredictor(ExportedPredictor):
    """``variant``: float32 | int8 (:data:`~tf2dasl.inference.export_dir.ONNX_VARIANTS`; int8 reads uint8 crops as
    they are); ``num_threads``: ONNX Runtime's intra-op threads (None: its default)."""

    runtime = "onnx"

    def __init__(self, export_dir: str | Path, variant: str = DEFAULT_VARIANT, num_threads: int | None = None):
        if variant not in ONNX_VARIANTS:
            raise RuntimeLoadError(f"unknown ONNX variant {variant!r}; use one of {', '.join(ONNX_VARIANTS)}")
        meta = read_export(export_dir)
        art = onnx_artifact(meta, export_dir, variant)
        self.path = artifact_path(Path(export_dir), art["file"])
        super().__init__(export_dir, "onnx" if variant == DEFAULT_VARIANT else f"onnx {variant}", meta)
        if art.get("layout") not in ("NCHW", "NHWC"):
            raise RuntimeLoadError(f"{self.export_dir}: export.json names no ONNX input layout (an export of an older "
                                   "tf2dasl); " + EXPORT_HINT.format(dir=self.export_dir))
        self.variant, self.nchw = variant, art["layout"] == "NCHW"
        self.session = onnx_session(self.path, num_threads)
        self.raw_crops = self.session.get_inputs()[0].type == "tensor(uint8)"
        self.map_file, self.num_threads, self._map_session = art.get(MAP_SIGNATURE, {}).get("file"), num_threads, None

    def _layout(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if self.nchw else x

    def map_session(self) -> ort.InferenceSession:
        """The one-pass graph with a landmark-map input (loaded on first use), or a one-line error."""
        if self._map_session is None:
            if not self.map_file:
                raise missing_map_signature(self.path, self.export_dir, self.variant, ONNX_VARIANTS)
            self._map_session = onnx_session(artifact_path(self.export_dir, self.map_file), self.num_threads)
        return self._map_session

    def _predict(self, crops, maps):
        x = self._layout(self.model_input(crops))
        if maps is None:
            params, lm = self.session.run(["params", "landmarks"], {"crops": x})
        else:
            m = maps[:, None] if self.nchw else maps[..., None]
            params, lm = self.map_session().run(["params", "landmarks"], {"crops": x, "maps": m})
        return Prediction(params, {"landmarks": lm})
