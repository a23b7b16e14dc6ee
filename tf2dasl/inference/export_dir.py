"""An export directory as runtimes read it: ``export.json`` (written by :mod:`tf2dasl.export.manifest`), its
format, the artifacts' names and the one-line errors when something is missing. No TensorFlow here."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..io.descriptor import read_descriptor

EXPORT_FORMAT = "tf2dasl-export"
EXPORT_FORMAT_VERSION = 1
EXPORT_JSON = "export.json"
#: the full-integer variant: uint8 crops in (no normalisation: the input's quantisation is the model's), int8
#: backbone (written by :mod:`tf2dasl.export.quantize` and :mod:`tf2dasl.export.onnx_quantize`)
INT8 = "int8"
#: the TFLite files of an export (``NAME_<variant>.tflite``)
TFLITE_VARIANTS = ("float32", "float16", INT8)
#: the ONNX files of an export (``NAME.onnx``, ``NAME_int8.onnx``)
ONNX_VARIANTS = ("float32", INT8)
DEFAULT_VARIANT = TFLITE_VARIANTS[0]
#: the signature every graph has (crops in) and the one a 4-channel model's graphs add (crops and a landmark map
#: in: one pass with that map); ONNX keeps the second as its own file, ``NAME_with_map.onnx``
DEFAULT_SIGNATURE, MAP_SIGNATURE = "serving_default", "with_map"
EXPORT_HINT = "run `tf2dasl export MODEL_DIR --out {dir}`"


class RuntimeLoadError(UserError):
    """An export directory or one of its artifacts is missing or unusable."""


def read_export(export_dir: str | Path) -> dict:
    """``export.json`` of an export directory, checked."""
    return read_descriptor(export_dir, EXPORT_JSON, EXPORT_FORMAT, EXPORT_FORMAT_VERSION, RuntimeLoadError,
                           "export directory", EXPORT_HINT.format(dir=export_dir))


def require_export_dir(kind: str, export_dir: str | Path | None) -> Path:
    """The export directory a non-Keras runtime ``kind`` needs; one line naming the flag and the fix when absent."""
    if not export_dir:
        raise RuntimeLoadError(f"--export-dir EXPORT_DIR is required with --runtime {kind} "
                               "(make one with `tf2dasl export`)")
    return Path(export_dir)


def artifact_path(export_dir: Path, file_name: str) -> Path:
    """``export_dir / file_name``, or a :class:`RuntimeLoadError` saying how to make it."""
    path = export_dir / file_name
    if not path.is_file():
        raise RuntimeLoadError(f"{export_dir}: no {file_name}; " + EXPORT_HINT.format(dir=export_dir))
    return path


def missing_map_signature(artifact: Path, export_dir: Path, variant: str, variants) -> RuntimeLoadError:
    """The one-line error when ``artifact`` (a file of ``variant``; its runtime has ``variants``) has no
    :data:`MAP_SIGNATURE` (crops and a landmark map in): an int8 file never has one, so it names the float variants
    that do; a float file without one was exported by an older tf2dasl."""
    if variant == INT8:
        floats = " or ".join(v for v in variants if v != INT8)
        return RuntimeLoadError(f"{artifact}: the {INT8} file has no {MAP_SIGNATURE!r} signature (no landmark-map "
                                f"input); given landmarks run in float (--variant {floats})")
    return RuntimeLoadError(f"{artifact}: no {MAP_SIGNATURE!r} signature (no landmark-map input: exported by an older "
                            "tf2dasl); " + EXPORT_HINT.format(dir=export_dir))


def onnx_artifact(meta: dict, export_dir: str | Path, variant: str = DEFAULT_VARIANT) -> dict:
    """export.json's entry of the ONNX ``variant`` (``file``, ``layout``, ...): ``artifacts.onnx`` itself for float32
    (which also names its ``with_map`` graph), ``artifacts.onnx.variants[variant]`` for the others; or a
    :class:`RuntimeLoadError` saying how to make it."""
    art = meta.get("artifacts", {}).get("onnx") or {}
    entry = art if variant == DEFAULT_VARIANT else art.get("variants", {}).get(variant)
    if not entry or "file" not in entry:
        what = "ONNX model" if variant == DEFAULT_VARIANT else f"{variant} ONNX model"
        raise RuntimeLoadError(f"{export_dir}: export.json names no {what}; " + EXPORT_HINT.format(dir=export_dir))
    return entry
