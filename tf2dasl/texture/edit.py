"""Face edits on reconstructed faces: face swap and expression retargeting (numpy + OpenCV).

* :func:`swap_face`: the source face's UV texture (:mod:`tf2dasl.texture`) rendered on the target face's
  geometry and pose, its colours matched to the target's skin (Lab mean and spread over the texels both photos
  show), and blended into the target photo by Poisson blending (``cv2.seamlessClone``) inside a mask made from
  the rendered face region (the target's jaw-and-brow landmark outline, where the surface faces the camera).
* :func:`retarget_expression`: the target face with another face's expression coefficients (and optionally a
  rotation), textured with the target's own texture and rendered back into the target photo. Only pixels the
  new geometry moved are replaced (the rest of the photo is untouched); where the face drew back, the photo is
  inpainted; an opened mouth (BFM has no mouth interior) is shaded dark inside the inner-lip outline.

Faces are :class:`tf2dasl.reconstruct.Face` records with ``vertices`` (image pixels) filled; the morphable model
must have UV coordinates (:meth:`~tf2dasl.geometry.morphable_model.MorphableModel.require_uv`). Images are
``(H, W, 3)`` uint8 BGR.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UserError
from ..geometry.morphable_model import EXPRESSION
from ..geometry.object_frame import apply_pose, object_vertices, pose_matrices
from ..render import rasterize_sparse, render_textured, texture_colors, vertex_normals
from .uv import Texture, uv_layout

__all__ = ["EditConfig", "swap_face", "retarget_expression", "match_colours", "Retargeter", "find_face",
           "NoFaceError"]

#: 68-point indices: jaw (0-16) and brows (17-26) outline the swapped region; 60-67 is the inner lip outline
JAW_AND_BROWS = np.arange(27)
INNER_LIPS = np.arange(60, 68)


@dataclass(frozen=True)
class EditConfig:
    """Settings of the edits; lengths are fractions of the face's size (``sqrt`` of its box area in pixels).

    texture_size: side of the UV textures. min_facing: pixels whose surface normal's z (towards the camera) is
    below this stay out of the swap mask (silhouettes: the fitted outline is least exact there). mask_erode:
    the swap mask is shrunk by this, so Poisson blending's boundary lies on the target's own skin. feather: the
    retarget's alpha is blurred by this. motion_px: a retargeted pixel replaces the photo fully once the new
    geometry moved it this many pixels (less: mixed; none: untouched). mouth_shade: the inside of an opened
    mouth is the lips' mean colour times this. colour_match: match the source texture's Lab statistics to the
    target's before swapping."""

    texture_size: int = 512
    min_facing: float = 0.2
    mask_erode: float = 0.02
    feather: float = 0.012
    motion_px: float = 0.75
    mouth_shade: float = 0.25
    colour_match: bool = True


class NoFaceError(UserError):
    """An edit's source or target photo where the face asked for is not found (one line naming the photo)."""


def find_face(rec, image: np.ndarray, name, index: int | None = None, role: str = "photo"):
    """The face of ``image`` an edit works on, with its ``vertices``: the largest one, or the ``index``-th from
    the left. :class:`NoFaceError` naming ``name`` (the photo's path) and its ``role`` when there is none."""
    faces = rec(image)
    if not faces:
        raise NoFaceError(f"{name}: no face found in the {role} (use a photo with a visible face, or another "
                          "--detector)")
    if index is None:
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    else:
        order = sorted(faces, key=lambda f: float(f.bbox[0]))
        if not 0 <= index < len(order):
            raise NoFaceError(f"{name}: face {index} asked for, but the {role} has {len(order)} face(s) "
                              f"(0 to {len(order) - 1}, left to right)")
        face = order[index]
    rec.add_vertices([face])
    return face


def face_size(vertices: np.ndarray) -> float:
    v = np.asarray(vertices, np.float64)
    return float(np.sqrt(max(np.ptp(v[:, 0]) * np.ptp(v[:, 1]), 1.0)))


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _odd(n: float) -> int:
    return 2 * max(int(round(n)), 0) + 1


