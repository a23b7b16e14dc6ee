"""A real full disk: ``tf2dasl reconstruct`` of three photos with --overlay --obj into a 64 KB tmpfs.

Checks that every file present is complete and valid (JSON parses, PNG decodes, OBJ holds the
lines its header announces, no temporary file left), every missing output is named in the printed report and
in summary.json, and the exit status is non-zero. Needs root (mount -t tmpfs); prints why and exits 2 without.

    sudo python benchmarks/full_disk.py [--shared ../shared] [--model MODEL_DIR] [--size 64k]

The run holds back 16 KB (tf2dasl.io.run_folder.RESERVE_BYTES) for summary.json, so the summary fits however
full the outputs made the disk (a tmpfs gives every file at least a 4 KB page).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, shared_dir  # noqa: E402

PHOTOS = ("einstein.jpg", "emma.jpg", "JianzhuGuo.jpg")
FULL_DISK_SIZE = "64k"


@contextmanager
def tmpfs(size: str = FULL_DISK_SIZE):
    """A fresh tmpfs of ``size`` mounted on a temporary folder (root only); RuntimeError when it cannot be."""
    with tempfile.TemporaryDirectory() as mnt:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"cannot mount a tmpfs ({(r.stderr or r.stdout).strip() or r.returncode})")
        try:
            yield Path(mnt)
        finally:
            subprocess.run(["umount", mnt], check=True)


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete, valid output file, or None."""
    import cv2

    if path.name.startswith(".") and path.name.endswith(".tf2dasl-tmp"):
        return "temporary file left behind"
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            if cv2.imread(str(path)) is None:
                return "PNG does not decode"
        elif path.suffix == ".obj":
            lines = path.read_text().splitlines()
            m = re.match(r"# tf2dasl mesh: (\d+) vertices, (\d+) faces", lines[0] if lines else "")
            if not m or sum(ln.startswith("v ") for ln in lines) != int(m[1]) or \
                    sum(ln.startswith("f ") for ln in lines) != int(m[2]):
                return "OBJ is cut short"
        elif path.name == "tf2dasl-manifest.jsonl":
            if not path.read_bytes().endswith(b"\n"):
                return "manifest ends with a partial line"
            for line in path.read_text().splitlines():
                json.loads(line)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_run(out: Path, stems: list[str], rc: int, report: str) -> list[str]:
    """What the run got wrong (empty when everything held): files present but broken, outputs
    missing without being named in ``report`` (stdout + stderr) and in summary.json, exit status 0."""
    wrong = [f"{p.name}: {why}" for p in sorted(out.iterdir()) if (why := file_problem(p))]
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    if summary is None:
        wrong.append("summary.json is missing")
    named = {f["file"] for f in (summary or {}).get("failures", []) if "file" in f}
    named |= {n for e in (summary or {}).get("incomplete", []) for n in e["missing"]}
    unprocessed = set((summary or {}).get("not_processed", []))
    for stem in stems:
        expected = [f"{stem}.json", f"{stem}_overlay.png"]
        if (out / f"{stem}.json").is_file():
            faces = len(json.loads((out / f"{stem}.json").read_text())["faces"])
            expected += [f"{stem}_{i}.obj" for i in range(faces)]
        for name in expected:
            if (out / name).is_file():
                continue
            if not any(stem in p for p in unprocessed):
                if name not in named:
                    wrong.append(f"{name} is missing and summary.json does not name it")
                if name not in report:
                    wrong.append(f"{name} is missing and the printed report does not name it")
    if rc == 0:
        wrong.append("exit status 0")
    return wrong


def run(model: Path, photos: list[Path], out: Path, env: dict | None = None) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "tf2dasl.cli", "reconstruct", *map(str, photos), "--model", str(model),
                        "--out", str(out), "--overlay", "--obj"], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout + r.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared")
    ap.add_argument("--model", help="model directory (default: mb05 imported into a temporary folder)")
    ap.add_argument("--size", default=FULL_DISK_SIZE, help="tmpfs size")
    args = ap.parse_args()
    shared = shared_dir(args.shared)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    photos = [shared / "data" / "images" / n for n in PHOTOS]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else Path(tmp) / "mb05"
        if not args.model:
            subprocess.run([sys.executable, "-m", "tf2dasl.cli", "import-3ddfa", str(shared / "assets" / "3ddfa_v2"),
                            "--out", str(model)], check=True, env=env, capture_output=True)
        try:
            with tmpfs(args.size) as out:
                rc, report = run(model, photos, out, env)
                present = sorted(p.name for p in out.iterdir())
                wrong = check_run(out, [p.stem for p in photos], rc, report)
                summary = (out / "summary.json").read_text() if (out / "summary.json").is_file() else "(none)"
        except RuntimeError as exc:
            print(f"full_disk: {exc}; run as root", file=sys.stderr)
            return 2
    lines = [ln for ln in report.splitlines() if "reconstruct:" not in ln and not ln.startswith(("I0000", "W0000",
                                                                                                   "E0000", "WARNING"))]
    print(f"exit status {rc}; files present in the {args.size} tmpfs: {', '.join(present)}")
    print("\n".join(lines))
    print(f"summary.json: {len(summary)} bytes")
    print("acceptance: " + ("met" if not wrong else "NOT met: " + "; ".join(wrong)))
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
