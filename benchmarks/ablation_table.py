"""Print docs/results.md's training tables from the JSON files the ablation scripts and evaluations write.

    python benchmarks/ablation_table.py [RUNS_DIR]            # benchmarks/ablation.sh (300-W experiment)
    python benchmarks/ablation_table.py --aflw RUNS_DIR       # benchmarks/ablation_aflw.sh (AFLW, seeds)
    python benchmarks/ablation_table.py --results LABEL=AFLW2000_JSON[,HOLDOUT_JSON[,HELEN_JSON]] ...
        # one row per model: `evaluate aflw2000 --dense --json`, holdout_nme.py --json, `evaluate 300w --json`
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [("imported mb05_120x120 (3DDFA_V2)", "imported_aflw2000.json"),
        ("2DASL fine-tuned (all terms)", "dasl_mb05_300w_full/aflw2000.json"),
        ("  without 2D self-prediction", "dasl_mb05_300w_no_self_2d/aflw2000.json"),
        ("  without 3D self-prediction consistency", "dasl_mb05_300w_no_self_3d/aflw2000.json"),
        ("  without cycle consistency", "dasl_mb05_300w_no_cycle/aflw2000.json"),
        ("  without self-critic", "dasl_mb05_300w_no_adversarial/aflw2000.json"),
        ("  supervised terms only (teacher WPDC + 2D landmarks)", "dasl_mb05_300w_supervised_only/aflw2000.json"),
        ("2DASL fine-tuned (all terms), one-pass inference (empty map)", "dasl_mb05_300w_full/aflw2000_1pass.json"),
        ("all terms, map-slice gradient x100 (`--set optim.map_lr_multiplier=100`)", "dasl_mb05_300w_map_lr100/aflw2000.json"),
        ("  the same, one-pass inference (empty map)", "dasl_mb05_300w_map_lr100/aflw2000_1pass.json")]
BINS = ("yaw_0_30", "yaw_30_60", "yaw_60_90", "mean")
AFLW_ROWS = [("supervised only (teacher anchors + 2D points)", "supervised"), ("+ 2D self-prediction", "self_2d"),
             ("+ 3D self-prediction consistency", "self_3d"), ("+ cycle consistency", "cycle"),
             ("+ self-critic", "adversarial"), ("full 2DASL (all four terms)", "full"),
             ("control: supervised only, 2D-point weight 3 (no self-supervision)", "landmark3")]


def _metrics(run: Path, holdout: Path, helen: Path) -> dict:
    """The numbers of one model: hold-out NMEs (HELEN also through the photo pipeline) and the AFLW2000-3D monitor."""
    a = json.loads(run.read_text())["nme_2d_68"]
    h = next(iter(json.loads(holdout.read_text()).values()))
    pipeline = json.loads(helen.read_text())["nme_68_interocular"]["mean"] if helen.is_file() else float("nan")
    return {"aflw_val": h["aflw21"]["yaw"]["mean"], "helen": h["68"]["nme"], "helen_pipeline": pipeline,
            "orig": a["original"]["mean"], "re": a["reannotated"]["mean"]}


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    half = (max(values) - min(values)) / 2
    return f"{mean:.3f} ± {half:.3f}"


def aflw_table(runs: Path) -> None:
    keys = ("aflw_val", "helen", "helen_pipeline", "orig", "re")
    print("| model (seeds) | AFLW-wild val: 21-pt NME, yaw-balanced | HELEN hold-out: 68-pt NME, crops | HELEN "
          "hold-out: `evaluate 300w` (inter-ocular) | AFLW2000-3D dev: original (monitor) | re-annotated (monitor) |")
    print("|---|---|---|---|---|---|")
    base = _metrics(runs / "mb05_aflw2000.json", runs / "mb05_holdout.json", runs / "mb05_helen.json")
    print("| imported mb05_120x120 | " + " | ".join(f"{base[k]:.3f}" for k in keys) + " |")
    for label, row in AFLW_ROWS:
        found = sorted(runs.glob(f"{row}_s*/aflw2000.json"))
        done = [_metrics(f, f.parent / "holdout.json", f.parent / "helen.json") for f in found
                if (f.parent / "holdout.json").is_file()]
        if not done:
            print(f"| {label} | (no runs in {runs}) |")
            continue
        seeds = ", ".join(f.parent.name.rsplit("_s", 1)[1] for f in found)
        print(f"| {label} ({seeds}) | " + " | ".join(cell([m[k] for m in done]) for k in keys) + " |")


def results_table(specs: list[str]) -> None:
    """Every metric `evaluate aflw2000 --dense` reports, the hold-out NMEs and HELEN through the pipeline."""
    cols = [("2D 68 original", lambda a: a["nme_2d_68"]["original"]["mean"]),
            ("2D 68 re-annotated", lambda a: a["nme_2d_68"]["reannotated"]["mean"]),
            ("3D 68 original", lambda a: a["nme_3d_68"]["original"]["mean"]),
            ("dense 2D", lambda a: a["dense_2d"]["mean"]), ("dense 3D", lambda a: a["dense_3d"]["mean"]),
            ("3D reconstruction", lambda a: a["reconstruction"]["mean"])]
    print("| model | " + " | ".join(c for c, _ in cols) + " | AFLW-wild val 21-pt (yaw-balanced) | HELEN hold-out "
          "68-pt, crops | HELEN hold-out `evaluate 300w` |")
    print("|---" * (len(cols) + 4) + "|")
    for spec in specs:
        label, files = spec.split("=", 1)
        paths = [Path(p) for p in files.split(",")]
        a = json.loads(paths[0].read_text())
        cells = [f"{fn(a):.3f}" if fn(a) is not None else "-" for _, fn in cols]
        val = crops = helen = "-"
        if len(paths) > 1:
            h = next(iter(json.loads(paths[1].read_text()).values()))
            val, crops = f"{h['aflw21']['yaw']['mean']:.3f}", f"{h['68']['nme']:.3f}"
        if len(paths) > 2:
            helen = f"{json.loads(paths[2].read_text())['nme_68_interocular']['mean']:.3f}"
        print(f"| {label} | " + " | ".join(cells) + f" | {val} | {crops} | {helen} |")


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--results":
        results_table(args[1:])
        return
    if args and args[0] == "--aflw":
        aflw_table(Path(args[1] if len(args) > 1 else "runs/ablation"))
        return
    runs = Path(args[0] if args else "runs")
    print("| model | original: 0–30 | 30–60 | 60–90 | **mean** | re-annotated: 0–30 | 30–60 | 60–90 | **mean** |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, rel in ROWS:
        path = runs / rel
        if not path.is_file():
            print(f"| {label} | (missing {path}) |")
            continue
        r = json.loads(path.read_text())["nme_2d_68"]
        cells = [f"{r[gt][b]:.3f}" if b != "mean" else f"**{r[gt][b]:.3f}**" for gt in ("original", "reannotated")
                 for b in BINS]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
