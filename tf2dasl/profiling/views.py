"""One face seen from a new pose: the fitted mesh rotated out of plane, the photo around it warped along, cropped
as every training face is, and labelled with the rotated parameters.

A :class:`Source` is a photo (the *work image*, ``(H, W, 3)`` uint8 BGR), the roi box of a crop of it and the
parameters fitted in that crop. :meth:`Profiler.prepare` puts the fitted dense mesh on the photo and builds the
sheet around it (:mod:`.surroundings`); :meth:`Profiler.view` then, for a target pose:

1. rotates the parameters about the mesh's centroid to the target (yaw, pitch, roll): ``M' = dR M``,
   ``t' = dR (t - c) + c`` — the label is exact: the rotated fit;
2. crops the view from the rotated 68 landmarks with 3DDFA_V2's ``parse_roi_box_from_landmark`` rule
   (:func:`~tf2dasl.geometry.roi.roi_from_landmarks`), jittered by the pose's scale and shift as the training
   augmentation jitters every crop, and moves the parameters into that crop (:func:`.frames.move_params`);
3. renders only that crop: the rotated face mesh over the moved sheet, each in its own z-buffer
   (:func:`tf2dasl.render.rasterize`), interpolating for every crop pixel the photo position it shows (each mesh
   vertex shows where it was in the photo, as 3DDFA's profiling textures it); pixels neither covers show the
   photo where they are; one ``cv2.remap`` of the photo (its edge repeated beyond it) makes the crop.

Shapes: params ``(62,)`` raw 3DDFA parameters; landmarks ``(68, 2)`` crop pixels; roi boxes ``(4,)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry.camera import crop_to_image, image_to_crop, model_to_crop
from ..geometry.conventions import CropConvention
from ..geometry.morphable_model import MorphableModel
from ..geometry.pose import angles_to_matrix, params_to_sRt
from ..geometry.roi import roi_from_landmarks
from ..render import rasterize
from .frames import crop_affine, move_params, pixel_roi
from .surroundings import Sheet, SurroundConfig, make_sheet

#: image y points down, the model frame's y up: a rotation dR of the model frame is F dR F in image pixels
_FLIP_Y = np.diag([1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Source:
    """A face to profile: the work ``image`` ``(H, W, 3)`` uint8 BGR, the ``roi (4,)`` box of the crop its raw
    ``params (62,)`` were fitted in, and a ``name``."""

    name: str
    image: np.ndarray
    roi: np.ndarray
    params: np.ndarray


@dataclass(frozen=True)
class ViewPose:
    """A view's target pose in degrees (3DDFA_V2's yaw, pitch, roll) and its crop jitter: the roi side times
    ``scale``, its centre moved by ``shift (2,)`` roi sides."""

    yaw: float
    pitch: float
    roll: float
    scale: float = 1.0
    shift: tuple = (0.0, 0.0)


@dataclass(frozen=True)
class View:
    """A synthesised training face: ``image (S, S, 3)`` uint8 BGR, its raw ``params (62,)`` and 68
    ``landmarks (68, 2)`` in its crop, and its ``roi (4,)`` box in the source's work image."""

    image: np.ndarray
    params: np.ndarray
    landmarks: np.ndarray
    roi: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """A source ready for views: its dense ``shape (N, 3)`` before the camera (the part a rotation leaves alone),
    its mesh ``vertices (N, 3)`` in work-image pixels, the mesh's centroid in the model frame ``centre (3,)`` and
    in work-image pixels ``pivot (3,)``, the fit's ``rotation (3, 3)`` and the ``sheet`` around it."""

    source: Source
    shape: np.ndarray
    vertices: np.ndarray
    centre: np.ndarray
    pivot: np.ndarray
    rotation: np.ndarray
    sheet: Sheet


def _posed(shape: np.ndarray, params: np.ndarray) -> np.ndarray:
    """A shape ``(N, 3)`` before the camera placed by the camera of raw ``params (62,)``: model frame ``(N, 3)``."""
    cam = np.asarray(params, np.float64)[:12].reshape(3, 4)
    return shape @ cam[:, :3].T + cam[:, 3]


