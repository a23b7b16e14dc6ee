"""``tf2dasl reconstruct`` with faults injected into its output folder (no root needed): a user's files in
``--out``, writes failing with ENOSPC / EIO, Ctrl-C in the middle of an image, resuming, ``--force``. Every
file present is complete, every missing one is named (printed and in summary.json), the exit status says so,
and nothing that tf2dasl did not write is ever replaced.

Faces come from ``--boxes`` on small noise images (no detection); mb05 is imported from ../shared
(``mb05_dir``: these tests skip without it).
"""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf2dasl import api
from tf2dasl.batch import photos as batch_photos
from tf2dasl.io.outputs import is_temporary, temporary_path
from tf2dasl.io.streams import JsonLines
from tf2dasl.io.run_folder import MANIFEST_NAME, RunFolder

from helpers import check_all_complete, read_summary, run_reconstruct
from synthetic import PHOTO_H, PHOTO_W

H, W = PHOTO_H, PHOTO_W
ENOSPC_WORDS = os.strerror(errno.ENOSPC)
#: what --obj writes for curie's face: the texture, the material, the mesh (tf2dasl.texture.assets)
CURIE_OBJ = ["curie_0_texture.png", "curie_0.mtl", "curie_0.obj"]


# ------------------------------------------------------------------------------- the user's files in --out
def test_user_files_in_out_are_never_overwritten(mb05_dir, tmp_path, photos, boxes, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "einstein.json").write_bytes(b'{"mine": true}')
    (out / "summary.json").write_bytes(b"my notes")
    (out / "curie_overlay.png").mkdir()  # a folder with an output's name
    rc, stdout, err = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay")
    assert rc == 0, err
    assert (out / "einstein.json").read_bytes() == b'{"mine": true}'
    assert (out / "summary.json").read_bytes() == b"my notes"
    assert (out / "curie_overlay.png").is_dir()
    assert json.loads((out / "einstein_png.json").read_text())["image"] == str(photos[0])
    assert (out / "curie_png_overlay.png").is_file() and (out / "bohr_overlay.png").is_file()
    assert f"renamed: {photos[0]} -> einstein_png.json ({out / 'einstein.json'} was not written by tf2dasl: kept)" in err
    assert f"renamed: {photos[1]} -> curie_png.json ({out / 'curie_overlay.png'} was not written by tf2dasl" in err
    summary = read_summary(out, "summary_2.json")
    assert summary["complete"] and summary["renamed"] == {str(photos[0]): "einstein_png", str(photos[1]): "curie_png"}
    check_all_complete(out, users=("einstein.json", "summary.json", "curie_overlay.png"))
    # a rerun keeps the same names and skips everything
    rc, stdout, err = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay")
    assert rc == 0 and "(3 complete from an earlier run, skipped)" in stdout, err
    assert (out / "einstein.json").read_bytes() == b'{"mine": true}'
    assert read_summary(out, "summary_2.json")["skipped"] == [str(p) for p in photos]


def test_another_input_with_the_same_stem_keeps_the_earlier_output(mb05_dir, tmp_path, photos, boxes,
                                                                   capsys):
    out = tmp_path / "out"
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes)
    assert rc == 0, err
    before = (out / "einstein.json").read_bytes()
    other = tmp_path / "other" / "einstein.png"
    other.parent.mkdir()
    assert cv2.imwrite(str(other), np.full((H, W, 3), 90, np.uint8))
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, [other], boxes)
    assert rc == 0, err
    assert (out / "einstein.json").read_bytes() == before
    assert json.loads((out / "einstein_png.json").read_text())["image"] == str(other)
    assert "an earlier run wrote that name for another input: kept" in err


