"""``DASLModel``: 2DASL training — one Keras model owning the task model and the self-critic, both optimizers, and
a ``train_step`` that reads as the algorithm (the style of keras-io's ``dcgan_overriding_train_step.py``).

A batch is ``{"wild": {...}, "labelled": {...}}`` (either part may be missing):

* ``wild``: in-the-wild faces with 2D points only — ``image (B, S, S, 3)`` uint8, ``landmarks (B, P, 2)`` crop
  pixels in the run's point layout (the 68-point slots, then e.g. AFLW's 21; NaN = not visible or another set's
  slot), ``map_points (B, 18, 2)`` 2DASL's map points of those (NaN = not visible), ``map (B, S, S)`` their
  landmark map, and ``teacher (B, 62)`` the teacher's raw parameters for the crop when there is a teacher
  (optionally ``teacher_landmarks (B, 68, 2)``: its flip-averaged landmarks, then the ``anchor68`` target);
* ``labelled``: 3D-labelled faces — ``image`` and raw target ``params (B, 62)`` (optionally ``landmarks``).

With ``f`` the regressor (through :class:`~tf2dasl.models.task.FaceTask`) and ``L`` the projected points,
``train_step`` runs three phases:

1. **supervised** (:meth:`supervised_terms`): the labelled faces with their parameters and the wild faces with
   their teacher's (when they carry them; beside labelled faces scaled by ``wild_teacher``, 0 by default) through
   the first-pass input (empty map): WPDC, whitened-parameter L2, VDC, the 68 projected landmarks anchored to the
   target's (``anchor68``), and the given 2D points (``landmark``, visible points only);
2. **self-supervised** on the wild faces ``I`` with points ``X``: :meth:`self_prediction_2d`
   ``X̂ = L(f(I, map(X)))`` ≈ ``X``; :meth:`self_prediction_3d` ``f(I, map(X̂))`` ≈ the first pass in 3D;
   :meth:`cycle_consistency` ``X̃ = L(f(I, map(X̂)))`` ≈ ``X``; :meth:`self_critic` the regressor's term for
   fooling the critic. A point that is not visible in ``X`` contributes nothing to any of them and marks nothing
   on either map;
3. **critic update**: the critic learns real pairs (feature, target parameters) from predicted pairs (feature,
   predicted parameters), both built in :meth:`critic_pairs`.

``_apply`` is the one place that turns a loss into an update (replica scaling, loss scaling, the map slice's
gradient multiplier, all-reduce + global clipping across replicas). Each term has a weight; 0 switches it off.

The algorithm is one model — its three phases, the four named
self-supervision terms, the critic's pairs and the one update helper — so that 2DASL reads in one file, as the
keras-io example it follows; the losses' maths lives in :mod:`tf2dasl.losses`.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from .. import losses as L
from ..geometry import tf_ops
from ..geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS, NUM_POSE
from .critic import SelfCritic
from .loss_weights import LANDMARK_POINTS, LOSS_NAMES, PRIOR_TERMS, SELF_SUPERVISED_TERMS, SUPERVISED_TERMS, LossWeights
from .morphable import MorphableLayer
from .regressor import Regressor
from .task import FaceTask

class Pass(NamedTuple):
    """One regressor pass: ``params_w`` whitened and ``params`` raw ``(B, 62)``, ``points (B, P, 3)`` crop pixels
    (the first 68: the model's landmarks) and the latent ``feature (B, F)``."""

    params_w: tf.Tensor
    params: tf.Tensor
    points: tf.Tensor
    feature: tf.Tensor

    @property
    def landmarks(self):
        return self.points[:, :NUM_LANDMARKS]


@keras.saving.register_keras_serializable(package="tf2dasl")
class DASLModel(keras.Model):
    """Task model (preprocessor + regressor + morphable decoding) + self-critic with 2DASL's ``train_step``.

    ``points``: the run's point layout as a sparse :class:`MorphableLayer` whose points are the 68 landmarks, then
    further model points (e.g. the mesh vertices fitted to AFLW's 21 points; default: the task's 68 landmarks);
    ``loss_points``: ``(A (K, P), w (K,))`` the points landmark terms compare (default: from
    ``loss_weights.landmark_points`` over the 68). ``freeze_bn``: BatchNorm runs in inference mode in training
    too (2DASL froze it); ``test_step`` always does."""

    def __init__(self, task: FaceTask, critic: SelfCritic, loss_weights: LossWeights | dict | None = None,
                 points: MorphableLayer | None = None, loss_points=None, freeze_bn: bool = True,
                 map_lr_multiplier: float = 1.0, replica_clip_norm: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.task, self.critic = task, critic
        lw = loss_weights or LossWeights()
        self.loss_weights = lw if isinstance(lw, LossWeights) else LossWeights(**lw)
        self.loss_weights.validate()
        self.points = points if points is not None else task.morphable
        if loss_points is None:
            loss_points = L.point_weights(LANDMARK_POINTS[self.loss_weights.points_for("68")])
        self.loss_points = (np.asarray(loss_points[0], np.float32), np.asarray(loss_points[1], np.float32))
        if self.loss_points[0].shape[1] != self.points.num_points:
            raise ValueError(f"loss_points compare {self.loss_points[0].shape[1]} points, the layout has "
                             f"{self.points.num_points}")
        self.freeze_bn = bool(freeze_bn)
        self.map_lr_multiplier = float(map_lr_multiplier)
        #: global-norm clipping done here, after the all-reduce, when several replicas train (give the regressor's
        #: optimizer no ``global_clipnorm`` then: Keras 3 clips each replica's share before its all-reduce)
        self.replica_clip_norm = None if replica_clip_norm is None else float(replica_clip_norm)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss",) + LOSS_NAMES + ("critic",)}

    # ------------------------------------------------------------------ set-up
    @property
    def regressor(self) -> Regressor:
        return self.task.regressor

    @property
    def morphable(self) -> MorphableLayer:
        return self.task.morphable

    def compile(self, reg_optimizer, critic_optimizer, **kwargs):
        super().compile(**kwargs)
        self.reg_optimizer, self.critic_optimizer = reg_optimizer, critic_optimizer

    def build_optimizers(self):
        """Build both optimizers' slots now (needed under MirroredStrategy: call inside ``strategy.scope()``)."""
        self.reg_optimizer.build(self.regressor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)

    def build(self, input_shape=None):
        if self.built:
            return
        self.task.build()
        self.critic((keras.ops.zeros((1, self.regressor.feature_dim)), keras.ops.zeros((1, NUM_PARAMS))))
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras 3's ``fit`` builds a model made under a strategy from its first batch, reduced across replicas in
        one call — which MultiWorkerMirroredStrategy refuses for a nested batch like ours. A DASLModel is built
        before ``fit`` (:meth:`build`, :meth:`build_optimizers`): nothing is left to build then. A private Keras
        method on purpose: ``fit`` calls it unconditionally and Keras offers no public switch to skip that build."""
        if not (self.built and self.reg_optimizer.built and self.critic_optimizer.built):
            super()._maybe_symbolic_build(iterator, data_batch)

    def call(self, inputs, training=None):
        """uint8 crops ``(B, S, S, 3)`` → whitened params ``(B, 62)`` of the first pass (empty map). A training batch
        (dict) is accepted too (Keras may call the model on one to build it): its first part's images."""
        if isinstance(inputs, dict):
            inputs = (inputs.get("labelled") or inputs["wild"])["image"]
        return self.task.regress(self.task.preprocessor.normalize(inputs), None, training=training)[0]

    # ------------------------------------------------------------------ passes
    def _pass(self, x, maps, training) -> Pass:
        """One regressor pass on normalised crops ``x`` with landmark maps ``maps`` (None: empty)."""
        p_w, z = self.task.regress(x, maps, training=training)
        p = self.morphable.unwhiten(p_w)
        return Pass(p_w, p, self.points.landmarks(p), z)

    def _map_of(self, landmarks, visible):
        """The landmark map of predicted 68 landmarks, marking only the map points ``visible (B, 18)`` in the given
        points (so the second pass sees the same points as the first)."""
        pts = tf_ops.map_points(landmarks)
        pts = tf.where(visible[..., None], pts, tf.constant(np.nan, pts.dtype))
        return tf_ops.map_from_points(pts, self.regressor.input_size)

    # ------------------------------------------------------------------ phase 1: supervised terms
    def supervised_terms(self, first: Pass, target, points=None, target_landmarks=None,
                         target_scale: float = 1.0, target_faces=None, shape_faces=None) -> dict:
        """Terms of faces with target raw parameters ``target (B, 62)`` (3D labels or the teacher's), from the
        first-pass input: WPDC, whitened-parameter L2, VDC (3D landmarks), ``anchor68`` (68 projected landmarks
        to ``target_landmarks (B, 68, 2)`` when given — the teacher's flip average — else to the target's, 2D),
        each times ``target_scale``, and ``landmark`` (the given 2D ``points (B, P, 2)``, visible ones only, never
        scaled). ``target_faces (B,)`` bool: the faces whose whole target counts (default all; ``landmark`` counts
        every face); ``shape_faces (B,)`` bool: faces whose target's shape and expression coefficients count in
        ``param_l2`` beside them (:meth:`teacher_faces`)."""
        w, mm = self.loss_weights, self.morphable
        target = tf.stop_gradient(tf.cast(target, tf.float32))
        t_w = mm.whiten(target)
        terms = {}
        if w.wpdc:
            terms["wpdc"] = L.wpdc_loss(first.params_w, t_w, mm.param_mean, mm.param_std, mm.u_base, mm.w_shp_base,
                                        mm.w_exp_base, w.wpdc_zero_z, target_faces)
        if w.param_l2:
            terms["param_l2"] = L.param_l2_loss(first.params_w, t_w, self._coefficients(target_faces, shape_faces))
        if w.vdc or w.anchor68:
            t_lm = mm.landmarks(target)
            if w.vdc:
                terms["vdc"] = L.vdc_loss(first.landmarks, t_lm, target_faces)
            if w.anchor68:
                t_2d = t_lm[..., :2] if target_landmarks is None else tf.cast(target_landmarks, tf.float32)
                terms["anchor68"] = L.landmark_loss(first.landmarks[..., :2], tf.stop_gradient(t_2d),
                                                    faces=target_faces)
        terms = {n: target_scale * v for n, v in terms.items()}
        if w.landmark and points is not None:
            terms["landmark"] = L.landmark_loss(first.points[..., :2], points, self.loss_points)
        return terms

    @staticmethod
    def _coefficients(faces, shape_faces):
        """The parameters ``param_l2`` compares: None (all), the faces ``faces (B,)``, or with ``shape_faces`` the
        ``(B, 62)`` mask of ``faces``' parameters and ``shape_faces``' shape and expression coefficients."""
        if shape_faces is None or faces is None:
            return faces
        coefficients = tf.constant(np.arange(NUM_PARAMS) >= NUM_POSE)
        return tf.logical_or(faces[:, None], tf.logical_and(shape_faces[:, None], coefficients[None]))

    def teacher_faces(self, teacher):
        """Beside labelled faces, which of the wild faces' teacher labels ``teacher (B, 62)`` count:
        ``(whole (B,), shape (B,))`` bool — the faces whose whole label counts and those whose shape and expression
        coefficients alone do (``wild_teacher_part`` within ``wild_teacher_max_yaw`` of frontal,
        ``wild_teacher_beyond`` beyond it); ``(None, None)`` when every whole label counts, ``shape`` None when
        no face keeps its shape alone."""
        w = self.loss_weights
        if w.wild_teacher_part == "all" and w.wild_teacher_max_yaw is None:
            return None, None
        yaw = tf.abs(tf_ops.params_to_pose(tf.cast(teacher, tf.float32))[:, 0])
        within = yaw <= (90.0 if w.wild_teacher_max_yaw is None else w.wild_teacher_max_yaw)
        none = tf.zeros_like(within)
        whole = within if w.wild_teacher_part == "all" else none
        shape = tf.logical_or(within if w.wild_teacher_part == "shape_expression" else none,
                              tf.logical_not(within) if w.wild_teacher_beyond == "shape_expression" else none)
        keeps_shape = w.wild_teacher_part == "shape_expression" or (w.wild_teacher_beyond == "shape_expression"
                                                                    and w.wild_teacher_max_yaw is not None)
        return whole, shape if keeps_shape else None

    # ------------------------------------------------------------------ phase 2: 2DASL's self-supervision
    def self_prediction_2d(self, given: Pass, points):
        """2D self-prediction consistency: ``X̂ = L(f(I, map(X)))`` ≈ ``X`` (visible points)."""
        return L.landmark_loss(given.points[..., :2], points, self.loss_points)

    def self_prediction_3d(self, given: Pass, again: Pass, points):
        """3D self-prediction consistency: the 3D landmarks of ``f(I, map(X̂))`` ≈ those of ``f(I, map(X))``
        (the first pass is the target), over the face size of the given points."""
        return L.landmark_loss(again.landmarks, tf.stop_gradient(given.landmarks), normaliser=points)

    def cycle_consistency(self, again: Pass, points):
        """Cycle consistency: ``X → X̂ → X̃ = L(f(I, map(X̂)))`` and ``X̃`` ≈ ``X`` (visible points)."""
        return L.landmark_loss(again.points[..., :2], points, self.loss_points)

    def self_critic(self, fake):
        """The regressor's self-critic term: its predicted pairs should be judged real."""
        return L.adversarial_loss(self.critic(fake, training=True))

    def critic_pairs(self, given: Pass, real_params, labelled=None, training=None):
        """``(real, fake)`` critic pairs ``(feature, whitened params)``. Fake: the wild faces' pass with the map of
        their points. Real: the target parameters with a feature from the same kind of input — the wild faces'
        own (teacher labels), or the labelled faces' with the map of their target landmarks (no gradient)."""
        real_w = tf.stop_gradient(self.morphable.whiten(tf.cast(real_params, tf.float32)))
        fake = (given.feature, given.params_w)
        if labelled is None:
            return (tf.stop_gradient(given.feature), real_w), fake
        x = self.task.preprocessor.normalize(labelled["image"])
        real_map = tf_ops.landmark_map(self.morphable.landmarks(tf.cast(real_params, tf.float32)),
                                       self.regressor.input_size)
        return (tf.stop_gradient(self.task.regress(x, real_map, training=training)[1]), real_w), fake

    # ------------------------------------------------------------------ all terms of a batch
    def compute_terms(self, data, training=False):
        """All active loss terms of a batch and the critic's ``(real, fake)`` pairs (None when the critic is off)."""
        w = self.loss_weights
        labelled, wild = data.get("labelled"), data.get("wild")
        terms, pairs = {}, None
        # phase 1: the 3D-labelled faces with their labels, and the wild faces with their teacher's (when they carry
        # them); beside labelled faces the wild faces' teacher terms count loss.wild_teacher times, their points once
        if any(getattr(w, n) for n in SUPERVISED_TERMS):
            if labelled is not None:
                first = self._pass(self.task.preprocessor.normalize(labelled["image"]), None, training)
                terms.update(self.supervised_terms(first, labelled["params"], labelled.get("landmarks")))
            if wild is not None and "teacher" in wild:
                first = self._pass(self.task.preprocessor.normalize(wild["image"]), None, training)
                beside = labelled is not None
                whole, shape = self.teacher_faces(wild["teacher"]) if beside else (None, None)
                for n, v in self.supervised_terms(first, wild["teacher"], wild["landmarks"],
                                                  wild.get("teacher_landmarks"), w.wild_teacher if beside else 1.0,
                                                  whole, shape).items():
                    terms[n] = terms[n] + v if n in terms else v
        # phase 2: the wild faces through the map of their points, then through the map of the prediction
        if wild is not None and any(getattr(w, n) for n in SELF_SUPERVISED_TERMS + PRIOR_TERMS):
            x = self.task.preprocessor.normalize(wild["image"])
            points = tf.cast(wild["landmarks"], tf.float32)
            given = self._pass(x, wild["map"], training)                                       # f(I, map(X))
            if w.camera:
                terms["camera"] = L.camera_loss(given.params)
            if w.self_2d:
                terms["self_2d"] = self.self_prediction_2d(given, points)
            if w.self_3d or w.cycle:
                visible = L.visible(wild["map_points"])
                again = self._pass(x, self._map_of(tf.stop_gradient(given.landmarks), visible), training)
                if w.self_3d:
                    terms["self_3d"] = self.self_prediction_3d(given, again, points)
                if w.cycle:
                    terms["cycle"] = self.cycle_consistency(again, points)
            real_params = labelled["params"] if labelled is not None else wild.get("teacher")
            if w.adversarial and real_params is not None:
                pairs = self.critic_pairs(given, real_params, labelled, training)
                terms["adversarial"] = self.self_critic(pairs[1])
        return terms, pairs

    def _total(self, terms):
        return tf.add_n([getattr(self.loss_weights, n) * v for n, v in terms.items()])

    # ------------------------------------------------------------------ steps
    def train_step(self, data):
        training = not self.freeze_bn
        # the regressor: supervised + self-supervised terms
        with tf.GradientTape() as tape:
            terms, pairs = self.compute_terms(data, training=training)
            total = self._total(terms)
        self._apply(self.reg_optimizer, tape, total, self.regressor.trainable_variables)
        # the critic: real pairs from predicted ones
        if pairs is not None:
            real, fake = (tuple(tf.stop_gradient(t) for t in pair) for pair in pairs)
            with tf.GradientTape() as tape:
                c_loss = L.critic_loss(self.critic(real, training=True), self.critic(fake, training=True))
            self._apply(self.critic_optimizer, tape, c_loss, self.critic.trainable_variables)
            self.trackers["critic"].update_state(c_loss)
        return self._update_metrics(total, terms)

    def test_step(self, data):
        terms, _ = self.compute_terms(data, training=False)
        return self._update_metrics(self._total(terms), terms)

    def _apply(self, optimizer, tape, loss, variables):
        """One update of ``variables`` by ``optimizer`` from ``loss`` (recorded on ``tape``).

        The gradient is of ``loss / replicas`` (the optimizer sums the replicas' gradients), times the loss scale
        of a :class:`keras.optimizers.LossScaleOptimizer`. For the regressor also: the landmark-map slice's
        gradient multiplier, and with several replicas the all-reduce and global-norm clipping done here (Keras 3
        would clip each replica's share before its all-reduce)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = tf.constant(1.0 / replicas, tf.float32)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scale = optimizer.scale_loss(scale)
        grads = tape.gradient(loss, variables, output_gradients=scale)
        if optimizer is self.reg_optimizer:
            if self.map_lr_multiplier != 1.0 and self.regressor.channels == 4:
                grads = self._scale_map_gradient(grads, variables)
            if replicas > 1 and self.replica_clip_norm:
                grads = self._clip_across_replicas(grads, replicas)
        optimizer.apply(grads, variables)

    def _clip_across_replicas(self, grads, replicas: int):
        """Clip the replicas' summed gradient by its global norm, in every replica alike.

        The gradients are summed across replicas here, clipped to ``replica_clip_norm`` (loss-scaled gradients
        against the scaled threshold: the same clip), then divided by ``replicas`` because the optimizer's own
        all-reduce sums them once more. Every replica then also sees the same (non-)finite values, so a loss
        scaler's finiteness check agrees across replicas."""
        ctx = tf.distribute.get_replica_context()
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
        limit = tf.constant(self.replica_clip_norm, tf.float32)
        if isinstance(self.reg_optimizer, keras.optimizers.LossScaleOptimizer):
            limit = limit * tf.cast(self.reg_optimizer.dynamic_scale, tf.float32)
        clipped, _ = tf.clip_by_global_norm([tf.cast(g, tf.float32) for g in summed], limit)
        return [tf.cast(c / replicas, g.dtype) for c, g in zip(clipped, grads)]

    def _scale_map_gradient(self, grads, variables):
        """Multiply the gradient of the first kernel's landmark-map slice (input channel 4) by
        ``map_lr_multiplier``: a zero-initialised map slice otherwise learns far slower than the rest."""
        out = list(grads)
        for i, v in enumerate(variables):
            if len(v.shape) == 4 and v.shape[2] == 4:  # (kh, kw, 4, out): the only kernel that sees the map
                scale = np.ones(tuple(v.shape), np.float32)
                scale[:, :, 3] = self.map_lr_multiplier
                out[i] = out[i] * tf.constant(scale, out[i].dtype)
                break
        return out

    def _update_metrics(self, total, terms):
        self.trackers["loss"].update_state(total)
        for n, v in terms.items():
            self.trackers[n].update_state(v)
        logs = {n: t.result() for n, t in self.trackers.items()
                if n == "loss" or n in terms or (n == "critic" and self.loss_weights.adversarial)}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 averages each log across the workers' replicas along axis 0 there: give it one
            logs = {n: tf.reshape(v, [1]) for n, v in logs.items()}
        return logs

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {"task": self.task.get_config(), "critic": self.critic.get_config(),
                "points": None if self.points is self.task.morphable else self.points.get_config(), "loss_weights": asdict(self.loss_weights),
                "loss_points": [self.loss_points[0].tolist(), self.loss_points[1].tolist()],
                "freeze_bn": self.freeze_bn, "map_lr_multiplier": self.map_lr_multiplier,
                "replica_clip_norm": self.replica_clip_norm, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        points = config.pop("points")
        return cls(FaceTask.from_config(config.pop("task")), SelfCritic.from_config(config.pop("critic")),
                   points=points and MorphableLayer.from_config(points), **config)


def expand_to_four_channels(reg3: Regressor) -> Regressor:
    """A 4-channel copy of a 3-channel regressor whose first kernel gets a zero slice for the landmark map,
    so that it computes exactly what ``reg3`` does whatever the map."""
    reg4 = Regressor(reg3.backbone_name, reg3.width, reg3.input_size, 4, reg3.num_params, name=reg3.name)
    reg4.build()
    assert [v.path for v in reg3.weights] == [v.path for v in reg4.weights]  # same architecture, same order
    for src, v in zip(reg3.weights, reg4.weights):
        value = np.asarray(src.numpy())
        if tuple(value.shape) != tuple(v.shape):  # the first conv: (kh, kw, 3, out) → (kh, kw, 4, out)
            pad = np.zeros(tuple(v.shape), value.dtype)
            pad[:, :, :3] = value
            value = pad
        v.assign(value)
    return reg4
