"""``tf2dasl import-3ddfa CHECKOUT --weights NAME --out MODEL_DIR``."""
from __future__ import annotations

from ..io.import_3ddfa import import_3ddfa_v2
from ..io.model_dir import save_model_dir


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="Import a 3DDFA_V2 checkout's weights (read without torch) into a model directory.")
    p.add_argument("checkout", help="a 3DDFA_V2 checkout (configs/, weights/), e.g. ../shared/assets/3ddfa_v2")
    p.add_argument("--weights", default="mb05_120x120", help="weights name: configs/NAME.yml + weights/NAME.pth")
    p.add_argument("--out", required=True, help="model directory to write")
    p.set_defaults(run=run)


def run(args) -> int:
    model = import_3ddfa_v2(args.checkout, args.weights)
    out = save_model_dir(model, args.out)
    print(f"imported {args.weights} ({model.spec.backbone} x{model.spec.width}, "
          f"{model.regressor.count_params():,} parameters) -> {out}")
    print(f"  {model.mm.source.get('uv', 'no UV coordinates')}"
          + ("" if model.mm.has_uv else " (textured outputs, swap and retarget need them)"))
    return 0
