"""The per-photo steps of the Beam pipeline around its two RunInference stages, as DoFns: a photo's bytes →
decoded, detected and cropped (:class:`DetectFn`); the box crops' parameters → the refined crops
(:class:`RefineFn`); the refined crops' parameters → the photo's JSON record and per-face rows (:class:`FacesFn`).

The steps are :class:`tf2dasl.reconstruct.Reconstructor`'s, in its order, with the same code: decoding
(:func:`tf2dasl.io.images.decode_image_bytes`, ``--max-pixels``), detection and the FaceBoxes-like box
(:func:`tf2dasl.reconstruct.detection_arrays`, :func:`~tf2dasl.reconstruct.detection_rois`: at most
``max_faces`` faces, the highest-scoring), crops (:mod:`tf2dasl.geometry.roi`), decoding
(:class:`tf2dasl.geometry.decoder.Decoder`), the face records
(``Reconstructor.make_faces``, ``Face.to_json``) and the photo's record (:func:`tf2dasl.batch.image_record`).
Only the regression is elsewhere (:mod:`tf2dasl.beam.model_handler`, inside RunInference, which also gives a
4-channel model's one-pass box crops their empty landmark map, once per batch).

A photo that cannot be used goes to the :data:`DEAD_LETTER` output as ``{"image", "stage", "error"}``: its
bytes unreadable (``read``), not an image, truncated or above ``--max-pixels`` (``decode``), the detector failing
(``detect``) or no face found (``no_face``). A photo with more faces than ``max_faces`` gets its record with the
first of them and a :data:`CAPPED` record ``{"image", "faces", "reconstructed"}`` (``reconstruct``'s ``capped``).
Counters in the ``tf2dasl`` namespace count them (:data:`NAMESPACE`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from ..batch.files import image_record, resize_faces
from ..detect import make_detector
from ..errors import UserError
from ..geometry.decoder import Decoder
from ..geometry.roi import crop_images, roi_from_landmarks
from ..io.images import DEFAULT_MAX_PIXELS, decode_image_bytes
from ..io.model_files import read_spec_and_morphable
from ..reconstruct import DEFAULT_MAX_FACES, Reconstructor, detection_arrays, detection_rois
from .staging import ASSETS_FILES, MODEL_DIR_FILES, local_dir

#: the Beam metrics namespace of the pipeline's counters
NAMESPACE = "tf2dasl"
#: the tag of the dead-letter output of every step
DEAD_LETTER = "dead_letter"
#: the tag of :class:`FacesFn`'s per-face rows (the Parquet table)
FACE_ROWS = "face_rows"
#: the tag of :class:`FacesFn`'s records of photos with more faces than ``max_faces``
CAPPED = "capped"
#: the stages a photo can fail in (the dead-letter records' ``stage``)
STAGES = ("read", "decode", "detect", "no_face", "inference", "crash")


@dataclass(frozen=True)
class PhotoSettings:
    """What the workers need to know, as plain values (pickled to every worker): the model directory (its
    decoder; a local path or any FileSystems URI), the detector (name, assets folder, options), ``max_pixels``
    (None: no limit), ``refine`` (the second, landmark-based crop) and ``max_faces`` (faces reconstructed per
    photo, the highest-scoring; None: all)."""

    model_dir: str
    detector: str = "auto"
    assets: str | None = None
    detector_options: dict = field(default_factory=dict)
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    refine: bool = True
    max_faces: int | None = DEFAULT_MAX_FACES

    def __post_init__(self):
        if "max_faces" in self.detector_options:   # the detector's own cap drops faces without a record
            raise UserError(f"detector_options max_faces={self.detector_options['max_faces']} would drop faces "
                            "silently: pass max_faces instead (the photos over it are listed in the capped records)")


@dataclass
class PhotoCrops:
    """One photo between the steps, F faces, crop side S. ``path`` as matched; ``width``/``height`` of the full
    image and its decode ``reduction`` (:class:`tf2dasl.io.images.DecodedImage`); ``boxes`` ``(F, 4)`` detector
    boxes and ``rois`` ``(F, 4)`` the crops' roi boxes, both in the decoded image's pixels; ``scores`` ``(F,)``;
    ``crops`` ``(F, S, S, 3)`` uint8 for the regressor; ``found``: the faces detected (more than F when
    ``max_faces`` capped them); ``one_pass``: box crops that only place the refined ones (a 4-channel model runs
    one pass on them, with the empty landmark map); ``image`` ``(h, w, 3)`` uint8 BGR, kept until the refined
    crops are cut."""

    path: str
    width: int
    height: int
    reduction: int
    boxes: np.ndarray
    scores: np.ndarray
    rois: np.ndarray
    crops: np.ndarray
    found: int
    one_pass: bool = False
    image: np.ndarray | None = None

    @property
    def num_faces(self) -> int:
        return len(self.crops)


def photo_detector(settings: PhotoSettings):
    """The detector ``settings`` name, its assets copied to this machine when they are remote: what every worker
    builds, and what the launcher builds once to refuse a bad ``--detector`` or ``--assets`` before the run."""
    assets = None if settings.assets is None else local_dir(settings.assets, ASSETS_FILES)
    return make_detector(settings.detector, assets, **settings.detector_options)


def dead_letter(path: str, stage: str, error: str) -> dict:
    """A dead-letter record: the photo, the stage it failed in (:data:`STAGES`) and the one-line reason."""
    return {"image": str(path), "stage": stage, "error": " ".join(str(error).split())}


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the pipeline counter ``name`` (:data:`NAMESPACE`)."""
    Metrics.counter(NAMESPACE, name).inc(n)


