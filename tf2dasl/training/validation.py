"""Per-epoch validation: point NME on the training data's held-out faces (the selection metric) and, as a monitor
only, AFLW2000-3D's 68-point protocol.

A held-out set (:class:`HoldoutSet`) is plain crops with their annotated points (NaN = not visible) of one
landmark set: AFLW-wild's validation split (21 points, projected through the run's fitted model points) or the
300-W hold-out (68 points). Its NME is the mean distance over the visible points divided by ``sqrt(w * h)`` of
their box, averaged over faces, in percent — the model running its normal inference (two passes for a
4-channel model, from the empty map).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from ..data.correspondence import visible_face_size
from ..data.datasets import WildData, WildSource, list_68, list_aflw
from ..data.landmark_sets import LANDMARK_SETS, LANDMARKS_68, PointLayout, read_points_file
from ..data.loading import load_wild_faces
from ..data.pipeline import plain_crops
from ..evaluate import ModelUnderTest, evaluate_aflw2000
from ..evaluate.metrics import yaw_table
from ..geometry.decoder import Decoder
from ..inference.base import Predictor
from ..inference.keras_runtime import KerasPredictor


@dataclass(eq=False)
class HoldoutSet:
    """``crops (N, S, S, 3)`` uint8, ``points (N, K, 2)`` crop pixels (NaN = not visible) of landmark set
    ``landmark_set``, ``yaws (N,)`` degrees when known, ``names``."""

    landmark_set: str
    crops: np.ndarray
    points: np.ndarray
    names: list
    yaws: np.ndarray | None = None

    @property
    def metric(self) -> str:
        """The log key of this set's NME: ``val_aflw21_nme`` / ``val_68_nme``."""
        return f"val_{self.landmark_set}_nme"


def holdout_sets(wild) -> list[HoldoutSet]:
    """The held-out faces of a :class:`~tf2dasl.data.datasets.WildData` as plain crops with their points."""
    augment = {s.landmark_set: s.augment for s in wild.sources}
    sets = []
    for name, faces in wild.holdout.items():
        crops, points = plain_crops(faces, augment[name])
        yaws = [s.yaw for s in faces.samples]
        sets.append(HoldoutSet(name, crops, points, [s.image_path for s in faces.samples],
                               None if any(y is None for y in yaws) else np.asarray(yaws, np.float32)))
    return sets


def load_holdouts(cfg) -> tuple[PointLayout, list[HoldoutSet]]:
    """Only the held-out faces of a training config (``cfg.data.wild``, paths expanded) and its point layout —
    what :func:`evaluate_holdout` needs to score any model on them (benchmarks/holdout_nme.py)."""
    w = cfg.data.wild
    sources, holdout, sets, model_points = [], {}, [LANDMARKS_68], {}
    if w.pts_folders or w.lp_folders:
        _, held = list_68(w)
        if held:
            faces = load_wild_faces(held, cache="memory", cache_size=w.cache_size, cache_margin=w.cache_margin,
                                    roi_scale=w.augment.roi_scale)
            holdout["68"], sources = faces, sources + [WildSource(faces, 1, w.augment)]
    if w.aflw is not None:
        model_points["aflw21"] = read_points_file(w.aflw.points_file, "aflw21")
        sets.append(LANDMARK_SETS["aflw21"])
        _, val, _ = list_aflw(w.aflw)
        if val:
            faces = load_wild_faces(val, cache="memory", cache_size=w.aflw.augment.size, cache_margin=1.0)
            holdout["aflw21"], sources = faces, sources + [WildSource(faces, 1, w.aflw.augment)]
    wild = WildData(sources, PointLayout(tuple(sets), model_points), holdout)
    return wild.layout, holdout_sets(wild)


def nme_visible(pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray | None = None) -> np.ndarray:
    """Per-face NME ``(N,)`` (fraction): mean distance over the visible points of ``gt (N, K, 2)`` (NaN = not
    visible; every face needs one) over ``sqrt(w * h)`` of their box, or of ``normaliser``'s visible points
    ``(N, M, 2)`` (e.g. a group of points over the box of the whole face)."""
    d = np.linalg.norm(np.asarray(pred, np.float64)[..., :2] - gt, axis=-1)
    return np.nanmean(d, axis=1) / visible_face_size(gt if normaliser is None else normaliser)


