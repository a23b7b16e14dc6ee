"""Fit the model point of each AFLW point (``tf2dasl fit-landmarks``): the mesh vertex (or 68-point midpoint) whose
projection, through a model's meshes, best fits the annotations on AFLW's training faces.

The result is a YAML file a training config names (``data.wild.aflw.points_file``); a picture draws, on crops,
the annotations next to the fitted model points and the naive 68-point correspondence.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..data.correspondence import VertexFit, VertexFitter, pair_points, point_errors
from ..data.data_config import AflwDataConfig
from ..data.datasets import list_aflw
from ..data.landmark_sets import AFLW21_NAIVE_68, AFLW21_NAMES, AFLW_21
from ..inference.keras_runtime import KerasPredictor
from ..io.images import read_image
from ..io.outputs import make_folder, write_image, write_text
from ..models.task import FaceTask

#: faces to fit on by default
DEFAULT_FACES = 1500
#: faces whose meshes are projected at a time (38,365 vertices each)
CHUNK = 50


@dataclass
class AflwFit:
    """The fit: ``fit`` (:class:`VertexFit`), ``naive_error (21,)`` %, the faces used (``names``), their crops and
    annotations (for drawing) and the model points projected on them."""

    fit: VertexFit
    naive_error: np.ndarray
    names: list
    crops: np.ndarray
    points: np.ndarray
    fitted: np.ndarray
    naive: np.ndarray


def fit_aflw_points(aflw: AflwDataConfig, model: FaceTask, faces: int = DEFAULT_FACES, seed: int = 0,
                    log=print) -> AflwFit:
    """Fit AFLW's 21 model points on ``faces`` training faces of ``aflw`` (its validation split excluded) with
    ``model`` (a model with a dense morphable model) predicting the meshes."""
    model.mm.require_dense()
    decoder = model.decoder
    train, val, dropped = list_aflw(aflw)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), min(faces, len(train)), replace=False))
    samples = [train[i] for i in pick]
    log(f"fitting on {len(samples)} of {len(train)} AFLW training faces ({len(val)} validation faces excluded, "
        f"{len(dropped)} with annotations outside their crop left out)")
    crops = np.stack([read_image(s.image_path) for s in samples])
    points = np.stack([s.landmarks for s in samples]).astype(np.float32)
    t0 = time.time()
    params = KerasPredictor(model).predict(crops).params
    naive_pairs = np.asarray([[model.mm.landmark_vertices[a], model.mm.landmark_vertices[b]]
                              for a, b in AFLW21_NAIVE_68], np.int64)
    fitter = VertexFitter(model.mm.num_vertices, naive_pairs)
    for s in range(0, len(samples), CHUNK):
        fitter.add(decoder.vertices(params[s:s + CHUNK])[..., :2], points[s:s + CHUNK])
    fit = fitter.result()
    log(f"fitted in {time.time() - t0:.0f} s")
    lm = decoder.landmarks(params)[..., :2]
    naive = np.stack([(lm[:, a] + lm[:, b]) / 2 for a, b in AFLW21_NAIVE_68], 1)
    fitted = np.concatenate([pair_points(decoder.vertices(params[s:s + CHUNK])[..., :2], fit.pairs)
                             for s in range(0, len(samples), CHUNK)])
    return AflwFit(fit, point_errors(naive, points), [Path(s.image_path).name for s in samples], crops, points,
                   fitted, naive)


def points_yaml(result: AflwFit, command: str, model_dir: str) -> str:
    """The points file: ``landmark_set``, provenance, and per point its vertices and errors."""
    f = result.fit
    rows = [{"name": AFLW21_NAMES[k], "vertices": [int(v) for v in f.pairs[k]], "error": round(float(f.error[k]), 3),
             "naive_error": round(float(result.naive_error[k]), 3), "faces": int(f.count[k])}
            for k in range(AFLW_21.size)]
    head = (f"# AFLW's 21 points as model points (mean of two mesh vertices; equal: one vertex), fitted by\n"
            f"#   {command}\n# error / naive_error: mean distance to the annotations in % of the visible points' "
            f"box size, fitted vs the naive\n# AFLW -> 68-point map, over the faces where the point is visible\n")
    body = {"landmark_set": AFLW_21.name, "model": str(model_dir), "faces": len(result.names),
            "mean_error": round(float(np.mean(f.error)), 3), "mean_naive_error": round(float(np.mean(result.naive_error)), 3),
            "points": rows}
    return head + yaml.safe_dump(body, sort_keys=False, width=120, default_flow_style=None)


def draw_fit(result: AflwFit, count: int = 12, scale: int = 3, columns: int = 4) -> np.ndarray:
    """A grid of ``count`` crops (upscaled ``scale`` x): annotations (green circles), fitted model points (red
    crosses), the naive 68-point correspondence (blue dots), thin lines from each annotation to its fitted point."""
    idx = np.linspace(0, len(result.crops) - 1, count).astype(int)
    tiles = []
    for i in idx:
        img = cv2.resize(result.crops[i], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        for k in range(AFLW_21.size):
            p = result.points[i, k]
            f = result.fitted[i, k] * scale
            n = result.naive[i, k] * scale
            cv2.circle(img, tuple(np.rint(n).astype(int)), 2, (255, 80, 0), -1, cv2.LINE_AA)
            if np.isfinite(p).all():
                a = p * scale
                cv2.line(img, tuple(np.rint(a).astype(int)), tuple(np.rint(f).astype(int)), (0, 200, 255), 1,
                         cv2.LINE_AA)
                cv2.circle(img, tuple(np.rint(a).astype(int)), 4, (0, 220, 0), 1, cv2.LINE_AA)
            x, y = np.rint(f).astype(int)
            cv2.line(img, (x - 3, y - 3), (x + 3, y + 3), (0, 0, 255), 1, cv2.LINE_AA)
            cv2.line(img, (x - 3, y + 3), (x + 3, y - 3), (0, 0, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * h + 28, columns * w, 3), 255, np.uint8)
    for j, t in enumerate(tiles):
        grid[(j // columns) * h:(j // columns + 1) * h, (j % columns) * w:(j % columns + 1) * w] = t
    cv2.putText(grid, "green o: AFLW annotation   red x: fitted model point   blue .: naive 68-point map",
                (8, rows * h + 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def write_fit(result: AflwFit, out: Path, command: str, model_dir: str, draw_dir: Path | None = None) -> list[Path]:
    """Write the points YAML (and the picture into ``draw_dir``); returns the written paths."""
    make_folder(Path(out).parent)
    written = [write_text(out, points_yaml(result, command, model_dir))]
    if draw_dir is not None:
        make_folder(draw_dir)
        written.append(write_image(Path(draw_dir) / f"{Path(out).stem}_fit.png", draw_fit(result)))
    return written
