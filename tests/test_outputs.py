"""tf2dasl.io.outputs under injected faults (no root needed): writers failing with ENOSPC / EIO part-way, an
existing file that must not be replaced, folders built atomically, JSON lines never cut. Every failure is one
``OutputError`` line naming the file and the system's reason, and no partially written file is left behind."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf2dasl.errors import UserError
from tf2dasl.io import outputs
from tf2dasl.io.mesh import write_obj, write_ply
from tf2dasl.io.streams import JsonLines
from tf2dasl.io.outputs import (
    PROCESS_TAG, OutputError, OutputExistsError, atomic_dir, atomic_file, is_temporary, remove_stale_temporaries,
    write_bytes, write_image, write_json, write_text,
)

ENOSPC_WORDS = os.strerror(errno.ENOSPC)  # "No space left on device"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temporary(p.name))


class _FailingFile:
    """A file object that writes ``budget`` bytes to the real file, then fails like a full disk (or ``err``)."""

    def __init__(self, real, budget: int, err: int):
        self.real, self.budget, self.err = real, budget, err

    def write(self, data):
        if len(data) > self.budget:
            self.real.write(data[:self.budget])
            self.real.flush()
            self.budget = 0
            raise OSError(self.err, os.strerror(self.err))
        self.budget -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n, err)``: every file opened by tf2dasl.io.outputs takes ``n`` bytes, then fails."""
    def arm(budget: int, err: int = errno.ENOSPC):
        real_open = open
        monkeypatch.setattr(outputs, "open", lambda *a, **k: _FailingFile(real_open(*a, **k), budget, err),
                            raising=False)
    return arm


# ------------------------------------------------------------------------------------------- atomic files
def test_write_functions_round_trip(tmp_path):
    assert write_bytes(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    write_json(tmp_path / "j.json", {"a": [1, 2]}, indent=2)
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2]}
    assert (tmp_path / "j.json").read_text().endswith("}\n")
    image = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    write_image(tmp_path / "i.png", image)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "i.png")), image)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_failed_write_leaves_nothing_and_names_file_and_reason(tmp_path, disk_full_after, err):
    target = tmp_path / "result.json"
    disk_full_after(10, err)
    with pytest.raises(OutputError) as exc:
        write_json(target, {"payload": "x" * 1000})
    e = exc.value
    assert isinstance(e, UserError) and e.errno == err and e.path == str(target)
    msg = str(e)
    assert msg.startswith(f"{target}: cannot write ({os.strerror(err)}") and "\n" not in msg
    assert "permission" not in msg  # a full disk is not a permissions problem
    assert e.folder_problem == (err in (errno.ENOSPC, errno.EDQUOT))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_version(tmp_path, disk_full_after):
    target = tmp_path / "result.json"
    write_json(target, {"version": 1})
    before = target.read_bytes()
    disk_full_after(5)
    with pytest.raises(OutputError, match=ENOSPC_WORDS):
        write_json(target, {"version": 2, "more": "y" * 500})
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_io_error_at_fsync_or_rename(tmp_path, monkeypatch, step):
    target = tmp_path / "a.png"

    def fail(*a, **k):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(outputs.os, step, fail)
    with pytest.raises(OutputError, match=rf"a\.png: cannot write \({os.strerror(errno.EIO)}\)"):
        write_image(target, np.zeros((4, 4, 3), np.uint8))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_overwrite_false_never_replaces(tmp_path):
    mine = tmp_path / "einstein.json"
    mine.write_bytes(b"the user's own file")
    with pytest.raises(OutputExistsError, match="einstein.json: cannot write .*already exists"):
        write_json(mine, {"faces": []}, overwrite=False)
    assert mine.read_bytes() == b"the user's own file" and _leftovers(tmp_path) == []
    write_json(tmp_path / "new.json", {}, overwrite=False)
    assert (tmp_path / "new.json").read_text() == "{}\n"


