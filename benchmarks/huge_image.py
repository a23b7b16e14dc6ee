"""Peak memory of ``tf2dasl reconstruct`` on a 20000x20000 image : a 1.2 MB PNG (refused in one line
above --max-pixels, before any pixel is decoded) and a JPEG (decoded at 1/8 with libjpeg's DCT scaling, overlay
drawn at that size), each next to the same command on a 1000x1000 JPEG, all in fresh processes on this machine.
The images are made in a temporary folder (never committed); peak memory is the child's ru_maxrss.

    python benchmarks/huge_image.py [--shared ../shared] [--model MODEL_DIR] [--json OUT.json]

Without --model, mb05 is imported from the shared 3DDFA_V2 checkout into the temporary folder.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_workspace, print_table  # noqa: E402

from tf2dasl.io.images import read_header  # noqa: E402
from tf2dasl.io.outputs import write_json  # noqa: E402

#: The goal for the 20000x20000 case.
LIMIT_MB = 1024
SIDE = 20000


def write_flat_png(path: Path, width: int, height: int, value: int = 128) -> Path:
    """A valid 8-bit RGB PNG of one flat colour, streamed row by row (the pixels never exist in memory):
    20000x20000 makes a 1.2 MB file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes([value]) * (3 * width)  # filter type 0, then the row's pixels
    z = zlib.compressobj(9)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"".join(z.compress(row) for _ in range(height)) + z.flush()))
        f.write(chunk(b"IEND", b""))
    return path


def write_photo_jpeg(path: Path, side: int, photo: Path) -> Path:
    """A ``side`` x ``side`` JPEG: flat grey with ``photo`` pasted at ``side / 2000`` times its size."""
    import cv2
    import numpy as np

    img = np.full((side, side, 3), 128, np.uint8)
    face = cv2.imread(str(photo))
    s = side / 2000
    face = cv2.resize(face, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)[: side // 2, : side // 2]
    img[side // 4: side // 4 + face.shape[0], side // 4: side // 4 + face.shape[1]] = face
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    buf.tofile(str(path))
    return path


def peak_rss_mb(cmd: list[str], env: dict | None = None) -> tuple[float, int, str, float]:
    """Run ``cmd`` in a fresh wrapper process whose only child it is: (peak RSS MB of the command, exit status,
    stderr, seconds)."""
    wrapper = ("import resource, subprocess, sys, json\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(json.dumps({'rc': r.returncode, 'err': r.stderr, "
               "'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True)
    seconds = time.perf_counter() - t
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["kb"] / 1024, res["rc"], res["err"], seconds


def reconstruct_cmd(image: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tf2dasl.cli", "reconstruct", str(image), "--model", str(model), "--out", str(out),
            "--overlay", "--obj", *extra]


def error_lines(stderr: str) -> list[str]:
    """The report's lines (no progress bar, no native start-up chatter)."""
    return [ln.strip() for ln in stderr.splitlines() if ln.strip().startswith(("failed:", "incomplete:", "error"))]


def main() -> int:
    with model_workspace(__doc__.splitlines()[0]) as (args, shared, env, tmp, model):
        photo = shared / "data" / "images" / "einstein.jpg"
        cases = [("1000x1000 JPEG (reference)", write_photo_jpeg(tmp / "small.jpg", 1000, photo)),
                 (f"{SIDE}x{SIDE} PNG ({(write_flat_png(tmp / 'huge.png', SIDE, SIDE)).stat().st_size / 1e6:.1f} MB)",
                  tmp / "huge.png"),
                 (f"{SIDE}x{SIDE} JPEG", write_photo_jpeg(tmp / "huge.jpg", SIDE, photo))]
        rows, result = [], {}
        for name, image in cases:
            out = tmp / f"out_{image.stem}_{image.suffix[1:]}"
            mb, rc, err, sec = peak_rss_mb(reconstruct_cmd(image, model, out), env)
            overlay = out / f"{image.stem}_overlay.png"
            header = read_header(overlay.read_bytes()) if overlay.is_file() else None
            size = f"{header.width}x{header.height}" if header else "-"
            lines = error_lines(err)
            rows.append([name, f"{mb:.0f}", f"{sec:.1f}", rc, size, lines[0] if lines else ""])
            result[name] = {"peak_rss_mb": round(mb, 1), "seconds": round(sec, 2), "exit": rc, "overlay": size,
                            "report": lines}
        print_table(["image", "peak RSS MB", "s", "exit", "overlay", "report"], rows)
        ref = result[cases[0][0]]["peak_rss_mb"]
        for name, _ in cases[1:]:
            r = result[name]
            print(f"{name}: {r['peak_rss_mb']:.0f} MB peak ({r['peak_rss_mb'] / ref:.2f}x the reference; target "
                  f"< {LIMIT_MB} MB: {'met' if r['peak_rss_mb'] < LIMIT_MB else 'NOT met'})")
        if args.json:
            write_json(args.json, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
