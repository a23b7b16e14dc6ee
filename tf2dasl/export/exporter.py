"""``export_model``: a model directory → an export directory (the SavedModel tree, TFLite and ONNX files,
export.json), every file and folder written atomically through :mod:`tf2dasl.io.outputs`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..inference.crops import MAP_CHANNELS
from ..inference.export_dir import DEFAULT_SIGNATURE, EXPORT_JSON, MAP_SIGNATURE, TFLITE_VARIANTS
from ..io.model_dir import load_model_dir
from ..io.model_files import SPEC_FILE
from ..io.outputs import atomic_dir, make_folder, write_bytes, write_json
from . import manifest as mf
from . import mobile, onnx_graph, saved_model
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
                 dense: bool = False, log=print, tflite_variants=TFLITE_VARIANTS) -> dict:
    """Export a model directory to ``out_dir`` (layout: :mod:`tf2dasl.export`); returns (and writes) export.json.

    ``formats``: a subset of :data:`FORMATS` (list or comma-separated string); ``version``: TF Serving's version
    folder; ``dense``: the SavedModel also outputs the dense mesh; ``tflite_variants``: which of
    :data:`~tf2dasl.inference.export_dir.TFLITE_VARIANTS` to convert. Exporting again into the same model's export
    replaces the artifacts it writes and keeps the others; export.json is written last."""
    formats = check_formats(formats)
    if int(version) < 1:
        raise ExportError(f"--version must be a positive integer (TF Serving's version folders), got {version}")
    model_dir, out = Path(model_dir), Path(out_dir)
    model = load_model_dir(model_dir)
    spec, name = model.spec, model.spec.name
    _check_out_dir(out)
    make_folder(out)
    manifest = mf.new_manifest(model, model_dir, mf.previous_manifest(out, name))
    arts = manifest["artifacts"]
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
        with tempfile.TemporaryDirectory(prefix="tf2dasl_mobile_") as tmp:
            module = mobile.save_mobile(model, Path(tmp) / "mobile")
            contents = mobile.convert_tflite(Path(tmp) / "mobile", tflite_variants, tuple(module.signatures))
        variants = {}
        for variant, content in contents.items():
            path = write_bytes(out / f"{name}_{variant}.tflite", content)
            variants[variant] = mobile.variant_entry(variant, path.name, content)
        notes = dict(mobile.NOTES, crops=mf.crops_note(spec, normalized=True))
        first = next(iter(contents.values()))
        arts["tflite"] = {"normalized_in_graph": False, **mf.describe_tflite(first, notes),
                          "signatures": {k: mf.describe_tflite(first, notes, k) for k in module.signatures},
                          "variants": variants, "delegates": mobile.DELEGATES}
        log(f"tflite: {', '.join(v['file'] for v in variants.values())} ({time.time() - t0:.1f} s)")
    if "onnx" in formats:
        t0 = time.time()
        arts["onnx"] = _write_onnx(model, out / f"{name}.onnx", log)
        if spec.channels == MAP_CHANNELS:
            arts["onnx"][MAP_SIGNATURE] = _write_onnx(model, out / f"{name}_{MAP_SIGNATURE}.onnx", log, with_map=True)
        log(f"onnx: {out / arts['onnx']['file']} (opset {onnx_graph.ONNX_OPSET}, {arts['onnx']['layout']}, "
            f"{time.time() - t0:.1f} s)")
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
