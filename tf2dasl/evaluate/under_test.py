"""The model under test: a predictor on any runtime (:mod:`tf2dasl.inference`: a model directory run by Keras, an
export run by SavedModel, TFLite or ONNX Runtime) with the decoder of its parameters
(:class:`~tf2dasl.geometry.decoder.Decoder`), or a file of someone's predicted parameters with the morphable model
they belong to.

A Keras model decodes with its own morphable model; an export, whose graphs output landmarks but not the dense
mesh, decodes with the one ``--bfm`` names (checked against the export's own landmarks); a parameters file decodes
with ``--bfm`` in the crop convention ``--convention`` names. A setting the chosen source would ignore is refused
(one line).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..geometry.conventions import CONVENTIONS, CropConvention, get_convention
from ..geometry.decoder import Decoder
from ..geometry.morphable_model import NUM_PARAMS
from ..inference.base import Predictor
from ..inference.export_dir import read_export, require_export_dir
from ..inference.loading import RUNTIMES, load_predictor
from ..io.model_files import SPEC_FILE, read_spec_and_morphable
from ..io.morphable_files import load_morphable_model
from .common import DatasetError

#: ``--bfm`` must decode an export's parameters into the export's own landmarks within this mean distance (crop
#: pixels; float32 graphs agree to ~1e-4 px, float16 TFLite to ~0.05 px, a wrong morphable model by pixels)
DECODER_AGREEMENT_PX = 0.5
#: how many faces that check looks at
DECODER_CHECK_FACES = 16


@dataclass
class ModelUnderTest:
    """``predictor`` (crops → raw parameters, any runtime) and ``decoder`` (its parameters → points; None: no dense
    metrics) under the report's ``name``; ``check_decoder``: the decoder was given separately (``--bfm``), so
    compare its landmarks with the predictor's own before trusting it."""

    name: str
    predictor: Predictor
    decoder: Decoder | None = None
    check_decoder: bool = False


