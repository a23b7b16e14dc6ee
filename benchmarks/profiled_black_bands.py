"""Black bands at the border of profiled views against the AFLW crops they are made from: the share of images whose two
outermost rows or columns on some side are black (every value at most tf2dasl.profiling.sources.PADDING_LEVEL: the
padding of a crop that runs past its photo).

    python benchmarks/profiled_black_bands.py PROFILED_DIR [--aflw SHARED/data/aflw_wild] [--every 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))
from tf2dasl.profiling.sources import PADDING_LEVEL  # noqa: E402

#: outermost rows / columns that must all be black to count as a band
BAND = 2


def has_band(image) -> bool:
    bright = image.max(axis=2)
    rows, cols = bright.max(axis=1) <= PADDING_LEVEL, bright.max(axis=0) <= PADDING_LEVEL
    return bool(rows[:BAND].all() or rows[-BAND:].all() or cols[:BAND].all() or cols[-BAND:].all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a profiled set (list.txt)")
    ap.add_argument("--aflw", help="AFLW's in-the-wild crops (default: $TF2DASL_SHARED/data/aflw_wild)")
    ap.add_argument("--every", type=int, default=10, help="look at every n-th image")
    args = ap.parse_args()

    folder, aflw = Path(args.folder), Path(args.aflw) if args.aflw else shared_dir() / "data" / "aflw_wild"
    views = (folder / "list.txt").read_text().split()[::args.every]
    crops = np.load(aflw / "annotations.npz")["names"][::args.every]
    for what, paths in (("profiled views", [folder / v for v in views]),
                        ("AFLW crops", [aflw / "crops" / str(n) for n in crops])):
        bands = sum(has_band(cv2.imread(str(p))) for p in paths)
        print(f"{what}: {bands} of {len(paths)} with a black band ({100 * bands / len(paths):.1f} %)")


if __name__ == "__main__":
    main()
