"""The model under test: a model directory run by Keras, an export run by SavedModel, TFLite or ONNX Runtime, or a
file of someone's predicted parameters; and the morphable model that decodes its parameters into dense meshes.

A :class:`Predictor` maps protocol crops to raw parameters and crop-pixel landmarks; its :class:`MeshDecoder`
(when known) turns raw parameters into landmarks and dense vertices in image pixels. A Keras model decodes with
its own morphable model; an export, whose graphs output landmarks but not the dense mesh, decodes with the one
``--bfm`` names (checked against the export's own landmarks); a parameters file decodes with ``--bfm`` in the
crop convention ``--convention`` names. A setting the chosen source would ignore is refused (one line).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..geometry.camera import crop_to_image, model_to_crop
from ..geometry.conventions import CONVENTIONS, CropConvention, get_convention
from ..geometry.morphable_model import NUM_PARAMS
from .common import DatasetError

#: Predictions are 3D landmarks in crop pixels ``(B, 68, 3)`` from uint8 crops ``(B, S, S, 3)``.
LandmarkFn = Callable[[np.ndarray], np.ndarray]

#: ``passes`` of a 4-channel (2DASL) Keras model: 1 = empty landmark map only, 2 = then the map of the first
#: pass's landmarks (:meth:`tf2dasl.model.FaceModel.predict_params`; exported graphs always run both).
PASSES = (1, 2)
#: input channels of a 2DASL model: the colour crop and its landmark map (the only models with passes)
MAP_MODEL_CHANNELS = 4
#: ``--bfm`` must decode an export's parameters into the export's own landmarks within this mean distance (crop
#: pixels; float32 graphs agree to ~1e-4 px, float16 TFLite to ~0.05 px, a wrong morphable model by pixels)
DECODER_AGREEMENT_PX = 0.5
#: how many faces that check looks at
DECODER_CHECK_FACES = 16


@dataclass
class MeshDecoder:
    """Raw parameters ``(B, 62)`` → points in image pixels through roi boxes ``(B, 4)``, with a morphable model
    ``mm``, the crop convention of the model that predicted them, and the crop side ``size``."""

    mm: object
    convention: CropConvention
    size: int = 120

    def landmarks_crop(self, params: np.ndarray) -> np.ndarray:
        """``(B, 68, 3)`` crop pixels."""
        return model_to_crop(self.mm.landmarks(params), self.size, self.convention)

    def vertices(self, params: np.ndarray, roi_boxes: np.ndarray) -> np.ndarray:
        """Dense meshes ``(B, V, 3)`` image pixels (z scaled by the roi box like x and y)."""
        crop = model_to_crop(self.mm.vertices(params, dense=True), self.size, self.convention)
        return crop_to_image(crop, roi_boxes, self.size)


@dataclass
class Predictor:
    """``predict``: uint8 crops ``(B, S, S, 3)`` → raw params ``(B, 62)`` and landmarks ``(B, 68, 3)`` crop pixels.
    ``decoder``: how its parameters become dense meshes (None: no dense metrics); ``check_decoder``: compare the
    decoder's landmarks with the predicted ones before trusting it (a morphable model given separately)."""

    name: str
    predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    decoder: MeshDecoder | None = None
    check_decoder: bool = False


