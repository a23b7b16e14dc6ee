"""AFLW2000-3D as 3DDFA and 2DASL benchmark it: predictions on the protocol crops → 68-point, dense alignment and
3D face reconstruction errors, per |yaw| bin and their balanced mean.

3DDFA's ``benchmark_aflw2000.py``: predict on the 120x120 protocol crops, map the 68 landmarks to the image
through each crop's roi box, NME = mean point error / sqrt(w * h) of the ground truth's landmark box, in
percent, averaged per |yaw| bin [0, 30], (30, 60], (60, 90] and then over the three bins (the "balanced"
mean). Two ground truths: AFLW2000-3D's original ``pt3d_68`` and the re-annotated 2D landmarks.

With ``dense``, the predicted meshes (all vertices, image pixels) are scored against the ``.mat`` files' fitted
meshes (:mod:`~tf2dasl.evaluate.dense_truth`) by 2DASL's dense 2D, dense 3D and reconstruction protocols
(:mod:`~tf2dasl.evaluate.dense`); ``gt_floor`` reports how far that ground truth itself lies from ``pt3d_68``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..geometry.camera import crop_to_image
from ..geometry.decoder import Decoder
from .aflw2000_data import Aflw2000
from .dense import DENSE_METRICS, dense_errors
from .dense_truth import load_dense_truth
from .metrics import BIN_NAMES, bin_counts, nme_3d, nme_bbox, yaw_table
from .under_test import ModelUnderTest, check_decoder

#: faces per chunk when decoding dense meshes (bounds memory: a chunk's two meshes are 2 x 16 x 38,365 x 3 float64)
DENSE_CHUNK = 16
#: the per-face columns of a result (percent), by the metric names plots use
FACE_METRICS = ("nme_2d_68", "nme_2d_68_reannotated", "nme_3d_68") + DENSE_METRICS
GT_FLOOR_NOTE = ("2D NME of the dense ground truth's 68 keypoints against pt3d_68: the .mat fits truncated to "
                 "3DDFA's 40 shape / 10 expression components; dense figures are comparable within tf2dasl and with "
                 "predictions scored here, not with papers that used the full BFM")
DENSE_PROTOCOL = {
    "ground_truth": "AFLW2000/*.mat: u + w_shp @ Shape_Para[:40] + w_exp @ Exp_Para[:10], posed s*R@V+t "
                    "(300W-LP RotationMatrix.m), y = 451 - y",
    "dense_2d": "mean x-y distance over all vertices / sqrt(w*h) of pt3d_68's box",
    "dense_3d": "mean 3D distance, each mesh's z shifted to start at 0 / sqrt(w*h) of pt3d_68's box",
    "reconstruction": "z shifted to 0, every 50th vertex, centred, rigid ICP (nearest neighbours, Horn's quaternion "
                      "rotation, until the mean squared matching distance changes by <= 0.01), mean same-index "
                      "distance / sqrt(w*h) of the ground-truth mesh's x-y box (2DASL's nme_for_3DReconstruction.m)",
}


@dataclass
class Predictions:
    """What a model predicted for a protocol's faces: ``landmarks (N, 68, 3)`` crop pixels, ``params (N, 62)`` raw
    (None: landmarks only) and ``valid (N,)`` (False: no prediction for that face, e.g. a NaN row of a parameters
    file; such faces are skipped and counted; None: all valid)."""

    landmarks: np.ndarray
    params: np.ndarray | None = None
    valid: np.ndarray | None = None

    def mask(self) -> np.ndarray:
        n = len(self.landmarks)
        return np.ones(n, bool) if self.valid is None else np.asarray(self.valid, bool)


def predict_aflw2000(data: Aflw2000, model: ModelUnderTest) -> Predictions:
    """Run ``model``'s predictor on the protocol crops. The 68 landmarks are the predictor's own when its runtime
    computes them (an export's graph), else its decoder's; a decoder given separately is checked against them."""
    out = model.predictor.predict(data.crops)
    landmarks = out.landmarks
    if landmarks is None:
        landmarks = model.decoder.landmarks(out.params)
    elif model.check_decoder and model.decoder is not None:
        check_decoder(model.decoder, out.params, landmarks, model.name)
    return Predictions(np.asarray(landmarks, np.float32), out.params)


def params_predictions(params: np.ndarray, valid: np.ndarray, decoder: Decoder) -> Predictions:
    """Predictions from raw parameters ``(N, 62)``: the landmarks decoded by ``decoder``; rows not ``valid`` NaN."""
    valid = np.asarray(valid, bool)
    landmarks = np.full((len(params), 68, 3), np.nan, np.float32)
    if valid.any():
        landmarks[valid] = decoder.landmarks(params[valid])
    return Predictions(landmarks, np.asarray(params, np.float32), valid)


def _dense_metrics(dense) -> tuple[str, ...]:
    if dense is True:
        return DENSE_METRICS
    chosen = tuple(dense or ())
    unknown = [m for m in chosen if m not in DENSE_METRICS]
    if unknown:
        raise ValueError(f"unknown dense metric(s) {unknown}; use {', '.join(DENSE_METRICS)}")
    return chosen


def score_aflw2000(data: Aflw2000, predictions: Predictions, size: int = 120, decoder: Decoder | None = None,
                   dense=(), progress: bool = False) -> dict:
    """The protocol's result for ``predictions`` (see the module docstring and ``docs/evaluation.md``).

    ``dense``: True (every :data:`~tf2dasl.evaluate.dense.DENSE_METRICS`) or the names to measure; they need the
    raw parameters, a ``decoder`` and the ``.mat`` ground truth. Faces without a prediction are left out of every
    figure (``skipped``); ``per_face`` keeps one value per listed face (NaN when not scored)."""
    metrics = _dense_metrics(dense)
    ok = predictions.mask()
    yaws = data.yaws[ok]
    lm_img = crop_to_image(predictions.landmarks[ok], data.roi_boxes[ok], size)
    per_face = {m: np.full(len(data.names), np.nan) for m in FACE_METRICS}
    result = {"faces": int(ok.sum()), "bins": bin_counts(yaws), "nme_2d_68": {}}
    for k, gt in data.ground_truth.items():
        e = nme_bbox(lm_img[..., :2], gt[ok])
        result["nme_2d_68"][k] = yaw_table(e, yaws)
        per_face["nme_2d_68" if k == "original" else f"nme_2d_68_{k}"][ok] = e
    if data.pt3d is not None:
        e = nme_3d(lm_img, data.pt3d[ok])
        result["nme_3d_68"] = {"original": yaw_table(e, yaws)}
        per_face["nme_3d_68"][ok] = e
    result["skipped"] = int((~ok).sum())
    result["skipped_faces"] = [n for n, v in zip(data.names, ok) if not v]
    if metrics:
        if predictions.params is None or decoder is None:
            raise ValueError("dense metrics need raw parameters and a Decoder")
        t0 = time.perf_counter()
        floor = _score_dense(data, predictions.params, ok, decoder, metrics, per_face, progress)
        for m in metrics:
            result[m] = yaw_table(per_face[m][ok], yaws)
        result["gt_floor"] = {"mean": float(floor[ok].mean() * 100), "max": float(floor[ok].max() * 100),
                              "nme_2d_68": yaw_table(floor[ok], yaws), "note": GT_FLOOR_NOTE}
        per_face["gt_floor"] = floor
        result["dense_protocol"] = {"vertices": int(decoder.mm.num_vertices), **DENSE_PROTOCOL}
        result["seconds_dense"] = round(time.perf_counter() - t0, 2)
    result["per_face"] = {"names": list(data.names), "yaw": [round(float(y), 3) for y in data.yaws],
                          **{m: [round(float(v) * 100, 4) for v in a] for m, a in per_face.items()
                             if m in metrics or m == "gt_floor" or np.isfinite(a).any()}}
    return result


def _score_dense(data: Aflw2000, params: np.ndarray, ok: np.ndarray, decoder: Decoder, metrics, per_face: dict,
                 progress: bool) -> np.ndarray:
    """Fill ``per_face[m]`` (fractions) for the dense ``metrics`` of the valid faces; returns the gt floor ``(N,)``."""
    truth = load_dense_truth(data, decoder.mm)
    faces = np.flatnonzero(ok)
    chunks = [faces[i:i + DENSE_CHUNK] for i in range(0, len(faces), DENSE_CHUNK)]
    with tqdm(total=len(faces), desc="dense metrics", unit="face", disable=not progress) as bar:
        for idx in chunks:
            pred = decoder.vertices(params[idx], data.roi_boxes[idx])
            errors = dense_errors(pred, truth.vertices(idx), truth.norm[idx], metrics)
            for m, e in errors.items():
                per_face[m][idx] = e
            bar.update(len(idx))
    return truth.floor


def evaluate_aflw2000(data: Aflw2000, model: ModelUnderTest, size: int = 120, dense=(), progress: bool = False) -> dict:
    """Run the protocol on ``model`` (:func:`~tf2dasl.evaluate.under_test.model_under_test`; ``dense`` needs its
    decoder)."""
    if _dense_metrics(dense) and model.decoder is None:
        raise ValueError(f"dense metrics need a Decoder: make the model under test {model.name!r} with dense=True")
    return score_aflw2000(data, predict_aflw2000(data, model), size, model.decoder, dense, progress)


_ROWS = [("nme_2d_68", "original", "2D 68 pts, original"), ("nme_2d_68", "reannotated", "2D 68 pts, reannotated"),
         ("nme_3d_68", "original", "3D 68 pts, original"), ("dense_2d", None, "dense 2D"),
         ("dense_3d", None, "dense 3D"), ("reconstruction", None, "3D reconstruction")]


def format_table(result: dict) -> str:
    """A printable table of an :func:`evaluate_aflw2000` result."""
    counts = result["bins"]
    head = f"{'NME (%)':<26}" + "".join(f"{n + ' (' + str(counts[n]) + ')':>17}" for n in BIN_NAMES) + f"{'mean':>9}"
    rows = [head, "-" * len(head)]
    num = lambda v: f"{v:.3f}" if v is not None and np.isfinite(v) else "-"  # noqa: E731
    for key, sub, label in _ROWS:
        t = result.get(key, {})
        t = t.get(sub) if sub else t
        if t:
            rows.append(f"{label:<26}" + "".join(f"{num(t[n]):>17}" for n in BIN_NAMES) + f"{num(t['mean']):>9}")
    if "gt_floor" in result:
        f = result["gt_floor"]
        rows.append(f"dense ground truth floor: its 68 keypoints lie {num(f['mean'])}% (max {num(f['max'])}%) from "
                    "pt3d_68 (40 shape / 10 expression components)")
    if result.get("skipped"):
        rows.append(f"skipped {result['skipped']} face(s) without a prediction (first: {result['skipped_faces'][0]})")
    return "\n".join(rows)