def test_a_folder_in_the_way_is_named(tmp_path):
    (tmp_path / "einstein_overlay.png").mkdir()
    for overwrite in (True, False):
        with pytest.raises(OutputError, match="einstein_overlay.png: cannot write"):
            write_image(tmp_path / "einstein_overlay.png", np.zeros((4, 4, 3), np.uint8), overwrite=overwrite)
    assert (tmp_path / "einstein_overlay.png").is_dir() and _leftovers(tmp_path) == []


def test_missing_folder_and_permission_denied(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match="check that the folder exists"):
        write_text(tmp_path / "no" / "x.txt", "x")

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(outputs, "open", denied, raising=False)  # a read-only folder (tests may run as root)
    with pytest.raises(OutputError, match=r"x\.txt: cannot write \(Permission denied; check the folder's permissions"):
        write_text(tmp_path / "x.txt", "x")


def test_image_encoding_failures_are_output_errors(tmp_path):
    with pytest.raises(OutputError, match=r"x\.unknownext: cannot write \(OpenCV cannot encode it as \.unknownext"):
        write_image(tmp_path / "x.unknownext", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(OutputError, match="no file extension"):
        write_image(tmp_path / "noext", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_atomic_file_block_removes_the_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "x.bin") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_mesh_writers_are_atomic(tmp_path, disk_full_after):
    v = np.random.default_rng(0).normal(size=(50, 3))
    t = np.array([[0, 1, 2], [2, 3, 4]])
    assert write_obj(tmp_path / "m.obj", v, t).read_text().startswith("# tf2dasl mesh")
    disk_full_after(100)
    for writer, name in ((write_obj, "m.obj"), (write_ply, "m.ply")):
        with pytest.raises(OutputError, match=rf"{name}: cannot write \({ENOSPC_WORDS}"):
            writer(tmp_path / name, v, t)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.obj"]  # the earlier complete one, untouched
    assert (tmp_path / "m.obj").read_text().count("\nv ") == 50


def test_remove_stale_temporaries_only_touches_the_given_tags(tmp_path):
    """Only temporaries whose tag is given go (a run folder gives the tags its manifest recorded); a user's item
    whose name merely ends like one, or another process's temporary, stays."""
    (tmp_path / ".a.json.1234abcd-00ff00ff.tf2dasl-tmp").write_text("{")
    (tmp_path / ".d.1234abcd-0a0b0c0d.tf2dasl-tmp").mkdir()
    (tmp_path / ".b.json.99999999-00ff00ff.tf2dasl-tmp").write_text("{")  # another process's
    (tmp_path / ".hidden").write_text("user")
    (tmp_path / "x.tf2dasl-tmp").write_text("user, not hidden")
    (tmp_path / ".notes.tf2dasl-tmp").write_text("user, hidden")
    (tmp_path / ".my-backup.tf2dasl-tmp").mkdir()
    (tmp_path / ".my-backup.tf2dasl-tmp" / "a.txt").write_text("user")
    removed = remove_stale_temporaries(tmp_path, {"1234abcd"})
    assert sorted(p.name for p in removed) == [".a.json.1234abcd-00ff00ff.tf2dasl-tmp",
                                               ".d.1234abcd-0a0b0c0d.tf2dasl-tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.json.99999999-00ff00ff.tf2dasl-tmp", ".hidden",
                                                          ".my-backup.tf2dasl-tmp", ".notes.tf2dasl-tmp",
                                                          "x.tf2dasl-tmp"]
    assert remove_stale_temporaries(tmp_path, set()) == []


# ------------------------------------------------------------------------------------------------ folders
def test_atomic_dir_appears_only_when_complete(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        assert not out.exists() and tmp.parent == tmp_path
        (tmp / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a" and _leftovers(tmp_path) == []
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "broken") as tmp:
            (tmp / "half").write_text("h")
            raise RuntimeError("crash while writing")
    assert not (tmp_path / "broken").exists() and _leftovers(tmp_path) == []


def test_atomic_dir_replace_and_refusal(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError):
        with atomic_dir(out):
            pass
    assert (out / "old.txt").read_text() == "old"
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"] and _leftovers(tmp_path) == []


def test_atomic_dir_names_the_folder_on_a_full_disk(tmp_path):
    def writer_fails(folder):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "weights.h5"))

    with pytest.raises(OutputError, match=rf"model: cannot write \({ENOSPC_WORDS}; free some space"):
        with atomic_dir(tmp_path / "model") as tmp:
            writer_fails(tmp)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ JSON lines
