"""Box calibration: a detector's box → the FaceBoxes-like box whose 3DDFA_V2 roi is the landmark roi.

The reconstructor crops a detected face with 3DDFA_V2's ``parse_roi_box_from_bbox``
(:func:`tf2dasl.geometry.roi.roi_from_bbox`, tuned for FaceBoxes' boxes). Each detector maps its own box
first (:meth:`tf2dasl.detect.FaceDetector.box_to_faceboxes`: a square of side ``scale * s`` centred at
``(cx + shift_x * s, cy + shift_y * s)``, ``s`` the box's mean side). The constants are fitted so that the
roi of the mapped box is the crop the regressor should see: the roi 3DDFA_V2 computes from the face's
ground-truth 68 landmarks (``parse_roi_box_from_landmark``, :func:`tf2dasl.geometry.roi.roi_from_landmarks`;
the oracle crop of ``tf2dasl evaluate 300w --boxes oracle``).

:func:`target_boxes` inverts the bbox roi rule (without its ``floor`` of the side): the square box whose bbox
roi is the landmark roi. :func:`fit_box_map` takes, over the detected faces, the **medians** of the target's
side over the detected box's mean side and of the centre offsets over that side (robust to the odd poor box);
:func:`roi_agreement` scores a map by the IoU of its rois with the landmark rois. Numpy only, no I/O:
``benchmarks/detection_rate.py --calibrate`` runs detectors over ``../shared/data/300w`` and prints the fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.roi import BBOX_ROI_SCALE, BBOX_ROI_SHIFT_Y, roi_from_bbox, roi_from_landmarks
from .base import box_iou, scale_shift_box

#: An roi counts as a good crop when its IoU with the landmark roi reaches this (reported as a share).
GOOD_ROI_IOU = 0.8


@dataclass(frozen=True)
class BoxMap:
    """The constants of :func:`tf2dasl.detect.base.scale_shift_box` (``box_to_faceboxes``)."""

    scale: float
    shift_x: float
    shift_y: float

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        return scale_shift_box(boxes, self.scale, self.shift_x, self.shift_y)

    def __str__(self) -> str:
        return f"scale={self.scale:.3f} shift_x={self.shift_x:.3f} shift_y={self.shift_y:.3f}"


IDENTITY = BoxMap(1.0, 0.0, 0.0)


def target_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks ``(B, 68, >=2)`` image pixels → the square boxes ``(B, 4)`` whose 3DDFA_V2 bbox roi
    (:func:`roi_from_bbox`, side ``1.58 s`` centred ``0.14 s`` below the box centre; its floor left out) is
    :func:`roi_from_landmarks` of the landmarks."""
    roi = roi_from_landmarks(landmarks).astype(np.float64)
    side = (roi[:, 2] - roi[:, 0]) / BBOX_ROI_SCALE
    cx = (roi[:, 0] + roi[:, 2]) / 2
    cy = (roi[:, 1] + roi[:, 3]) / 2 - BBOX_ROI_SHIFT_Y * side
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)


def fit_box_map(boxes: np.ndarray, landmarks: np.ndarray) -> BoxMap:
    """The map of detected boxes ``(B, 4)`` onto :func:`target_boxes` of their faces' landmarks
    ``(B, 68, >=2)``: medians of the side ratio and of the centre offsets (in units of the box's mean side)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        raise ValueError("no detected faces to fit the box map on")
    t = target_boxes(landmarks)
    s = ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2
    scale = (t[:, 2] - t[:, 0]) / s
    dx = ((t[:, 0] + t[:, 2]) - (b[:, 0] + b[:, 2])) / 2 / s
    dy = ((t[:, 1] + t[:, 3]) - (b[:, 1] + b[:, 3])) / 2 / s
    return BoxMap(float(np.median(scale)), float(np.median(dx)), float(np.median(dy)))


def roi_agreement(boxes: np.ndarray, landmarks: np.ndarray, box_map: BoxMap) -> dict:
    """How well the rois of mapped boxes ``(B, 4)`` match the landmark rois: ``{"iou_mean",
    "good_share"`` (IoU >= :data:`GOOD_ROI_IOU`), ``"side_ratio_median"`` (roi side / landmark roi side),
    ``"centre_offset_median"`` (centre distance / landmark roi side)``}``."""
    rois = roi_from_bbox(box_map(np.asarray(boxes, np.float32).reshape(-1, 4))).astype(np.float64)
    ref = roi_from_landmarks(landmarks).astype(np.float64)
    iou = np.diag(box_iou(rois, ref)) if len(rois) else np.zeros(0)
    side = (rois[:, 2] - rois[:, 0]) / (ref[:, 2] - ref[:, 0])
    off = np.hypot(*((rois[:, :2] + rois[:, 2:]) / 2 - (ref[:, :2] + ref[:, 2:]) / 2).T) / (ref[:, 2] - ref[:, 0])
    return {"iou_mean": float(iou.mean()), "good_share": float((iou >= GOOD_ROI_IOU).mean()),
            "side_ratio_median": float(np.median(side)), "centre_offset_median": float(np.median(off))}
