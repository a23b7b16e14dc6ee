"""docs/video_smoothing.md's figure: jitter against NME (both over ``off``) of every causal setting that
``benchmarks/video_stability.py --grid --json`` scanned, fast motion on the left, smooth on the right.

    python benchmarks/video_stability.py --folder helen_train --clips 60 --grid --motion fast --json helen_fast.json
    (likewise --motion smooth; --folder afw for the held-out clips)
    python docs/make_smoothing_figure.py --tuning helen_fast.json helen_smooth.json \\
        --report afw_fast.json afw_smooth.json --out docs/video_smoothing_tradeoff.png

Kalman settings are drawn as curves of ``pose_noise`` (one per ``pose_adaptation``), One-Euro settings as dots;
the default and the target box (jitter <= x0.7, NME <= x1.03) are marked; ``--report`` adds the held-out
figures of the default rows as open markers.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

TARGET = (0.7, 1.03)  # the causal goal: jitter ratio, NME ratio
TOP = {"fast": 1.08, "smooth": 1.04}  # the panels' NME ratio ranges
KALMAN = re.compile(r"causal pose_noise=([\d.]+) pose_adaptation=([\d.]+)")
REPORTED = {"causal (Kalman, default)": ("o", "C3", "default (adaptive Kalman)"),
            "causal (Kalman, fixed gains, pose_noise 0.2: the former default)": ("s", "C7",
                                                                                 "fixed gains, pose_noise 0.2"),
            "causal (Kalman, fixed gains, pose_noise 0.5)": ("D", "C0", "fixed gains, pose_noise 0.5"),
            "offline (default)": ("^", "C2", "offline")}


def panel(ax, modes: dict, report: dict | None, title: str, top: float) -> None:
    curves: dict[float, list] = {}
    for name, m in modes.items():
        k = KALMAN.fullmatch(name)
        if k:
            curves.setdefault(float(k.group(2)), []).append((float(k.group(1)), m["jitter_ratio"], m["nme_ratio"]))
    for adaptation, pts in sorted(curves.items()):
        pts.sort()
        label = "Kalman, fixed gains" if adaptation == 0 else f"Kalman, pose_adaptation {adaptation:g}"
        ax.plot([p[1] for p in pts], [p[2] for p in pts], "-" if adaptation == 0 else "--", marker=".",
                lw=2 if adaptation == 0 else 1, label=label)
    euro = [m for n, m in modes.items() if n.startswith("one_euro")]
    ax.scatter([m["jitter_ratio"] for m in euro], [m["nme_ratio"] for m in euro], s=10, c="k", alpha=0.4,
               label="One-Euro settings")
    for name, (marker, colour, label) in REPORTED.items():
        m = modes[name]
        ax.scatter([m["jitter_ratio"]], [m["nme_ratio"]], marker=marker, s=70, c=colour, zorder=5,
                   label=f"{label} (HELEN: tuning)")
        if report:
            r = report[name]
            ax.scatter([r["jitter_ratio"]], [r["nme_ratio"]], marker=marker, s=70, facecolors="none",
                       edgecolors=colour, lw=1.5, zorder=5, label=f"{label} (AFW: held out)")
    ax.axvline(TARGET[0], c="r", lw=0.8, ls=":")
    ax.axhline(TARGET[1], c="r", lw=0.8, ls=":")
    ax.set_xlim(0.2, 1.0)
    ax.set_ylim(0.995, top)
    ax.set_xlabel("jitter / off (lower: steadier)")
    ax.set_ylabel("NME / off (higher: less accurate)")
    ax.set_title(title)
    ax.grid(alpha=0.3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tuning", nargs=2, type=Path, required=True, help="fast and smooth JSON of the tuning clips")
    ap.add_argument("--report", nargs=2, type=Path, help="fast and smooth JSON of the held-out clips")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "video_smoothing_tradeoff.png")
    args = ap.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for i, (ax, motion) in enumerate(zip(axes, ("fast", "smooth"))):
        tuning = json.loads(args.tuning[i].read_text())
        report = json.loads(args.report[i].read_text())["modes"] if args.report else None
        panel(ax, tuning["modes"], report, f"{motion} motion (keyframes every {tuning['motion']['key_every']} "
                                           f"frames)", TOP[motion])
    fig.suptitle(f"causal settings on {tuning['clips']} {tuning['folder']} clips (filled, dots, curves)"
                 + (" and the reported ones on AFW clips (open)" if report else ""))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.77, wspace=0.25, top=0.88)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
