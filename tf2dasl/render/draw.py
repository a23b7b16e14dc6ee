"""Pictures of results: landmarks, pose axes and the shaded mesh over the photo; depth and PNCC renders.

Images are ``(H, W, 3)`` uint8 BGR; faces are :class:`tf2dasl.reconstruct.Face` (image pixels).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..geometry.pose import angles_to_matrix
from .shading import render_depth, render_pncc, render_shaded

LANDMARK_COLOR = (80, 255, 80)          # BGR
AXIS_COLORS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # x red, y green, z blue (BGR)
#: Pose axes are drawn from the nose tip (landmark 30) with this fraction of the face's size.
AXIS_LENGTH = 0.5
NOSE_TIP = 30
#: Polylines of the 68-point markup (jaw, brows, nose, eyes, lips); closed ones end where they start.
CONTOURS = ((range(0, 17), False), (range(17, 22), False), (range(22, 27), False), (range(27, 31), False),
            (range(31, 36), False), (range(36, 42), True), (range(42, 48), True), (range(48, 60), True),
            (range(60, 68), True))


def _scale(image: np.ndarray) -> int:
    return max(1, int(round(max(image.shape[:2]) / 600)))


def draw_landmarks(image: np.ndarray, landmarks_2d: np.ndarray, color=LANDMARK_COLOR) -> np.ndarray:
    """Draw the 68 points ``(68, 2)`` and their contours onto a copy of ``image``."""
    out = image.copy()
    t = _scale(image)
    pts = np.round(np.asarray(landmarks_2d)[:, :2] * 16).astype(np.int32)  # 4 fractional bits
    for idx, closed in CONTOURS:
        cv2.polylines(out, [pts[list(idx)]], closed, color, t, cv2.LINE_AA, shift=4)
    for p in pts:
        cv2.circle(out, tuple(int(v) for v in p), 16 * (t + 1), color, -1, cv2.LINE_AA, shift=4)
    return out


def draw_pose_axes(image: np.ndarray, face) -> np.ndarray:
    """Draw the head's x (red), y (green) and z (blue, towards the viewer) axes at the nose tip."""
    out = image.copy()
    R = angles_to_matrix(np.asarray(face.pose, np.float64)[None])[0]
    lm = face.landmarks_2d
    length = AXIS_LENGTH * float(np.ptp(lm[:, 0]) + np.ptp(lm[:, 1])) / 2
    origin = lm[NOSE_TIP]
    for k, color in enumerate(AXIS_COLORS):
        d = R[:, k] * np.array([1.0, -1.0, 1.0])  # model frame y up → image y down
        end = origin + length * d[:2]
        cv2.arrowedLine(out, tuple(np.round(origin).astype(int)), tuple(np.round(end).astype(int)), color,
                        _scale(image) + 1, cv2.LINE_AA, tipLength=0.15)
    return out


def overlay(image: np.ndarray, faces: Sequence, triangles: np.ndarray | None = None, mesh: bool = True) -> np.ndarray:
    """The shaded dense mesh (if ``triangles``), 68 landmarks and pose axes of every face over the photo."""
    out = image
    if mesh and triangles is not None and faces:
        out = render_shaded(out, [f.vertices for f in faces], triangles)
    for f in faces:
        out = draw_landmarks(out, f.landmarks_2d)
        out = draw_pose_axes(out, f)
    return out.copy() if out is image else out


def depth_image(image: np.ndarray, faces: Sequence, triangles: np.ndarray) -> np.ndarray:
    return render_depth(image, [f.vertices for f in faces], triangles)


def pncc_image(image: np.ndarray, faces: Sequence, triangles: np.ndarray, ncc: np.ndarray) -> np.ndarray:
    return render_pncc(image, [f.vertices for f in faces], triangles, ncc)
