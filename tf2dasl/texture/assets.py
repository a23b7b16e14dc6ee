"""Textured 3D face assets from a photo: a reconstructed face → UV texture, object-frame mesh, pose → PNG/OBJ/GLB.

    from tf2dasl.texture.assets import textured_face
    tf = textured_face(mm, image, face)          # face.vertices filled (Reconstructor.add_vertices)
    tf.texture.image                             # (512, 512, 3) BGR UV texture
    tf.write_obj("out/face.obj"); tf.write_glb("out/face.glb")

The mesh is written in the object frame of :mod:`tf2dasl.geometry.object_frame` (y up, the face looking along
+z, metric-free units; docs/output_format.md); the pose that puts it back into the photo travels with it (the
GLB node's transform, the OBJ's header comment). Needs a morphable model with UV coordinates
(:meth:`~tf2dasl.geometry.morphable_model.MorphableModel.require_uv`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..geometry.camera import resize_points
from ..geometry.object_frame import object_vertices, pose_matrices, similarity
from ..io.mesh import encode_glb, encode_mtl, encode_textured_obj, write_textured_obj
from ..io.outputs import encode_image, write_bytes
from ..render import vertex_normals
from .uv import Texture, TextureConfig, uv_layout

#: reconstruct's output names of the textured outputs (``--uv-texture``, ``--obj``, ``--glb``)
TEXTURED_OUTPUTS = ("uv_texture", "obj", "glb")
#: how the frame is described inside the files
FRAME_NOTE = ("object frame: x to the face's left, y up, z out of the face (the face looks along +z); "
              "metric-free units (the mean face is ~1.55 wide); see docs/output_format.md")


@dataclass
class TexturedFace:
    """One face ready to write: object-frame ``vertices (N, 3)``, ``triangles (T, 3)`` wound counter-clockwise
    seen from outside, ``normals (N, 3)``, ``uv (N, 2)`` (v up), ``texture`` (:class:`~tf2dasl.texture.Texture`),
    ``pose (4, 4)`` object frame → photo frame (image pixels, y negated) and the photo's ``image_size (W, H)``."""

    vertices: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    texture: Texture
    pose: np.ndarray
    image_size: tuple[int, int]

    def pose_extras(self) -> dict:
        """What the GLB node's ``extras`` (and the OBJ header) say about the frames."""
        return {"frame": FRAME_NOTE,
                "pose_affine": np.round(self.pose, 6).tolist(),
                "pose_maps": "object frame -> photo frame: image pixels (x right, y negated so up, z towards the "
                             "camera), origin at the photo's top-left pixel centre",
                "image_size": list(self.image_size)}

    def node_matrix(self) -> np.ndarray:
        """The pose as a similarity (rotation, uniform scale, translation): a valid glTF node transform."""
        t, R, s = similarity(self.pose)
        m = np.eye(4)
        m[:3, :3] = s * R
        m[:3, 3] = t
        return m

    def obj_comments(self) -> tuple[str, ...]:
        affine = " ".join(f"{x:.6g}" for x in self.pose[:3].ravel())
        return (FRAME_NOTE, f"pose (object -> photo frame, 3x4 row-major affine, pixels): {affine}",
                f"photo size: {self.image_size[0]}x{self.image_size[1]}")

    def encode_obj(self, mtl_name: str) -> bytes:
        """The OBJ's bytes (:func:`tf2dasl.io.mesh.encode_textured_obj`) naming its MTL file."""
        return encode_textured_obj(self.vertices, self.triangles, self.uv, self.normals, mtl_name,
                                   self.obj_comments())

    def encode_glb(self) -> bytes:
        """One GLB with the texture embedded; the node ``face`` carries the pose (:meth:`node_matrix`)."""
        return encode_glb(self.vertices, self.triangles, self.uv, self.texture.image, self.normals,
                          node_matrix=self.node_matrix(), extras=self.pose_extras())

    def write_obj(self, path, overwrite: bool = True) -> list[Path]:
        """``NAME.obj`` + ``NAME.mtl`` + ``NAME.png`` (:func:`tf2dasl.io.mesh.write_textured_obj`)."""
        return write_textured_obj(path, self.vertices, self.triangles, self.uv, self.texture.image, self.normals,
                                  self.obj_comments(), overwrite=overwrite)

    def write_glb(self, path, overwrite: bool = True) -> Path:
        return write_bytes(path, self.encode_glb(), overwrite=overwrite)


