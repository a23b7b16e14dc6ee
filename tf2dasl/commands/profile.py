"""``tf2dasl profile --config CONFIG --model TEACHER_DIR [--out DIR] [--views K] [--max-yaw DEG] [--workers N]
[--draw SHEET.png]``."""
from __future__ import annotations

from dataclasses import replace

from ..io.model_dir import load_model_dir
from ..io.outputs import write_image
from ..io.yaml_config import ConfigError, load_config
from ..profiling.config import ProfiledDataConfig
from ..profiling.dataset import set_sheet
from ..training.profiled import make_config_profiled_set
from ..training.train_config import TrainConfig, expand_data_paths, expand_path


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Face profiling (3DDFA's 300W-LP recipe): the config's in-the-wild training faces "
                                   "where TEACHER_DIR is reliable are fitted (flip-averaged), turned out of plane with "
                                   "the photo around them and cropped as training crops are; each view is labelled "
                                   "with the rotated parameters. Written in 3DDFA's layout (list.txt, params.npy), "
                                   "cached by content and resumable. Settings: the config's data.profiled section.")
    p.add_argument("--config", required=True, help="training config (its data.wild faces are the sources)")
    p.add_argument("--model", required=True, help="the teacher's model directory (e.g. models/mb05)")
    p.add_argument("--out", help="folder of the profiled set (default: data.profiled.folder/profiled-<key>, where "
                                 "tf2dasl train finds it)")
    p.add_argument("--views", type=int, help="views per source face (default: data.profiled.poses.views)")
    p.add_argument("--max-yaw", type=float, help="largest |yaw| of a view in degrees, <= 90 (default: the config's)")
    p.add_argument("--workers", type=int, help="processes rendering views (default: data.profiled.workers)")
    p.add_argument("--draw", metavar="SHEET.png", help="also write a contact sheet of views (source crop, then views "
                                                       "by yaw with their labels' landmarks)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one config value (repeatable), e.g. --set data.profiled.select.max_nme=4")
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = load_config(args.config, TrainConfig, overrides=args.overrides)
    expand_data_paths(cfg)
    prof = cfg.data.profiled or ProfiledDataConfig(folder=expand_path(ProfiledDataConfig.folder))
    poses = prof.poses
    if args.views is not None:
        poses = replace(poses, views=args.views)
    if args.max_yaw is not None:
        poses = replace(poses, yaw=(min(poses.yaw[0], args.max_yaw), args.max_yaw))
    prof = replace(prof, poses=poses, workers=args.workers if args.workers is not None else prof.workers)
    try:
        prof.validate()
    except ValueError as exc:
        raise ConfigError(f"data.profiled: {exc}") from None
    made = make_config_profiled_set(cfg, load_model_dir(args.model), prof, args.out)
    bins = made.meta["yaw_bins"]
    print(f"{made.views} views of {made.sources} faces in {made.folder} (|yaw| 0-30 / 30-60 / 60-90: "
          f"{bins['0-30']} / {bins['30-60']} / {bins['60-90']})")
    if args.draw:
        print(f"wrote {write_image(args.draw, set_sheet(made, cfg.data.wild, prof))}")
    return 0
