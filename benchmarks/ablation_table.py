"""Print the README's training table from the JSON files that benchmarks/ablation.sh writes.

    python benchmarks/ablation_table.py [RUNS_DIR]
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


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
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
