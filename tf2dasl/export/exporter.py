"""``export_model``: a model directory → an export directory (the SavedModel tree, TFLite and ONNX files,
export.json), every file and folder written atomically through :mod:`tf2dasl.io.outputs`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..inference.crops import MAP_CHANNELS
from ..inference.export_dir import (DEFAULT_SIGNATURE, DEFAULT_VARIANT, EXPORT_JSON, INT8, MAP_SIGNATURE,
                                    ONNX_VARIANTS, TFLITE_VARIANTS)
from ..io.model_dir import load_model_dir
from ..io.model_files import SPEC_FILE
from ..io.outputs import atomic_dir, make_folder, write_bytes, write_json
from . import manifest as mf
from . import mobile, onnx_graph, onnx_quantize, quantize, saved_model
from .common import ExportError

FORMATS = ("savedmodel", "tflite", "onnx")


def check_formats(formats) -> tuple[str, ...]:
    """A subset of :data:`FORMATS` from a list or a comma-separated string (order kept, duplicates dropped)."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown export format(s) {bad or formats}; use a comma-separated subset of "
                          f"{','.join(FORMATS)}")
    return tuple(dict.fromkeys(formats))


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and not (out / EXPORT_JSON).exists() and any(out.iterdir()):
        raise ExportError(f"{out}: holds files but no {EXPORT_JSON} (not an export directory); "
                          "export into a new or empty folder")


def export_model(model_dir: str | Path, out_dir: str | Path, version: int = 1, formats=FORMATS,
                 dense: bool = False, log=print, tflite_variants=TFLITE_VARIANTS, onnx_variants=ONNX_VARIANTS,
                 calibration=None) -> dict:
    """Export a model directory to ``out_dir`` (layout: :mod:`tf2dasl.export`); returns (and writes) export.json.

    ``formats``: a subset of :data:`FORMATS` (list or comma-separated string); ``version``: TF Serving's version
    folder; ``dense``: the SavedModel also outputs the dense mesh; ``tflite_variants`` / ``onnx_variants``: which
    of :data:`~tf2dasl.inference.export_dir.TFLITE_VARIANTS` / :data:`~tf2dasl.inference.export_dir.ONNX_VARIANTS`
    to write; ``calibration``: the faces the int8 variants are calibrated on (a
    :class:`~tf2dasl.data.calibration.CalibrationSet`; required when an int8 variant is asked for). Exporting again
    into the same model's export replaces the artifacts it writes and keeps the others; export.json is written
    last."""
    formats = check_formats(formats)
    if int(version) < 1:
        raise ExportError(f"--version must be a positive integer (TF Serving's version folders), got {version}")
    int8 = ("tflite" in formats and INT8 in tflite_variants) or ("onnx" in formats and INT8 in onnx_variants)
    if int8:
        quantize.require_calibration(calibration, "the int8 export")
    model_dir, out = Path(model_dir), Path(out_dir)
    model = load_model_dir(model_dir)
    spec, name = model.spec, model.spec.name
    _check_out_dir(out)
    make_folder(out)
    manifest = mf.new_manifest(model, model_dir, mf.previous_manifest(out, name))
    arts = manifest["artifacts"]
    if int8:
        manifest["calibration"] = calibration.describe()
    if "savedmodel" in formats:
        t0 = time.time()
        base = out / "saved_model" / name
        vdir = base / str(int(version))
        with atomic_dir(vdir, replace=True) as tmp:
            module = saved_model.save_serving_model(model, tmp, model_dir / SPEC_FILE, dense=dense)
        notes = dict(saved_model.NOTES, crops=mf.crops_note(spec, normalized=False))
        arts["savedmodel"] = {
            "path": vdir.relative_to(out).as_posix(), "base_path": base.relative_to(out).as_posix(),
            "version": int(version), "normalized_in_graph": True,
            "signatures": {k: mf.describe_function(fn, notes) for k, fn in module.signatures.items()},
            "dense": bool(dense),
            "warmup": f"{saved_model.WARMUP_FILE} ({len(saved_model.WARMUP_BATCH_SIZES)} PredictRequests on "
                      f"serving_default, batch sizes {list(saved_model.WARMUP_BATCH_SIZES)})"}
        log(f"savedmodel: {vdir} ({time.time() - t0:.1f} s)")
    if "tflite" in formats:
        t0 = time.time()
        # each file parsed once, by its converter; export.json's entries read that parse
        floats, files, signatures = [v for v in tflite_variants if v != INT8], {}, (DEFAULT_SIGNATURE,)
        with tempfile.TemporaryDirectory(prefix="tf2dasl_mobile_") as tmp:
            if floats:
                signatures = tuple(mobile.save_mobile(model, Path(tmp) / "mobile").signatures)
                files = mobile.convert_tflite(Path(tmp) / "mobile", floats, signatures)
            if INT8 in tflite_variants:
                files[INT8] = quantize.convert_tflite_int8(model, calibration, Path(tmp))
        variants = {}
        for variant, tfl in files.items():
            path = write_bytes(out / f"{name}_{variant}.tflite", tfl.content)
            variants[variant] = (quantize.int8_entry(tfl, path.name, calibration) if variant == INT8 else
                                 mobile.file_entry(path.name, tfl, mobile.QUANTIZATION[variant]))
        notes = dict(mobile.NOTES, crops=mf.crops_note(spec, normalized=True))
        first = (files[floats[0]] if floats else files[INT8]).content
        arts["tflite"] = {"normalized_in_graph": False, **mf.describe_tflite(first, notes),
                          "signatures": {k: mf.describe_tflite(first, notes, k) for k in signatures},
                          "variants": variants, "delegates": mobile.DELEGATES}
        log(f"tflite: {', '.join(v['file'] for v in variants.values())} ({time.time() - t0:.1f} s)")
    if "onnx" in formats:
        t0 = time.time()
        entry = dict(arts.get("onnx", {}))
        # the float32 model is the entry itself, never one of its variants (an older export.json listed it twice)
        variants = {k: v for k, v in entry.get("variants", {}).items() if k != DEFAULT_VARIANT}
        if DEFAULT_VARIANT in onnx_variants:
            entry = _write_onnx(model, out / f"{name}.onnx", log)
            if spec.channels == MAP_CHANNELS:
                entry[MAP_SIGNATURE] = _write_onnx(model, out / f"{name}_{MAP_SIGNATURE}.onnx", log, with_map=True)
            log(f"onnx: {out / entry['file']} (opset {onnx_graph.ONNX_OPSET}, {entry['layout']}, "
                f"{time.time() - t0:.1f} s)")
        if INT8 in onnx_variants:
            t0 = time.time()
            variants[INT8] = _write_onnx_int8(model, out / f"{name}_{INT8}.onnx", calibration)
            log(f"onnx: {out / variants[INT8]['file']} (int8 QDQ, {time.time() - t0:.1f} s)")
        arts["onnx"] = {**entry, "variants": variants}
    write_json(out / EXPORT_JSON, manifest, indent=2)
    return manifest


