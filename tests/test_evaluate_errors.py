"""``tf2dasl evaluate``: bad files and conflicting flags give one clear line, never a traceback or a silent no-op.

* 300-W: an unreadable image or a malformed ``.pts`` is listed at the end (and in the JSON), the other faces are
  scored, and the exit code is 1.
* AFLW2000-3D: a corrupt ``.mat`` or one missing ``pt3d_68`` / ``Pose_Para`` stops the fixed-list protocol with
  one line naming the file (and the key).
* Runtime flags the chosen runtime would ignore (``--passes``, ``--model``, ``--export-dir``, ``--variant``,
  ``--detector``/``--assets`` with oracle crops) are refused.

Tests that need ../shared (300-W photos, the AFLW2000-3D dev slice, the 3DDFA_V2 checkout) skip without it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import one_line_error
from tf2dasl.cli import main
from tf2dasl.errors import UserError
from tf2dasl.evaluate import DatasetError, evaluate_300w, load_300w_faces, load_aflw2000, model_under_test
from tf2dasl.inference.keras_runtime import KerasPredictor

AFW = ("1051618982_1", "111076519_1", "111076519_2", "1130084326_1")
AFLW_FACES = 3  # faces copied for the --from-mat folder
MALFORMED_PTS = "version: 1\nn_points: 68\n{\n1 2\n}\n"


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_dir(mb05_dir) -> Path:
    return mb05_dir


@pytest.fixture(scope="module")
def model(mb05):
    return mb05


@pytest.fixture
def afw4(shared_dir, tmp_path) -> Path:
    """4 AFW faces copied into tmp: 2 good, one image that is not an image, one ``.pts`` with 1 point."""
    src = shared_dir / "data" / "300w" / "afw"
    dst = tmp_path / "afw"
    dst.mkdir()
    for stem in AFW:
        for ext in (".jpg", ".pts"):
            if not (src / f"{stem}{ext}").is_file():
                pytest.skip(f"{src / stem}{ext} not found")
            shutil.copy(src / f"{stem}{ext}", dst)
    (dst / f"{AFW[1]}.jpg").write_bytes(b"not a jpeg")
    (dst / f"{AFW[3]}.pts").write_text(MALFORMED_PTS)
    return dst


@pytest.fixture
def aflw_mat(shared_dir, tmp_path) -> Path:
    """A --from-mat AFLW2000-3D folder of the dev slice's first faces (images + .mat) in tmp."""
    src = shared_dir / "data" / "aflw2000_3d_dev" / "AFLW2000"
    mats = sorted(p for p in src.glob("*.mat") if p.with_suffix(".jpg").is_file())[:AFLW_FACES]
    if len(mats) < AFLW_FACES:
        pytest.skip(f"{src}: fewer than {AFLW_FACES} .jpg/.mat pairs")
    dst = tmp_path / "aflw" / "AFLW2000"
    dst.mkdir(parents=True)
    for mat in mats:
        shutil.copy(mat, dst)
        shutil.copy(mat.with_suffix(".jpg"), dst)
    return dst.parent


def _mats(aflw: Path) -> list[Path]:
    return sorted((aflw / "AFLW2000").glob("*.mat"))


