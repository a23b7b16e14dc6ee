"""The fault table of docs/output_format.md ("Output guarantees"), case by case, as a hostile user tries them:
full disks for videos, a user's items that look like temporaries, symbolic links planted for appended files,
unbounded inputs (huge images, thousands of boxes, boxes and points far outside their image, deep JSON, model
files whose headers lie), the REST test double's answers to malformed requests, the REST client's view of
malformed answers and of the test double under load, and Ctrl-C at the worst moments.

Faults are injected through the file layer (monkeypatched writers, no root needed); the ``slow`` tests repeat the
full-disk and kill -9 cases for real (a small tmpfs, SIGKILL) and skip, with the reason, where a tmpfs cannot be
mounted. Models: mb05 from ../shared (``mb05_dir``: those tests skip without it).
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf2dasl.cli import main
from tf2dasl.io import run_folder as run_folder_module
from tf2dasl.io import streams
from tf2dasl.io.outputs import OutputError, is_temporary, temporary_path
from tf2dasl.io.run_folder import MANIFEST_NAME, RunFolder
from tf2dasl.io.streams import JsonLines, LineFile, VideoEncoder
from tf2dasl.reconstruct import DEFAULT_MAX_FACES
from tf2dasl.video import writer as video_writer

from helpers import mounted_tmpfs, one_line_error, read_summary, run_reconstruct
from synthetic import PHOTO_BOX

ENOSPC_WORDS = os.strerror(errno.ENOSPC)
#: the size of the MP4 a 180 KB tmpfs left in the issue's reproduction (no ``moov`` atom)
CUT_MP4_BYTES = 36_864
#: the issue's full-disk size for a 20-frame overlay video
VIDEO_TMPFS = "180k"


def _png_header_only(path: Path, side: int) -> Path:
    """A PNG whose header claims ``side`` x ``side`` RGB pixels, with almost no pixel data: what is checked
    before decoding is the header (nothing of the claimed size is ever allocated)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