def _write_onnx(model, path: Path, log, with_map: bool = False) -> dict:
    """One ONNX file (the model's graph, or its one-pass graph with a landmark-map input) and its export.json entry."""
    proto, details = onnx_graph.convert_onnx(model, log=log, with_map=with_map)
    data = proto.SerializeToString()
    write_bytes(path, data)
    notes = dict(onnx_graph.NOTES, **{onnx_graph.INPUT: mf.crops_note(model.spec, normalized=True)})
    layouts = {onnx_graph.INPUT: details["layout"], onnx_graph.MAP_INPUT: details["layout"]}
    return {"normalized_in_graph": False, **mf.describe_onnx(proto, notes, layouts), "file": path.name,
            "bytes": len(data), "opset": onnx_graph.ONNX_OPSET,
            "signature": MAP_SIGNATURE if with_map else DEFAULT_SIGNATURE, **details}


def _write_onnx_int8(model, path: Path, calibration) -> dict:
    """The int8 ONNX file (:mod:`.onnx_quantize`) and its export.json entry."""
    proto, details = onnx_quantize.convert_onnx_int8(model, calibration)
    data = proto.SerializeToString()
    write_bytes(path, data)
    notes = dict(onnx_graph.NOTES, **{onnx_graph.INPUT: onnx_quantize.INPUT_NOTE})
    return {**mf.describe_onnx(proto, notes, {onnx_graph.INPUT: details["layout"]}), "file": path.name,
            "bytes": len(data), **details}
