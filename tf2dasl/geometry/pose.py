"""Pose of the 62 parameters (numpy): ``P = [s R | t]`` ↔ (scale, rotation, translation) ↔ angles.

Angles follow 3DDFA_V2's ``calc_pose``: ``yaw = asin(R[2, 0])``, ``pitch = atan2(R[2, 1], R[2, 2])``,
``roll = atan2(R[1, 0], R[0, 0])`` (in degrees), i.e. ``R = Rz(roll) @ Ry(-yaw) @ Rx(pitch)``.
"""
from __future__ import annotations

import numpy as np

#: |R[2, 0]| above this is treated as gimbal lock, as 3DDFA_V2 does.
GIMBAL_LOCK = 0.998


def params_to_sRt(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, >=12)`` params → scale ``(B,)``, rotation ``(B, 3, 3)``, translation ``(B, 3)``.

    As 3DDFA_V2's ``P2sRt``: the scale is the mean norm of the first two rows; the third row of R is
    the cross product of the normalised first two.
    """
    P = np.asarray(params, np.float64)[:, :12].reshape(-1, 3, 4)
    r1, r2 = P[:, 0, :3], P[:, 1, :3]
    n1 = np.linalg.norm(r1, axis=1, keepdims=True)
    n2 = np.linalg.norm(r2, axis=1, keepdims=True)
    s = (n1[:, 0] + n2[:, 0]) / 2.0
    r1, r2 = r1 / n1, r2 / n2
    R = np.stack([r1, r2, np.cross(r1, r2)], axis=1)
    return s, R, P[:, :, 3]


def matrix_to_angles(R: np.ndarray) -> np.ndarray:
    """Rotations ``(B, 3, 3)`` → ``(B, 3)`` (yaw, pitch, roll) in degrees."""
    R = np.asarray(R, np.float64)
    r20 = np.clip(R[:, 2, 0], -1.0, 1.0)
    yaw = np.arcsin(r20)
    cos = np.cos(yaw)
    pitch = np.arctan2(R[:, 2, 1] / cos, R[:, 2, 2] / cos)
    roll = np.arctan2(R[:, 1, 0] / cos, R[:, 0, 0] / cos)
    up, down = r20 > GIMBAL_LOCK, r20 < -GIMBAL_LOCK
    yaw = np.where(up, np.pi / 2, np.where(down, -np.pi / 2, yaw))
    pitch = np.where(up, np.arctan2(-R[:, 0, 1], -R[:, 0, 2]),
                     np.where(down, np.arctan2(R[:, 0, 1], R[:, 0, 2]), pitch))
    roll = np.where(up | down, 0.0, roll)
    return np.degrees(np.stack([yaw, pitch, roll], axis=1))


def angles_to_matrix(angles: np.ndarray) -> np.ndarray:
    """``(B, 3)`` (yaw, pitch, roll) in degrees → rotations ``(B, 3, 3)``; inverse of :func:`matrix_to_angles`."""
    yaw, pitch, roll = np.radians(np.asarray(angles, np.float64)).T
    b, a, g = -yaw, pitch, roll
    cb, sb, ca, sa, cg, sg = np.cos(b), np.sin(b), np.cos(a), np.sin(a), np.cos(g), np.sin(g)
    one, zero = np.ones_like(b), np.zeros_like(b)
    Rx = np.stack([one, zero, zero, zero, ca, -sa, zero, sa, ca], 1).reshape(-1, 3, 3)
    Ry = np.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], 1).reshape(-1, 3, 3)
    Rz = np.stack([cg, -sg, zero, sg, cg, zero, zero, zero, one], 1).reshape(-1, 3, 3)
    return Rz @ Ry @ Rx


def sRt_to_params(s: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Scale ``(B,)``, rotation ``(B, 3, 3)``, translation ``(B, 3)`` → the 12 pose params ``(B, 12)``."""
    P = np.concatenate([np.asarray(s)[:, None, None] * R, np.asarray(t)[:, :, None]], axis=2)
    return P.reshape(-1, 12).astype(np.float32)


def params_to_pose(params: np.ndarray) -> np.ndarray:
    """``(B, >=12)`` raw params → ``(B, 3)`` (yaw, pitch, roll) degrees."""
    return matrix_to_angles(params_to_sRt(params)[1]).astype(np.float32)
