"""A model directory's files as data (no TensorFlow): ``model.json`` checked and read (either format version),
the :class:`~tf2dasl.models.spec.ModelSpec` it describes and the morphable model, every value and array shape checked
before anything is built or read into memory — a bad file is one line naming it, never a TensorFlow error or a
memory accident. Writing a model directory and building its network: :mod:`tf2dasl.io.model_dir`.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..geometry.morphable_model import NUM_EXP, NUM_LANDMARKS, NUM_PARAMS, NUM_SHAPE, MorphableModel
from ..models.spec import ModelSpec
from .descriptor import read_descriptor

FORMAT = "tf2dasl-model"
FORMAT_VERSION = 2
SPEC_FILE, WEIGHTS_FILE, MM_FILE = "model.json", "regressor.weights.h5", "morphable_model.npz"
TASK_CLASS = "tf2dasl>FaceTask"
#: the most vertices / triangles a morphable model file may hold (the 3DDFA meshes: 38,365 / 76,073; the full
#: BFM: 53,215 / 105,840)
MAX_VERTICES, MAX_TRIANGLES = 200_000, 400_000
#: how to fix a bad model directory (the end of every error about one)
REMAKE_HINT = "correct it or re-create the model directory with `tf2dasl import-3ddfa` or `tf2dasl train`"


class ModelDirError(UserError):
    """A model directory is missing, incomplete, malformed or from an unsupported format version."""


def read_model_meta(model_dir: str | Path) -> dict:
    """``model.json`` of a model directory, checked for format and version."""
    return read_descriptor(model_dir, SPEC_FILE, FORMAT, FORMAT_VERSION, ModelDirError, "model directory",
                           "make one with `tf2dasl import-3ddfa` or `tf2dasl train`")


def task_config(meta: dict, where: Path) -> tuple[dict, dict]:
    """``(FaceTask config with a checked spec, provenance)`` of a ``model.json`` of either format version."""
    try:
        if meta["format_version"] < 2:  # version 1: a flat spec holding the provenance
            spec = dict(meta["spec"])
            provenance = {**spec.pop("provenance", {}),
                          "morphable_model": meta.get("morphable_model", {}).get("source")}
            config = {"spec": spec}
        else:
            if meta["task"]["class_name"] != TASK_CLASS:
                raise ValueError(f"task class {meta['task']['class_name']!r} is not {TASK_CLASS}")
            config, provenance = dict(meta["task"]["config"]), meta.get("provenance", {})
        config["spec"] = ModelSpec.from_dict(config["spec"]).to_dict()  # every value the network is built from
    except KeyError as exc:
        raise ModelDirError(f"{where}: no model description (missing key {exc}); {REMAKE_HINT}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelDirError(f"{where}: bad model description: {exc}; {REMAKE_HINT}") from None
    unknown = sorted(set(config) - {"name", "trainable", "spec", "dense", "num_vertices"})
    if unknown:
        raise ModelDirError(f"{where}: unknown task config key(s) {unknown}; {REMAKE_HINT}")
    return config, provenance if isinstance(provenance, dict) else {}


def _expected_shapes(headers: dict) -> dict:
    """The shape each morphable-model array must have, given the vertex and triangle counts its headers claim."""
    u = headers.get("u", ((0,), None))[0]
    n = u[0] // 3 if len(u) == 1 else -1
    t = headers.get("triangles", ((0, 3), None))[0][0]
    k = 3 * NUM_LANDMARKS
    return {"u_base": (k,), "w_shp_base": (k, NUM_SHAPE), "w_exp_base": (k, NUM_EXP), "param_mean": (NUM_PARAMS,),
            "param_std": (NUM_PARAMS,), "u": (3 * n,), "w_shp": (3 * n, NUM_SHAPE), "w_exp": (3 * n, NUM_EXP),
            "landmark_vertices": (NUM_LANDMARKS,), "triangles": (t, 3), "uv": (n, 2)}


def _npz_headers(path: Path) -> dict:
    """``{array name: (shape, dtype)}`` from the ``.npy`` headers inside an ``.npz``, without reading the arrays."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            out[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
    return out


