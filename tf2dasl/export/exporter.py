"""``export_model``: a model directory → an export directory (the SavedModel tree, TFLite and ONNX files,
export.json), every file and folder written atomically through :mod:`tf2dasl.io.outputs`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..io.outputs import atomic_dir, make_folder, write_bytes, write_json
from ..runtimes import EXPORT_JSON, INT8, ONNX_VARIANTS, TFLITE_VARIANTS
from . import manifest as mf
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
    of :data:`~tf2dasl.runtimes.TFLITE_VARIANTS` / :data:`~tf2dasl.runtimes.ONNX_VARIANTS` to write;
    ``calibration``: the faces the int8 variants are calibrated on (a
    :class:`~tf2dasl.data.calibration.CalibrationSet`; required when an int8 variant is asked for). Exporting
    again into the same model's export replaces the artifacts it writes and keeps the others; export.json is
    written last."""
    from ..io.model_dir import SPEC_FILE, load_model_dir, read_model_meta

    formats = check_formats(formats)
    if int(version) < 1:
        raise ExportError(f"--version must be a positive integer (TF Serving's version folders), got {version}")
    int8 = ("tflite" in formats and INT8 in tflite_variants) or ("onnx" in formats and INT8 in onnx_variants)
    if int8:
        from .quantize import require_calibration

        require_calibration(calibration, "the int8 export")
    model_dir, out = Path(model_dir), Path(out_dir)
    meta = read_model_meta(model_dir)
    model = load_model_dir(model_dir)
    spec, name = model.spec, model.spec.name
    _check_out_dir(out)
    make_folder(out)
    manifest = mf.new_manifest(model, model_dir, meta, mf.previous_manifest(out, name))
    arts = manifest["artifacts"]
    if int8:
        manifest["calibration"] = calibration.describe()
    if "savedmodel" in formats:
        t0 = time.time()
        from .saved_model import NOTES, WARMUP_BATCH_SIZES, WARMUP_FILE, save_serving_model

        base = out / "saved_model" / name
        vdir = base / str(int(version))
        with atomic_dir(vdir, replace=True) as tmp:
            module = save_serving_model(model, tmp, model_dir / SPEC_FILE, dense=dense)
        notes = dict(NOTES, crops=mf.crops_note(spec, normalized=False))
        arts["savedmodel"] = {
            "path": vdir.relative_to(out).as_posix(), "base_path": base.relative_to(out).as_posix(),
            "version": int(version), "normalized_in_graph": True,
            "signatures": {k: mf.describe_function(fn, notes) for k, fn in module.signatures.items()},
            "dense": bool(dense),
            "warmup": f"{WARMUP_FILE} ({len(WARMUP_BATCH_SIZES)} PredictRequests on serving_default, batch sizes "
                      f"{list(WARMUP_BATCH_SIZES)})"}
        log(f"savedmodel: {vdir} ({time.time() - t0:.1f} s)")
    if "tflite" in formats:
        t0 = time.time()
        from .mobile import DELEGATES, NOTES, convert_tflite, save_mobile, variant_entry

        floats = [v for v in tflite_variants if v != INT8]
        with tempfile.TemporaryDirectory(prefix="tf2dasl_mobile_") as tmp:
            save_mobile(model, Path(tmp) / "mobile")
            contents = convert_tflite(Path(tmp) / "mobile", floats) if floats else {}
            if INT8 in tflite_variants:
                from .quantize import convert_tflite_int8

                contents[INT8] = convert_tflite_int8(model, calibration, Path(tmp))
        variants = {}
        for variant, content in contents.items():
            path = write_bytes(out / f"{name}_{variant}.tflite", content)
            if variant == INT8:
                from .quantize import int8_entry

                variants[variant] = int8_entry(content, path.name, calibration)
            else:
                variants[variant] = variant_entry(variant, path.name, content)
        notes = dict(NOTES, crops=mf.crops_note(spec, normalized=True))
        first = contents[floats[0]] if floats else next(iter(contents.values()))
        arts["tflite"] = {"normalized_in_graph": False, **mf.describe_tflite(first, notes),
                          "variants": variants, "delegates": DELEGATES}
        log(f"tflite: {', '.join(v['file'] for v in variants.values())} ({time.time() - t0:.1f} s)")
    if "onnx" in formats:
        t0 = time.time()
        from .onnx_graph import INPUT, NOTES, ONNX_OPSET, convert_onnx

        entry = dict(arts.get("onnx", {}))
        if "float32" in onnx_variants:
            proto, details = convert_onnx(model, log=log)
            data = proto.SerializeToString()
            path = write_bytes(out / f"{name}.onnx", data)
            notes = dict(NOTES, **{INPUT: mf.crops_note(spec, normalized=True)})
            entry.update({"normalized_in_graph": False,
                          **mf.describe_onnx(proto, notes, {INPUT: details["layout"]}),
                          "file": path.name, "bytes": len(data), "opset": ONNX_OPSET, **details})
            entry.setdefault("variants", {})["float32"] = {"file": path.name, "bytes": len(data)}
            log(f"onnx: {path} (opset {ONNX_OPSET}, {details['layout']}, {time.time() - t0:.1f} s)")
        if INT8 in onnx_variants:
            t0 = time.time()
            from .onnx_quantize import convert_onnx_int8

            proto, details = convert_onnx_int8(model, calibration)
            data = proto.SerializeToString()
            path = write_bytes(out / f"{name}_{INT8}.onnx", data)
            notes = dict(NOTES, **{INPUT: "uint8 crops, no normalisation (the input's quantisation is the model's)"})
            entry.setdefault("variants", {})[INT8] = {
                **mf.describe_onnx(proto, notes, {INPUT: details["layout"]}), "file": path.name, "bytes": len(data),
                **details}
            log(f"onnx: {path} (int8 QDQ, {time.time() - t0:.1f} s)")
        arts["onnx"] = entry
    write_json(out / EXPORT_JSON, manifest, indent=2)
    return manifest
