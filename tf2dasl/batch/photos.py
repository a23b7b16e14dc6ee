"""The batch run behind ``tf2dasl reconstruct`` on photos: paths in, one JSON (and pictures, meshes) per image out.

    from tf2dasl.batch import reconstruct_paths
    summary = reconstruct_paths(["photos/"], "models/mb05", "out/", outputs=["overlay"])

Missing inputs, unreadable images and unusable boxes are reported by name and skipped; the rest go on
(``summary.failures``). Images where no face was found still get their JSON (``"faces": []``) and are listed
(``summary.without_faces``). Output names are the input stems, made unique within a run (:func:`output_stems`).

Outputs survive faults (docs/output_format.md, "Output guarantees"): every file is written atomically through a
:class:`~tf2dasl.io.run_folder.RunFolder` whose manifest (``tf2dasl-manifest.jsonl``) records what tf2dasl wrote;
a file in the output folder that no tf2dasl run wrote is never replaced (the image's outputs get another stem,
named in the report); a failed write is a failure of its image naming the file and the reason; a rerun skips
the inputs an earlier run completed with the same settings (``force=True`` redoes them); ``summary.json`` is
written even when the run stops early (a full disk, Ctrl-C), listing what is incomplete.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import UserError
from ..geometry.camera import resize_points
from ..io.boxes import MIN_BOX_SIDE, BoxesError, given_boxes
from ..io.images import DEFAULT_MAX_PIXELS, DecodedImage, decode_image, iter_image_paths
from ..io.outputs import OutputError
from ..io.pts import check_pts_in_image, read_pts
from ..io.run_folder import RunFolder, fingerprint, input_key, source_state
from ..reconstruct import DEFAULT_MAX_FACES, Face, Reconstructor, make_reconstructor
from ..texture.assets import require_textured
from .files import TEXTURED, image_record, output_files, resize_faces
from .naming import SUMMARY_STEM, output_stems, rename_reason, stem_blocker, summary_name
from .summary import RunInterrupted, Summary, write_summary_file


def model_identity(model) -> dict:
    """What identifies the model of a run in the manifest's settings: a model directory's resolved path and
    the hash of its model.json, or the predictor's runtime and name."""
    if isinstance(model, (str, Path)):
        d = Path(model).resolve()
        try:
            digest = hashlib.sha256((d / "model.json").read_bytes()).hexdigest()[:16]
        except OSError:
            digest = None
        return {"model_dir": str(d), "model_json": digest}
    predictor = model.predictor if isinstance(model, Reconstructor) else model
    return {"runtime": getattr(predictor, "runtime", type(predictor).__name__),
            "name": getattr(predictor, "name", None)}


