"""The SavedModel for TF Serving: :class:`ServingModule` (two signatures over :class:`~tf2dasl.models.task.FaceTask`),
the in-graph image decoding and cropping of ``predict_image``, and the warm-up requests.

Signatures (all outputs float32; shapes and dtypes in export.json come from the traced functions themselves,
:func:`tf2dasl.export.manifest.describe_function`):

* ``serving_default``: ``crops`` uint8 ``[N, S, S, 3]`` in the model's colour order (BGR for 3DDFA_V2
  weights) → ``params_whitened`` ``(N, 62)``, ``params`` ``(N, 62)`` raw, ``landmarks_2d`` ``(N, 68, 2)``
  and ``landmarks_3d`` ``(N, 68, 3)`` in crop pixels, ``pose`` ``(N, 3)`` yaw/pitch/roll degrees
  (+ ``vertices`` ``(N, V, 3)`` crop pixels with ``dense=True``).
* ``with_map`` (4-channel models only): ``crops`` as above and ``maps`` float32 ``[N, S, S]`` landmark maps →
  the same outputs from one pass with those maps (the reconstructor's ``--pts`` faces, or the empty map for
  one pass).
* ``predict_image``: ``images`` string ``[N]`` encoded JPEG/PNG/BMP/GIF bytes, ``roi_boxes`` float32
  ``[N, 4]`` ``(x0, y0, x1, y1)`` image pixels → the same outputs plus ``landmarks_2d_image`` ``(N, 68, 2)``,
  ``landmarks_3d_image`` ``(N, 68, 3)`` in image pixels (and ``vertices_image`` with ``dense=True``).
  Decoding (RGB → BGR), cropping and resizing happen in the graph and reproduce
  :func:`tf2dasl.geometry.roi.crop_image` (rounded roi, zero padding, half-pixel bilinear resize, rounded
  to uint8 levels; JPEGs decoded with the accurate IDCT, as OpenCV does) up to OpenCV's fixed-point
  interpolation weights (crops differ by at most a level or two).

Normalisation, the two passes of a 4-channel model and the morphable decoding are the task model's
(:class:`~tf2dasl.models.task.FaceTask`); nothing here re-implements them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from ..geometry.morphable_model import NUM_LANDMARKS
from ..inference.crops import MAP_CHANNELS
from ..inference.export_dir import DEFAULT_SIGNATURE, MAP_SIGNATURE
from ..inference.serving_client import IMAGE_SIGNATURE
from ..models.task import FaceTask
from .common import ExportError, hold, tf_variables_of

SIGNATURES = (DEFAULT_SIGNATURE, MAP_SIGNATURE, IMAGE_SIGNATURE)
WARMUP_BATCH_SIZES = (1, 8)
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
#: What each signature tensor means (export.json's "note"; shapes and dtypes come from the traced functions).
NOTES = {
    "images": "encoded JPEG/PNG/BMP/GIF bytes",
    "roi_boxes": "x0, y0, x1, y1 in image pixels",
    "maps": "landmark maps: -1, +1 at the 18 map points (tf2dasl.geometry.landmark_map)",
    "params_whitened": None,
    "params": "raw 3DDFA parameters",
    "landmarks_2d": "crop pixels, 0-based, y down",
    "landmarks_3d": "crop pixels, 0-based, y down",
    "pose": "yaw, pitch, roll in degrees",
    "vertices": "dense mesh, crop pixels",
    "landmarks_2d_image": "image pixels",
    "landmarks_3d_image": "image pixels",
    "vertices_image": "dense mesh, image pixels",
}


class ServingModule(tf.Module):
    """The SavedModel for TF Serving: a :class:`FaceTask` with pre- and post-processing inside.

    ``serving_default(crops uint8 [N, S, S, 3])``, ``with_map(crops, maps float32 [N, S, S])`` (4-channel models)
    and ``predict_image(images string [N], roi_boxes float32 [N, 4])``: see the module docstring for their outputs.
    """

    def __init__(self, model: FaceTask, dense: bool = False):
        super().__init__(name="tf2dasl_serving")
        spec = model.spec
        if dense and not model.mm.is_dense:
            raise ExportError(f"model {spec.name!r} has only 68-point bases (3DDFA v1 layout); --dense needs a "
                              "dense morphable model (3DDFA_V2 layout)")
        self.spec = spec
        self.size = int(spec.input_size)
        self.dense = bool(dense)
        hold(self, task=FaceTask(spec, model.mm, regressor=model.regressor, dense=self.dense))
        self.tf_variables = tf_variables_of(self.task)
        s = self.size
        crops = tf.TensorSpec([None, s, s, 3], tf.uint8, name="crops")
        self.serving_default = tf.function(self._serve_crops, input_signature=[crops])
        if spec.channels == MAP_CHANNELS:
            self.with_map = tf.function(self._serve_with_map,
                                        input_signature=[crops, tf.TensorSpec([None, s, s], tf.float32, name="maps")])
        self.predict_image = tf.function(
            self._serve_images, input_signature=[tf.TensorSpec([None], tf.string, name="images"),
                                                 tf.TensorSpec([None, 4], tf.float32, name="roi_boxes")])

    @property
    def signatures(self) -> dict:
        """``{name: tf.function}`` as ``tf.saved_model.save`` takes them."""
        return {name: getattr(self, name) for name in SIGNATURES if hasattr(self, name)}

    def heads(self, params_w, roi_boxes=None) -> dict:
        """Whitened params → every output of the signatures (static shapes for the SignatureDef); with the crops'
        ``roi_boxes`` also the image-pixel ones."""
        morph = self.task.morphable
        out = self.task.decode(params_w)
        lm3 = tf.reshape(out.pop("landmarks"), (-1, NUM_LANDMARKS, 3))
        out.update({"params_whitened": tf.identity(params_w), "landmarks_2d": lm3[..., :2], "landmarks_3d": lm3})
        if self.dense:
            out["vertices"] = tf.reshape(morph.vertices(out["params"]), (-1, morph.num_vertices, 3))
        if roi_boxes is not None:
            lm_img = morph.landmarks(out["params"], roi_boxes)
            out.update({"landmarks_3d_image": lm_img, "landmarks_2d_image": lm_img[..., :2]})
            if self.dense:
                out["vertices_image"] = morph.vertices(out["params"], roi_boxes)
        return out

    # ------------------------------------------------------------ signatures
    @staticmethod
    def _non_empty(crops):
        with tf.control_dependencies([tf.debugging.Assert(tf.shape(crops)[0] > 0, [
                "crops is empty: send at least one (S, S, 3) uint8 crop"])]):
            return tf.identity(crops)

    def _serve_crops(self, crops):
        return self.heads(self.task.infer(self.task.preprocessor.normalize(self._non_empty(crops))))

    def _serve_with_map(self, crops, maps):
        with tf.control_dependencies([tf.debugging.Assert(tf.equal(tf.shape(crops)[0], tf.shape(maps)[0]), [
                "crops and maps need one landmark map per crop; crops:", tf.shape(crops)[0], "maps:",
                tf.shape(maps)[0]])]):
            maps = tf.identity(maps)
        return self.heads(self.task.infer(self.task.preprocessor.normalize(self._non_empty(crops)), maps))

    def _serve_images(self, images, roi_boxes):
        images, roi_boxes = check_image_inputs(images, roi_boxes)
        crops = tf.map_fn(lambda a: decode_and_crop(a[0], a[1], self.size), (images, roi_boxes),
                          fn_output_signature=tf.TensorSpec([self.size, self.size, 3], tf.float32))
        return self.heads(self.task.infer(self.task.preprocessor.normalize(crops)), roi_boxes)


def check_image_inputs(images, roi_boxes):
    """``predict_image``'s inputs checked in the graph, so that a bad request is an INVALID_ARGUMENT naming the
    input (never meaningless landmarks or a shape error from deep inside): at least one image, one roi box per
    image, every coordinate finite, and each box at least one pixel wide and high once rounded to whole pixels
    (as the crop rounds it). Whether a box overlaps its image is checked by :func:`decode_and_crop`."""
    n, m = tf.shape(images)[0], tf.shape(roi_boxes)[0]
    r = tf.round(roi_boxes)
    checks = [
        tf.debugging.Assert(n > 0, ["images is empty: send at least one encoded image"]),
        tf.debugging.Assert(tf.equal(n, m), ["images and roi_boxes need one roi box per image; images:", n,
                                             "roi_boxes:", m]),
        tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(roi_boxes)), [
            "roi_boxes must be finite (x0, y0, x1, y1 in image pixels); got", roi_boxes], summarize=16),
        tf.debugging.Assert(tf.reduce_all((r[:, 2] - r[:, 0] >= 1.0) & (r[:, 3] - r[:, 1] >= 1.0)), [
            "roi_boxes need x0 < x1 and y0 < y1, at least one whole pixel apart; got", roi_boxes], summarize=16),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(images), tf.identity(roi_boxes)


def decode_and_crop(encoded, roi_box, size: int):
    """One encoded image (scalar string) and its roi box ``(4,)`` → ``(size, size, 3)`` float32 BGR crop on
    uint8 levels, as :func:`tf2dasl.geometry.roi.crop_image` makes it.

    ``crop_image`` rounds the roi, zero-pads outside the image and resizes with OpenCV's half-pixel bilinear
    sampling; here the image gets a 1-pixel zero border (so samples between the last row and the padding
    blend with zero, as in OpenCV) and ``crop_and_resize`` samples the same half-pixel positions.
    """
    # JPEG with the accurate integer IDCT (libjpeg's JDCT_ISLOW, what OpenCV's imread uses: identical pixels);
    # TF's default (fast) IDCT differs by up to 5 levels. PNG/BMP/GIF: tf.io.decode_image.
    img = tf.cond(tf.io.is_jpeg(encoded),
                  lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
                  lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))  # (H, W, 3) uint8 RGB
    img = tf.reverse(img, axis=[-1])  # → BGR
    hw = tf.cast(tf.shape(img)[:2], tf.float32)
    r = tf.round(tf.cast(roi_box, tf.float32))
    overlaps = (r[2] > 0.0) & (r[3] > 0.0) & (r[0] < hw[1]) & (r[1] < hw[0])
    with tf.control_dependencies([tf.debugging.Assert(overlaps, [
            "roi_boxes: a box lies outside its image (a crop of padding only); box (x0, y0, x1, y1):", roi_box,
            "image height, width:", hw])]):
        img = tf.identity(img)
    padded = tf.pad(img, [[1, 1], [1, 1], [0, 0]])
    sx, sy, ex, ey = r[0], r[1], r[2], r[3]
    step_x, step_y = (ex - sx) / size, (ey - sy) / size
    # half-pixel source positions in padded pixels: first (i = 0) and last (i = size - 1) sample
    y0 = sy + 0.5 * step_y - 0.5 + 1.0
    y1 = sy + (size - 0.5) * step_y - 0.5 + 1.0
    x0 = sx + 0.5 * step_x - 0.5 + 1.0
    x1 = sx + (size - 0.5) * step_x - 0.5 + 1.0
    box = tf.stack([y0 / (hw[0] + 1.0), x0 / (hw[1] + 1.0), y1 / (hw[0] + 1.0), x1 / (hw[1] + 1.0)])[None]
    crop = tf.image.crop_and_resize(padded[None], box, tf.zeros([1], tf.int32), [size, size],
                                    method="bilinear", extrapolation_value=0.0)[0]
    return tf.clip_by_value(tf.round(crop), 0.0, 255.0)


def warmup_records(model_name: str, size: int, batch_sizes=WARMUP_BATCH_SIZES) -> list[bytes]:
    """``tf_serving_warmup_requests``' records: serialized ``PredictionLog``s on ``serving_default`` (random crops)."""
    rng = np.random.default_rng(0)
    records = []
    for b in batch_sizes:
        spec = model_pb2.ModelSpec(name=model_name, signature_name="serving_default")
        req = predict_pb2.PredictRequest(model_spec=spec)
        req.inputs["crops"].CopyFrom(tf.make_tensor_proto(rng.integers(0, 256, (b, size, size, 3), np.uint8)))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
        records.append(log.SerializeToString())
    return records


def write_warmup(path: Path, model_name: str, size: int, batch_sizes=WARMUP_BATCH_SIZES) -> None:
    """``assets.extra/tf_serving_warmup_requests``: a TFRecord of ``PredictionLog``s on ``serving_default``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as w:
        for record in warmup_records(model_name, size, batch_sizes):
            w.write(record)


def save_serving_model(model, version_dir: Path, model_json: Path | None = None, dense: bool = False) -> ServingModule:
    """Write the TF Serving SavedModel into ``version_dir`` (a fresh folder: the caller makes it atomic) with the
    model directory's ``model.json`` as an asset and the warm-up requests; returns the module (its signatures
    describe the files)."""
    module = ServingModule(model, dense=dense)
    if model_json is not None and Path(model_json).is_file():
        module.model_json = tf.saved_model.Asset(str(model_json))
    tf.saved_model.save(module, str(version_dir), signatures=module.signatures)
    write_warmup(version_dir / WARMUP_FILE, model.spec.name, model.spec.input_size)
    return module
