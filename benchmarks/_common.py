"""Helpers shared by the benchmark scripts: timing and the imported model from ../shared."""
from __future__ import annotations

import contextlib
import os
import platform
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


@contextlib.contextmanager
def model_workspace(description: str):
    """The setup of a benchmark that runs ``tf2dasl`` on a model: its command line (``--shared``, ``--model``,
    ``--json``) parsed, and, inside a temporary folder, ``(args, shared folder, subprocess env, the folder, model
    directory)`` — ``--model`` or mb05 imported there (:func:`model_dir_or_import`)."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--shared")
    ap.add_argument("--model", help="model directory (default: mb05 imported into the temporary folder)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    shared = shared_dir(args.shared)
    env = cli_env()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        yield args, shared, env, tmp, model_dir_or_import(args.model, shared, tmp, env)


def cli_env() -> dict:
    """The environment of ``python -m tf2dasl.cli`` subprocesses: this checkout first on ``PYTHONPATH``."""
    import os

    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def model_dir_or_import(model: str | None, shared: Path, tmp: Path, env: dict) -> Path:
    """``model`` (a model directory given on the command line), or mb05 imported from the shared 3DDFA_V2 checkout
    into ``tmp/mb05`` by ``tf2dasl import-3ddfa`` in a subprocess."""
    import subprocess
    import sys

    if model:
        return Path(model)
    out = tmp / "mb05"
    subprocess.run([sys.executable, "-m", "tf2dasl.cli", "import-3ddfa", str(shared / "assets" / "3ddfa_v2"),
                    "--out", str(out)], check=True, env=env, capture_output=True)
    return out


def imported_model(shared: Path, weights: str = "mb05_120x120"):
    from tf2dasl.io.import_3ddfa import import_3ddfa_v2

    return import_3ddfa_v2(shared / "assets" / "3ddfa_v2", weights)


#: CPU flags that set what the float32 and int8 kernels can use (printed with every measurement that depends on them)
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_description() -> str:
    """``"AMD EPYC, 2 logical cores, SIMD: avx2 fma avx512f avx512_vnni ..."``: where a timing was measured."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) or "unknown"
    return f"{cpu_name()}, {os.cpu_count()} logical cores, SIMD: {simd}"


def print_table(headers: list[str], rows: list[list]) -> None:
    """A markdown table."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")


def interleaved_times(runners: dict, rounds: int, calls: int, warmup: int = 50) -> tuple[dict, dict]:
    """Time callables side by side: ``rounds`` rounds of ``calls`` calls, the callables taking turns call by call
    (who goes first rotates), after ``warmup`` calls each. Returns ``({name: [seconds per call]}, {name:
    [per-round median seconds]})``: a change in the machine's load hits every callable alike."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    order = list(runners.items())
    every = {name: [] for name in runners}
    per_round = {name: [] for name in runners}
    for r in range(rounds):
        ts = {name: [] for name in runners}
        for i in range(calls):
            k = (i + r) % len(order)
            for name, run in order[k:] + order[:k]:
                t0 = time.perf_counter()
                run()
                ts[name].append(time.perf_counter() - t0)
        for name in runners:
            per_round[name].append(statistics.median(ts[name]))
            every[name] += ts[name]
    return every, per_round
