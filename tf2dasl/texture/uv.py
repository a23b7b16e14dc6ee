"""UV texture maps from photos: sampling with z-buffer visibility, mirrored fill, inpainting (numpy + OpenCV).

A face's texture is an ``S x S`` BGR image in the model's UV layout (``MorphableModel.uv``, v up; texel centres
as :func:`tf2dasl.render.uv_to_texel`). :class:`UVLayout` knows, once per model and size, which surface point
every texel shows (its triangle and barycentrics) and where its mirror image is; :meth:`UVLayout.sample` then
makes one face's texture from a photo:

1. **observe**: each texel's point on the fitted mesh is projected into the photo (its image-pixel position is
   the barycentric mix of the face's vertices) and sampled bilinearly. It counts as *seen* when the face's own
   z-buffer at that pixel is not nearer than the point (tolerance :attr:`TextureConfig.depth_tolerance`), and
   its weight falls from 1 to 0 as the surface turns away from the camera (``n_z`` from
   :attr:`~TextureConfig.facing_full` down to :attr:`~TextureConfig.facing_zero`: grazing samples are smeared
   photo pixels) and near the face's silhouettes in the photo (its outline and depth steps such as a turned
   nose: the fitted outline is rarely exact). The weight is feathered inwards from occlusion borders.
2. **mirror**: where the weight is below 1, the mirrored texel (the face's other side; the UV layout is
   symmetric up to a small affine correction fitted from the mean shape's symmetric vertex pairs) fills in,
   in proportion to its own weight; it also replaces a seen texel that it saw much more frontally (a profile's
   far side is squeezed into few pixels and contaminated by the near side's silhouette).
3. **inpaint**: texels neither seen nor mirrored (e.g. under the chin) are filled by ``cv2.inpaint`` (Telea;
   the weakly known ones are mixed with it, so there is no edge where the photo's information runs out),
   and the texture is padded past the UV chart's border with the nearest chart colour, so bilinear lookups at
   the chart's edge never fetch background (no dark seams in renders or in other viewers).

The result is a full texture even for a profile photo; :attr:`Texture.source` says where each texel came from.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from ..render import rasterize_sparse, sample_bilinear, uv_to_texel, vertex_normals

__all__ = ["TextureConfig", "Texture", "UVLayout", "uv_layout", "SOURCE_NAMES"]

#: :attr:`Texture.source` codes
OUTSIDE, OBSERVED, MIRRORED, INPAINTED = 0, 1, 2, 3
SOURCE_NAMES = {OUTSIDE: "outside the UV chart", OBSERVED: "seen in the photo", MIRRORED: "mirrored",
                INPAINTED: "inpainted"}
#: the texture sides (texels) a :class:`TextureConfig` accepts
TEXTURE_SIZE_RANGE = (8, 8192)


@dataclass(frozen=True)
class TextureConfig:
    """How a texture is sampled and filled; sizes relative to the face or the texture so any resolution works.

    size: texture side in texels. facing_zero / facing_full: the surface normal's z component (towards the
    camera) at which a sample's weight is 0 / reaches 1. depth_tolerance: a texel still counts as seen when the
    z-buffer is at most ``1 px + depth_tolerance * face size`` nearer than it. feather: the width, as a fraction
    of ``size``, over which the weight ramps up from an occlusion border. known_zero / known_full: a texel's
    known weight (seen + mirrored, at most 1) below which it is wholly / partly replaced by inpainting; handover:
    the width (fraction of ``size``) over which that replacement fades out into the known texels.
    silhouette: samples within this fraction of the face size from the face's outline in the photo are faded
    out (the fitted outline is rarely exact: beyond it lies background); depth_step: a depth difference between
    neighbouring pixels above this fraction of the face size is a silhouette too (the nose of a turned face). mirror_ratio_keep / _swap: a seen
    texel is kept while its normal's z is at least ``keep`` times its mirror's, and replaced by the mirror
    when it is ``swap`` times or less (a profile's far side is seen at a slant, squeezed into few pixels). inpaint_radius: ``cv2.inpaint``'s
    neighbourhood in texels; inpaint_scale: the resolution it runs at, relative to ``size``."""

    size: int = 512
    facing_zero: float = 0.02
    facing_full: float = 0.25
    depth_tolerance: float = 0.02
    feather: float = 0.02
    mirror_ratio_keep: float = 0.75
    mirror_ratio_swap: float = 0.45
    known_zero: float = 0.05
    known_full: float = 0.4
    handover: float = 0.02
    silhouette: float = 0.04
    depth_step: float = 0.03
    inpaint_radius: int = 5
    inpaint_scale: float = 0.5

    def __post_init__(self):
        lo, hi = TEXTURE_SIZE_RANGE
        if not lo <= int(self.size) <= hi:
            raise ValueError(f"texture size must be in [{lo}, {hi}], got {self.size}")
        if not 0 <= self.facing_zero < self.facing_full <= 1:
            raise ValueError("need 0 <= facing_zero < facing_full <= 1")


@dataclass
class Texture:
    """One face's UV texture: ``image (S, S, 3)`` uint8 BGR; ``weight (S, S)`` float32 in [0, 1], how well each
    texel was seen in the photo; ``source (S, S)`` uint8 (:data:`SOURCE_NAMES`: 1 seen, 2 mirrored,
    3 inpainted, 0 outside the chart, padded)."""

    image: np.ndarray
    weight: np.ndarray
    source: np.ndarray

    def fractions(self) -> dict[str, float]:
        """Share of the chart's texels seen / mirrored / inpainted."""
        chart = self.source != OUTSIDE
        n = max(int(chart.sum()), 1)
        return {SOURCE_NAMES[k]: float((self.source == k).sum()) / n for k in (OBSERVED, MIRRORED, INPAINTED)}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(float(sigma), 0.5), borderType=cv2.BORDER_REPLICATE)