def load_decoder_source(path, convention: str | CropConvention, size: int = 120) -> MeshDecoder:
    """A :class:`MeshDecoder` from ``path``: a tf2dasl model directory (its morphable model) or a 3DDFA_V2
    checkout / its ``configs/`` folder (``bfm_noneck_v3.pkl``), with the crop convention ``convention``."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"--bfm {p}: not found (a tf2dasl model directory or a 3DDFA_V2 checkout such as "
                        "../shared/assets/3ddfa_v2)")
    conv = convention if isinstance(convention, CropConvention) else get_convention(convention)
    if (p / "model.json").is_file():
        from ..io.model_dir import read_spec_and_morphable

        spec, mm = read_spec_and_morphable(p)
        return MeshDecoder(mm, conv, int(spec.input_size))
    from ..io.morphable_files import load_morphable_model

    return MeshDecoder(load_morphable_model(p), conv, size)


def make_predictor(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                   passes: int | None = None, bfm=None, dense: bool = False) -> Predictor:
    """The model under test as a :class:`Predictor`.

    ``runtime="keras"`` runs ``model`` (a model directory or a loaded :class:`tf2dasl.model.FaceModel`), with
    ``passes`` (:data:`PASSES`, 4-channel models only; None: the model's default); its own morphable model
    decodes. ``savedmodel``, ``tflite`` and ``onnx`` run the export in ``export_dir`` (``variant``: TFLite and ONNX);
    with ``dense`` the morphable model comes from ``bfm`` (:func:`load_decoder_source`, e.g. the model directory
    that was exported). A setting the chosen runtime would ignore is refused (:class:`UserError`, one line)."""
    from ..runtimes import DEFAULT_VARIANT, RUNTIMES, VARIANTS, load_runtime, read_export, require_export_dir

    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if variant is not None and len(VARIANTS.get(runtime, ())) < 2:
        raise UserError(f"--variant applies to --runtime tflite|onnx; --runtime {runtime} has no variants "
                        "(drop --variant)")
    if passes is not None and passes not in PASSES:
        raise UserError(f"--passes {passes}: use one of {', '.join(map(str, PASSES))}")
    if runtime == "keras":
        if export_dir:
            raise UserError("--export-dir applies to --runtime savedmodel|tflite|onnx; --runtime keras runs the "
                            "model directory given by --model (drop --export-dir, or name the export's runtime)")
        if model is None or model == "":
            raise UserError("--model MODEL_DIR is required with --runtime keras")
        if bfm:
            raise UserError("--bfm applies to --params and to --dense with an export; --runtime keras decodes with the "
                            "model directory's own morphable model (drop --bfm)")
        if isinstance(model, (str, Path)):
            from .. import load_model

            model = load_model(model)
        if passes is not None and model.spec.channels != MAP_MODEL_CHANNELS:
            raise UserError(f"--passes applies to {MAP_MODEL_CHANNELS}-channel (2DASL) models; {model.spec.name} takes "
                            f"{model.spec.channels}-channel crops and always runs one pass (drop --passes)")
        kw = {} if passes is None else {"passes": passes}

        def predict(crops):
            params = model.predict_params(crops, **kw)
            return params, model.landmarks_crop(params)

        decoder = None
        if dense:
            decoder = MeshDecoder(model.mm, get_convention(model.spec.crop_convention), int(model.spec.input_size))
        return Predictor(model.spec.name, predict, decoder)
    if model is not None and model != "":
        raise UserError(f"--model applies to --runtime keras; --runtime {runtime} runs the export in --export-dir "
                        "alone (for --dense, name the model directory it was exported from with --bfm; drop --model)")
    if passes is not None:
        raise UserError("--passes applies to --runtime keras; exported artifacts always run the model's own passes "
                        "(drop --passes)")
    if bfm and not dense:
        raise UserError(f"--bfm applies to --params and to --dense; --runtime {runtime} without --dense needs no "
                        "morphable model (drop --bfm, or add --dense)")
    export_dir = require_export_dir(runtime, export_dir)
    if dense and not bfm:
        recorded = read_export(export_dir).get("model_dir")
        raise UserError(f"--dense with --runtime {runtime} needs the dense morphable model the export's parameters "
                        f"belong to: add --bfm MODEL_DIR, the model directory that was exported (export.json records "
                        f"{recorded!r})")
    rt = load_runtime(runtime, export_dir, variant=DEFAULT_VARIANT if variant is None else variant)
    decoder = None
    if dense:
        decoder = load_decoder_source(bfm, rt.meta["spec"].get("crop_convention", "3ddfa_v2"), rt.size)

    def predict_rt(crops):
        out = rt.predict(crops)
        return out["params"], out["landmarks"]

    return Predictor(rt.name, predict_rt, decoder, check_decoder=decoder is not None)


def landmarks_fn(runtime: str = "keras", model=None, export_dir=None, variant: str | None = None,
                 passes: int | None = None) -> tuple[str, LandmarkFn]:
    """``(name, fn)``: the model under test as a :data:`LandmarkFn` (crops → crop-pixel
    landmarks) for :func:`~tf2dasl.evaluate.aflw2000.evaluate_aflw2000`; see :func:`make_predictor`."""
    p = make_predictor(runtime, model, export_dir, variant, passes)
    return p.name, lambda crops: p.predict(crops)[1]


def check_decoder(decoder: MeshDecoder, params: np.ndarray, landmarks: np.ndarray, source: str) -> None:
    """Refuse (one line) a morphable model that does not decode ``params (B, 62)`` into the predictor's own
    ``landmarks (B, 68, 3)`` crop pixels within :data:`DECODER_AGREEMENT_PX`."""
    n = min(len(params), DECODER_CHECK_FACES)
    if n == 0:
        return
    gap = float(np.linalg.norm(decoder.landmarks_crop(params[:n]) - landmarks[:n], axis=-1).mean())
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


def params_decoder(bfm, convention: str | None, size: int = 120) -> MeshDecoder:
    """The decoder of a parameters file: ``--bfm`` (required) in ``--convention`` (required)."""
    conv = params_convention(convention)
    if not bfm:
        raise DatasetError("--params needs --bfm PATH: the morphable model the parameters belong to (a 3DDFA_V2 "
                           "checkout such as ../shared/assets/3ddfa_v2, or a tf2dasl model directory)")
    return load_decoder_source(bfm, conv, size)
