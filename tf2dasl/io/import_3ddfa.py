"""Import a 3DDFA_V2 checkout's weights into a tf2dasl model directory (no torch needed).

A checkout is laid out as 3DDFA_V2's repository: ``configs/bfm_noneck_v3.pkl``, ``configs/tri.pkl``,
``configs/param_mean_std_62d_120x120.pkl``, ``configs/NAME.yml`` and ``weights/NAME.pth``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..errors import UserError
from ..geometry.morphable_model import NUM_PARAMS, MorphableModelError
from ..models.mobilenet_v1 import BLOCKS
from ..models.spec import ModelSpec, first_problem, regressor_problems
from ..models.task import FaceTask
from .morphable_files import load_3ddfa_v2
from .pth import CheckpointError, load_state_dict

SUPPORTED_ARCHS = {"mobilenet": "mobilenet_v1", "mobilenet_v1": "mobilenet_v1"}
REQUIRED_FILES = ("configs/bfm_noneck_v3.pkl", "configs/param_mean_std_62d_120x120.pkl")
#: 3DDFA_V2's defaults for the optional keys of configs/NAME.yml
YML_DEFAULTS = {"widen_factor": 1.0, "size": 120, "num_params": NUM_PARAMS}
#: 3DDFA_V2 regressors see the BGR crop alone (no landmark map)
IMPORTED_CHANNELS = 3
#: ModelSpec field → the configs/NAME.yml key it comes from
YML_KEYS = {"width": "widen_factor", "input_size": "size", "num_params": "num_params"}


class ImportError3DDFA(UserError):
    """The checkout, its config or its weights cannot be imported (one line naming the file and the fix)."""


def _conv(w: np.ndarray) -> np.ndarray:  # (out, in, kh, kw) → (kh, kw, in, out)
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise(w: np.ndarray) -> np.ndarray:  # (C, 1, kh, kw) → (kh, kw, C, 1)
    return np.transpose(w, (2, 3, 0, 1))


def read_config(checkout: Path, name: str) -> dict:
    path = checkout / "configs" / f"{name}.yml"
    if not path.is_file():
        found = sorted(p.stem for p in (checkout / "configs").glob("*.yml"))
        raise ImportError3DDFA(f"{path}: config not found; weights names in this checkout: {found or 'none'}")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ImportError3DDFA(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ImportError3DDFA(f"{path}: expected a mapping of keys (arch, widen_factor, size, ...), "
                               f"got {type(cfg).__name__}")
    arch = cfg.get("arch")
    if not isinstance(arch, str) or arch not in SUPPORTED_ARCHS:
        raise ImportError3DDFA(f"{path}: architecture {arch!r} is not supported by the importer "
                               f"(supported: {sorted(SUPPORTED_ARCHS)})")
    values = {k: cfg.get(k, default) for k, default in YML_DEFAULTS.items()}
    problem = first_problem(regressor_problems(SUPPORTED_ARCHS[arch], values["widen_factor"], values["size"],
                                               IMPORTED_CHANNELS, values["num_params"]), YML_KEYS)
    if problem:
        raise ImportError3DDFA(f"{path}: {problem}; fix the value (3DDFA_V2's own configs hold widen_factor "
                               "0.5 or 1.0, size 120)")
    return {**cfg, **values}  # defaults filled in


def keras_weights_from_state_dict(sd: dict, width: float) -> dict[str, list[np.ndarray]]:
    """Map 3DDFA_V2 MobileNetV1 state-dict tensors to ``{keras layer name: [weights...]}``."""
    out: dict[str, list[np.ndarray]] = {}

    def bn(torch_name, keras_name):
        out[keras_name] = [sd[f"{torch_name}.weight"], sd[f"{torch_name}.bias"], sd[f"{torch_name}.running_mean"],
                           sd[f"{torch_name}.running_var"]]

    out["conv1"] = [_conv(sd["conv1.weight"])]
    bn("bn1", "bn1")
    for block, *_ in BLOCKS:
        out[f"{block}_conv_dw"] = [_depthwise(sd[f"{block}.conv_dw.weight"])]
        bn(f"{block}.bn_dw", f"{block}_bn_dw")
        out[f"{block}_conv_sep"] = [_conv(sd[f"{block}.conv_sep.weight"])]
        bn(f"{block}.bn_sep", f"{block}_bn_sep")
    head = "fc_param" if "fc_param.weight" in sd else "fc"
    out["fc"] = [sd[f"{head}.weight"].T, sd[f"{head}.bias"]]
    return out


def import_3ddfa_v2(checkout: str | Path, weights: str = "mb05_120x120") -> FaceTask:
    """Build a :class:`~tf2dasl.models.task.FaceTask` from a 3DDFA_V2 checkout and the weights named ``weights``."""
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise ImportError3DDFA(f"{checkout}: checkout folder not found (point it at a 3DDFA_V2 checkout, "
                               "e.g. ../shared/assets/3ddfa_v2)")
    missing = [f for f in REQUIRED_FILES if not (checkout / f).is_file()]
    if missing:
        raise ImportError3DDFA(f"{checkout}: not a 3DDFA_V2 checkout, missing {', '.join(missing)}")
    cfg = read_config(checkout, weights)
    pth = checkout / "weights" / f"{weights}.pth"
    if not pth.is_file():
        raise ImportError3DDFA(f"{pth}: weights file not found (3DDFA_V2 ships them in weights/; "
                               f"copy or download {weights}.pth there)")
    try:
        mm = load_3ddfa_v2(checkout / "configs")
        sd = load_state_dict(pth)
    except (MorphableModelError, CheckpointError) as exc:
        raise ImportError3DDFA(str(exc)) from None
    width = float(cfg["widen_factor"])  # read_config filled in and checked all three
    spec = ModelSpec(name=weights, backbone=SUPPORTED_ARCHS[cfg["arch"]], width=width,
                     input_size=int(cfg["size"]), channels=IMPORTED_CHANNELS, num_params=int(cfg["num_params"]))
    try:
        spec.validate()
    except ValueError as exc:
        raise ImportError3DDFA(f"{checkout / 'configs' / (weights + '.yml')}: {exc}") from None
    task = FaceTask(spec, mm, provenance={"source": "3DDFA_V2", "checkout": str(checkout.resolve()),
                                          "weights": pth.name, "config": cfg})
    regressor = task.regressor
    try:
        mapped = keras_weights_from_state_dict(sd, width)
    except KeyError as exc:
        raise ImportError3DDFA(f"{pth}: not a 3DDFA_V2 MobileNetV1 checkpoint (missing tensor {exc})") from None
    layers = {layer.name: layer for layer in regressor.backbone.layers}
    layers["fc"] = regressor.head
    for name, values in mapped.items():
        layer = layers[name]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ImportError3DDFA(f"{pth}: tensor shapes for {name} are {got}, the {cfg['arch']} of width {width} "
                                   f"in {weights}.yml expects {expected} (wrong widen_factor?)")
        layer.set_weights([v.astype(np.float32) for v in values])
    return task
