"""Landmark sets of the training data and the *point layout* that puts several of them in one tensor.

A training face carries the points of one set — 300-W's 68 or AFLW's 21 — with NaN where a point is not
visible (a missing point is never a zero coordinate). Each :class:`LandmarkSet` knows its mirror permutation
and which of its points are 2DASL's 18 landmark-map points (in :data:`MAP_POINT_PAIRS` order, as pairs whose
mean is the map point). Its model side is a list of *model points*: the 68 model landmarks for 300-W's set,
mesh vertices fitted to the annotations for AFLW's (``tf2dasl fit-landmarks``): AFLW's points are not the
68-point definitions (its brows sit lower, its nostrils wider), so the naive AFLW → 68 map teaches the wrong
points.

A :class:`PointLayout` stacks the sets of one training run into ``P`` *slots* (``(B, P, 2)`` tensors, 68 first):
every face fills the slots of its own set and leaves NaN in the others. Losses read the visibility from the
NaNs; the network's predictions fill every slot (the morphable model's bases for the layout's model points).
No TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import UserError
from ..geometry.landmark_map import MAP_POINT_PAIRS, MAP_POINT_WEIGHTS, NUM_MAP_POINTS
from ..geometry.morphable_model import FLIP_PERMUTATION_68, MorphableModel

#: AFLW's 21 points (image-left/right as seen in the photo), the order of ``aflw_wild/annotations.npz``
AFLW21_NAMES = ("left brow outer", "left brow centre", "left brow inner", "right brow inner", "right brow centre",
                "right brow outer", "left eye outer", "left eye centre", "left eye inner", "right eye inner",
                "right eye centre", "right eye outer", "left ear", "left nostril", "nose tip", "right nostril",
                "right ear", "left mouth corner", "mouth centre", "right mouth corner", "chin")
#: mirror permutation of AFLW's 21 points (left <-> right)
FLIP_PERMUTATION_21 = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20], np.int32)
#: AFLW's points that are 2DASL's 18 map points, in map order (brows, eyes, nose, mouth): all but ears and chin
AFLW21_MAP_INDICES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 17, 18, 19)
#: the naive AFLW → 68 correspondence (68-point index pairs whose mean is AFLW's point); measured worse than
#: fitted vertices (docs/training.md), kept to draw the comparison
AFLW21_NAIVE_68 = ((17, 17), (19, 19), (21, 21), (22, 22), (24, 24), (26, 26), (36, 36), (37, 40), (39, 39),
                   (42, 42), (43, 46), (45, 45), (0, 0), (31, 31), (30, 30), (35, 35), (16, 16), (48, 48),
                   (62, 66), (54, 54), (8, 8))


@dataclass(frozen=True)
class LandmarkSet:
    """A set of ``size`` annotated points: ``flip`` permutation, ``map_pairs`` (18 ``(a, b)`` index pairs into the
    set whose mean is each map point, in the map's order) and ``map_weights`` (2DASL's 2.0/1.0/0.5)."""

    name: str
    size: int
    flip: tuple
    map_pairs: tuple
    names: tuple = ()

    def __post_init__(self):
        if sorted(self.flip) != list(range(self.size)) or len(self.map_pairs) != NUM_MAP_POINTS:
            raise ValueError(f"landmark set {self.name}: bad flip permutation or map points")

    @property
    def map_weights(self) -> np.ndarray:
        return np.asarray(MAP_POINT_WEIGHTS, np.float32)

    def map_matrix(self) -> np.ndarray:
        """``(18, size)``: ``map_points = M @ points`` (the mean of each pair)."""
        m = np.zeros((NUM_MAP_POINTS, self.size), np.float32)
        for k, (a, b) in enumerate(self.map_pairs):
            m[k, a] += 0.5
            m[k, b] += 0.5
        return m


LANDMARKS_68 = LandmarkSet("68", 68, tuple(int(i) for i in FLIP_PERMUTATION_68), MAP_POINT_PAIRS)
AFLW_21 = LandmarkSet("aflw21", 21, tuple(int(i) for i in FLIP_PERMUTATION_21),
                      tuple((i, i) for i in AFLW21_MAP_INDICES), AFLW21_NAMES)
LANDMARK_SETS = {s.name: s for s in (LANDMARKS_68, AFLW_21)}
#: how landmark losses pick and weigh points: every annotated point alike, or the 18 map points (2DASL's weights)
POINT_SELECTIONS = ("all", "map18")


@dataclass
class PointLayout:
    """The slots of one training run: the 68 model landmarks first, then each further set's points.

    ``model_points[name]``: ``(K, 2)`` mesh-vertex pairs, the model point of each point of a non-68 set (the mean
    of the two vertices; equal indices: one vertex). ``offsets[name]``: the set's first slot. ``size``: ``P``."""

    sets: tuple = (LANDMARKS_68,)
    model_points: dict = field(default_factory=dict)

    def __post_init__(self):
        self.sets = tuple(self.sets)
        if not self.sets or self.sets[0] is not LANDMARKS_68:
            raise ValueError("a point layout starts with the 68-point set (the model's own landmarks)")
        for s in self.sets[1:]:
            v = np.asarray(self.model_points.get(s.name, ()), np.int64).reshape(-1, 2)
            if len(v) != s.size:
                raise ValueError(f"landmark set {s.name} needs {s.size} model points (tf2dasl fit-landmarks), "
                                 f"got {len(v)}")
            self.model_points[s.name] = v
        self.offsets, start = {}, 0
        for s in self.sets:
            self.offsets[s.name] = start
            start += s.size
        self.size = start

    def slots(self, name: str) -> slice:
        start = self.offsets[name]
        return slice(start, start + LANDMARK_SETS[name].size)

    def loss_points(self, selection: str | dict = "all") -> tuple[np.ndarray, np.ndarray]:
        """``(A (K, P), w (K,))``: the points a landmark loss compares (``A @ points``) and their weights.

        ``selection`` per set (one name for all sets, or ``{set name: name}``): ``all`` — every point, weight 1;
        ``map18`` — the set's 18 map points (means of pairs) with 2DASL's 2.0/1.0/0.5 weights (300-W's jaw, which
        follows the silhouette, is then not compared). A face's rows of other sets are NaN in its target and drop
        out."""
        picks = {s.name: selection if isinstance(selection, str) else selection.get(s.name, "all") for s in self.sets}
        rows, weights = [], []
        for s in self.sets:
            pick = picks[s.name]
            if pick == "all":
                a, w = np.eye(s.size, dtype=np.float32), np.ones(s.size, np.float32)
            elif pick == "map18":
                a, w = s.map_matrix(), s.map_weights
            else:
                raise ValueError(f"unknown point selection {pick!r} for landmark set {s.name} "
                                 f"({' or '.join(POINT_SELECTIONS)})")
            block = np.zeros((len(a), self.size), np.float32)
            block[:, self.slots(s.name)] = a
            rows.append(block)
            weights.append(w)
        return np.concatenate(rows), np.concatenate(weights)

    def bases(self, u_base, w_shp_base, w_exp_base, u=None, w_shp=None, w_exp=None):
        """The morphable model's bases for the ``P`` slots: ``(3P,)``, ``(3P, 40)``, ``(3P, 10)`` x,y,z-interleaved
        — the 68-point bases, then the mean of each model point's two dense vertices (needs the dense bases)."""
        out = [np.asarray(u_base, np.float32), np.asarray(w_shp_base, np.float32), np.asarray(w_exp_base, np.float32)]
        if len(self.sets) == 1:
            return tuple(out)
        if u is None:
            raise ValueError("a point layout with fitted model points needs the dense morphable model")
        pairs = np.concatenate([self.model_points[s.name] for s in self.sets[1:]])
        rows = [(pairs[:, j, None] * 3 + np.arange(3)).reshape(-1) for j in (0, 1)]
        for i, dense in enumerate((u, w_shp, w_exp)):
            dense = np.asarray(dense, np.float32)
            out[i] = np.concatenate([out[i], (dense[rows[0]] + dense[rows[1]]) / 2], axis=0)
        return tuple(out)

    def point_model(self, mm: MorphableModel) -> MorphableModel:
        """A sparse morphable model whose points are the layout's ``P`` slots (:meth:`bases`), with ``mm``'s
        whitening: decode it with :class:`~tf2dasl.geometry.decoder.Decoder` (numpy) or
        :class:`~tf2dasl.models.morphable.MorphableLayer` (TF)."""
        u, w_shp, w_exp = self.bases(mm.u_base, mm.w_shp_base, mm.w_exp_base, mm.u, mm.w_shp, mm.w_exp)
        return MorphableModel(u_base=u, w_shp_base=w_shp, w_exp_base=w_exp, param_mean=mm.param_mean,
                              param_std=mm.param_std)

    def to_dict(self) -> dict:
        """``{set name: [[a, b], ...]}`` for the non-68 sets (a model directory's provenance records it)."""
        return {s.name: self.model_points[s.name].tolist() for s in self.sets[1:]}


def read_points_file(path, name: str) -> np.ndarray:
    """The model points ``(K, 2)`` of landmark set ``name`` from a ``tf2dasl fit-landmarks`` YAML (a
    :class:`~tf2dasl.errors.UserError` naming the file when it is missing or does not fit the set)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: landmark points file not found (write it with tf2dasl fit-landmarks)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    lset = LANDMARK_SETS[name]
    if not isinstance(data, dict) or data.get("landmark_set") != name or not isinstance(data.get("points"), list):
        raise UserError(f"{path}: expected landmark_set: {name} and a list of points (tf2dasl fit-landmarks)")
    try:
        pairs = np.array([p["vertices"] for p in data["points"]], np.int64)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: every point needs vertices: [a, b]") from None
    if pairs.shape != (lset.size, 2) or (pairs < 0).any():
        raise UserError(f"{path}: expected {lset.size} points with vertices [a, b] (>= 0), got {pairs.shape}")
    return pairs