# ------------------------------------------------------------------------------------------ failed writes
@pytest.mark.slow
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_failed_writes_are_per_file_failures_and_a_rerun_completes_them(mb05_dir, tmp_path, photos,
                                                                        boxes, capsys, fail_writes, monkeypatch,
                                                                        err):
    out = tmp_path / "out"
    fail_writes(lambda name: name == "curie_overlay.png", err)
    rc, stdout, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay", "--obj")
    assert rc == 1
    assert "2/3 images reconstructed" in stdout and "1 failed" in stdout
    reason = os.strerror(err)
    assert f"failed: {photos[1]}: {out / 'curie_overlay.png'}: cannot write ({reason}" in stderr
    assert f"incomplete: {photos[1]} (not written: curie_overlay.png; a rerun redoes it)" in stderr
    assert "permission" not in stderr
    summary = read_summary(out)
    assert summary["complete"] is False
    assert summary["failures"] == [{"image": str(photos[1]), "file": "curie_overlay.png",
                                    "error": f"{out / 'curie_overlay.png'}: cannot write ({reason}"
                                             + ("; free some space or write to another folder)"
                                                if err == errno.ENOSPC else ")")}]
    assert summary["incomplete"] == [{"image": str(photos[1]), "written": ["curie.json"] + CURIE_OBJ,
                                      "missing": ["curie_overlay.png"]}]
    assert not (out / "curie_overlay.png").exists()
    check_all_complete(out)  # the other files of curie (and all of the others) are whole
    # the rerun redoes curie only
    monkeypatch.undo()
    rc, stdout, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay", "--obj")
    assert rc == 0, stderr
    assert "3/3 images reconstructed" in stdout and "(2 complete from an earlier run, skipped)" in stdout
    summary = read_summary(out)
    assert summary["complete"] and summary["skipped"] == [str(photos[0]), str(photos[2])]
    assert (out / "curie_overlay.png").is_file()
    check_all_complete(out)


def test_a_full_disk_stops_the_run_and_names_everything(mb05_dir, tmp_path, photos, boxes, capsys,
                                                        fail_writes):
    out = tmp_path / "out"
    fail_writes(lambda name: not name.startswith("einstein"))  # einstein's files fit, then the disk is full
    rc, stdout, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--obj")
    assert rc == 1
    assert f"incomplete: {photos[1]} (not written: curie.json, {', '.join(CURIE_OBJ)}" in stderr
    assert f"stopped: {out / 'curie.json'}: cannot write ({ENOSPC_WORDS}" in stderr
    assert f"not processed: {photos[2]}\n" in stderr and "not processed: 1 inputs; a rerun" in stderr
    # summary.json could not be written either: said so, and everything was printed
    assert f"summary not written: {out / 'summary.json'}: cannot write ({ENOSPC_WORDS}" in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["einstein.json", "einstein_0_texture.png", "einstein_0.mtl",
                                                            "einstein_0.obj", MANIFEST_NAME])
    check_all_complete(out)


def test_summary_lists_not_processed_inputs(mb05_dir, tmp_path, photos, boxes, capsys, fail_writes):
    out = tmp_path / "out"
    fail_writes(lambda name: name.startswith("curie"))
    rc, _, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes)
    assert rc == 1
    summary = read_summary(out)
    assert summary["not_processed"] == [str(photos[2])] and summary["stopped"].startswith(str(out / "curie.json"))
    assert summary["incomplete"] == [{"image": str(photos[1]), "written": [], "missing": ["curie.json"]}]
    assert not (out / "bohr.json").exists()


# ------------------------------------------------------------------------------------ interrupted and resumed
def test_ctrl_c_writes_the_summary_and_a_rerun_completes_only_what_is_missing(mb05_dir, tmp_path,
                                                                              photos, boxes, capsys, monkeypatch):
    out = tmp_path / "out"
    real = api.output_files

    def interrupted(stem, *a, **k):  # Ctrl-C as curie's files are listed, before any is written
        if stem == "curie":
            raise KeyboardInterrupt
        return real(stem, *a, **k)

    monkeypatch.setattr(batch_photos, "output_files", interrupted)
    rc, stdout, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay", "--obj")
    assert rc == 130 and "Traceback" not in stderr
    assert "stopped: interrupted (Ctrl-C)" in stderr and f"incomplete: {photos[1]}" in stderr
    summary = read_summary(out)
    assert summary["complete"] is False and summary["stopped"].startswith("interrupted")
    assert summary["incomplete"] == [{"image": str(photos[1]), "written": [], "missing": ["curie.json"]}]
    assert summary["not_processed"] == [str(photos[2])]
    einstein = {n: (out / n).read_bytes() for n in ("einstein.json", "einstein_overlay.png", "einstein_0.obj")}
    check_all_complete(out)
    monkeypatch.undo()
    rc, stdout, stderr = run_reconstruct(capsys, mb05_dir, out, photos, boxes, "--overlay", "--obj")
    assert rc == 0, stderr
    assert "(1 complete from an earlier run, skipped)" in stdout
    assert read_summary(out)["skipped"] == [str(photos[0])]
    assert {n: (out / n).read_bytes() for n in einstein} == einstein  # untouched, not rewritten
    for stem in ("curie", "bohr"):
        assert (out / f"{stem}_overlay.png").is_file() and (out / f"{stem}_0.obj").is_file()
    check_all_complete(out)
    records = JsonLines(out / MANIFEST_NAME).read()
    assert [r["input"] for r in records if r["type"] == "input" and r["state"] == "complete"] == [
        str(p.resolve()) for p in photos]


