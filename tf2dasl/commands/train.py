"""``tf2dasl train --config CONFIG [--set KEY=VALUE ...] [--init MODEL_DIR] --out RUN_DIR [--resume]``."""
from __future__ import annotations

from ..io.yaml_config import ConfigError, load_config
from ..training.train_config import TrainConfig
from ..training.trainer import train


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="2DASL training: supervised + four self-supervision losses and a self-critic. "
                                   "The model directory ends up in RUN_DIR/model.")
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--init", help="model directory to start from (e.g. the imported mb05); also the teacher")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    p.add_argument("--epochs", type=int, help="override the config's epochs (>= 1; with --resume a larger "
                                                  "number continues the run longer)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one config value (repeatable), e.g. --set optim.lr=0.001 --set loss.cycle=0; "
                        "the run's config.yaml records the result")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1 (the number of epochs to train in all), got {args.epochs}")
    cfg = load_config(args.config, TrainConfig, overrides=args.overrides)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    train(cfg, args.out, init=args.init, resume=args.resume)
    return 0