def point_decoder(layout: PointLayout, mm, input_size: int, convention) -> Decoder:
    """The decoder of a run's points: raw params → the layout's ``P`` points in crop pixels (its slots per set)."""
    return Decoder(layout.point_model(mm), input_size, convention)


def predict_holdout(predictor: Predictor, points: Decoder, layout: PointLayout, holdout: HoldoutSet) -> np.ndarray:
    """``(N, K, 3)`` crop pixels: ``predictor``'s points of ``holdout``'s set, decoded by ``points``
    (:func:`point_decoder`)."""
    return points.landmarks(predictor.predict(holdout.crops).params)[:, layout.slots(holdout.landmark_set)]


def evaluate_holdout(predictor: Predictor, points: Decoder, layout: PointLayout, holdout: HoldoutSet) -> dict:
    """:func:`holdout_scores` of ``predictor`` on ``holdout``, its points decoded by ``points``."""
    return holdout_scores(predict_holdout(predictor, points, layout, holdout), holdout)


def holdout_scores(pred: np.ndarray, holdout: HoldoutSet) -> dict:
    """``{"faces", "nme"}`` (percent, mean over faces) of the points ``pred`` predicted for ``holdout``
    (:func:`predict_holdout`); with yaws, ``"yaw"`` (3DDFA's table: |yaw| bins 0-30, 30-60, > 60 and their balanced
    ``mean``)."""
    nme = nme_visible(pred, holdout.points)
    out = {"faces": int(len(nme)), "nme": float(np.mean(nme) * 100)}
    if holdout.yaws is not None:
        out["yaw"] = yaw_table(nme, holdout.yaws)
    return out


class Validation(keras.callbacks.Callback):
    """After every ``every``-th epoch (the model from ``task_fn()``): the NME of each held-out set, its points decoded
    by ``points`` in ``layout``, logged as ``val_<set>_nme``, and (monitor only) AFLW2000-3D's 68-point NME as
    ``val_nme`` / ``val_nme_reannotated`` (``dense``: also the dense 2D NME,
    ``val_dense_2d``). ``select`` names the held-out set whose NME picks the best epoch: ``on_best(epoch, nme)`` is
    called when it improves."""

    def __init__(self, task_fn, layout: PointLayout | None = None, points: Decoder | None = None,
                 holdouts: list[HoldoutSet] = (), aflw2000=None, select: str | None = None, on_best=None,
                 every: int = 1, dense: bool = False):
        super().__init__()
        self.task_fn, self.layout, self.points, self.holdouts = task_fn, layout, points, list(holdouts)
        self.aflw2000, self.select, self.on_best, self.every = aflw2000, select, on_best, every
        self.dense = dense
        self.best, self.best_epoch = math.inf, None

    def measure(self) -> dict:
        """``{log key: value}`` for the current model (a set with yaws: the mean of its three yaw bins, as 3DDFA
        reports AFLW and AFLW2000-3D)."""
        task = self.task_fn()
        predictor = KerasPredictor(task)
        out = {}
        for h in self.holdouts:
            r = evaluate_holdout(predictor, self.points, self.layout, h)
            out[h.metric] = r["yaw"]["mean"] if "yaw" in r else r["nme"]
        if self.aflw2000 is not None:
            r = evaluate_aflw2000(self.aflw2000, ModelUnderTest(task.spec.name, predictor, task.decoder),
                                  task.spec.input_size, dense=("dense_2d",) if self.dense else ())
            out["val_nme"] = r["nme_2d_68"]["original"]["mean"]
            out["val_nme_reannotated"] = r["nme_2d_68"].get("reannotated", {}).get("mean", float("nan"))
            if self.dense:
                out["val_dense_2d"] = r["dense_2d"]["mean"]
        return out

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        values = self.measure()
        logs.update(values)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items())
        print(f"\nepoch {epoch + 1}: {shown}" + (" (AFLW2000-3D: monitor only)" if self.aflw2000 is not None else ""))
        if self.select is not None:
            nme = values[f"val_{self.select}_nme"]
            if nme < self.best:
                self.best, self.best_epoch = nme, epoch + 1
                if self.on_best is not None:
                    self.on_best(epoch + 1, nme)
