"""The TFLite runtime: ``NAME_<variant>.tflite`` of an export with LiteRT's interpreter (XNNPACK, its default CPU
delegate), one face a call (mobile graphs have a fixed batch of 1), normalised float32 crops in (uint8 crops as
they are for the int8 file), whitened parameters and the 68 landmarks out. A 4-channel model's float files have a
second signature, ``with_map``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ..quiet import native_stderr_hidden
from .base import Prediction
from .export_dir import (DEFAULT_SIGNATURE, DEFAULT_VARIANT, MAP_SIGNATURE, TFLITE_VARIANTS, RuntimeLoadError,
                         artifact_path, missing_map_signature, read_export)
from .exported import ExportedPredictor


class TFLitePredictor(ExportedPredictor):
    """``variant``: float32 | float16 | int8; ``num_threads``: the interpreter's threads (None: LiteRT's default);
    ``use_xnnpack=False`` runs the builtin kernels without the default delegate (for comparisons)."""

    runtime = "tflite"

    def __init__(self, export_dir: str | Path, variant: str = DEFAULT_VARIANT, num_threads: int | None = None,
                 use_xnnpack: bool = True):
        if variant not in TFLITE_VARIANTS:
            raise RuntimeLoadError(f"unknown TFLite variant {variant!r}; use one of {', '.join(TFLITE_VARIANTS)}")
        meta = read_export(export_dir)
        self.path = artifact_path(Path(export_dir), f"{meta['model_name']}_{variant}.tflite")
        super().__init__(export_dir, f"tflite {variant}", meta)
        self.variant = variant
        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with native_stderr_hidden():  # LiteRT announces its XNNPACK delegate on stderr
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads,
                                               experimental_op_resolver_type=resolver)
                self.interpreter.allocate_tensors()
                self.runners = {name: self.interpreter.get_signature_runner(name)
                                for name in self.interpreter.get_signature_list()}
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(f"{self.path}: cannot load the TFLite model ({exc})") from None
        crops = self.runners[DEFAULT_SIGNATURE].get_input_details()["crops"]
        self.raw_crops = np.dtype(crops["dtype"]) == np.uint8  # the int8 variant: uint8 crops read as they are

    def run_one(self, x: np.ndarray, maps: np.ndarray | None = None) -> dict:
        """One crop ``(1, S, S, 3)`` (normalised float32; uint8 for int8) [+ its map ``(1, S, S)``] → the
        signature's outputs (``params_whitened`` ``(1, 62)``, ``landmarks`` ``(1, 68, 3)``)."""
        if maps is None:
            return self.runners[DEFAULT_SIGNATURE](crops=x)
        runner = self.runners.get(MAP_SIGNATURE)
        if runner is None:
            raise missing_map_signature(self.path, self.export_dir, self.variant, TFLITE_VARIANTS)
        return runner(crops=x, maps=maps)

    def _predict(self, crops, maps):
        x = self.model_input(crops)
        outs = [self.run_one(np.ascontiguousarray(x[i:i + 1]), None if maps is None else maps[i:i + 1])
                for i in range(len(x))]
        return Prediction(self.unwhiten(np.concatenate([o["params_whitened"] for o in outs])),
                          {"landmarks": np.concatenate([o["landmarks"] for o in outs])})
