"""Peak memory of every bounded case of the fault table (docs/output_format.md, "Output guarantees"), each a fresh
``tf2dasl`` process measured with ``/usr/bin/time -v`` (its "Maximum resident set size"), next to a plain
reconstruction of one photo. The inputs are made in a temporary folder (never committed):

* ``swap`` and ``retarget`` of a 30000x30000 PNG (flat colour, streamed: its pixels never exist here);
* 5,000 ``--boxes`` on one photo with ``--overlay`` (64 faces reconstructed, the rest reported);
* a ``--boxes`` box of ``[0, 0, 1e9, 1e9]``, and a ``.pts`` point at 1e8;
* a ``--boxes`` file nested 100,000 deep;
* a model directory whose ``morphable_model.npz`` holds a real, deflated (40000, 40000) float32 array in place of
  ``w_exp`` (its header claims 6.4 GB);
* a ``model.json`` with ``width: 1000, input_size: 100000``.

    python benchmarks/bounded_memory.py [--shared ../shared] [--model MODEL_DIR] [--json OUT.json]

Without --model, mb05 is imported from the shared 3DDFA_V2 checkout into the temporary folder. The target is a
peak under :data:`LIMIT_MB` for each case.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_workspace, print_table  # noqa: E402
from huge_image import write_flat_png  # noqa: E402

from tf2dasl.io.outputs import write_json  # noqa: E402

#: the acceptance target for each bounded case
LIMIT_MB = 1024
#: the issue's huge PNG and its claimed morphable-model array
PNG_SIDE = 30_000
NPZ_CLAIM = (40_000, 40_000)
#: boxes given on one photo, and how deep the hostile --boxes file nests
MANY_BOXES = 5_000
NESTING = 100_000
#: rows of the claimed array deflated at a time while the npz is written
ROWS_PER_WRITE = 1_000


def peak(cmd: list[str], env: dict) -> tuple[float, int, str, float]:
    """``/usr/bin/time -v cmd``: (peak RSS in MB, exit status, the command's stderr, seconds)."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)[1])
    status = re.search(r"Exit status: (\d+)", r.stderr)
    return kb / 1024, int(status[1]) if status else r.returncode, r.stderr, seconds


def write_claiming_npz(src: Path, dst: Path, name: str = "w_exp", shape=NPZ_CLAIM) -> Path:
    """``src`` (a morphable_model.npz) with array ``name`` replaced by zeros of ``shape`` (float32), deflated row
    block by row block, so the file is small and the array is never in memory here."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != f"{name}.npy":
                zout.writestr(info.filename, zin.read(info.filename))
        with zout.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            block = np.zeros((ROWS_PER_WRITE, shape[1]), np.float32).tobytes()
            for _ in range(shape[0] // ROWS_PER_WRITE):
                f.write(block)
    return dst


def make_inputs(tmp: Path, model: Path, photo: Path) -> dict:
    """Every hostile input of the cases, made in ``tmp``."""
    img = tmp / "photo.jpg"
    shutil.copy(photo, img)
    rng = np.random.default_rng(0)
    many = [[float(x), float(y), float(x) + 60, float(y) + 60]
            for x, y in rng.uniform(0, 700, (MANY_BOXES, 2)).tolist()]
    (tmp / "many.json").write_text(json.dumps({img.name: many}))
    (tmp / "far.json").write_text(json.dumps({img.name: [[0, 0, 1e9, 1e9]]}))
    (tmp / "deep.json").write_text("[" * NESTING + "]" * NESTING)
    pts_dir = tmp / "pts"
    pts_dir.mkdir()
    shutil.copy(photo, pts_dir / "photo.jpg")
    points = [[400.0, 400.0]] * 67 + [[1e8, 1e8]]
    (pts_dir / "photo.pts").write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in points)
                                       + "}\n")
    npz_model = tmp / "model_npz"
    shutil.copytree(model, npz_model)
    write_claiming_npz(model / "morphable_model.npz", npz_model / "morphable_model.npz")
    spec_model = tmp / "model_spec"
    shutil.copytree(model, spec_model)
    meta = json.loads((spec_model / "model.json").read_text())
    meta["task"]["config"]["spec"].update(width=1000, input_size=100_000)
    (spec_model / "model.json").write_text(json.dumps(meta))
    return {"photo": img, "png": write_flat_png(tmp / "huge.png", PNG_SIDE, PNG_SIDE), "pts": pts_dir / "photo.jpg",
            "npz_model": npz_model, "spec_model": spec_model}


def cases(tmp: Path, model: Path, inputs: dict) -> list[tuple[str, list[str]]]:
    cli = [sys.executable, "-m", "tf2dasl.cli"]
    rec = [*cli, "reconstruct", "--model", str(model)]
    photo = str(inputs["photo"])
    npz_mb = inputs["npz_model"].joinpath("morphable_model.npz").stat().st_size / 1e6
    return [
        ("reconstruct 1 photo --overlay (reference)", [*rec, photo, "--out", str(tmp / "o_ref"), "--overlay"]),
        (f"swap, {PNG_SIDE}x{PNG_SIDE} PNG", [*cli, "swap", str(inputs["png"]), photo, "--model", str(model), "--out",
                                             str(tmp / "swap.png")]),
        (f"retarget onto a {PNG_SIDE}x{PNG_SIDE} PNG", [*cli, "retarget", "--expression", photo, "--onto",
                                                       str(inputs["png"]), "--model", str(model), "--out",
                                                       str(tmp / "retarget.png")]),
        (f"{MANY_BOXES:,} --boxes, --overlay", [*rec, photo, "--out", str(tmp / "o_many"), "--overlay", "--boxes",
                                               str(tmp / "many.json")]),
        ("--boxes [0, 0, 1e9, 1e9]", [*rec, photo, "--out", str(tmp / "o_far"), "--boxes", str(tmp / "far.json")]),
        (".pts point at 1e8", [*rec, str(inputs["pts"]), "--out", str(tmp / "o_pts"), "--pts"]),
        (f"--boxes nested {NESTING:,} deep", [*rec, photo, "--out", str(tmp / "o_deep"), "--boxes",
                                              str(tmp / "deep.json")]),
        (f"npz ({npz_mb:.1f} MB) claiming {NPZ_CLAIM}", [*cli, "reconstruct", photo, "--model",
                                                          str(inputs["npz_model"]), "--out", str(tmp / "o_npz")]),
        ("model.json width 1000, input_size 100000", [*cli, "reconstruct", photo, "--model",
                                                      str(inputs["spec_model"]), "--out", str(tmp / "o_spec")]),
    ]


def report_line(stderr: str) -> str:
    """The tool's own first report line (no progress bars, native chatter or /usr/bin/time's lines)."""
    keep = [ln.strip() for ln in stderr.splitlines()
            if ln.strip().startswith(("failed:", "capped:", "tf2dasl ", "incomplete:", "stopped:"))]
    return keep[0] if keep else ""


def main() -> int:
    with model_workspace(__doc__.splitlines()[0]) as (args, shared, env, tmp, model):
        inputs = make_inputs(tmp, model, shared / "data" / "images" / "einstein.jpg")
        rows, result = [], {}
        for name, cmd in cases(tmp, model, inputs):
            mb, rc, err, sec = peak(cmd, env)
            line = report_line(err)
            rows.append([name, f"{mb:.0f}", f"{sec:.1f}", rc, "yes" if mb < LIMIT_MB else "NO", line[:110]])
            result[name] = {"peak_rss_mb": round(mb, 1), "seconds": round(sec, 1), "exit": rc, "report": line}
    print_table(["case", "peak RSS MB", "s", "exit", f"< {LIMIT_MB} MB", "report"], rows)
    if args.json:
        write_json(args.json, result, indent=2)
    return 0 if all(r["peak_rss_mb"] < LIMIT_MB for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
