"""Helpers shared by the benchmark scripts: timing and the imported model from ../shared."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir(arg: str | None = None) -> Path:
    return Path(arg or os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")).resolve()


def timeit(fn, repeat: int = 50, warmup: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def imported_model(shared: Path, weights: str = "mb05_120x120"):
    from tf2dasl.io.import_3ddfa import import_3ddfa_v2

    return import_3ddfa_v2(shared / "assets" / "3ddfa_v2", weights)


def print_table(headers: list[str], rows: list[list]) -> None:
    """A markdown table."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