def test_json_lines_append_and_read(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonLines(path) as log:
        log.append({"a": 1})
        log.append({"b": "two"})
        assert JsonLines(path).read() == [{"a": 1}, {"b": "two"}]  # flushed: visible before close
    assert path.read_text().count("\n") == 2


def test_json_lines_failed_append_is_cut_back(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    log = JsonLines(path)
    log.append({"first": 1})
    before = path.read_bytes()
    real_write = os.write

    def short_write(fd, data):  # half the line reaches the disk, then it is full
        return real_write(fd, data[:len(data) // 2])

    monkeypatch.setattr(outputs.os, "write", short_write)
    with pytest.raises(OutputError, match=rf"log\.jsonl: cannot write \({ENOSPC_WORDS}"):
        log.append({"second": "x" * 100})
    monkeypatch.undo()
    assert path.read_bytes() == before
    log.append({"third": 3})
    log.close()
    assert JsonLines(path).read() == [{"first": 1}, {"third": 3}]


def test_json_lines_drops_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')  # a crash cut the second line
    assert JsonLines(path).read() == [{"a": 1}]
    with JsonLines(path) as log:
        log.append({"c": 3})
    assert path.read_bytes() == b'{"a":1}\n{"c":3}\n'


def test_place_file_puts_a_finished_file_in_place(tmp_path):
    from tf2dasl.io.outputs import place_file, temporary_path

    target = tmp_path / "clip_overlay.mp4"
    tmp = temporary_path(target)
    assert is_temporary(tmp.name) and tmp.parent == tmp_path
    tmp.write_bytes(b"frames")
    assert place_file(tmp, target) == target and target.read_bytes() == b"frames" and not tmp.exists()
    tmp = temporary_path(target)
    tmp.write_bytes(b"other")
    with pytest.raises(OutputExistsError):
        place_file(tmp, target, overwrite=False)
    assert target.read_bytes() == b"frames" and _leftovers(tmp_path) == []


def test_a_temporary_names_what_it_becomes():
    from tf2dasl.io.outputs import PROCESS_TAG, temporary_path, temporary_tag, temporary_target

    for name in ("a.json", "clip.v2.tar.gz", "model", "no-dot"):
        tmp = temporary_path(Path("out") / name).name
        assert temporary_target(tmp) == name and temporary_tag(tmp) == PROCESS_TAG
    for users in (".notes.tf2dasl-tmp", "a.json", ".a.json.tf2dasl-tmp", f".a.json.{PROCESS_TAG}.tf2dasl-tmp"):
        assert temporary_target(users) is None


def test_reserve_space_is_a_temporary_file(tmp_path):
    from tf2dasl.io.outputs import reserve_space

    reserve = reserve_space(tmp_path, 4096)
    assert reserve.stat().st_size == 4096 and is_temporary(reserve.name)
    assert remove_stale_temporaries(tmp_path, {PROCESS_TAG}) == [reserve]  # a killed run's reserve goes with the next


def test_run_folder_holds_space_back_until_the_summary(tmp_path):
    from tf2dasl.io.run_folder import RESERVE_BYTES, RunFolder

    with RunFolder(tmp_path / "out") as folder:
        held = [p for p in folder.path.iterdir() if is_temporary(p.name)]
        assert len(held) == 1 and held[0].stat().st_size == RESERVE_BYTES
        folder.release_reserve()
        assert _leftovers(folder.path) == []
        folder.write("summary.json", b"{}\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.json", "tf2dasl-manifest.jsonl"]