def _inpaint(tex: np.ndarray, mask: np.ndarray, radius: int, scale: float) -> np.ndarray:
    """``cv2.inpaint`` (Telea) of the ``mask`` texels, run at ``scale`` times the resolution (filled regions are
    smooth anyway; a quarter of the texels takes a quarter of the time) and brought back to full size."""
    if scale >= 1.0:
        return cv2.inpaint(tex, mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    h, w = mask.shape
    small = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
    t = cv2.resize(tex, small, interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA) > 0  # any masked texel
    f = cv2.inpaint(t, m.astype(np.uint8), max(int(round(radius * scale)), 1), cv2.INPAINT_TELEA)
    return cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)


class UVLayout:
    """Texel ↔ surface correspondence of one UV-mapped mesh topology at one texture size.

    Args:
        uv: ``(N, 2)`` vertex texture coordinates in ``[0, 1]``, v up.
        triangles: ``(T, 3)`` int, 0-based.
        mean_shape: ``(N, 3)`` a left/right-symmetric shape in the same topology, x across the face (the
            morphable model's mean); it gives the mirror map. ``None`` assumes the layout is mirrored by
            ``u → 1 - u``.
        config: :class:`TextureConfig`.
    """

    def __init__(self, uv, triangles, mean_shape=None, config: TextureConfig | None = None):
        self.config = config or TextureConfig()
        self.uv = np.asarray(uv, np.float64)
        self.triangles = np.asarray(triangles, np.int64)
        s = self.size = int(self.config.size)
        tx, ty = uv_to_texel(self.uv, s, s)
        pix, tri, bary, _ = rasterize_sparse(np.stack([tx, ty, np.zeros_like(tx)], 1), self.triangles, s, s)
        self.texels, self.bary = pix, bary
        self.corners = self.triangles[tri]  # (M, 3) vertex indices of each texel's triangle
        self.chart = np.zeros(s * s, bool)
        self.chart[pix] = True
        self.chart = self.chart.reshape(s, s)
        self.mirror = self._mirror_affine(mean_shape)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
        u, v = (xx + 0.5) / s, 1.0 - (yy + 0.5) / s
        (a0, a1, a2), (b0, b1, b2) = self.mirror
        mu, mv = a0 + a1 * u + a2 * v, b0 + b1 * u + b2 * v
        self.map_x = (mu * s - 0.5).astype(np.float32)
        self.map_y = ((1.0 - mv) * s - 0.5).astype(np.float32)
        # nearest chart texel of every texel outside the chart (for padding)
        _, labels = cv2.distanceTransformWithLabels((~self.chart).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        src = np.flatnonzero(self.chart.reshape(-1))
        lut = np.zeros(labels.max() + 1, np.int64)
        lut[labels.reshape(-1)[src]] = src
        self.nearest = lut[labels.reshape(-1)]

    def _mirror_affine(self, mean_shape) -> np.ndarray:
        """``(2, 3)``: mirrored ``(u', v') = A @ (1, u, v)``, fitted on the mean shape's symmetric vertex pairs."""
        if mean_shape is None:
            return np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])

        m = np.asarray(mean_shape, np.float64).reshape(-1, 3)
        tree = cKDTree(m)
        centre = (m[:, 0].min() + m[:, 0].max()) / 2
        for _ in range(2):  # re-centre the symmetry plane on the pairs found
            flipped = m.copy()
            flipped[:, 0] = 2 * centre - m[:, 0]
            dist, pair = tree.query(flipped)
            centre = float(np.mean((m[:, 0] + m[pair, 0]) / 2))
        good = dist <= 2 * np.median(dist) + 1e-6 * float(np.ptp(m[:, 0]))
        if good.sum() < 3:
            return np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
        A = np.c_[np.ones(good.sum()), self.uv[good]]
        coef, *_ = np.linalg.lstsq(A, self.uv[pair[good]], rcond=None)
        return coef.T

    # ------------------------------------------------------------------ one face
    def observe(self, image: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colours ``(S, S, 3)`` float32 BGR, weights ``(S, S)`` float32 in [0, 1] of the texels seen in ``image``,
        and how frontally each was seen ``(S, S)`` float32 (the normal's z, 0 where not seen)."""
        cfg, s = self.config, self.size
        h, w = image.shape[:2]
        V = np.asarray(vertices, np.float64)
        b = self.bary
        pts = (b[:, :1] * V[self.corners[:, 0]] + b[:, 1:2] * V[self.corners[:, 1]]
               + b[:, 2:] * V[self.corners[:, 2]])
        colour = np.zeros((s * s, 3), np.float32)
        weight = np.zeros(s * s, np.float32)
        fin = np.isfinite(V).all(1)
        if not fin.any():
            return colour.reshape(s, s, 3), weight.reshape(s, s), weight.reshape(s, s)
        # z-buffer of this face alone, in the part of the image it covers
        x0 = int(np.clip(np.floor(V[fin, 0].min()), 0, w - 1))
        y0 = int(np.clip(np.floor(V[fin, 1].min()), 0, h - 1))
        x1 = int(np.clip(np.ceil(V[fin, 0].max()), 0, w - 1))
        y1 = int(np.clip(np.ceil(V[fin, 1].max()), 0, h - 1))
        cw, ch = x1 - x0 + 1, y1 - y0 + 1
        zpix, _, _, z = rasterize_sparse(V - [x0, y0, 0.0], self.triangles, ch, cw)
        depth = np.full(ch * cw, -np.inf)
        depth[zpix] = z
        cx = np.rint(pts[:, 0] - x0)
        cy = np.rint(pts[:, 1] - y0)
        inside = (cx >= 0) & (cx < cw) & (cy >= 0) & (cy < ch)
        inside &= (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
        zb = np.full(len(pts), np.inf)
        zb[inside] = depth[(cy[inside] * cw + cx[inside]).astype(np.int64)]
        size = float(np.sqrt(max(np.ptp(V[fin, 0]) * np.ptp(V[fin, 1]), 1.0)))
        seen = inside & (pts[:, 2] >= zb - (1.0 + cfg.depth_tolerance * size))
        # distance to the face's silhouettes in the photo: its outline and its depth steps (the nose's edge in a
        # turned face), beyond which the photo shows something else than the fitted surface
        d = depth.reshape(ch, cw)
        pad = np.pad(d, 1, constant_values=-np.inf)
        centre = pad[1:-1, 1:-1]
        with np.errstate(invalid="ignore"):
            step = np.zeros((ch, cw), bool)
            for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
                step |= np.isfinite(centre) & ~(np.abs(centre - nb) <= cfg.depth_step * size)
        dist = cv2.distanceTransform((~step).astype(np.uint8), cv2.DIST_L2, 3).reshape(-1)
        inner = np.zeros(len(pts))
        inner[inside] = dist[(cy[inside] * cw + cx[inside]).astype(np.int64)]
        away = _smoothstep(inner / max(cfg.silhouette * size, 1.0))
        # facing: interpolated unit normals' z (towards the camera)
        n = vertex_normals(V, self.triangles).astype(np.float64)
        nt = (b[:, :1] * n[self.corners[:, 0]] + b[:, 1:2] * n[self.corners[:, 1]]
              + b[:, 2:] * n[self.corners[:, 2]])
        nz = nt[:, 2] / np.maximum(np.linalg.norm(nt, axis=1), 1e-12)
        facing = _smoothstep((nz - cfg.facing_zero) / (cfg.facing_full - cfg.facing_zero))
        # feather the seen mask inwards from occlusion borders (the chart's own border is not an occlusion)
        seen_img = np.ones(s * s, np.float32)
        seen_img[self.texels] = seen
        f = max(cfg.feather * s, 0.5)
        k = 2 * int(np.ceil(f)) + 1
        feathered = _blur(cv2.erode(seen_img.reshape(s, s), np.ones((k, k), np.uint8)), f).reshape(-1)
        wt = np.where(seen, facing * away, 0.0) * feathered[self.texels]
        weight[self.texels] = wt
        sel = wt > 0
        colour[self.texels[sel]] = sample_bilinear(image, pts[sel, 0], pts[sel, 1])
        frontal = np.zeros(s * s, np.float32)
        frontal[self.texels] = np.where(wt > 0, np.clip(nz, 0.0, 1.0), 0.0)
        return colour.reshape(s, s, 3), weight.reshape(s, s), frontal.reshape(s, s)

    def _mirrored(self, img: np.ndarray) -> np.ndarray:
        return cv2.remap(img, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)

    def sample(self, image: np.ndarray, vertices: np.ndarray) -> Texture:
        """The full texture of the face with image-pixel ``vertices (N, 3)`` in ``image (H, W, 3)`` uint8 BGR."""
        cfg, s = self.config, self.size
        colour, w, q = self.observe(image, vertices)
        chart = self.chart
        # mirrored side, normalised by its own weight (premultiplied remap: no dark fringes)
        wm = self._mirrored(w)
        cwm = self._mirrored(colour * w[..., None])
        mcol = cwm / np.maximum(wm, 1e-6)[..., None]
        # the mirror replaces a texel it sees much more frontally (a profile's far side, seen at a slant, is
        # squeezed into few pixels and contaminated by the near side's silhouette)
        ratio = q / np.maximum(self._mirrored(q), 1e-6)
        prefer = _smoothstep((cfg.mirror_ratio_keep - ratio) / (cfg.mirror_ratio_keep - cfg.mirror_ratio_swap))
        a = w * (1.0 - prefer)
        bm = (1.0 - a) * wm
        known = a + bm  # <= 1: how much of the texel the photo gives (directly or mirrored)
        comp = (a[..., None] * colour + bm[..., None] * mcol) / np.maximum(known, 1e-6)[..., None]
        tex = np.rint(np.clip(comp, 0, 255)).astype(np.uint8)
        # below known_full the texel is mixed with (or, below known_zero, replaced by) an inpainting of the
        # well-known texels: a smooth hand-over, no edge where the photo's information runs out
        trust = _smoothstep((known - cfg.known_zero) / (cfg.known_full - cfg.known_zero)).astype(np.float32)
        trust = np.minimum(trust, _blur(trust, cfg.handover * s))  # widened into the known side only
        trust[trust > 0.995] = 1.0  # (blurred ones are a rounding error below 1)
        fill = chart & (trust < 1.0)
        source = np.zeros((s, s), np.uint8)
        source[chart] = np.where(a[chart] >= bm[chart], OBSERVED, MIRRORED)
        source[chart & (trust < 0.5)] = INPAINTED
        if fill.any():
            filled = _inpaint(tex, fill | ~chart, cfg.inpaint_radius, cfg.inpaint_scale)
            t = trust[fill][:, None]
            tex[fill] = np.rint(t * comp[fill] + (1.0 - t) * filled[fill]).clip(0, 255).astype(np.uint8)
        flat = tex.reshape(-1, 3)
        flat[:] = flat[self.nearest]  # pad outside the chart with the nearest chart texel
        return Texture(tex, np.where(chart, known, 0).astype(np.float32), source)


def uv_layout(mm, size: int = TextureConfig.size, config: TextureConfig | None = None) -> UVLayout:
    """The :class:`UVLayout` of a morphable model with UVs (made once per model, size and config, then reused);
    :class:`~tf2dasl.geometry.morphable_model.NoUVError` when it has none."""
    config = config or TextureConfig(size=size)
    if config.size != size:
        config = TextureConfig(**{**config.__dict__, "size": size})
    uv = mm.require_uv()
    key = ("uv_layout", config)
    if key not in mm.derived:
        mm.derived[key] = UVLayout(uv, mm.triangles, mm.u.reshape(-1, 3), config)
    return mm.derived[key]