# ------------------------------------------------------------------------------------------------ colour
def match_colours(source: Texture, target: Texture) -> np.ndarray:
    """``source.image`` with its per-channel Lab mean and standard deviation moved to ``target``'s (Reinhard et
    al.'s colour transfer), both measured over the texels seen in both photos (weights ``min`` of the two,
    mirrored ones included). Returns ``(S, S, 3)`` uint8 BGR."""
    w = np.minimum(source.weight, target.weight).reshape(-1)
    if w.sum() < 1.0:  # nothing in common: leave the colours
        return source.image.copy()
    lab_s = cv2.cvtColor(source.image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB).reshape(-1, 3)
    lab_t = cv2.cvtColor(target.image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB).reshape(-1, 3)
    ws = w / w.sum()
    ms, mt = ws @ lab_s, ws @ lab_t
    ss = np.sqrt(ws @ (lab_s - ms) ** 2) + 1e-3
    st = np.sqrt(ws @ (lab_t - mt) ** 2) + 1e-3
    out = (lab_s - ms) * (st / ss) + mt
    bgr = cv2.cvtColor(out.reshape(source.image.shape).astype(np.float32), cv2.COLOR_LAB2BGR)
    return np.clip(np.rint(bgr * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ masks
def _covered(shape, vertices, triangles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels covered by the mesh: ``(mask (H, W) bool, pix, tri, bary)``."""
    h, w = shape[:2]
    pix, tri, bary, _ = rasterize_sparse(vertices, triangles, h, w)
    mask = np.zeros(h * w, bool)
    mask[pix] = True
    return mask.reshape(h, w), pix, tri, bary


def _interpolate(values: np.ndarray, triangles, tri, bary) -> np.ndarray:
    corners = np.asarray(triangles)[tri]
    return np.einsum("mk,mk...->m...", bary, values[corners])


def swap_mask(shape, face, triangles, config: EditConfig) -> np.ndarray:
    """``(H, W)`` uint8 {0, 255}: the rendered face inside the jaw-and-brow outline of ``face``'s landmarks,
    where the surface faces the camera (the largest such region, its holes filled), shrunk by ``mask_erode``
    and kept off the image border (seamlessClone needs a margin)."""
    h, w = shape[:2]
    covered, pix, tri, bary = _covered(shape, face.vertices, triangles)
    normals = vertex_normals(face.vertices, triangles)
    nz = _interpolate(normals[:, 2].astype(np.float64), triangles, tri, bary)
    facing = np.zeros(h * w, bool)
    facing[pix] = nz >= config.min_facing
    hull = np.zeros((h, w), np.uint8)
    pts = np.round(np.asarray(face.landmarks_2d)[JAW_AND_BROWS] * 16).astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts), 255, cv2.LINE_8, 4)
    mask = (covered & facing.reshape(h, w) & (hull > 0)).astype(np.uint8) * 255
    k = _odd(config.mask_erode * face_size(face.vertices))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # drop specks
    # one region without holes: the side of a turned nose and the mouth's slit are swapped too
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        mask = np.zeros_like(mask)
        cv2.drawContours(mask, [max(contours, key=cv2.contourArea)], -1, 255, cv2.FILLED)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    return mask


def poisson_blend(rendered: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cv2.seamlessClone`` of ``rendered``'s masked region into ``target`` at the same place (the gradients of
    the rendered face, the colours of the target at the mask's border); pixels outside the mask stay the
    target's."""
    if not mask.any():
        return target.copy()
    x, y, bw, bh = cv2.boundingRect(mask)
    centre = (x + bw // 2, y + bh // 2)  # seamlessClone centres the mask's bounding box here: no shift
    cloned = cv2.seamlessClone(rendered, target, mask.copy(), centre, cv2.NORMAL_CLONE)  # (it writes into the mask)
    out = target.copy()
    inside = mask > 0
    out[inside] = cloned[inside]  # OpenCV also touches pixels around the mask: keep the target's there
    return out


# ------------------------------------------------------------------------------------------------ swap
def swap_face(mm, source_image: np.ndarray, source_face, target_image: np.ndarray, target_face,
              config: EditConfig | None = None) -> np.ndarray:
    """``target_image`` with ``target_face`` replaced by ``source_face`` of ``source_image`` (module docstring).

    Both faces need ``vertices``; returns ``(H, W, 3)`` uint8 BGR of the target's size."""
    config = config or EditConfig()
    layout = uv_layout(mm, config.texture_size)
    src = layout.sample(source_image, source_face.vertices)
    tex = src.image
    if config.colour_match:
        tex = match_colours(src, layout.sample(target_image, target_face.vertices))
    rendered = render_textured(target_image, [target_face.vertices], mm.triangles, mm.uv, tex)
    return poisson_blend(rendered, target_image, swap_mask(target_image.shape, target_face, mm.triangles, config))


# ------------------------------------------------------------------------------------------------ retarget
class Retargeter:
    """One target face, re-rendered with other expressions (and rotations): the target's texture, object-frame
    shape and pose are computed once (:meth:`__call__` per expression, e.g. per video frame)."""

    def __init__(self, mm, target_image: np.ndarray, target_face, config: EditConfig | None = None,
                 texture: np.ndarray | None = None):
        self.mm, self.config = mm, config or EditConfig()
        mm.require_uv("retargeting")
        self.image = target_image
        self.face = target_face
        self.texture = texture if texture is not None else uv_layout(mm, self.config.texture_size).sample(
            target_image, target_face.vertices).image
        self.params = np.asarray(target_face.params, np.float32)
        obj = object_vertices(mm, self.params[None])
        self.pose = pose_matrices(obj, np.asarray(target_face.vertices)[None])  # (1, 4, 4)
        self.covered_before = _covered(target_image.shape, target_face.vertices, mm.triangles)[0]
        self.size = face_size(target_face.vertices)

    def vertices(self, expression: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
        """Image-pixel vertices ``(N, 3)`` of the target with ``expression (10,)`` and, when given, the object
        frame turned by ``rotation (3, 3)`` about its origin (a point inside the head) before the target's pose."""
        p = self.params.copy()
        p[EXPRESSION] = np.asarray(expression, np.float32)
        obj = object_vertices(self.mm, p[None])
        if rotation is not None:
            obj = obj @ np.asarray(rotation, np.float32).T
        return apply_pose(self.pose, obj)[0]

    def __call__(self, expression: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
        """The target photo with ``expression`` (and ``rotation``): ``(H, W, 3)`` uint8 BGR."""
        cfg, mm, img = self.config, self.mm, self.image
        h, w = img.shape[:2]
        new = self.vertices(expression, rotation)
        covered, pix, tri, bary = _covered(img.shape, new, mm.triangles)  # one raster: the render and the motion
        rendered = img.copy()
        rendered.reshape(-1, 3)[pix] = texture_colors(tri, bary, mm.triangles, mm.uv, self.texture)
        moved = np.linalg.norm(new[:, :2] - np.asarray(self.face.vertices)[:, :2], axis=1)
        weight = np.zeros(h * w)
        weight[pix] = _smoothstep(_interpolate(moved.astype(np.float64), mm.triangles, tri, bary) / cfg.motion_px)
        weight = weight.reshape(h, w)
        base = img
        reveal = self.covered_before & ~covered  # where the face drew back: the photo behind is unknown
        if reveal.any():
            k = _odd(0.01 * self.size)
            grow = cv2.dilate(reveal.astype(np.uint8), np.ones((k, k), np.uint8))
            base = cv2.inpaint(img, grow, 3, cv2.INPAINT_TELEA)
        mouth = self._mouth(new, covered)
        if mouth is not None:
            rendered = rendered.copy()
            lips = rendered[covered & self._lip_band(new)] if covered.any() else rendered[covered]
            colour = (lips.reshape(-1, 3).mean(0) if len(lips) else np.full(3, 60.0)) * cfg.mouth_shade
            rendered[mouth] = np.clip(colour, 0, 255).astype(np.uint8)
            weight[mouth] = 1.0
            covered = covered | mouth
        # feather: the alpha fades in from the border of the covered region, and is smooth inside
        sig = max(cfg.feather * self.size, 0.5)
        inner = cv2.erode(covered.astype(np.uint8), np.ones((_odd(sig), _odd(sig)), np.uint8)).astype(np.float32)
        alpha = cv2.GaussianBlur(inner, (0, 0), sig) * cv2.GaussianBlur(weight.astype(np.float32), (0, 0), sig)
        alpha = np.where(covered, alpha, 0.0)[..., None]
        out = alpha * rendered.astype(np.float32) + (1.0 - alpha) * base.astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _landmarks(self, vertices: np.ndarray) -> np.ndarray:
        return vertices[np.asarray(self.mm.landmark_vertices)]

    def _mouth(self, vertices: np.ndarray, covered: np.ndarray) -> np.ndarray | None:
        """Pixels inside the new inner-lip outline that the mesh does not cover (an opened mouth), or None."""
        lm = self._landmarks(vertices)[INNER_LIPS, :2]
        poly = np.zeros(covered.shape, np.uint8)
        cv2.fillPoly(poly, [np.round(lm * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        mouth = (poly > 0) & ~covered
        return mouth if mouth.sum() > 2 else None

    def _lip_band(self, vertices: np.ndarray) -> np.ndarray:
        lm = self._landmarks(vertices)
        band = np.zeros(self.image.shape[:2], np.uint8)
        cv2.fillPoly(band, [np.round(lm[48:60, :2] * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        return band > 0


def retarget_expression(mm, target_image: np.ndarray, target_face, expression: np.ndarray,
                        rotation: np.ndarray | None = None, config: EditConfig | None = None) -> np.ndarray:
    """``target_image`` with ``target_face`` showing ``expression`` (10 coefficients, e.g. another face's
    ``params[52:62]``) and, optionally, turned by ``rotation`` (:class:`Retargeter`)."""
    return Retargeter(mm, target_image, target_face, config)(expression, rotation)
