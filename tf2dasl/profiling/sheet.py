"""Contact sheets of profiled views, for eyeballing: one row per source face — its crop, then its views by yaw —
each view with its label's 68 landmarks drawn (they should sit on the rendered face)."""
from __future__ import annotations

import cv2
import numpy as np

#: landmark dots on a sheet (BGR)
DOT_COLOUR = (0, 255, 0)
#: grey between the tiles of a sheet
GAP_COLOUR = (40, 40, 40)


def draw_points(image: np.ndarray, points: np.ndarray, radius: int = 1) -> np.ndarray:
    """A copy of ``image (S, S, 3)`` with ``points (K, 2)`` drawn as dots."""
    out = image.copy()
    for x, y in np.asarray(points):
        cv2.circle(out, (int(round(float(x))), int(round(float(y)))), radius, DOT_COLOUR, -1, cv2.LINE_AA)
    return out


def tile_rows(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Rows of equal-sized tiles ``(S, S, 3)`` → one image, short rows padded, ``gap`` pixels between tiles."""
    size = rows[0][0].shape[0]
    cols = max(len(r) for r in rows)
    h, w = len(rows) * (size + gap) - gap, cols * (size + gap) - gap
    sheet = np.empty((h, w, 3), np.uint8)
    sheet[:] = GAP_COLOUR
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            sheet[i * (size + gap):i * (size + gap) + size, j * (size + gap):j * (size + gap) + size] = tile
    return sheet


def contact_sheet(sources: list[np.ndarray], views: list[list[np.ndarray]], landmarks: list[list[np.ndarray]],
                  yaws: list[list[float]]) -> np.ndarray:
    """One row per source: ``sources[i] (S, S, 3)``, then its ``views[i]`` with their ``landmarks[i]`` drawn, in
    order of yaw ``yaws[i]``."""
    rows = []
    for src, vs, lms, ys in zip(sources, views, landmarks, yaws):
        order = np.argsort(ys)
        rows.append([src] + [draw_points(vs[k], lms[k]) for k in order])
    return tile_rows(rows)