class Profiler:
    """Views of faces fitted with the morphable model ``mm`` in ``size``-pixel crops of ``convention``."""

    def __init__(self, mm: MorphableModel, size: int, convention: CropConvention,
                 surround: SurroundConfig | None = None):
        mm.require_dense()
        self.mm, self.size, self.convention = mm, int(size), convention
        self.surround = surround or SurroundConfig()
        self.triangles = np.asarray(mm.triangles, np.int64)
        self.grid = np.mgrid[0:self.size, 0:self.size].astype(np.float64)   # (2, S, S): a crop's rows, columns

    # ------------------------------------------------------------------ geometry
    def _to_image(self, model_points: np.ndarray, roi) -> np.ndarray:
        """Model-frame points ``(N, 3)`` of params in the crop of ``roi`` → work-image pixels ``(N, 3)``."""
        crop = model_to_crop(model_points[None], self.size, self.convention)
        return crop_to_image(crop, pixel_roi(roi, self.size), self.size)[0].astype(np.float64)

    def prepare(self, source: Source) -> Prepared:
        """The mesh on the photo, the pivot and rotation its views turn by and the sheet around it (once per source,
        for all its views)."""
        params = np.asarray(source.params, np.float32)[None]
        shape = self.mm.shape_offsets(params, dense=True)[0]
        model = _posed(shape, params[0])
        vertices = self._to_image(model, source.roi)
        sheet = make_sheet(vertices, self.triangles, source.roi, self.surround)
        centre = model.mean(axis=0).astype(np.float64)
        _, rotation, _ = params_to_sRt(np.asarray(source.params, np.float64)[None])
        return Prepared(source, shape, vertices, centre, self._to_image(centre[None], source.roi)[0], rotation[0],
                        sheet)

    def rotated_params(self, prep: Prepared, pose: ViewPose) -> tuple[np.ndarray, np.ndarray]:
        """The source's params turned to ``pose`` about the mesh centroid (still in the source's crop) and the
        rotation ``dR (3, 3)`` of the model frame that did it."""
        p = np.asarray(prep.source.params, np.float64)
        target = angles_to_matrix(np.array([[pose.yaw, pose.pitch, pose.roll]]))[0]
        d_rot = target @ prep.rotation.T
        cam = p[:12].reshape(3, 4)
        c = prep.centre
        out = p.copy()
        out[:12] = np.hstack([d_rot @ cam[:, :3], (d_rot @ (cam[:, 3] - c) + c)[:, None]]).reshape(-1)
        return out.astype(np.float32), d_rot

    def view_roi(self, landmarks_image: np.ndarray, pose: ViewPose) -> np.ndarray:
        """``(4,)`` the view's roi box: the landmark roi of the rotated 68 points ``(68, 2)`` (work-image pixels),
        scaled and shifted by the pose's jitter."""
        x0, y0, x1, y1 = roi_from_landmarks(landmarks_image[None])[0].astype(np.float64)
        side = (x1 - x0) * pose.scale
        cx = (x0 + x1) / 2 + pose.shift[0] * (x1 - x0)
        cy = (y0 + y1) / 2 + pose.shift[1] * (x1 - x0)
        return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])

    # ------------------------------------------------------------------ one view
    def view(self, prep: Prepared, pose: ViewPose) -> View:
        """The source seen in ``pose`` (see the module doc)."""
        src, s = prep.source, self.size
        params, d_rot = self.rotated_params(prep, pose)
        lm_image = self._to_image(self.mm.landmarks(params[None])[0], src.roi)[:, :2]
        roi = self.view_roi(lm_image, pose)
        label = move_params(params[None], np.asarray(src.roi)[None], roi[None], s, self.convention)[0]
        landmarks = model_to_crop(self.mm.landmarks(label[None]), s, self.convention)[0, :, :2]

        face = self._to_image(_posed(prep.shape, params), src.roi)
        motion = _FLIP_Y @ d_rot @ _FLIP_Y
        pivot = prep.pivot
        sheet = prep.sheet.moved(lambda q: (q - pivot) @ motion.T + pivot)

        a = crop_affine(roi, s)                                           # this crop's pixels → image pixels
        yy, xx = self.grid
        map_x, map_y = a[0, 2] + a[0, 0] * xx, a[1, 2] + a[1, 1] * yy     # the photo where nothing moved
        frame = pixel_roi(roi, s)
        # the sheet first (a fold of it may face away), then the face over it (its back faces never show)
        for verts, tris, looks_at, cull in ((sheet, prep.sheet.triangles, prep.sheet.points, False),
                                            (face, self.triangles, prep.vertices, True)):
            in_crop = image_to_crop(verts[None], frame, s, np.float64)[0]              # depth scaled alike
            _, tri, bary = rasterize(in_crop, tris, s, s, cull_backfaces=cull)
            hit = tri >= 0
            corners = tris[tri[hit]]                                      # (M, 3) vertex indices
            b = bary[hit][..., None].astype(np.float64)
            pos = (b * looks_at[corners, :2]).sum(axis=1)                 # (M, 2) photo positions
            map_x[hit], map_y[hit] = pos[:, 0], pos[:, 1]
        image = cv2.remap(src.image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        return View(image, label.astype(np.float32), landmarks.astype(np.float32), roi)