@functools.lru_cache(maxsize=None)
def worker_decoder(model_dir: str) -> Decoder:
    """The model directory's decoder, read once per worker process and shared by its DoFns."""
    spec, mm = read_spec_and_morphable(local_dir(model_dir, MODEL_DIR_FILES))
    return Decoder(mm, spec.input_size, spec.crop_convention)


class _DecoderFn(beam.DoFn):
    """A DoFn holding the model directory's decoder (:func:`worker_decoder`: one per worker process)."""

    def __init__(self, settings: PhotoSettings):
        self.settings = settings
        self.decoder: Decoder | None = None

    def setup(self):
        self.decoder = worker_decoder(self.settings.model_dir)


class DetectFn(_DecoderFn):
    """``ReadableFile`` → :class:`PhotoCrops` of the box crops (``image`` kept when a refined crop follows), or a
    dead-letter record."""

    def setup(self):
        super().setup()
        self.detector = photo_detector(self.settings)

    def process(self, readable):
        path = readable.metadata.path
        count("photos")
        try:
            data = readable.read()
        except Exception as exc:  # an OSError of any filesystem (local, GCS, S3): this photo's problem
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(path, "read", f"{path}: cannot read ({exc})"))
            return
        try:
            decoded = decode_image_bytes(data, path, self.settings.max_pixels)
        except UserError as exc:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(path, "decode", exc))
            return
        del data
        try:
            boxes, scores = detection_arrays(self.detector.detect(decoded.image))
        except UserError as exc:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(path, "detect", exc))
            return
        if not len(boxes):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(
                path, "no_face", f"{path}: no face found by the {self.settings.detector} detector"))
            return
        found = len(boxes)
        boxes, scores, rois = detection_rois(self.detector, boxes, scores, self.settings.max_faces)
        crops = crop_images(decoded.image, rois, self.decoder.size)
        refine = self.settings.refine  # the box crop only places the refined one: one pass is enough there
        yield PhotoCrops(path, decoded.width, decoded.height, decoded.reduction, boxes, scores, rois, crops, found,
                         one_pass=refine, image=decoded.image if refine else None)


class RefineFn(_DecoderFn):
    """RunInference's result on the box crops → :class:`PhotoCrops` of the refined crops (roi boxes from the
    decoded landmarks, 3DDFA_V2's ``parse_roi_box_from_landmark``); the image is dropped here."""

    def process(self, result):
        photo, params = result.example, result.inference
        rois = roi_from_landmarks(self.decoder.landmarks(params, photo.rois))
        yield replace(photo, rois=rois, crops=crop_images(photo.image, rois, self.decoder.size), one_pass=False,
                      image=None)


class FacesFn(_DecoderFn):
    """RunInference's result on the final crops → the photo's JSON record (``tf2dasl reconstruct``'s, in
    full-image pixels), one :data:`FACE_ROWS` row per face (``image``, ``face`` index and the face's record), and
    a :data:`CAPPED` record when the photo has more faces than were reconstructed."""

    def process(self, result):
        photo, params = result.example, result.inference
        faces = Reconstructor.make_faces(photo.boxes, photo.scores, photo.rois, params,
                                         self.decoder.landmarks(params, photo.rois))
        faces = resize_faces(faces, float(photo.reduction))
        record = image_record(photo.path, None, faces, (photo.width, photo.height), photo.reduction)
        count("photos_written")
        count("faces", len(faces))
        if photo.found > len(faces):
            count("photos_capped")
            yield beam.pvalue.TaggedOutput(CAPPED, {"image": record["image"], "faces": photo.found,
                                                    "reconstructed": len(faces)})
        for i, face in enumerate(record["faces"]):
            yield beam.pvalue.TaggedOutput(FACE_ROWS, {"image": record["image"], "face": i, **face})
        yield record