def reconstruct_paths(inputs, model, out_dir, outputs: Sequence[str] = (), detector: str = "auto",
                      assets_dir=None, detector_options: dict | None = None, use_pts: bool = False,
                      refine: bool = True, progress: bool = True, boxes: dict | None = None, force: bool = False,
                      settings: dict | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      texture_size: int = 512, max_faces: int | None = DEFAULT_MAX_FACES,
                      videos: list[dict] | None = None) -> Summary:
    """Reconstruct every image of ``inputs`` (files or folders) into ``out_dir``; see :class:`Summary`.

    ``model``: a model directory (run by Keras, with ``detector``, ``assets_dir``, ``detector_options`` and ``refine``)
    or a :class:`~tf2dasl.reconstruct.Reconstructor` (any runtime; its own detector and refinement).

    Each image gets ``out_dir/<stem>.json`` (+ the ``outputs`` asked for), ``<stem>`` made unique by
    :func:`output_stems`. A missing input, a folder without images, an unreadable image or ``.pts``, or a given
    box outside its image is a failure (named, in ``summary.failures``); the rest go on.

    ``boxes`` maps an image's file name (or path as given) to its face boxes ``[[x0, y0, x1, y1], ...]``
    (FaceBoxes-like, 0-based pixels; see :func:`tf2dasl.io.boxes.read_boxes_file`): those images skip detection.

    The output folder (module docstring): files go through a :class:`RunFolder` (atomic, recorded in its
    manifest, never replacing a file tf2dasl did not write); a file that cannot be written is a failure of its
    image (``summary.write_failures``) and the image is ``incomplete``; when not even an image's first file
    fits (disk full, read-only), the run stops and the rest are ``not_processed``. Inputs completed by an
    earlier run with the same settings (model, detector, outputs, ``settings``) are skipped unless ``force``.
    ``summary.json`` is written in every case; Ctrl-C raises :class:`RunInterrupted` after writing it.

    Images above ``max_pixels`` (None: no limit) are decoded at a reduced size when they are JPEGs and refused
    otherwise (:func:`tf2dasl.io.images.decode_image`); their JSON stays in full-image pixels. Pictures are
    drawn at most :data:`PICTURE_MAX_PIXELS`. At most ``max_faces`` faces of an image are reconstructed (None: all;
    :data:`~tf2dasl.reconstruct.DEFAULT_MAX_FACES` by default, which bounds an image's memory): the others are
    listed (``summary.capped``) and the run is not complete. ``videos``: the entries of videos the same command
    reconstructed (:meth:`tf2dasl.video.VideoRun.to_json`), added to ``summary.json``."""

    input_problems: list[tuple[str, str]] = []
    paths = iter_image_paths(inputs, problems=input_problems)
    rec = model if isinstance(model, Reconstructor) else \
        make_reconstructor(model, detector, assets_dir, detector_options, refine)
    require_textured(rec.mm, outputs)  # textured outputs of a model without UVs: one line, nothing run
    run_settings = {"model": model_identity(model), "detector": str(getattr(rec.detector, "name", detector)),
                    "detector_options": detector_options or {}, "refine": rec.refine, "use_pts": use_pts,
                    "max_pixels": max_pixels, "max_faces": max_faces, **(settings or {})}
    folder = RunFolder(out_dir, run_settings)
    summary = Summary(images=len(paths) + len(input_problems), failures=list(input_problems),
                      detector=run_settings["detector"], out_dir=str(folder.path), videos=list(videos or []))
    try:
        summary_file = summary_name(folder)
        keys = [input_key(p) for p in paths]
        other_stems = folder.stems_of_other_inputs(keys)
        blocked = stem_blocker(folder, outputs)
        previous = [(folder.previous(k) or {}).get("stem") for k in keys]
        stems = output_stems(paths, taken={Path(summary_file).stem, SUMMARY_STEM} | other_stems, blocked=blocked,
                             previous=previous)
        textured = {"texture_size": texture_size} if any(o in TEXTURED for o in outputs) else {}
        settings_fp = fingerprint({"settings": run_settings, "outputs": sorted(outputs), **textured})
        todo = list(zip(paths, keys, stems))
        n, written, expected = 0, None, []  # the input being worked on, its files written and to write
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
                    if done.get("found", 0) > done.get("faces", 0):  # reported again: the outputs are the same
                        summary.capped.append((str(path), int(done["found"]), int(done["faces"])))
                    continue
                if stem != path.stem:
                    why = ("the name an earlier run gave it" if stem == previous[n] else
                           rename_reason(path, blocked, other_stems, folder))
                    summary.renamed.append((str(path), stem, why))
                try:
                    decoded = decode_image(path, max_pixels)
                    faces, found = _reconstruct_image(rec, path, decoded, given, pts_path if use_pts else None,
                                                      max_faces)
                    if outputs and rec.mm.is_dense:
                        rec.add_vertices(faces)  # once, batched, for every picture and mesh
                except UserError as exc:  # this image's problem (ImageError, PtsError, BoxesError, DetectorError)
                    summary.failures.append((str(path), str(exc)))
                    continue
                summary.faces += len(faces)
                if found > len(faces):
                    summary.capped.append((str(path), found, len(faces)))
                if not faces:
                    summary.without_faces.append(str(path))
                written, expected = [], []
                _write_image_outputs(folder, summary, path, key, stem, decoded, faces, outputs, rec.mm, fp,
                                     source, written, expected, texture_size, found)
            else:
                n = len(todo)
        except KeyboardInterrupt:
            summary.stopped = "interrupted (Ctrl-C); a rerun of the same command completes the rest"
            if written is not None:  # input n was being written: complete, or incomplete with what it has
                path, key, _ = todo[n]
                state = folder.previous(key) or {}
                finished = state.get("run") == folder.run and state.get("state") == "complete"
                if not finished and not any(p == str(path) for p, _, _ in summary.incomplete):
                    # what is on disk, asked of the run folder: Ctrl-C may have come after a file was put in
                    # place and before it was counted
                    on_disk = [name for name in expected if folder.placed(name)]
                    summary.incomplete.append((str(path), on_disk, [f for f in expected if f not in on_disk]))
                n += 1
            accounted = set(summary.skipped) | {p for p, _ in summary.failures}  # Ctrl-C right after input n
            summary.not_processed += [str(p) for p, _, _ in todo[n:] if str(p) not in accounted]
            write_summary_file(folder, summary, summary_file)
            raise RunInterrupted(summary) from None
        summary.not_processed += [str(p) for p, _, _ in todo[n:]]
        write_summary_file(folder, summary, summary_file)
    finally:
        folder.close()
    return summary


