"""``tf2dasl fit-landmarks --config CONFIG --model MODEL_DIR [--out FILE] [--faces N] [--draw DIR]``."""
from __future__ import annotations

from ..io.model_dir import load_model_dir
from ..io.yaml_config import ConfigError, load_config
from ..training.landmark_fit import DEFAULT_FACES, fit_aflw_points, write_fit
from ..training.train_config import TrainConfig, expand_path


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="For each of AFLW's 21 annotated points, the mesh vertex (or 68-point midpoint) "
                                   "whose projection through MODEL_DIR's meshes best fits the annotations of the "
                                   "config's AFLW training faces (its validation split excluded). Writes the YAML "
                                   "the config names as data.wild.aflw.points_file (or --out).")
    p.add_argument("--config", required=True, help="training config with a data.wild.aflw section")
    p.add_argument("--model", required=True, help="model directory with a dense morphable model (e.g. models/mb05)")
    p.add_argument("--out", help="points YAML to write (default: the config's points_file)")
    p.add_argument("--faces", type=int, default=None, help="training faces to fit on (default 1500)")
    p.add_argument("--seed", type=int, default=0, help="which faces (default 0)")
    p.add_argument("--draw", metavar="DIR", help="also draw the fit on crops: DIR/<out stem>_fit.png")
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = load_config(args.config, TrainConfig)
    aflw = cfg.data.wild.aflw
    if aflw is None:
        raise ConfigError(f"{args.config}: no data.wild.aflw section (the AFLW crops to fit on)")
    faces = DEFAULT_FACES if args.faces is None else args.faces
    if faces < 1:
        raise ConfigError(f"--faces must be >= 1, got {faces}")
    out = args.out or expand_path(aflw.points_file)
    aflw.root = expand_path(aflw.root)
    result = fit_aflw_points(aflw, load_model_dir(args.model), faces, args.seed)
    command = (f"tf2dasl fit-landmarks --config {args.config} --model {args.model}"
               + (f" --faces {faces}" if args.faces is not None else "") + (f" --seed {args.seed}" if args.seed else ""))
    for path in write_fit(result, out, command, args.model, args.draw):
        print(f"wrote {path}")
    f = result.fit
    print(f"mean error {f.error.mean():.2f} % of the face size (naive AFLW -> 68 map: {result.naive_error.mean():.2f} %)")
    return 0
