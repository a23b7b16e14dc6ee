"""``DASLModel``: the 2DASL training model — one Keras model owning the regressor and the self-critic.

A batch is ``{"wild": {...}, "labelled": {...}}`` (either part may be missing):

* ``wild``: in-the-wild faces with (noisy) 2D landmarks only — ``image (B, S, S, 3)`` uint8 BGR,
  ``landmarks (B, 68, 2)`` crop pixels, ``map (B, S, S)`` the landmark map of those landmarks;
* ``labelled``: 3D-labelled faces — ``image`` and raw target ``params (B, 62)`` (optionally ``landmarks``).

``train_step`` reads as the algorithm (README, Training): with ``f`` the regressor and ``L`` the projected 68
landmarks, on wild faces ``X``: ``X̂ = L(f(I, map(X)))`` must match ``X`` (2D self-prediction),
``f(I, map(X̂))`` must give the 3D landmarks of the first pass (3D self-prediction) and its 2D landmarks
``X̃`` must match ``X`` (cycle); the critic ``D(z, p)`` learns real (labelled) from predicted (wild) pairs
and the regressor learns to fool it. Labelled faces give WPDC / VDC / 2D landmark losses through the
first-pass input (empty map). Without a labelled stream a frozen *teacher* (the initial model) labels the
wild faces (the distillation anchor and the critic's real pairs). Each term has a weight; 0 switches it off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from .. import losses as L
from ..geometry.landmark_map import BACKGROUND, tf_landmark_map
from ..geometry.morphable_model import NUM_PARAMS
from .critic import SelfCritic
from .morphable import MorphableLayer
from .regressor import Regressor

LOSS_NAMES = ("wpdc", "vdc", "landmark", "self_2d", "self_3d", "cycle", "adversarial")


@dataclass
class LossWeights:
    """Weight of each term (0 switches it off) and how landmark terms are computed."""

    wpdc: float = 1.0
    vdc: float = 0.0
    landmark: float = 1.0
    self_2d: float = 1.0
    self_3d: float = 0.5
    cycle: float = 1.0
    adversarial: float = 0.01
    landmark_set: str = "all68"
    wpdc_zero_z: bool = True

    def validate(self):
        for n in LOSS_NAMES:
            if getattr(self, n) < 0:
                raise ValueError(f"loss weight {n} must be >= 0")
        L.point_weights(self.landmark_set)


@keras.saving.register_keras_serializable(package="tf2dasl")
class DASLModel(keras.Model):
    """Regressor + self-critic (+ optional frozen teacher) with 2DASL's custom ``train_step``."""

    def __init__(self, regressor: Regressor, critic: SelfCritic, morphable: MorphableLayer,
                 loss_weights: LossWeights | dict | None = None, teacher: Regressor | None = None,
                 freeze_bn: bool = True, norm_mean: float = 127.5, norm_scale: float = 1.0 / 128.0,
                 map_lr_multiplier: float = 1.0, replica_clip_norm: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.regressor, self.critic, self.morphable, self.teacher = regressor, critic, morphable, teacher
        lw = loss_weights or LossWeights()
        self.loss_weights = lw if isinstance(lw, LossWeights) else LossWeights(**lw)
        self.loss_weights.validate()
        self.freeze_bn, self.norm_mean, self.norm_scale = bool(freeze_bn), float(norm_mean), float(norm_scale)
        self.map_lr_multiplier = float(map_lr_multiplier)
        #: global-norm clipping done here, after the all-reduce, when several replicas train (give the regressor's
        #: optimizer no ``global_clipnorm`` then: Keras 3 clips each replica's share before its all-reduce)
        self.replica_clip_norm = None if replica_clip_norm is None else float(replica_clip_norm)
        self.size = regressor.input_size
        self.point_weights = L.point_weights(self.loss_weights.landmark_set)
        if teacher is not None:
            teacher.trainable = False
        self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss",) + LOSS_NAMES + ("critic",)}

    # ------------------------------------------------------------------ set-up
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
        self.regressor.build()
        z = keras.ops.zeros((1, self.regressor.feature_dim))
        self.critic((z, keras.ops.zeros((1, NUM_PARAMS))))
        if self.teacher is not None:
            self.teacher.build()
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        """Normalised input ``(B, S, S, C)`` → whitened params ``(B, 62)`` (inference of the regressor).

        A training batch (dict) is accepted too (Keras may call the model on one to build it): its first
        part's images go through the first-pass input (empty map)."""
        if isinstance(inputs, dict):
            part = inputs.get("labelled") or inputs["wild"]
            x = self._normalise(part["image"])
            inputs = self._with_map(x, self._empty_map(x))
        return self.regressor(inputs, training=training)

    # ------------------------------------------------------------------ helpers
    def _normalise(self, image):
        return (tf.cast(image, tf.float32) - self.norm_mean) * self.norm_scale

    def _with_map(self, x, maps):
        if self.regressor.channels == 3:
            return x
        return tf.concat([x, tf.cast(maps, x.dtype)[..., None]], axis=-1)

    def _empty_map(self, x):
        return tf.fill(tf.shape(x)[:3], tf.constant(BACKGROUND, x.dtype))

    def _regress(self, x, maps):
        """→ whitened params (float32), raw params, crop landmarks ``(B, 68, 3)``, latent feature."""
        p_w, z = self.regressor.call_with_features(self._with_map(x, maps), training=not self.freeze_bn)
        p_w, z = tf.cast(p_w, tf.float32), tf.cast(z, tf.float32)
        p = self.morphable.unwhiten(p_w)
        return p_w, p, self.morphable.landmarks_crop(p), z

    def _teacher_params(self, x):
        t_in = x if self.teacher.channels == 3 else self._with_map(x, self._empty_map(x))
        return self.morphable.unwhiten(tf.cast(self.teacher(t_in, training=False), tf.float32))

    # ------------------------------------------------------------------ the losses
    def compute_terms(self, data):
        """All active loss terms of a batch, plus the critic's (real, fake) pairs."""
        w = self.loss_weights
        terms, real, fake = {}, None, None
        lab = data.get("labelled")
        wild = data.get("wild")
        if lab is None and wild is not None and self.teacher is not None:
            lab = {"image": wild["image"], "landmarks": wild["landmarks"], "teacher": True}
        if lab is not None:
            x = self._normalise(lab["image"])
            target = self._teacher_params(x) if lab.get("teacher") else tf.cast(lab["params"], tf.float32)
            target = tf.stop_gradient(target)
            p0_w, p0, lm0, z0 = self._regress(x, self._empty_map(x))
            t_w = self.morphable.whiten(target)
            if w.wpdc:
                terms["wpdc"] = L.wpdc_loss(p0_w, t_w, self.morphable.param_mean, self.morphable.param_std,
                                            self.morphable.u_base, self.morphable.w_shp_base,
                                            self.morphable.w_exp_base, w.wpdc_zero_z)
            if w.vdc:
                terms["vdc"] = L.vdc_loss(lm0, self.morphable.landmarks_crop(target))
            if w.landmark and "landmarks" in lab:
                terms["landmark"] = L.landmark_loss(lm0[..., :2], tf.cast(lab["landmarks"], tf.float32),
                                                    self.point_weights)
            real_x, real_tw = x, t_w
        if wild is not None and any(getattr(w, n) for n in ("self_2d", "self_3d", "cycle", "adversarial")):
            x = self._normalise(wild["image"])
            X = tf.cast(wild["landmarks"], tf.float32)
            p1_w, _, lm1, z1 = self._regress(x, wild["map"])
            if w.self_2d:
                terms["self_2d"] = L.landmark_loss(lm1[..., :2], X, self.point_weights)
            if w.self_3d or w.cycle:
                map_hat = tf_landmark_map(tf.stop_gradient(lm1), self.size)
                _, _, lm2, _ = self._regress(x, map_hat)
                if w.self_3d:
                    terms["self_3d"] = L.landmark_loss(lm2, tf.stop_gradient(lm1), normaliser=X)
                if w.cycle:
                    terms["cycle"] = L.landmark_loss(lm2[..., :2], X, self.point_weights)
            fake = (z1, p1_w)
            if lab is not None and w.adversarial:
                # the critic must judge parameters, not inputs: both pairs' features come from an image plus the
                # landmark map of its 2D landmarks (the fake pair's map(X) pass); in teacher mode that is the
                # same pass, otherwise the labelled faces' own landmarks give their map (no gradient needed)
                if lab.get("teacher"):
                    real = (z1, real_tw)
                else:
                    real_lm = self.morphable.landmarks_crop(self.morphable.unwhiten(real_tw))
                    real_map = tf_landmark_map(real_lm, self.size)
                    real = (tf.stop_gradient(self._regress(real_x, real_map)[3]), real_tw)
                terms["adversarial"] = L.adversarial_loss(self.critic(fake, training=True))
        return terms, real, fake

    def _total(self, terms):
        return tf.add_n([getattr(self.loss_weights, n) * v for n, v in terms.items()])

    # ------------------------------------------------------------------ steps
    def train_step(self, data):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        reg_vars = self.regressor.trainable_variables
        with tf.GradientTape() as tape:
            terms, real, fake = self.compute_terms(data)
            total = self._total(terms)
            scaled = total / replicas
            if isinstance(self.reg_optimizer, keras.optimizers.LossScaleOptimizer):
                scaled = self.reg_optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, reg_vars)
        if self.map_lr_multiplier != 1.0 and self.regressor.channels == 4:
            grads = self._scale_map_gradient(grads, reg_vars)
        if replicas > 1 and self.replica_clip_norm:
            grads = self._clip_across_replicas(grads, replicas)
        self.reg_optimizer.apply(grads, reg_vars)
        if real is not None and fake is not None and self.loss_weights.adversarial:
            real = tuple(tf.stop_gradient(t) for t in real)
            fake = tuple(tf.stop_gradient(t) for t in fake)
            crit_vars = self.critic.trainable_variables
            with tf.GradientTape() as tape:
                c_loss = L.critic_loss(self.critic(real, training=True), self.critic(fake, training=True))
                c_scaled = c_loss / replicas
            self.critic_optimizer.apply(tape.gradient(c_scaled, crit_vars), crit_vars)
            self.trackers["critic"].update_state(c_loss)
        return self._update_metrics(total, terms)

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

    def test_step(self, data):
        terms, _, _ = self.compute_terms(data)
        return self._update_metrics(self._total(terms), terms)

    def _update_metrics(self, total, terms):
        self.trackers["loss"].update_state(total)
        for n, v in terms.items():
            self.trackers[n].update_state(v)
        return {n: t.result() for n, t in self.trackers.items()
                if n == "loss" or n in terms or (n == "critic" and self.loss_weights.adversarial)}

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {"regressor": self.regressor.get_config(), "critic": self.critic.get_config(),
                "morphable": self.morphable.get_config(), "loss_weights": asdict(self.loss_weights),
                "teacher": None if self.teacher is None else self.teacher.get_config(),
                "freeze_bn": self.freeze_bn, "norm_mean": self.norm_mean, "norm_scale": self.norm_scale,
                "map_lr_multiplier": self.map_lr_multiplier, "replica_clip_norm": self.replica_clip_norm,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = config.pop("teacher")
        return cls(regressor=Regressor.from_config(config.pop("regressor")),
                   critic=SelfCritic.from_config(config.pop("critic")),
                   morphable=MorphableLayer(**config.pop("morphable")),
                   teacher=None if teacher is None else Regressor.from_config(teacher), **config)


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
