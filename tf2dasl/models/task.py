"""``FaceTask``: the task model — crops in, 3DMM parameters, landmarks and pose out (keras-hub's task).

Built from a :class:`~tf2dasl.models.spec.ModelSpec` and a morphable model, it owns the pieces every consumer
shares: the :class:`~tf2dasl.models.preprocessor.CropPreprocessor`, the :class:`~tf2dasl.models.regressor.Regressor`
(backbone + head), the morphable-model decoding (:class:`~tf2dasl.models.morphable.MorphableLayer`) and 2DASL's
two-pass inference. Keras-native: registered, ``get_config`` is the spec (plus the morphable layer's shape),
``from_config`` rebuilds it, so ``keras.saving`` and the model directory (:mod:`tf2dasl.io.model_dir`) both
serialise it the same way. The Keras predictor (:mod:`tf2dasl.inference.keras_runtime`), ``DASLModel`` (training),
the SavedModel and mobile export modules call it; none re-implements a step.

Two-pass inference (a 4-channel model): the first pass sees the empty landmark map, the second the map of the
first pass's own 68 landmarks. A 3-channel model, given maps, or ``passes=1`` run one pass.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..geometry import tf_ops
from ..geometry.decoder import Decoder
from ..geometry.morphable_model import MorphableModel
from .morphable import DENSE_ARRAYS, SPARSE_ARRAYS, MorphableLayer
from .preprocessor import CropPreprocessor
from .regressor import Regressor
from .spec import ModelSpec


@keras.saving.register_keras_serializable(package="tf2dasl")
class FaceTask(keras.Model):
    """uint8 crops ``(B, S, S, 3)`` [+ maps ``(B, S, S)``] → ``{"params_whitened" (B, 62), "params" (B, 62) raw,
    "landmarks" (B, 68, 3) crop pixels, "pose" (B, 3) yaw/pitch/roll degrees}``.

    ``spec``: what to build (a :class:`ModelSpec` or its dict); ``mm``: the morphable model (None: zero arrays,
    set later with :meth:`set_morphable_model` or by loading weights); ``regressor``: an existing regressor that
    matches the spec (training and exports share one), else a new one; ``dense``: the morphable layer keeps the
    dense bases too (dense outputs in graphs); ``landmark_head`` (optional): a layer mapping whitened params to
    crop-pixel landmarks ``(B, 68, 3)`` for the second pass's map and the ``landmarks`` output (the mobile export
    passes its float16-safe head); ``preprocessor`` (optional): a :class:`CropPreprocessor` of the spec's input (the
    int8 export passes one that pins its input's quantisation). ``provenance``: where the model came from (written to its model directory,
    not part of the config).
    """

    def __init__(self, spec: ModelSpec | dict, mm: MorphableModel | None = None, *, regressor: Regressor | None = None,
                 dense: bool = False, num_vertices: int | None = None, landmark_head: keras.layers.Layer | None = None,
                 preprocessor: CropPreprocessor | None = None, provenance: dict | None = None, **kwargs):
        spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
        kwargs.setdefault("name", spec.name)
        super().__init__(**kwargs)
        self.spec = spec
        self.preprocessor = preprocessor or CropPreprocessor.from_spec(spec, name="preprocessor")
        if regressor is None:
            regressor = Regressor(spec.backbone, spec.width, spec.input_size, spec.channels, spec.num_params,
                                  name="regressor")
            regressor.build()
        built = (regressor.backbone_name, regressor.width, regressor.input_size, regressor.channels)
        if built != (spec.backbone, spec.width, spec.input_size, spec.channels):
            raise ValueError(f"regressor {built} does not match the spec ({spec.backbone}, {spec.width}, "
                             f"{spec.input_size}, {spec.channels})")
        self.regressor = regressor
        self.morphable = MorphableLayer(mm, spec.input_size, spec.crop_convention, dense=dense,
                                        num_vertices=num_vertices, name="morphable")
        self.landmark_head = landmark_head
        self._mm = mm
        self.provenance = dict(provenance or {})
        self.built = True  # every weight exists once the regressor is built

    def build(self, input_shape=None):
        self.regressor.build()  # the morphable layer and preprocessor hold no unbuilt state
        self.built = True

    # ------------------------------------------------------------------ what it is
    @property
    def channels(self) -> int:
        return self.spec.channels

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def mm(self) -> MorphableModel:
        """The numpy morphable model: the one given, else the layer's current arrays (68-point bases, dense when kept;
        e.g. after ``keras.saving.load_model``)."""
        if self._mm is not None:
            return self._mm
        names = SPARSE_ARRAYS + (DENSE_ARRAYS if self.morphable.dense else ())
        return MorphableModel(**{n: np.asarray(getattr(self.morphable, n).numpy()) for n in names})

    def set_morphable_model(self, mm: MorphableModel) -> None:
        """Use ``mm`` (numpy decoding and the layer's arrays)."""
        self.morphable.set_morphable_model(mm)
        self._mm = mm

    @property
    def decoder(self) -> Decoder:
        """The numpy decode of this model's raw parameters (:class:`~tf2dasl.geometry.decoder.Decoder`)."""
        return Decoder(self.mm, self.spec.input_size, self.spec.crop_convention)

    # ------------------------------------------------------------------ the steps
    def regress(self, x, maps=None, training=False):
        """One pass: normalised crops ``(B, S, S, 3)`` [+ maps ``(B, S, S)``, None: empty] → whitened params
        ``(B, 62)`` float32 and the latent feature ``(B, F)`` float32 (the self-critic's input)."""
        p_w, z = self.regressor.call_with_features(self.preprocessor.with_map(x, maps), training=training)
        return tf.cast(p_w, tf.float32), tf.cast(z, tf.float32)

    def landmarks(self, params_w):
        """Whitened params ``(B, 62)`` → 68 landmarks in crop pixels ``(B, 68, 3)``."""
        if self.landmark_head is not None:
            return self.landmark_head(params_w)
        return self.morphable.landmarks(self.morphable.unwhiten(params_w))

    def infer(self, x, maps=None, passes: int = 2, training=False):
        """Normalised crops ``(B, S, S, 3)`` → whitened params ``(B, 62)``: two passes for a 4-channel model (empty
        map, then the map of its own landmarks) unless ``maps`` are given or ``passes == 1``."""
        params_w, _ = self.regress(x, maps, training)
        if self.channels == 4 and maps is None and passes > 1:
            params_w, _ = self.regress(x, tf_ops.landmark_map(self.landmarks(params_w), self.input_size), training)
        return params_w

    def decode(self, params_w) -> dict:
        """Whitened params ``(B, 62)`` → the task's outputs (see the class docstring)."""
        params = self.morphable.unwhiten(params_w)
        return {"params_whitened": params_w, "params": params, "landmarks": self.landmarks(params_w),
                "pose": self.morphable.pose(params)}

    def call(self, crops, maps=None, passes: int = 2, training=False):
        return self.decode(self.infer(self.preprocessor.normalize(crops), maps, passes, training))

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "spec": self.spec.to_dict(),
                "dense": self.morphable.dense, "num_vertices": self.morphable.num_vertices}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
