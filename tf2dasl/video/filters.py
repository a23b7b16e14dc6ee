"""Time-series filters on vectors of numbers, frame by frame (numpy; no model, no video, no files).

* :class:`KalmanCV`: a constant-velocity Kalman filter per number (state: value and speed; white-noise
  acceleration of spectral density ``q``, measurement noise ``r``). With fixed gains (``adaptation`` 0) they do
  not depend on the data, only on ``q / r`` (``noise``) and the time steps, so one number sets it whatever the
  units of the values. With ``adaptation`` the process noise follows the innovations: while they keep one sign
  (the prediction stays behind the measurements: the filter lags a change of motion) it grows, so the filter
  catches up; noise alone raises it little. The test compares the innovations with themselves, so it needs no
  noise level and holds in any units.
* :class:`OneEuro`: Casiez et al.'s One-Euro filter (CHI 2012): a first-order low-pass whose cutoff grows
  with the speed, per number; speeds are divided by a caller-given ``scale`` so that ``beta`` is unit-free.
* :func:`gaussian_weights`: the normalised weights of a centred (look-ahead) Gaussian window, truncated to the
  samples that exist.

Time is in frames: ``dt`` is the number of frames since the previous update (2 after a dropped frame).
"""
from __future__ import annotations

import math

import numpy as np

#: Velocity variance of a new Kalman track, in units of the measurement variance per frame squared: large, the
#: speed of a face is unknown when its track starts (the second measurement sets it, so a face that is already
#: moving is not followed from a standstill; with the former 1.0 and noise 0.2, a face moving at constant speed
#: lagged by up to a third of a frame's motion over its first ~5 frames).
INITIAL_SPEED_VARIANCE = 1e4


#: Weight of the newest innovation in the running means that measure their persistence (adaptive Kalman): 0.5
#: remembers about the last 3 frames.
INNOVATION_MEMORY = 0.5


def _process_noise(q: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The covariance ``(p00, p01, p11)`` that white-noise acceleration of density ``q`` adds over ``dt``."""
    return q * dt ** 3 / 3, q * dt * dt / 2, q * dt


class KalmanCV:
    """Constant-velocity Kalman filter on ``dim`` independent numbers: :meth:`update` takes a measurement
    ``(dim,)`` and returns the filtered values ``(dim,)``; the first measurement is taken as it is.

    ``noise``: process over measurement noise per frame (``q / r``; scalar or ``(dim,)``). Smaller trusts the
    constant-velocity motion more: smoother, and a lag when the speed changes.

    ``adaptation`` (0: fixed gains): per number, running means (weight ``INNOVATION_MEMORY``) of the innovation
    ``y`` (measurement minus prediction) and of ``y^2`` give its persistence ``mean(y)^2 / mean(y^2)``: 1 when the
    last innovations all had one sign and size (a lag), about ``w = m / (2 - m)`` for white noise. Its mean
    over the ``dim`` numbers, as the share ``e`` of the way from ``w`` to 1 (0 below ``w``), adds
    ``adaptation * e`` times the base process noise to this frame's prediction: the gains rise while the filter
    lags and settle back once the innovations turn white again."""

    def __init__(self, dim: int, noise, adaptation: float = 0.0):
        self.q = np.broadcast_to(np.asarray(noise, np.float64), (dim,)).copy()
        self.adaptation = float(adaptation)
        self.x = self.v = None
        self.p00 = self.p01 = self.p11 = None
        self.y_mean = self.y_square = None

    def persistence_excess(self, y: np.ndarray) -> float:
        """Update the innovations' running means with ``y (dim,)``; the excess persistence ``e`` in [0, 1]."""
        m = INNOVATION_MEMORY
        self.y_mean = (1 - m) * self.y_mean + m * y
        self.y_square = (1 - m) * self.y_square + m * y * y
        ratio = np.divide(self.y_mean ** 2, self.y_square, out=np.zeros_like(y), where=self.y_square > 0)
        white = m / (2 - m)
        return max(0.0, (float(ratio.mean()) - white) / (1 - white))

    def update(self, z: np.ndarray, dt: float = 1.0) -> np.ndarray:
        """Filter one measurement ``z (dim,)`` taken ``dt`` frames after the previous one."""
        z = np.asarray(z, np.float64)
        if self.x is None:
            self.x, self.v = z.copy(), np.zeros_like(z)
            self.p00 = np.ones_like(z)  # r = 1: the first value is the measurement
            self.p01 = np.zeros_like(z)
            self.p11 = np.full_like(z, INITIAL_SPEED_VARIANCE)
            self.y_mean, self.y_square = np.zeros_like(z), np.zeros_like(z)
            return self.x.copy()
        dt = float(dt)
        # predict (covariances in units of r); the process noise is linear in q: the base and the boost in one
        self.x = self.x + dt * self.v
        y = z - self.x
        boost = self.adaptation * self.persistence_excess(y) if self.adaptation > 0 else 0.0
        a, b, c = _process_noise(self.q * (1.0 + boost), dt)
        p00 = self.p00 + 2 * dt * self.p01 + dt * dt * self.p11 + a
        p01 = self.p01 + dt * self.p11 + b
        p11 = self.p11 + c
        # update with measurement noise r = 1
        s = p00 + 1.0
        k0, k1 = p00 / s, p01 / s
        self.x = self.x + k0 * y
        self.v = self.v + k1 * y
        self.p00, self.p01, self.p11 = (1 - k0) * p00, (1 - k0) * p01, p11 - k1 * p01
        return self.x.copy()


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One-Euro filter on ``dim`` numbers: cutoff ``min_cutoff + beta * |speed| / scale`` (cycles per frame),
    speed low-passed at ``d_cutoff``. :meth:`update` takes ``(dim,)`` values and a ``scale`` (scalar or
    ``(dim,)``: what a speed of 1 per frame is measured against, e.g. the face's size for pixel positions)."""

    def __init__(self, dim: int, min_cutoff: float, beta: float, d_cutoff: float):
        self.dim, self.min_cutoff, self.beta, self.d_cutoff = dim, float(min_cutoff), float(beta), float(d_cutoff)
        self.x = self.dx = None

    def update(self, z: np.ndarray, dt: float = 1.0, scale=1.0) -> np.ndarray:
        z = np.asarray(z, np.float64)
        if self.x is None:
            self.x, self.dx = z.copy(), np.zeros_like(z)
            return self.x.copy()
        dt = float(dt)
        a_d = _alpha(np.full_like(z, self.d_cutoff), dt)
        self.dx = a_d * (z - self.x) / dt + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx) / np.maximum(np.asarray(scale, np.float64), 1e-12)
        a = _alpha(cutoff, dt)
        self.x = a * z + (1 - a) * self.x
        return self.x.copy()


def gaussian_weights(offsets: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian weights ``(n,)`` for the frame offsets ``(n,)`` of the samples at hand from the centre
    frame (negative: past, positive: future); a window cut by a track's start or end is renormalised."""
    o = np.asarray(offsets, np.float64)
    w = np.exp(-0.5 * (o / float(sigma)) ** 2)
    return w / w.sum()


def window_radius(sigma: float) -> int:
    """Frames a centred Gaussian window of ``sigma`` frames reaches on each side (3 sigma, rounded up)."""
    return int(math.ceil(3 * float(sigma)))