def _reconstruct_image(rec: Reconstructor, path: Path, decoded: DecodedImage, given, pts_path: Path | None,
                       max_faces: int | None = DEFAULT_MAX_FACES) -> tuple[list[Face], int]:
    """The faces of one decoded image, in full-image pixels, and how many were found (given or detected; at most
    ``max_faces`` of them are reconstructed): from the ``.pts`` landmarks at ``pts_path`` when that file exists,
    else from the ``given`` boxes, else detected. Given boxes and landmarks are in full-image pixels, checked
    against the image (:func:`~tf2dasl.io.boxes.given_boxes`, :func:`~tf2dasl.io.pts.check_pts_in_image`: far
    outside it is a one-line error naming them) and mapped to a reduced decode's grid (and the faces back)."""
    r = decoded.reduction
    size = (decoded.width, decoded.height)
    if pts_path is not None and pts_path.is_file():
        points = check_pts_in_image(pts_path, read_pts(pts_path), size)
        faces, found = rec(decoded.image, landmarks=resize_points(points, 1.0 / r)[None], max_faces=max_faces), 1
    elif given is not None:
        arr = given_boxes(path, size, given)
        arr = resize_points(arr.reshape(-1, 2, 2), 1.0 / r).reshape(-1, 4)
        small = arr[(arr[:, 2] - arr[:, 0] < MIN_BOX_SIDE) | (arr[:, 3] - arr[:, 1] < MIN_BOX_SIDE)]
        if len(small):
            raise BoxesError(f"{path}: a given box is under {MIN_BOX_SIDE:g} pixels once the image is decoded at "
                             f"1/{r} of its size (above --max-pixels); raise --max-pixels or give a larger box")
        faces, found = rec(decoded.image, boxes=arr, max_faces=max_faces), len(arr)
    else:
        detections = rec.detect(decoded.image)
        faces, found = rec(decoded.image, detections=detections, max_faces=max_faces), len(detections[0])
    return resize_faces(faces, float(r)), found


def _write_image_outputs(folder: RunFolder, summary: Summary, path: Path, key: str, stem: str,
                         decoded: DecodedImage, faces, outputs, mm, fp: str, source, written: list[str],
                         expected: list[str], texture_size: int = 512, found: int = 0) -> None:
    """One image's JSON, pictures and meshes through ``folder`` (all their names appended to ``expected`` first,
    each to ``written`` once it is): each failure is recorded, the others go on; the input is marked complete in
    the manifest only when every file was written (with ``found``, the faces given or detected, when more than
    were reconstructed, so that a rerun that skips it reports it again)."""
    missing, folder_problem = [], None
    try:
        folder.begin_input(key, stem)
    except OutputError:
        pass  # the manifest could not take the line: the file writes below report the problem
    record = image_record(path, decoded.image, faces, (decoded.width, decoded.height), decoded.reduction)

    # every file's name and maker, listed once (nothing is drawn until a maker is called); the JSON is expected
    # first, so that an interruption while the rest are listed still names it
    files = [(f"{stem}.json", lambda: (json.dumps(record) + "\n").encode("utf-8"))]
    expected.append(files[0][0])
    files += output_files(stem, decoded.image, faces, outputs, mm, image_scale=1.0 / decoded.reduction,
                          texture_size=texture_size)
    expected.extend(name for name, _ in files[1:])
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
        capped = {"found": found} if found > len(faces) else {}
        folder.complete_input(key, stem, written, fp, source, faces=len(faces), **capped)
    except OutputError as exc:  # every file is there, but a rerun will redo it
        summary.incomplete.append((str(path), written, []))
        summary.write_failures.append((str(path), folder.path.name, str(exc)))
