"""Face boxes → square roi boxes → 120x120 crops (numpy + OpenCV), 3DDFA_V2's rules.

Boxes and roi boxes are ``[x0, y0, x1, y1]`` in 0-based image pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

#: 3DDFA_V2's ``parse_roi_box_from_bbox``: the roi is 1.58x the box's mean side, shifted down by 0.14 of it.
BBOX_ROI_SCALE = 1.58
BBOX_ROI_SHIFT_Y = 0.14
#: 3DDFA_V2's ``parse_roi_box_from_landmark``: the roi side is the diagonal of the landmarks' square box.
ROI_LANDMARK_SCALE = float(np.sqrt(2.0))


def roi_from_bbox(boxes: np.ndarray) -> np.ndarray:
    """Detector boxes ``(B, 4)`` → square roi boxes ``(B, 4)`` (3DDFA_V2's rule, incl. its int() of the side)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    old = (b[:, 2] - b[:, 0] + b[:, 3] - b[:, 1]) / 2
    cx = b[:, 2] - (b[:, 2] - b[:, 0]) / 2.0
    cy = b[:, 3] - (b[:, 3] - b[:, 1]) / 2.0 + old * BBOX_ROI_SHIFT_Y
    side = np.floor(old * BBOX_ROI_SCALE)
    x0, y0 = cx - side / 2, cy - side / 2
    return np.stack([x0, y0, x0 + side, y0 + side], 1).astype(np.float32)


def landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """The boxes ``(F, 4)`` float32 ``[x0, y0, x1, y1]`` of landmarks ``(F, K, >=2)``: the box a face given by its
    landmarks (``.pts``) or tracked from frame to frame reports (the same definition whether or not a detector ran)."""
    lm = np.asarray(landmarks)[..., :2]
    return np.concatenate([lm.min(1), lm.max(1)], axis=1).astype(np.float32)


def roi_center_side(points: np.ndarray, roi_scale: float = ROI_LANDMARK_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``(B, K, >=2)`` → roi centres ``(B, 2)`` and sides ``(B,)``: the landmark box made square on its
    longer side, times ``roi_scale`` (3DDFA_V2's ``parse_roi_box_from_landmark``: sqrt(2), the square's diagonal).
    TF twin: :func:`tf2dasl.geometry.tf_ops.roi_center_side`."""
    p = np.asarray(points, np.float64)
    lo, hi = p[..., :2].min(axis=1), p[..., :2].max(axis=1)
    return (lo + hi) / 2, roi_scale * (hi - lo).max(axis=1)


def roi_from_landmarks(points: np.ndarray, roi_scale: float = ROI_LANDMARK_SCALE) -> np.ndarray:
    """Landmarks ``(B, K, >=2)`` in image pixels → roi boxes ``(B, 4)`` (3DDFA_V2's ``parse_roi_box_from_landmark``,
    :func:`roi_center_side`)."""
    c, side = roi_center_side(points, roi_scale)
    x0, y0 = c[:, 0] - side / 2, c[:, 1] - side / 2
    return np.stack([x0, y0, x0 + side, y0 + side], 1).astype(np.float32)


#: Pixels of the largest roi box cropped as 3DDFA_V2 does it (the zero-padded box, then resized): larger boxes
#: are warped straight to the crop (:func:`crop_image`), so a box far outside its image costs no more memory.
CROP_MAX_PADDED_PIXELS = 4096 * 4096


def crop_image(image: np.ndarray, roi_box, size: int = 120) -> np.ndarray:
    """Crop ``image (H, W, C)`` to the rounded roi box (zero padding outside) and resize to ``(size, size, C)``.

    Matches 3DDFA_V2's ``crop_img`` followed by ``cv2.resize(..., INTER_LINEAR)``. A box of more than
    :data:`CROP_MAX_PADDED_PIXELS` is sampled by one affine warp instead (the same bilinear map of output pixel
    centres into the box, zeros outside the image), so no box, however large, allocates more than that.
    """
    h, w = image.shape[:2]
    sx, sy, ex, ey = [int(round(float(v))) for v in roi_box]
    dh, dw = ey - sy, ex - sx
    if dh <= 0 or dw <= 0:
        raise ValueError(f"empty roi box {list(roi_box)}")
    if dh * dw > CROP_MAX_PADDED_PIXELS:
        # cv2.resize samples output pixel i at (i + 0.5) * d / size - 0.5 of the padded box
        m = np.array([[dw / size, 0.0, sx + 0.5 * dw / size - 0.5], [0.0, dh / size, sy + 0.5 * dh / size - 0.5]])
        out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.reshape((size, size) + image.shape[2:])
    out = np.zeros((dh, dw) + image.shape[2:], dtype=image.dtype)
    x0, y0, x1, y1 = max(sx, 0), max(sy, 0), min(ex, w), min(ey, h)
    if x1 > x0 and y1 > y0:
        out[y0 - sy:y1 - sy, x0 - sx:x1 - sx] = image[y0:y1, x0:x1]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)


def crop_images(image: np.ndarray, roi_boxes: np.ndarray, size: int = 120) -> np.ndarray:
    """Crops of several roi boxes ``(B, 4)`` → ``(B, size, size, C)``."""
    if len(roi_boxes) == 0:
        return np.zeros((0, size, size) + image.shape[2:], image.dtype)
    return np.stack([crop_image(image, r, size) for r in roi_boxes])