def object_triangles(mm) -> np.ndarray:
    """The model's triangles wound counter-clockwise seen from outside in the (right-handed, y up) object frame:
    3DDFA's ``tri`` is wound for image pixels (y down), so each is reversed."""
    return np.ascontiguousarray(np.asarray(mm.triangles)[:, [0, 2, 1]])


def textured_face(mm, image: np.ndarray, face, config: TextureConfig | None = None,
                  image_scale: float = 1.0) -> TexturedFace:
    """:class:`TexturedFace` of one reconstructed ``face`` (``face.vertices`` filled) in ``image`` (BGR uint8).

    ``image_scale``: ``image``'s pixel grid is the face's resized by it (a photo decoded at ``1 / reduction`` of
    its size): the texture is sampled from ``image``, the pose stays in the face's (full-image) pixels."""
    config = config or TextureConfig()
    layout = uv_layout(mm, config.size, config)
    if face.vertices is None:
        raise ValueError("face.vertices is None: call Reconstructor.add_vertices(faces) first")
    obj = object_vertices(mm, np.asarray(face.params)[None])[0]
    pose = pose_matrices(obj[None], np.asarray(face.vertices)[None])[0]
    tri = object_triangles(mm)
    seen = np.asarray(face.vertices)
    if image_scale != 1.0:
        seen = resize_points(seen, image_scale)
    size = (int(round(image.shape[1] / image_scale)), int(round(image.shape[0] / image_scale)))
    return TexturedFace(vertices=obj, triangles=tri, normals=vertex_normals(obj, tri), uv=mm.uv,
                        texture=layout.sample(image, seen), pose=pose, image_size=size)


def require_textured(mm, outputs: Sequence[str]) -> None:
    """One clear line (:class:`~tf2dasl.geometry.morphable_model.NoUVError`) when textured ``outputs`` are asked
    of a model without UV coordinates; nothing when none is asked."""
    wanted = [o for o in TEXTURED_OUTPUTS if o in outputs]
    if wanted:
        mm.require_uv("--" + " / --".join(o.replace("_", "-") for o in wanted))


def textured_suffixes(outputs: Sequence[str]) -> list[str]:
    """What follows ``<stem>_<face>`` in the names of the textured ``outputs``, in writing order: ``_texture.png``
    (``uv_texture``, and the OBJ's texture), ``.mtl`` + ``.obj`` (``obj``), ``.glb`` (``glb``)."""
    suffixes = []
    if "uv_texture" in outputs or "obj" in outputs:
        suffixes.append("_texture.png")
    if "obj" in outputs:
        suffixes += [".mtl", ".obj"]
    if "glb" in outputs:
        suffixes.append(".glb")
    return suffixes


def textured_file_names(stem: str, index: int, outputs: Sequence[str]) -> list[str]:
    """The files face ``index`` of ``stem`` gets for the textured ``outputs``: ``<stem>_<i>`` + each of
    :func:`textured_suffixes`."""
    return [f"{stem}_{index}{suffix}" for suffix in textured_suffixes(outputs)]


def textured_files(stem: str, image: np.ndarray, faces: Sequence, mm, outputs: Sequence[str],
                   texture_size: int = TextureConfig.size,
                   image_scale: float = 1.0) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(file name, make its bytes)`` of reconstruct's textured outputs (:func:`textured_file_names`), face by
    face; each face's texture is sampled once, when the first of its files is made (``image_scale``: as
    :func:`textured_face`). Nothing asked, nothing yielded; a model without UVs is :func:`require_textured`'s
    one line."""
    if not any(o in outputs for o in TEXTURED_OUTPUTS) or not faces:
        return
    require_textured(mm, outputs)
    config = TextureConfig(size=texture_size)
    for i, face in enumerate(faces):
        cache: dict = {}

        def made(face=face, cache=cache) -> TexturedFace:
            if "tf" not in cache:
                cache["tf"] = textured_face(mm, image, face, config, image_scale)
            return cache["tf"]

        names = textured_file_names(stem, i, outputs)
        png = names[0] if names[0].endswith("_texture.png") else None
        for name in names:
            if name == png:
                yield name, (lambda name=name, made=made: encode_image(name, made().texture.image))
            elif name.endswith(".mtl"):
                yield name, (lambda png=png: encode_mtl(png))
            elif name.endswith(".obj"):
                yield name, (lambda made=made, i=i: made().encode_obj(f"{stem}_{i}.mtl"))
            else:
                yield name, (lambda made=made: made().encode_glb())
