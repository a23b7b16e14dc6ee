"""Pictures of ``evaluate aflw2000`` results (matplotlib): cumulative error distribution (CED) curves, one per
result, as 2DASL's README shows them, beside per-|yaw|-bin bars of the same metric.

Results are the JSON files ``tf2dasl evaluate aflw2000 --json`` writes (``docs/evaluation.md``): the curves read
their ``per_face`` columns, the bars their yaw tables. Figures are drawn on an Agg canvas (no pyplot state, no
display needed) and written through :mod:`tf2dasl.io.outputs`.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..errors import UserError
from ..io.outputs import make_folder, write_bytes
from .metrics import BIN_NAMES, ced

#: ``--metric`` name → (axis label, where its yaw table is in a result); the names are the ``per_face`` columns
PLOT_METRICS = {
    "nme_2d_68": ("68-point 2D NME, original (%)", ("nme_2d_68", "original")),
    "nme_2d_68_reannotated": ("68-point 2D NME, re-annotated (%)", ("nme_2d_68", "reannotated")),
    "nme_3d_68": ("68-point 3D NME (%)", ("nme_3d_68", "original")),
    "dense_2d": ("dense 2D NME, 38,365 vertices (%)", ("dense_2d",)),
    "dense_3d": ("dense 3D NME (%)", ("dense_3d",)),
    "reconstruction": ("3D face reconstruction NME (%)", ("reconstruction",)),
}
DENSE_ONLY = ("dense_2d", "dense_3d", "reconstruction")
BAR_GROUPS = BIN_NAMES + ("mean",)
BAR_LABELS = ("|yaw| 0-30", "30-60", "60-90", "balanced mean")
#: the CED's x range ends at this quantile of all results' errors (rounded up), unless ``max_error`` is given
CED_QUANTILE = 0.97
FIGURE_WIDTH, ROW_HEIGHT, DPI = 11.0, 3.6, 100
#: colours of the written palette PNG
PNG_COLORS = 128


class PlotError(UserError):
    """A result file cannot be plotted (one line naming it and the fix)."""


def read_result(path) -> dict:
    """An ``evaluate aflw2000 --json`` result, checked enough to plot: one-line :class:`PlotError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise PlotError(f"{p}: result file not found (write one with `tf2dasl evaluate aflw2000 ... --json {p.name}`)")
    try:
        result = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlotError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(result, dict) or "nme_2d_68" not in result or "bins" not in result:
        kind = f"a {result.get('benchmark')} result" if isinstance(result, dict) and result.get("benchmark") else \
            "not an `evaluate aflw2000` result"
        raise PlotError(f"{p}: {kind}; plot draws `tf2dasl evaluate aflw2000 --json` results")
    return result


def face_errors(result: dict, metric: str, source: str = "result") -> np.ndarray:
    """The scored faces' values ``(K,)`` (%) of ``metric`` in a result's ``per_face`` columns."""
    column = (result.get("per_face") or {}).get(metric)
    if column is None:
        need = " --dense" if metric in DENSE_ONLY else ""
        raise PlotError(f"{source}: no per-face {metric} values; re-run `tf2dasl evaluate aflw2000 ...{need} --json` "
                        "with this version")
    values = np.array([np.nan if v is None else v for v in column], np.float64)
    return values[np.isfinite(values)]


def yaw_bars(result: dict, metric: str, source: str = "result") -> list[float]:
    """The metric's yaw table as ``[yaw_0_30, yaw_30_60, yaw_60_90, mean]`` (%; NaN for an empty bin)."""
    table = result
    for key in PLOT_METRICS[metric][1]:
        table = table.get(key) if isinstance(table, dict) else None
    if not isinstance(table, dict):
        raise PlotError(f"{source}: no {metric} table in the result")
    return [float("nan") if table.get(k) is None else float(table[k]) for k in BAR_GROUPS]


def _labels(results: list[dict], labels, sources) -> list[str]:
    if labels:
        if len(labels) != len(results):
            raise PlotError(f"--labels gives {len(labels)} label(s) for {len(results)} result(s): one per result")
        return list(labels)
    names = [str(r.get("model") or Path(s).stem) for r, s in zip(results, sources)]
    return [n if names.count(n) == 1 else f"{n} ({Path(s).stem})" for n, s in zip(names, sources)]


def ced_figure(results: list[dict], metrics, labels=None, sources=None, max_error: float | None = None,
               title: str | None = None):
    """A :class:`matplotlib.figure.Figure`: one row per metric, the CED curves (left) and the yaw-bin bars
    (right) of every result; ``sources`` name the results in errors and default labels."""
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in PLOT_METRICS]
    if unknown:
        raise PlotError(f"--metric {unknown[0]}: use one of {', '.join(PLOT_METRICS)}")
    if not results:
        raise PlotError("no result to plot")
    sources = list(sources or [f"result {i + 1}" for i in range(len(results))])
    names = _labels(results, labels, sources)
    fig = Figure(figsize=(FIGURE_WIDTH, ROW_HEIGHT * len(metrics)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 2, squeeze=False, width_ratios=[1.25, 1])
    colors = [f"C{i % 10}" for i in range(len(results))]
    width = 0.8 / len(results)
    for row, metric in enumerate(metrics):
        label, _ = PLOT_METRICS[metric]
        errors = [face_errors(r, metric, s) for r, s in zip(results, sources)]
        bars = [yaw_bars(r, metric, s) for r, s in zip(results, sources)]
        pooled = np.concatenate(errors)
        limit = max_error or (math.ceil(np.quantile(pooled, CED_QUANTILE)) if pooled.size else 1.0)
        ax, bx = axes[row]
        for e, b, name, c in zip(errors, bars, names, colors):
            x, y = ced(e, limit)
            ax.plot(x, 100 * y, color=c, lw=2, label=f"{name}: mean {np.mean(e):.3f}, balanced {b[-1]:.3f}")
        ax.set(xlim=(0, limit), ylim=(0, 100), xlabel=label, ylabel="faces with a smaller error (%)",
               title=f"cumulative error distribution ({len(errors[0])} faces)" if len({len(e) for e in errors}) == 1
               else "cumulative error distribution")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        for i, (b, name, c) in enumerate(zip(bars, names, colors)):
            pos = np.arange(len(BAR_GROUPS)) - 0.4 + width * (i + 0.5)
            rects = bx.bar(pos, np.nan_to_num(b), width, color=c, label=name)
            bx.bar_label(rects, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in b], fontsize=7, padding=1)
        counts = results[0].get("bins", {})
        groups = [f"{t}\n({counts[k]} faces)" if k in counts and all(r.get("bins") == counts for r in results) else t
                  for k, t in zip(BAR_GROUPS, BAR_LABELS)]
        bx.set_xticks(np.arange(len(BAR_GROUPS)), groups, fontsize=8)
        bx.set(ylabel=label, title="per |yaw| bin and balanced mean")
        bx.legend(loc="upper left", fontsize=8)
        bx.margins(y=0.25)
        bx.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def figure_png(fig) -> bytes:
    """The figure encoded as a palette PNG (plots have few colours: a third of the RGBA file's size)."""
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    buf = io.BytesIO()
    rgb.quantize(colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def plot_results(paths, out, metrics=("nme_2d_68",), labels=None, max_error: float | None = None,
                 title: str | None = None) -> Path:
    """Read result files, draw :func:`ced_figure` and write it as PNG to ``out`` (atomically); returns ``out``."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise PlotError(f"--out {out}: plots are written as PNG (name the file *.png)")
    if max_error is not None and not max_error > 0:
        raise PlotError(f"--max-error {max_error}: must be a positive NME (%)")
    results = [read_result(p) for p in paths]
    fig = ced_figure(results, metrics, labels, [str(p) for p in paths], max_error, title)
    make_folder(out.parent)
    return write_bytes(out, figure_png(fig))
