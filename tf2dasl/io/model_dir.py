"""Model directories: everything needed to run a model, self-describing.

Layout (format version 1)::

    MODEL_DIR/
      model.json               {"format": "tf2dasl-model", "format_version": 1, "spec": ModelSpec, ...}
      regressor.weights.h5     Keras weights of the regressor
      morphable_model.npz      bases, triangles, landmark indices, the parameter whitening and (optional) the
                               vertices' UV texture coordinates ``uv`` (N, 2)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..geometry.morphable_model import MorphableModel
from ..model import FaceModel, ModelSpec
from .descriptor import read_descriptor
from .outputs import OutputError, atomic_dir, write_json
from ..errors import UserError

FORMAT = "tf2dasl-model"
FORMAT_VERSION = 1
SPEC_FILE, WEIGHTS_FILE, MM_FILE = "model.json", "regressor.weights.h5", "morphable_model.npz"


class ModelDirError(UserError):
    """A model directory is missing, incomplete or from an unsupported format version."""


def save_model_dir(model: FaceModel, out_dir: str | Path) -> Path:
    """Write ``model`` to ``out_dir``, built under a temporary name and renamed when complete
    (:func:`tf2dasl.io.outputs.atomic_dir`): a crash or a full disk never leaves a half-written model directory.

    An existing ``out_dir`` is replaced only when it is empty or a tf2dasl model directory; any other folder or
    file there is an :class:`~tf2dasl.io.outputs.OutputError` and is left untouched."""
    out = Path(out_dir)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "tf2dasl_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "spec": model.spec.to_dict(),
            "morphable_model": {"vertices": model.mm.num_vertices, "dense": model.mm.is_dense,
                                "uv": model.mm.has_uv, "source": model.mm.source},
            "files": {"weights": WEIGHTS_FILE, "morphable_model": MM_FILE}}
    with atomic_dir(out, replace=_replaceable(out)) as tmp:
        np.savez(tmp / MM_FILE, **model.mm.arrays())
        model.regressor.save_weights(str(tmp / WEIGHTS_FILE))
        write_json(tmp / SPEC_FILE, meta, indent=2, fsync=False)  # atomic_dir syncs the whole folder
    return out


def _replaceable(out: Path) -> bool:
    """Whether :func:`save_model_dir` may replace ``out``: absent, an empty folder or a model directory."""
    if not out.exists() and not out.is_symlink():
        return False
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()):
            return True
        try:
            if json.loads((out / SPEC_FILE).read_text()).get("format") == FORMAT:
                return True
        except (OSError, ValueError, AttributeError):
            pass
    raise OutputError(out, "it exists and is not a tf2dasl model directory; choose another folder or remove it")


def read_model_meta(model_dir: str | Path) -> dict:
    """``model.json`` of a model directory, checked for format and version."""
    return read_descriptor(model_dir, SPEC_FILE, FORMAT, FORMAT_VERSION, ModelDirError, "model directory",
                           "make one with `tf2dasl import-3ddfa` or `tf2dasl train`")


_FIX = "correct it or re-create the model directory with `tf2dasl import-3ddfa` or `tf2dasl train`"


def read_spec_and_morphable(model_dir: str | Path) -> tuple[ModelSpec, MorphableModel]:
    """The spec and morphable model of a model directory, without building its network (evaluation and mesh
    decoding need no regressor)."""
    d = Path(model_dir)
    meta = read_model_meta(d)
    try:
        spec = ModelSpec.from_dict(meta["spec"])  # checks every value the regressor and FaceModel are built from
    except KeyError as exc:
        raise ModelDirError(f"{d / SPEC_FILE}: no model spec (missing key {exc}); {_FIX}") from None
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{d / SPEC_FILE}: bad model spec: {exc}; {_FIX}") from None
    for name in (WEIGHTS_FILE, MM_FILE):
        if not (d / name).is_file():
            raise ModelDirError(f"{d}: incomplete model directory, {name} is missing")
    try:
        with np.load(d / MM_FILE) as z:
            mm = MorphableModel.from_arrays({k: z[k] for k in z.files}, meta.get("morphable_model", {}).get("source"))
    except Exception as exc:
        raise ModelDirError(f"{d / MM_FILE}: cannot read ({type(exc).__name__}: {exc})") from None
    return spec, mm


def load_model_dir(model_dir: str | Path) -> FaceModel:
    """Load a model directory into a :class:`FaceModel`."""
    d = Path(model_dir)
    spec, mm = read_spec_and_morphable(d)
    try:
        regressor = spec.build_regressor()
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{d / SPEC_FILE}: cannot build the {spec.backbone} regressor this spec describes "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {_FIX}") from None
    try:
        regressor.load_weights(str(d / WEIGHTS_FILE))
    except Exception as exc:
        raise ModelDirError(f"{d / WEIGHTS_FILE}: cannot load weights into {spec.backbone} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return FaceModel(spec, regressor, mm)