# ---------------------------------------------------------------------------- 1. 300-W goes on past bad files
def test_300w_lists_bad_files_scores_the_rest_and_exits_1(afw4, model_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["evaluate", "300w", "--data", str(afw4), "--model", str(model_dir), "--boxes", "oracle",
               "--json", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    assert "Traceback" not in cap.err
    bad_img, bad_pts = afw4 / f"{AFW[1]}.jpg", afw4 / f"{AFW[3]}.pts"
    err_lines = [ln for ln in cap.err.splitlines() if "error:" in ln]
    assert len(err_lines) == 2, cap.err
    assert any(str(bad_img) in ln and "cannot decode" in ln for ln in err_lines), cap.err
    assert any(str(bad_pts) in ln and "points" in ln for ln in err_lines), cap.err
    assert "2 not scored" in cap.out
    r = json.loads(out.read_text())
    assert r["faces"] == 2 and r["found"] == 2 and r["nme_68_interocular"]["mean"] is not None
    assert sorted(Path(f["image"]).name for f in r["per_face"]) == [f"{AFW[0]}.jpg", f"{AFW[2]}.jpg"]
    assert {Path(e["image"]).name for e in r["errors"]} == {f"{AFW[1]}.jpg", f"{AFW[3]}.jpg"}
    assert all(e["error"] for e in r["errors"])


def test_300w_detector_mode_goes_on_too(afw4, model, shared_dir):
    r = evaluate_300w([afw4], model, boxes="detector", detector="haar")
    assert r["faces"] == 2 and len(r["errors"]) == 2
    json.dumps(r, allow_nan=False)


def test_300w_every_face_bad_still_reports(afw4, model_dir, tmp_path, capsys):
    for stem in AFW:
        (afw4 / f"{stem}.jpg").write_bytes(b"")
    out = tmp_path / "r.json"
    rc = main(["evaluate", "300w", "--data", str(afw4), "--model", str(model_dir), "--boxes", "oracle",
               "--json", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err
    r = json.loads(out.read_text())
    assert r["faces"] == 0 and len(r["errors"]) == len(AFW) and r["nme_68_interocular"]["mean"] is None


def test_300w_listed_face_with_bad_pts_is_an_error_not_missing(afw4):
    lst = afw4.parent / "list.txt"
    lst.write_text(f"{afw4 / (AFW[0] + '.jpg')}\n{afw4 / (AFW[3] + '.jpg')}\n")
    errors: list = []
    faces = load_300w_faces([afw4], lst, failures=errors)
    assert [Path(f.image_path).stem for f in faces] == [AFW[0]]
    assert [Path(p).stem for p, _ in errors] == [AFW[3]]
    # the default API keeps raising one line on a malformed .pts
    with pytest.raises(UserError, match=AFW[3] + ".pts"):
        load_300w_faces([afw4])


# ---------------------------------------------------------------------------- 2. AFLW2000-3D .mat problems
def test_from_mat_corrupt_mat_is_one_line(aflw_mat, capsys):
    bad = _mats(aflw_mat)[1]
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match="whole face list"):
        load_aflw2000(aflw_mat, from_mat=True)
    # the data loads before the model: no model needed to see the line
    one_line_error(capsys, ["evaluate", "aflw2000", "--data", str(aflw_mat), "--from-mat", "--model",
                             str(aflw_mat / "no-model")], str(bad), "cannot read .mat")


@pytest.mark.parametrize("drop", ["pt3d_68", "Pose_Para"])
def test_from_mat_missing_key_names_it(aflw_mat, drop):
    import scipy.io as sio

    bad = _mats(aflw_mat)[0]
    m = {k: v for k, v in sio.loadmat(str(bad)).items() if not k.startswith("__") and k != drop}
    sio.savemat(str(bad), m)
    with pytest.raises(DatasetError) as info:
        load_aflw2000(aflw_mat, from_mat=True)
    msg = str(info.value)
    assert str(bad) in msg and f"no {drop}" in msg and "\n" not in msg


def test_from_mat_wrong_shape_pt3d(aflw_mat):
    import scipy.io as sio

    bad = _mats(aflw_mat)[-1]
    m = {k: v for k, v in sio.loadmat(str(bad)).items() if not k.startswith("__")}
    m["pt3d_68"] = m["pt3d_68"][:, :10]
    sio.savemat(str(bad), m)
    with pytest.raises(DatasetError, match=r"pt3d_68 of shape \(3, 68\)"):
        load_aflw2000(aflw_mat, from_mat=True)


def test_protocol_mode_corrupt_mat_is_one_line(shared_dir, tmp_path):
    data = tmp_path / "aflw"
    # the protocol crops and .npy files, and the .mat ground truth beside them (not the full images)
    shutil.copytree(shared_dir / "data" / "aflw2000_3d_dev", data,
                    ignore=lambda d, names: [n for n in names if Path(d).name == "AFLW2000" and n.endswith(".jpg")])
    first = (data / "AFLW2000-3D_crop.list").read_text().split()[0]
    bad = data / "AFLW2000" / (Path(first).stem + ".mat")
    assert bad.is_file()
    bad.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(DatasetError) as info:
        load_aflw2000(data)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------- 3 + 4. runtime dispatch in the API
@pytest.mark.parametrize("kwargs, needles", [
    ({"runtime": "onnx", "export_dir": "x", "passes": 1}, ("--passes applies to --runtime keras", "own passes")),
    ({"runtime": "tflite", "export_dir": "x", "model": "m"}, ("--model applies to --runtime keras",)),
    ({"runtime": "savedmodel", "export_dir": "x", "variant": "int8"}, ("--variant int8 applies to --runtime tflite",)),
    ({"runtime": "keras", "model": "m", "variant": "float16"}, ("--variant float16 applies to --runtime tflite",)),
    ({"runtime": "keras", "model": "m", "export_dir": "x"}, ("--export-dir applies to",)),
    ({"runtime": "keras"}, ("--model MODEL_DIR is required",)),
    ({"runtime": "onnx"}, ("--export-dir EXPORT_DIR is required with --runtime onnx", "tf2dasl export")),
    ({"runtime": "torch", "model": "m"}, ("unknown runtime 'torch'",)),
    ({"runtime": "keras", "model": "m", "passes": 3}, ("--passes 3",)),
])
def test_model_under_test_refuses_ignored_or_missing_flags(kwargs, needles):
    with pytest.raises(UserError) as info:
        model_under_test(**kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


def test_model_under_test_export_dir_that_is_not_an_export(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path)):
        model_under_test("onnx", export_dir=tmp_path)


def test_model_under_test_passes_reach_a_4_channel_model_only(model, model4_dir, aflw_dev):
    crops = aflw_dev.crops[:2]
    two, one = model_under_test("keras", model=model4_dir), model_under_test("keras", model=model4_dir, passes=1)
    assert two.name == "mb05_4ch" and two.predictor.passes == 2 and one.predictor.passes == 1
    assert not np.allclose(two.predictor.predict(crops).params, one.predictor.predict(crops).params)
    with pytest.raises(UserError, match="4-channel"):
        model_under_test("keras", model=model, passes=2)


def test_model_under_test_keras_runs_the_model(model, aflw_dev):
    under = model_under_test("keras", model=model)
    params = under.predictor.predict(aflw_dev.crops[:2]).params
    assert under.name == model.spec.name and under.decoder is not None and not under.check_decoder
    np.testing.assert_allclose(params, KerasPredictor(model).predict(aflw_dev.crops[:2]).params)


def test_cli_conflicting_flags_are_one_line(aflw_mat, model_dir, afw4, capsys):
    data = ["evaluate", "aflw2000", "--data", str(aflw_mat), "--from-mat"]
    one_line_error(capsys, data + ["--runtime", "onnx", "--export-dir", str(aflw_mat), "--passes", "1"],
                    "--passes applies to --runtime keras")
    one_line_error(capsys, data + ["--runtime", "onnx", "--export-dir", str(aflw_mat), "--model", str(model_dir)],
                    "--model applies to --runtime keras")
    one_line_error(capsys, data + ["--model", str(model_dir), "--passes", "1"], "4-channel", "mb05_120x120")
    one_line_error(capsys, data + ["--model", str(model_dir), "--variant", "int8"], "--variant int8 applies")
    w = ["evaluate", "300w", "--data", str(afw4), "--model", str(model_dir), "--boxes", "oracle", "--no-progress"]
    one_line_error(capsys, w + ["--detector", "haar"], "--detector applies to --boxes detector")
    one_line_error(capsys, w + ["--assets", str(afw4)], "--assets applies to --boxes detector")