# ===================================================================== 1. video on a full disk, video summary
def test_video_encoder_checks_the_finished_container(tmp_path, monkeypatch):
    """A finished MP4 is opened again and must hold every frame; one cut short by a full disk is an
    OutputError naming the file and ENOSPC (OpenCV's encoder reports nothing itself), else "broken file"."""
    def encode(name: str) -> VideoEncoder:
        enc = VideoEncoder(tmp_path / name, 25, (64, 48))
        for i in range(5):
            enc.write(np.full((48, 64, 3), 40 * i, np.uint8))
        return enc

    enc = encode("ok.mp4")
    tmp = enc.finish()
    cap = cv2.VideoCapture(str(tmp))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    cap.release()
    enc.discard()

    for folder_errno, words in ((errno.ENOSPC, f"cannot write ({ENOSPC_WORDS}; the encoded video does not open"),
                                (None, "cannot write (OpenCV's encoder wrote a broken file: it does not open")):
        enc = encode("cut.mp4")
        enc._writer.release()
        enc._writer = None
        with open(enc.tmp, "r+b") as f:  # what a full disk leaves: the frames' start, no index
            f.truncate(min(CUT_MP4_BYTES, enc.tmp.stat().st_size // 2))
        monkeypatch.setattr(streams, "folder_errno", lambda folder, e=folder_errno: e)
        with pytest.raises(OutputError, match=re.escape(f"cut.mp4: {words}")) as exc:
            enc.finish()
        assert exc.value.errno == folder_errno and not enc.tmp_dir.exists()


def _cut_short_encoder(monkeypatch):
    """Every video encoded from now on is cut short on "a full disk" (truncated, the folder full)."""
    real = VideoEncoder.finish

    def finish(self):
        if self._writer is not None and self.frames:
            self._writer.release()
            self._writer = None
            with open(self.tmp, "r+b") as f:
                f.truncate(min(CUT_MP4_BYTES, self.tmp.stat().st_size // 2))
        return real(self)

    monkeypatch.setattr(VideoEncoder, "finish", finish)
    monkeypatch.setattr(streams, "folder_errno", lambda folder: errno.ENOSPC)


def test_video_faults_are_named_and_summarised(mb05_dir, shared_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C at the first overlay frame says frame 0 (its line is written); an overlay cut short by a full disk
    is a failure naming it and ENOSPC, never placed nor marked complete; every run writes summary.json (a
    complete run's overlay is checked and placed in tests/test_video.py)."""
    clip = shared_dir / "data" / "videos" / "hamilton_clip.mp4"
    out = tmp_path / "out"
    args = [clip, "--overlay", "--max-frames", "2", "--smooth", "off"]
    overlay = out / "hamilton_clip_overlay.mp4"

    def first_frame_interrupted(self, image):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_writer.OverlayVideo, "write", first_frame_interrupted)
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, args[:1], None, *args[1:])
    assert rc == 130 and f"interrupted: {clip} stopped after frame 0; the frames up to it are written" in err, err
    assert [json.loads(ln)["frame"] for ln in (out / "hamilton_clip.jsonl").read_text().splitlines()] == [0]
    entry = read_summary(out)["videos"][0]
    assert entry["interrupted"] and entry["last_frame"] == 0 and entry["frames"] == 1 and not entry["complete"]

    monkeypatch.undo()
    _cut_short_encoder(monkeypatch)
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, args[:1], None, *args[1:])
    assert rc == 1, err
    assert f"failed: {overlay}: cannot write ({ENOSPC_WORDS}; the encoded video does not open" in err
    assert not overlay.exists() and not [p for p in out.iterdir() if is_temporary(p.name)]
    summary = read_summary(out)
    assert summary["complete"] is False and summary["videos"][0]["write_error"].startswith(str(overlay))
    assert not [r for r in JsonLines(out / MANIFEST_NAME).read() if r.get("state") == "complete"]


def _summaries_recorded(out: Path) -> list[str]:
    """The names of the summary files the manifest records, one per write."""
    return [r["name"] for r in JsonLines(out / MANIFEST_NAME).read()
            if r.get("type") == "file" and r["name"].startswith("summary")]


def test_photos_and_videos_of_one_command_share_one_summary(mb05_dir, shared_dir, tmp_path, photos, boxes, capsys,
                                                            monkeypatch):
    """Videos go first, the photos after them write the one summary.json, with the videos' entries; Ctrl-C in a
    video stops the command (exit 130) with summary.json listing the photos as not processed, written once."""
    clip = shared_dir / "data" / "videos" / "hamilton_clip.mp4"
    out = tmp_path / "out"
    args = ["--max-frames", "2", "--smooth", "off"]
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, [clip, *photos], boxes, *args)
    assert rc == 0, err
    summary = read_summary(out)
    assert summary["images"] == len(photos) and summary["complete"] is True
    (entry,) = summary["videos"]
    assert entry["input"] == str(clip) and entry["frames"] == 2 and entry["complete"] is True
    assert _summaries_recorded(out) == ["summary.json"]
    assert {f"{p.stem}.json" for p in photos} <= {p.name for p in out.iterdir()}

    def interrupted(self, frame):
        raise KeyboardInterrupt

    out = tmp_path / "out_interrupted"
    monkeypatch.setattr(video_writer.VideoOutputs, "write", interrupted)
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, [clip, *photos], boxes, *args)
    assert rc == 130, err
    summary = read_summary(out)
    assert set(summary) == {"videos", "complete", "not_processed"} and summary["complete"] is False
    assert summary["not_processed"] == [str(p) for p in photos]
    (entry,) = summary["videos"]
    assert entry["interrupted"] is True and entry["frames"] == 0 and entry["last_frame"] is None
    assert _summaries_recorded(out) == ["summary.json"]
    assert not [p for p in photos if (out / f"{p.stem}.json").exists()]



@pytest.mark.slow
def test_video_on_a_real_full_disk(mb05_dir, shared_dir):
    """The issue's reproduction: 20 overlay frames into a 180 KB tmpfs exit 1, name ENOSPC, place no broken
    MP4, mark nothing complete, and still write summary.json (in the space the run held back)."""
    clip = shared_dir / "data" / "videos" / "hamilton_clip.mp4"
    with mounted_tmpfs(VIDEO_TMPFS) as out:
        r = subprocess.run([sys.executable, "-m", "tf2dasl.cli", "reconstruct", str(clip), "--model", str(mb05_dir),
                            "--out", str(out), "--overlay", "--max-frames", "20"], capture_output=True, text=True)
        names = sorted(p.name for p in out.iterdir())
        summary = json.loads((out / "summary.json").read_text())
        records = JsonLines(out / MANIFEST_NAME).read()
    assert r.returncode == 1, r.stderr
    assert ENOSPC_WORDS in r.stderr and "permission" not in r.stderr
    assert "hamilton_clip_overlay.mp4" not in names and not [n for n in names if is_temporary(n)], names
    assert summary["complete"] is False and not summary["videos"][0]["complete"]
    assert not [rec for rec in records if rec.get("state") == "complete"]


# ===================================================================== 2. a user's items that look like temporaries
def test_only_temporaries_the_manifest_records_are_removed(tmp_path):
    """A user's ``.my-backup.tf2dasl-tmp/`` and ``.notes.tf2dasl-tmp`` survive every run, with or without a
    manifest; a killed run's temporaries (its tag recorded in the manifest) go with the next run."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".my-backup.tf2dasl-tmp").mkdir()
    (out / ".my-backup.tf2dasl-tmp" / "thesis.tex").write_text("mine")
    (out / ".notes.tf2dasl-tmp").write_text("mine")
    (out / ".a.json.0badcafe-00000000.tf2dasl-tmp").write_text("another program's, same pattern")
    users = sorted(p.name for p in out.iterdir())
    RunFolder(out).close()  # no manifest before: nothing removed
    with RunFolder(out):  # this run is killed while writing: its temporaries stay behind
        left = [temporary_path(out / "a.json"), temporary_path(out / "model")]
        left[0].write_text("{")
        left[1].mkdir()
        (left[1] / "weights.h5").write_bytes(b"\0" * 1024)
    RunFolder(out).close()
    assert sorted(p.name for p in out.iterdir()) == sorted(users + [MANIFEST_NAME])
    assert (out / ".my-backup.tf2dasl-tmp" / "thesis.tex").read_text() == "mine"


@pytest.mark.slow
def test_kill_9_mid_write_leaves_a_temporary_the_next_run_removes(tmp_path):
    """SIGKILL inside an atomic write leaves its temporary file; the next run into the folder removes it (its
    run recorded the tag) and nothing of the user's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".notes.tf2dasl-tmp").write_text("mine")
    code = ("import os, signal, sys\n"
            "from tf2dasl.io.run_folder import RunFolder\n"
            "from tf2dasl.io.outputs import atomic_file\n"
            "folder = RunFolder(sys.argv[1])\n"
            "with atomic_file(folder.path / 'a.json') as f:\n"
            "    f.write(b'{\"cut\": ')\n"
            "    f.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = [p.name for p in out.iterdir() if is_temporary(p.name)]
    assert len(left) == 2  # the reserve and a.json's temporary
    RunFolder(out).close()
    assert sorted(p.name for p in out.iterdir()) == [".notes.tf2dasl-tmp", MANIFEST_NAME]


# ===================================================================== 3. symbolic links planted in the run folder
def test_appended_files_are_never_written_through_a_link(tmp_path):
    """The manifest, JSON lines and history.csv are opened without following links: a link planted with their
    name is a one-line OutputError and the file it points to is untouched; so is a linked mesh folder."""
    from tf2dasl.training.callbacks import CsvHistory

    outside = tmp_path / "outside.txt"
    outside.write_text("the user's\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).symlink_to(outside)
    with pytest.raises(OutputError, match=rf"{MANIFEST_NAME}: cannot write \(it is a symbolic link; tf2dasl never "
                                          r"writes through a link"):
        RunFolder(out)
    for log in (JsonLines(out / "clip.jsonl"), LineFile(out / "history.csv")):
        log.path.symlink_to(outside)
        with pytest.raises(OutputError, match="it is a symbolic link"):
            log.append({"frame": 0} if isinstance(log, JsonLines) else "epoch,loss")
    history = CsvHistory(out / "history.csv", append=True)  # train --resume
    history.on_train_begin()
    with pytest.raises(OutputError, match="history.csv: cannot write \\(it is a symbolic link"):
        history.on_epoch_end(3, {"loss": 0.5})
    assert outside.read_text() == "the user's\n"
    (out / MANIFEST_NAME).unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "clip_meshes").symlink_to(elsewhere, target_is_directory=True)
    with RunFolder(out) as folder, pytest.raises(OutputError, match="clip_meshes: cannot write \\(it is a symbolic"):
        folder.write("clip_meshes/clip_000000_1.obj", b"v 0 0 0\n")
    assert list(elsewhere.iterdir()) == []


def test_a_linked_manifest_stops_reconstruct_in_one_line(mb05_dir, tmp_path, photos, boxes, capsys):
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"format": "tf2dasl-run-manifest"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).symlink_to(outside)
    one_line_error(capsys, ["reconstruct", str(photos[0]), "--model", str(mb05_dir), "--out", str(out), "--boxes",
                            str(boxes), "--detector", "haar"], "it is a symbolic link")
    assert outside.read_text() == '{"format": "tf2dasl-run-manifest"}\n'


@pytest.mark.slow
def test_resumed_training_cleans_its_temporaries_and_refuses_a_linked_history(synth, tmp_path, capsys):
    """A killed training's ``.model.*.tf2dasl-tmp`` folder goes with ``--resume`` (a user's look-alike stays); a
    ``history.csv`` planted as a link stops the resumed run in one line, the file it points to untouched."""
    from helpers import train_config

    run = tmp_path / "run"
    assert main(["train", "--config", str(train_config(synth, tmp_path, epochs=1)), "--out", str(run)]) == 0
    stale = temporary_path(run / "model")  # this process's tag: recorded by the run above
    stale.mkdir()
    (stale / "regressor.weights.h5").write_bytes(b"\0" * 4096)
    (run / ".notes.tf2dasl-tmp").write_text("mine")
    cfg2 = train_config(synth, tmp_path, epochs=2)
    assert main(["train", "--config", str(cfg2), "--out", str(run), "--resume"]) == 0, capsys.readouterr().err
    assert not stale.exists() and (run / ".notes.tf2dasl-tmp").read_text() == "mine"
    outside = tmp_path / "outside.csv"
    outside.write_text("mine\n")
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to(outside)
    cfg3 = train_config(synth, tmp_path, epochs=3)
    one_line_error(capsys, ["train", "--config", str(cfg3), "--out", str(run), "--resume"], "history.csv",
                   "it is a symbolic link")
    assert outside.read_text() == "mine\n"


# ===================================================================== 4 + 5. bounded inputs, named by the run
def test_unbounded_inputs_are_named_and_the_run_goes_on(mb05_dir, tmp_path, photos, capsys):
    """One run: a box of [0, 0, 1e9, 1e9] and a .pts point at 1e8 are failures naming them (no exabyte crop);
    5,000 boxes with --overlay reconstruct the first DEFAULT_MAX_FACES faces and say so; a symbolic link loop
    in the folder is named like any unreadable input; summary.json lists it all, no reserve is left, exit 1."""
    einstein, curie, bohr = photos
    pts = np.tile([[60.0, 50.0]], (68, 1))
    pts[0] = [1e8, 1e8]
    bohr.with_suffix(".pts").write_text("version: 1\nn_points: 68\n{\n"
                                        + "".join(f"{x} {y}\n" for x, y in pts) + "}\n")
    boxes = tmp_path / "boxes.json"
    many = [[float(x), float(y), x + 40.0, y + 40.0] for x in range(0, 100, 2) for y in range(0, 80, 1)][:5000]
    boxes.write_text(json.dumps({einstein.name: [[0, 0, 1e9, 1e9]], curie.name: many, bohr.name: [PHOTO_BOX]}))
    loop = einstein.parent / "loop.png"
    loop.symlink_to(loop)
    out = tmp_path / "out"
    rc, stdout, err = run_reconstruct(capsys, mb05_dir, out, [einstein.parent], boxes, "--overlay", "--pts")
    assert rc == 1 and "Traceback" not in err
    assert f"{einstein}: given box [0.0, 0.0, 1000000000.0, 1000000000.0] reaches far outside the 160x120 image" in err
    assert f"{bohr.with_suffix('.pts')}: the landmarks' box" in err and "reaches far outside the 160x120 image" in err
    assert (f"capped: {curie}: {len(many)} faces, the first {DEFAULT_MAX_FACES} reconstructed; --max-faces "
            f"{len(many)} reconstructs all") in err
    assert f"{loop}: cannot be read ({os.strerror(errno.ELOOP)})" in err
    assert len(json.loads((out / "curie.json").read_text())["faces"]) == DEFAULT_MAX_FACES
    assert (out / "curie_overlay.png").is_file()
    summary = read_summary(out)
    assert summary["capped"] == [{"image": str(curie), "faces": len(many), "reconstructed": DEFAULT_MAX_FACES}]
    assert {f["image"] for f in summary["failures"]} == {str(einstein), str(bohr), str(loop)}
    assert not [p for p in out.iterdir() if is_temporary(p.name)]  # the reserve went with the summary
    rc, stdout, err = run_reconstruct(capsys, mb05_dir, out, [einstein.parent], boxes, "--overlay", "--pts")
    assert rc == 1 and "(1 complete from an earlier run, skipped)" in stdout  # curie kept, still reported capped
    assert read_summary(out)["capped"] == summary["capped"] and f"capped: {curie}" in err


def test_unbounded_files_are_one_line_before_anything_runs(mb05_dir, tmp_path, photos, capsys):
    """A --boxes file nested 100,000 deep, swap/retarget photos above --max-pixels (a 30000x30000 PNG header),
    a morphable_model.npz whose header claims a (40000, 40000) array, and a model.json with width 1000 and
    input_size 100000: each one line (exit 2), before any of it is loaded."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(capsys, ["reconstruct", str(photos[0]), "--model", str(mb05_dir), "--out", str(tmp_path / "o"),
                            "--boxes", str(deep)], f"{deep}: not valid JSON (nested too deeply")
    huge = _png_header_only(tmp_path / "huge.png", 30_000)
    limit = "30000x30000 pixels is more than --max-pixels 24,000,000"
    one_line_error(capsys, ["swap", str(huge), str(photos[0]), "--model", str(mb05_dir), "--out",
                            str(tmp_path / "s.png")], f"{huge}: {limit}")
    one_line_error(capsys, ["retarget", "--expression", str(photos[0]), "--onto", str(huge), "--model",
                            str(mb05_dir), "--out", str(tmp_path / "r.png")], f"{huge}: {limit}")

    bad_npz = tmp_path / "bad_npz"
    shutil.copytree(mb05_dir, bad_npz)
    with np.load(mb05_dir / "morphable_model.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "w_exp"}
    np.savez(bad_npz / "morphable_model.npz", **arrays, w_exp=np.zeros((1, 1), np.float32))
    _claim_shape(bad_npz / "morphable_model.npz", "w_exp.npy", (40_000, 40_000))
    one_line_error(capsys, ["reconstruct", str(photos[0]), "--model", str(bad_npz), "--out", str(tmp_path / "o")],
                   "array w_exp has shape (40000, 40000), expected (115095, 10)")
    bad_spec = tmp_path / "bad_spec"
    shutil.copytree(mb05_dir, bad_spec)
    meta = json.loads((bad_spec / "model.json").read_text())
    meta["task"]["config"]["spec"].update(width=1000, input_size=100_000)
    (bad_spec / "model.json").write_text(json.dumps(meta))
    one_line_error(capsys, ["reconstruct", str(photos[0]), "--model", str(bad_spec), "--out", str(tmp_path / "o")],
                   "model.json", "width")


def _claim_shape(npz: Path, member: str, shape: tuple) -> None:
    """Rewrite ``member``'s .npy header in ``npz`` to claim ``shape`` (its data stays as small as it was)."""
    import io
    import zipfile

    with zipfile.ZipFile(npz) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    members[member] = header.getvalue() + b"\0" * 4
    with zipfile.ZipFile(npz, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


# ===================================================================== Ctrl-C after a file was placed
def test_ctrl_c_after_a_file_is_placed_counts_it_as_written(mb05_dir, tmp_path, photos, boxes, capsys,
                                                             monkeypatch):
    """Ctrl-C between putting curie_0.obj in place and counting it: the summary lists it as written (it is on
    disk) and names every file of curie not written."""
    real = run_folder_module.write_bytes

    def placed_then_interrupted(path, data, **kw):
        target = real(path, data, **kw)
        if Path(path).name == "curie_0.obj":
            raise KeyboardInterrupt
        return target

    monkeypatch.setattr(run_folder_module, "write_bytes", placed_then_interrupted)
    out = tmp_path / "out"
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, photos[1:2], boxes, "--obj", "--glb")
    assert rc == 130, err
    (entry,) = read_summary(out)["incomplete"]
    assert entry == {"image": str(photos[1]), "written": ["curie.json", "curie_0_texture.png", "curie_0.mtl",
                                                          "curie_0.obj"], "missing": ["curie_0.glb"]}
    assert (out / "curie_0.obj").is_file()


# ============================================== 6. the REST client on malformed answers, the test double under load
@pytest.fixture(scope="module")
def rest_double():
    """The REST double with no model loaded: every request is answered (404 for the model), fast."""
    from serving_double import LocalModels, serve

    server = serve(port=None, rest_port=0, models=LocalModels({}), max_message_mb=1)
    yield server
    server.stop()


#: What the stub answers, by the model name asked for: (HTTP status, body), and words of the client's error
MALFORMED_ANSWERS = {
    "html": (200, b"<html>a web server, not TF Serving</html>",
             "the server's answer is not JSON (is this TF Serving's REST port?)"),
    "list": (200, b"[1, 2, 3]", 'answered without "outputs": [1, 2, 3]'),
    "predictions": (200, b'{"predictions": [[1.0, 2.0]]}', 'answered without "outputs": {\'predictions\''),
    "strings": (200, b'{"outputs": {"params": [["a", "b"]]}}', '"outputs" that are not arrays of numbers'),
    "ragged": (200, b'{"outputs": {"params": [[1.0, 2.0], [3.0]]}}', '"outputs" that are not arrays of numbers'),
    "no_params": (200, b'{"outputs": {"pose": [[1.0, 2.0, 3.0]]}}',
                  "the server's answer has no \"params\" output (it has ['pose'])"),
    "error_lines": (400, json.dumps({"error": "shape mismatch\n  at line 2\nTraceback (most recent call last)"})
                    .encode(), "rejected the serving_default request (HTTP 400): shape mismatch"),
    "error_html": (500, b"<html>Internal Server Error</html>", "failed (HTTP 500) after 1 try: Internal Server Error"),
}


@pytest.fixture(scope="module")
def malformed_server():
    """A local HTTP server that answers every REST request with ``MALFORMED_ANSWERS[model]``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, _ = MALFORMED_ANSWERS[re.match(r"/v1/models/([^/:]+)", self.path)[1]]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def _raw_http(server, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """One raw HTTP request (``head`` without the blank line); the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as s:
        s.sendall(head + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
            if b"\r\n\r\n" in data:
                top, rest = data.split(b"\r\n\r\n", 1)
                length = int(next((ln.split(b":")[1] for ln in top.split(b"\r\n")
                                   if ln.lower().startswith(b"content-length")), b"0"))
                if len(rest) >= length:
                    return int(top.split()[1]), json.loads(rest[:length])
    raise AssertionError(f"no answer: {data!r}")


def test_rest_double_answers_malformed_requests(rest_double):
    """A 50,000-deep JSON body and bad Content-Lengths are 400s; an over-limit Content-Length is a 413 sent
    before the body (none is sent here: the double does not wait for it)."""
    post = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n"
    deep = b"[" * 50_000 + b"]" * 50_000
    status, body = _raw_http(rest_double, post + b"Content-Length: %d" % len(deep), deep)
    assert status == 400 and "nested too deeply" in body["error"]
    for length in (b"abc", b"-5"):
        status, body = _raw_http(rest_double, post + b"Content-Length: " + length)
        assert status == 400 and "Content-Length" in body["error"]
    status, body = _raw_http(rest_double, post + b"Content-Length: %d" % (1 << 40))
    assert status == 413 and "exceeds the server's limit" in body["error"]


@pytest.mark.parametrize("model", sorted(MALFORMED_ANSWERS))
def test_rest_client_names_a_malformed_answer_in_one_line(malformed_server, model):
    """Whatever a server that is not (quite) TF Serving answers, RestClient.predict raises one ServingError of
    one line saying what was wrong with the answer (no KeyError, ValueError or the server's traceback)."""
    from tf2dasl.inference.rest_runtime import RestClient
    from tf2dasl.inference.serving_client import ServingError

    crops = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ServingError) as exc:
        RestClient(malformed_server, model, retries=0).predict(crops)
    message = str(exc.value)
    assert MALFORMED_ANSWERS[model][2] in message and "\n" not in message, message


def test_rest_double_answers_200_concurrent_requests(rest_double):
    """200 requests at once with retries=0: each gets the server's answer (here: model not found), none a reset
    connection; the client names what happened."""
    from tf2dasl.inference.rest_runtime import RestClient
    from tf2dasl.inference.serving_client import ServingError

    def ask(_):
        try:
            RestClient(rest_double.url, "nope", retries=0).status()
        except ServingError as exc:
            return str(exc)
        return "answered"

    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(ask, range(200)))
    assert all("model 'nope' not found on the server" in a for a in answers), {a for a in answers}


def test_rest_client_names_a_reset_connection():
    """A connection the server resets without answering (what an overloaded server's backlog does) is said to
    be that, not "is the server running?"."""
    import threading

    from tf2dasl.inference.rest_runtime import RestClient
    from tf2dasl.inference.serving_client import ServingError

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def reset_one():
            conn, _ = listener.accept()
            conn.recv(1 << 16)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
            conn.close()

        t = threading.Thread(target=reset_one)
        t.start()
        with pytest.raises(ServingError, match="closed the connection before answering") as exc:
            RestClient(f"127.0.0.1:{listener.getsockname()[1]}", "m", retries=0).status()
        t.join()
    assert "is the server running" not in str(exc.value)
