"""``tf2dasl plot RESULT.json [RESULT.json ...] [--metric M ...] --out ced.png``: CED curves and yaw-bin bars.

Thin over :func:`tf2dasl.evaluate.plots.plot_results`."""
from __future__ import annotations

from ..evaluate.plots import PLOT_METRICS, plot_results


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help,
                       description="One row per --metric: the cumulative error distribution of every result (one "
                                   "curve each, labelled by model) and its per-|yaw|-bin and balanced-mean bars.")
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="`tf2dasl evaluate aflw2000 --json` files")
    p.add_argument("--metric", nargs="+", choices=list(PLOT_METRICS), default=["nme_2d_68"], metavar="METRIC",
                   help=f"one or more of {', '.join(PLOT_METRICS)} (default nme_2d_68; the dense ones need results "
                        "of `evaluate aflw2000 --dense`)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one legend label per result (default: its model)")
    p.add_argument("--max-error", type=float, help="the CED's x range, NME %% (default: from the data)")
    p.add_argument("--title", help="a title above the figure")
    p.set_defaults(run=run)


def run(args) -> int:
    out = plot_results(args.results, args.out, args.metric, args.labels, args.max_error, args.title)
    print(f"wrote {out}")
    return 0