def check_morphable_file(path: Path) -> None:
    """Refuse (one line) a ``morphable_model.npz`` whose arrays are not the format's: unknown or missing names,
    non-numeric dtypes, shapes that disagree with each other or with the 68-point / 62-parameter layout, or more
    than :data:`MAX_VERTICES` vertices / :data:`MAX_TRIANGLES` triangles — checked from the headers before any
    array is read."""
    try:
        headers = _npz_headers(path)
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelDirError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); {REMAKE_HINT}") from None
    expected = _expected_shapes(headers)
    unknown = sorted(set(headers) - set(expected))
    missing = [n for n in ("u_base", "w_shp_base", "w_exp_base", "param_mean", "param_std") if n not in headers]
    if unknown or missing:
        raise ModelDirError(f"{path}: {'unknown' if unknown else 'missing'} array(s) {unknown or missing}; "
                            f"{REMAKE_HINT}")
    for name, (shape, dtype) in headers.items():
        if dtype.kind not in "fiu" or dtype.hasobject:
            raise ModelDirError(f"{path}: array {name} has dtype {dtype}, not a number type; {REMAKE_HINT}")
        if shape != expected[name] or min(shape, default=1) < 0:
            raise ModelDirError(f"{path}: array {name} has shape {shape}, expected {expected[name]}; {REMAKE_HINT}")
    n, t = expected["uv"][0], expected["triangles"][0]
    if n > MAX_VERTICES or t > MAX_TRIANGLES:
        raise ModelDirError(f"{path}: {n} vertices and {t} triangles exceed the format's {MAX_VERTICES} / "
                            f"{MAX_TRIANGLES}; {REMAKE_HINT}")
    dense = [k for k in ("u", "w_shp", "w_exp") if k in headers]
    if dense and len(dense) != 3:
        raise ModelDirError(f"{path}: dense bases must come together (u, w_shp, w_exp), found {dense}; {REMAKE_HINT}")


def read_model_spec(model_dir: str | Path) -> ModelSpec:
    """The checked spec of a model directory (nothing else is read)."""
    d = Path(model_dir)
    return ModelSpec.from_dict(task_config(read_model_meta(d), d / SPEC_FILE)[0]["spec"])


def read_spec_and_morphable(model_dir: str | Path) -> tuple[ModelSpec, MorphableModel]:
    """The spec and morphable model of a model directory, without building its network (evaluation and mesh
    decoding need no regressor)."""
    d = Path(model_dir)
    meta = read_model_meta(d)
    config, provenance = task_config(meta, d / SPEC_FILE)
    return ModelSpec.from_dict(config["spec"]), read_morphable(d, provenance)


def check_model_dir(model_dir: str | Path) -> ModelSpec:
    """A model directory checked without reading an array or building its network: ``model.json`` (format, the
    spec's ranges), its files present, and ``morphable_model.npz``'s array headers (:func:`check_morphable_file`);
    its spec. What to call before loading one, so that a bad directory is one line before TensorFlow starts."""
    d = Path(model_dir)
    config, _ = task_config(read_model_meta(d), d / SPEC_FILE)
    _check_files(d)
    return ModelSpec.from_dict(config["spec"])


def _check_files(d: Path) -> None:
    for name in (WEIGHTS_FILE, MM_FILE):
        if not (d / name).is_file():
            raise ModelDirError(f"{d}: incomplete model directory, {name} is missing")
    check_morphable_file(d / MM_FILE)


def read_morphable(d: Path, provenance: dict) -> MorphableModel:
    """The morphable model of model directory ``d`` (checked first: :func:`check_morphable_file`)."""
    _check_files(d)
    try:
        with np.load(d / MM_FILE, allow_pickle=False) as z:
            return MorphableModel.from_arrays({k: z[k] for k in z.files}, provenance.get("morphable_model"))
    except Exception as exc:
        raise ModelDirError(f"{d / MM_FILE}: cannot read ({type(exc).__name__}: {exc})") from None
