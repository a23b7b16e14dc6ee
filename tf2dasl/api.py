"""The batch API behind ``tf2dasl reconstruct``: paths in, one JSON (and pictures, meshes) per image out.

    from tf2dasl.api import reconstruct_paths
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

Unreadable images are reported by name and skipped; the rest go on (``summary.failures``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .io.images import ImageError, iter_image_paths, read_image
from .reconstruct import Face, Reconstructor


@dataclass
class Summary:
    """What a batch run did: counts, and ``failures`` as (path, reason) pairs."""

    images: int = 0
    faces: int = 0
    without_faces: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        ok = self.images - len(self.failures)
        return (f"{ok}/{self.images} images reconstructed, {self.faces} faces, "
                f"{len(self.without_faces)} without faces, {len(self.failures)} failed")

    def to_json(self) -> dict:
        return {"images": self.images, "faces": self.faces, "without_faces": self.without_faces,
                "failures": [{"image": p, "error": r} for p, r in self.failures]}


def image_record(path: Path, image: np.ndarray, faces: Sequence[Face]) -> dict:
    """The per-image JSON of DESIGN.md §3."""
    h, w = image.shape[:2]
    return {"image": str(path), "width": int(w), "height": int(h), "faces": [f.to_json() for f in faces]}


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str],
                  mm) -> list[Path]:
    """Write the pictures (``overlay``, ``depth``, ``pncc``) and meshes (``obj``, ``ply``) asked for."""
    from . import visualize
    from .io.mesh import sample_vertex_colors, write_obj, write_ply

    from .reconstruct import dense_vertices

    written = []
    tri = mm.triangles if mm.is_dense else None
    if tri is not None and set(outputs) & {"overlay", "depth", "pncc", "obj", "ply"}:
        dense_vertices(list(faces))  # once, batched; cached on the faces
    if "overlay" in outputs:
        written.append(out_dir / f"{stem}_overlay.png")
        cv2.imwrite(str(written[-1]), visualize.overlay(image, faces, tri))
    if tri is None:
        return written
    if "depth" in outputs:
        written.append(out_dir / f"{stem}_depth.png")
        cv2.imwrite(str(written[-1]), visualize.depth_image(image, faces, tri))
    if "pncc" in outputs:
        written.append(out_dir / f"{stem}_pncc.png")
        cv2.imwrite(str(written[-1]), visualize.pncc_image(image, faces, tri, mm.ncc()))
    for i, face in enumerate(faces):
        if "obj" in outputs or "ply" in outputs:
            v = face.vertices()
            colors = sample_vertex_colors(image, v)
            if "obj" in outputs:
                written.append(write_obj(out_dir / f"{stem}_{i}.obj", v, tri, colors))
            if "ply" in outputs:
                written.append(write_ply(out_dir / f"{stem}_{i}.ply", v, tri, colors))
    return written


def make_backend(model_dir, runtime: str = "keras", export_dir=None, server: str | None = None,
                 server_model: str | None = None, num_threads: int | None = None):
    """The model a :class:`Reconstructor` calls: the model directory itself (Keras), one of its exported
    runtimes (``savedmodel``, ``tflite``, ``onnx`` from ``export_dir``) or a TF Serving server (``HOST:PORT``,
    gRPC). The model directory always supplies the morphable model and the spec."""
    from . import load_model
    from .errors import UserError
    from .reconstruct import PredictorBackend

    model = load_model(model_dir)
    if server:
        from .serving import GrpcClient

        return PredictorBackend(GrpcClient(server, server_model or model.spec.name), model.spec, model.mm)
    if runtime == "keras":
        return model
    if not export_dir:
        raise UserError(f"--export-dir EXPORT_DIR is required with --runtime {runtime} (make one with `tf2dasl export`)")
    from .runtimes import load_runtime

    return PredictorBackend(load_runtime(runtime, export_dir, num_threads=num_threads), model.spec, model.mm)


def make_reconstructor(model, detector: str = "auto", assets_dir=None, detector_options: dict | None = None,
                       refine: bool = True) -> Reconstructor:
    """A :class:`Reconstructor` from a model (directory, loaded model or backend) and a detector name."""
    from .detect import make_detector

    if isinstance(model, (str, Path)):
        model = make_backend(model)
    opts = {k: v for k, v in (detector_options or {}).items() if v is not None}
    return Reconstructor(model, make_detector(detector, assets_dir, **opts), refine=refine)


def read_boxes_file(path) -> dict:
    """``{"image.jpg": [[x0, y0, x1, y1], ...], ...}`` from a JSON file; one clear line when it is malformed."""
    from .errors import UserError

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: boxes file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(b, list) and len(b) == 4 and all(isinstance(c, (int, float)) for c in b)
                                    for b in v) for v in data.values())
    if not ok:
        raise UserError(f'{path}: expected {{"image.jpg": [[x0, y0, x1, y1], ...], ...}}')
    return data


def reconstruct_paths(inputs, model, out_dir, outputs: Sequence[str] = (), detector: str = "auto",
                      assets_dir=None, detector_options: dict | None = None, use_pts: bool = False,
                      refine: bool = True, progress: bool = True, boxes: dict | None = None) -> Summary:
    """Reconstruct every image of ``inputs`` (files or folders) into ``out_dir``; see :class:`Summary`.

    ``boxes`` maps an image's file name (or path as given) to its face boxes ``[[x0, y0, x1, y1], ...]``
    (FaceBoxes-like, 0-based pixels): those images skip detection."""
    from .io.pts import PtsError, read_pts

    paths = iter_image_paths(inputs)
    rec = make_reconstructor(model, detector, assets_dir, detector_options, refine)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(images=len(paths))
    stems: dict[str, int] = {}
    for path in tqdm(paths, desc="reconstruct", unit="img", disable=not progress or len(paths) < 2):
        stem = path.stem if path.stem not in stems else f"{path.stem}_{stems[path.stem]}"
        stems[path.stem] = stems.get(path.stem, 0) + 1
        try:
            image = read_image(path)
            pts_path = path.with_suffix(".pts")
            given = (boxes or {}).get(str(path), (boxes or {}).get(path.name))
            if use_pts and pts_path.is_file():
                faces = rec(image, landmarks=read_pts(pts_path)[None])
            elif given is not None:
                faces = rec(image, boxes=np.asarray(given, np.float32).reshape(-1, 4))
            else:
                faces = rec(image)
        except (ImageError, PtsError) as exc:
            summary.failures.append((str(path), str(exc)))
            continue
        summary.faces += len(faces)
        if not faces:
            summary.without_faces.append(str(path))
        (out / f"{stem}.json").write_text(json.dumps(image_record(path, image, faces)) + "\n")
        write_outputs(out, stem, image, faces, outputs, rec.model.mm)
    return summary