def load_decoder(path, convention: str | CropConvention, size: int = 120) -> Decoder:
    """A :class:`Decoder` from ``path``: a tf2dasl model directory (its morphable model and crop side) or a 3DDFA_V2
    checkout / its ``configs/`` folder (``bfm_noneck_v3.pkl``), with the crop convention ``convention``."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"--bfm {p}: not found (a tf2dasl model directory or a 3DDFA_V2 checkout such as "
                        "../shared/assets/3ddfa_v2)")
    if (p / SPEC_FILE).is_file():
        spec, mm = read_spec_and_morphable(p)
        return Decoder(mm, spec.input_size, convention)
    return Decoder(load_morphable_model(p), size, convention)


def model_under_test(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                     passes: int | None = None, bfm=None, dense: bool = False) -> ModelUnderTest:
    """The model under test of ``tf2dasl evaluate``.

    ``runtime="keras"`` runs ``model`` (a model directory or a loaded :class:`~tf2dasl.models.task.FaceTask`) with
    ``passes`` (4-channel models only; None: the model's two); its own morphable model decodes. ``savedmodel``,
    ``tflite`` and ``onnx`` run the export in ``export_dir`` (``variant``: TFLite and ONNX); with ``dense`` the
    morphable model comes from ``bfm`` (:func:`load_decoder`, e.g. the model directory that was exported). A
    setting the chosen runtime would ignore is refused (:class:`UserError`, one line)."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "keras":
        if bfm:
            raise UserError("--bfm applies to --params and to --dense with an export; --runtime keras decodes with the "
                            "model directory's own morphable model (drop --bfm)")
        predictor = load_predictor("keras", model, export_dir, variant, passes)
        task = predictor.task
        return ModelUnderTest(predictor.name, predictor, task.decoder)
    if model is not None and model != "":
        raise UserError(f"--model applies to --runtime keras; --runtime {runtime} runs the export in --export-dir "
                        "alone (for --dense, name the model directory it was exported from with --bfm; drop --model)")
    if bfm and not dense:
        raise UserError(f"--bfm applies to --params and to --dense; --runtime {runtime} without --dense needs no "
                        "morphable model (drop --bfm, or add --dense)")
    if dense and not bfm:
        recorded = read_export(require_export_dir(runtime, export_dir)).get("model_dir")
        raise UserError(f"--dense with --runtime {runtime} needs the dense morphable model the export's parameters "
                        f"belong to: add --bfm MODEL_DIR, the model directory that was exported (export.json records "
                        f"{recorded!r})")
    predictor = load_predictor(runtime, None, export_dir, variant, passes)
    decoder = load_decoder(bfm, predictor.crop_convention, predictor.input_size) if dense else None
    return ModelUnderTest(predictor.name, predictor, decoder, check_decoder=decoder is not None)


def check_decoder(decoder: Decoder, params: np.ndarray, landmarks: np.ndarray, source: str) -> None:
    """Refuse (one line) a morphable model that does not decode ``params (B, 62)`` into the predictor's own
    ``landmarks (B, 68, 3)`` crop pixels within :data:`DECODER_AGREEMENT_PX`."""
    n = min(len(params), DECODER_CHECK_FACES)
    if n == 0:
        return
    gap = float(np.linalg.norm(decoder.landmarks(params[:n]) - landmarks[:n], axis=-1).mean())
    if not gap <= DECODER_AGREEMENT_PX:
        raise UserError(f"--bfm: its morphable model decodes {source}'s parameters {gap:.2f} px (mean) away from the "
                        f"landmarks {source} itself outputs (at most {DECODER_AGREEMENT_PX} expected): pass the model "
                        "directory that was exported")


# ---------------------------------------------------------------------------- published predictions
def load_params_file(path, faces: int, data_name: str = "the data's list") -> tuple[np.ndarray, np.ndarray]:
    """``(params (N, 62) float32, valid (N,) bool)`` from an ``.npy`` of raw 3DDFA parameters, one row per face of
    the data's list (``faces`` rows). A row with a non-finite value is not a prediction (``valid`` False; it is
    skipped and counted). A missing or unreadable file, a wrong shape or row count → one-line :class:`UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--params {p}: file not found (expected an .npy of (N, {NUM_PARAMS}) raw parameters)")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"--params {p}: not a readable .npy array ({str(exc).splitlines()[0] if str(exc) else exc})"
                        " ; save predictions with numpy.save") from None
    if arr.ndim != 2 or arr.shape[1] != NUM_PARAMS or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"--params {p}: expected ({faces}, {NUM_PARAMS}) raw 3DDFA parameters (one row per face of "
                        f"{data_name}), got {arr.dtype} {arr.shape}")
    if len(arr) != faces:
        raise UserError(f"--params {p}: {len(arr)} rows but {data_name} lists {faces} faces (one row per face, in "
                        "the list's order; NaN rows for faces without a prediction)")
    params = arr.astype(np.float32)
    return params, np.isfinite(params).all(axis=1)


def params_convention(name: str | None) -> CropConvention:
    """The crop convention ``--convention`` names (required with ``--params``: a wrong one shifts every point)."""
    if not name:
        raise UserError(f"--params needs --convention {'|'.join(sorted(CONVENTIONS))}: the crop convention the "
                        "parameters were predicted in (3DDFA v1 / 2DASL: 3ddfa_v1; 3DDFA_V2: 3ddfa_v2)")
    try:
        return get_convention(name)
    except ValueError as exc:
        raise UserError(f"--convention {name}: {exc}") from None


def params_decoder(bfm, convention: str | None, size: int = 120) -> Decoder:
    """The decoder of a parameters file: ``--bfm`` (required) in ``--convention`` (required)."""
    conv = params_convention(convention)
    if not bfm:
        raise DatasetError("--params needs --bfm PATH: the morphable model the parameters belong to (a 3DDFA_V2 "
                           "checkout such as ../shared/assets/3ddfa_v2, or a tf2dasl model directory)")
    return load_decoder(bfm, conv, size)