@pytest.mark.slow
def test_changed_settings_or_force_redo_complete_inputs(mb05_dir, tmp_path, photos, boxes, capsys):
    out = tmp_path / "out"
    assert run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes)[0] == 0
    rc, stdout, _ = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes, "--no-refine")
    assert rc == 0 and "skipped" not in stdout  # other settings: redone
    rc, stdout, _ = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes, "--no-refine")
    assert "(1 complete from an earlier run, skipped)" in stdout
    rc, stdout, _ = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes, "--no-refine", "--overlay")
    assert "skipped" not in stdout and (out / "einstein_overlay.png").is_file()  # more outputs asked: redone
    rc, stdout, _ = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes, "--no-refine", "--overlay", "--force")
    assert rc == 0 and "skipped" not in stdout
    (out / "einstein.json").write_text('{"edited by the user": 1}')  # no longer tf2dasl's file
    rc, stdout, err = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes, "--no-refine", "--overlay")
    assert rc == 0 and "skipped" not in stdout
    assert (out / "einstein.json").read_text() == '{"edited by the user": 1}'
    assert "renamed:" in err and (out / "einstein_png.json").is_file()


def test_stale_temporaries_of_a_killed_run_are_removed(mb05_dir, tmp_path, photos, boxes, capsys):
    out = tmp_path / "out"
    with RunFolder(out):  # a run that recorded its tag, then was killed mid-write:
        stale = temporary_path(out / "einstein_0.obj")
        stale.write_bytes(b"v 1 2")
    assert run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes)[0] == 0
    assert not any(is_temporary(p.name) for p in out.iterdir())


def test_a_foreign_manifest_stops_the_run(mb05_dir, tmp_path, photos, boxes, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text("my own log\n")
    rc, _, err = run_reconstruct(capsys, mb05_dir, out, photos[:1], boxes)
    assert rc == 2 and "is not a tf2dasl manifest" in err and len(err.strip().splitlines()) == 1
    assert (out / MANIFEST_NAME).read_text() == "my own log\n" and sorted(os.listdir(out)) == [MANIFEST_NAME]


def test_output_stems_with_blocked_names_and_earlier_stems():
    paths = [Path(p) for p in ("x/a.png", "x/b.png", "y/a.png", "x/c.jpg")]
    blocked = {"b": "b.json", "b_png": "b_png_overlay.png"}.get
    stems = api.output_stems(paths, taken={"summary", "c"}, blocked=blocked, previous=[None, None, "a", None])
    assert stems == ["a_png", "b_png_2", "a", "c_jpg"]  # y/a.png keeps its earlier stem; x/a.png moves
    assert api.output_stems(paths) == ["a", "b", "a_png", "c"]


# ------------------------------------------------------------------------------------- a real full disk (slow)
@pytest.mark.slow
def test_real_full_disk_tmpfs(mb05_dir, shared_dir):
    """benchmarks/full_disk.py's check on a real 96 KB tmpfs (needs root to mount it: skipped otherwise)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from full_disk import FULL_DISK_SIZE, PHOTOS, check_run, run, tmpfs

    photos = [shared_dir / "data" / "images" / n for n in PHOTOS]
    try:
        with tmpfs(FULL_DISK_SIZE) as out:
            rc, report = run(mb05_dir, photos, out)
            assert check_run(out, [p.stem for p in photos], rc, report) == []
            assert rc == 1 and "No space left on device" in report and "permission" not in report
    except RuntimeError as exc:
        pytest.skip(f"{exc} (needs root)")


def test_report_names_unprocessed_inputs():
    many = [f"/p/{i}.jpg" for i in range(25)]
    s = api.Summary(images=25, not_processed=many, stopped="interrupted (Ctrl-C); ...")
    lines = s.report_lines()
    assert [ln for ln in lines if ln.startswith("not processed: /p/")] == [f"not processed: {p}" for p in many[:10]]
    assert "not processed: 25 inputs (15 more listed in summary.json); a rerun of the same command does them" in lines
    assert s.describe() == "0/25 images reconstructed, 0 faces, 0 without faces, 0 failed, 25 not processed"
    s.summary_error = "out/summary.json: cannot write (No space left on device)"  # then every one is printed
    assert sum(ln.startswith("not processed: /p/") for ln in s.report_lines()) == 25
    assert s.to_json()["complete"] is False and s.to_json()["not_processed"] == many
