"""The full pipeline on real photos: the labelled face of afw/full is found and fitted; ``tf2dasl reconstruct``'s
JSON follows docs/output_format.md; bad, faceless and unusual inputs; pictures and meshes; one-line errors.

Uses mb05 imported from ../shared/assets/3ddfa_v2 into a temp model directory (skips without ../shared).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf2dasl.cli import main
from tf2dasl.evaluate import evaluate_300w, match_labelled_face, nme_interocular
from tf2dasl.io.images import read_image
from tf2dasl.io.pts import read_pts

#: afw/full: 12 uncropped photos (several faces each), the labelled face's 68 points in <stem>.pts.
#: Measured with mb05: BlazeFace (full + short range) finds all 12, NME mean 6.01% (max 8.70%, 1130084326_1);
#: Haar finds 9 (misses 111076519_1, 111076519_2 and 1372188757_1) at mean 5.93% over those.
HAAR_MIN_FOUND = 9
MAX_MEAN_NME = 0.08


@pytest.fixture(scope="module")
def model_dir(mb05_dir) -> Path:
    return mb05_dir


@pytest.fixture(scope="module")
def model(mb05):
    return mb05  # what the CLI runs


@pytest.fixture(scope="module")
def assets(shared_dir) -> Path:
    return shared_dir / "assets"


@pytest.fixture(scope="module")
def afw_full(shared_dir):
    folder = shared_dir / "data" / "300w" / "afw" / "full"
    items = [(p, read_image(p), read_pts(p.with_suffix(".pts"))) for p in sorted(folder.glob("*.jpg"))]
    assert len(items) == 12
    return items


@pytest.fixture(scope="module")
def face_crop(shared_dir) -> Path:
    """A 384x384 300-W crop with one face (fast to reconstruct and render)."""
    return shared_dir / "data" / "300w" / "afw" / "1051618982_1.jpg"


def _labelled_nmes(model, detector, assets, items):
    from tf2dasl.api import make_reconstructor

    rec = make_reconstructor(model, detector, assets)
    nmes = {}
    for path, image, gt in items:
        faces = rec(image)
        k = match_labelled_face(np.stack([f.bbox for f in faces]) if faces else np.zeros((0, 4)), gt)
        nmes[path.name] = None if k is None else float(nme_interocular(faces[k].landmarks_2d[None], gt[None])[0])
    return nmes


def _report(name, nmes):
    found = {k: v for k, v in nmes.items() if v is not None}
    print(f"\n{name}: labelled face found in {len(found)}/{len(nmes)} afw/full photos; NME (outer inter-ocular) "
          f"mean {100 * np.mean(list(found.values())):.2f}%, max {100 * max(found.values()):.2f}%; "
          + ", ".join(f"{k}: {'miss' if v is None else f'{100 * v:.2f}'}" for k, v in nmes.items()))
    return found


def test_afw_full_blazeface_finds_and_fits_every_labelled_face(model, assets, afw_full):
    found = _report("blazeface", _labelled_nmes(model, "blazeface", assets, afw_full))
    assert len(found) == 12
    assert np.mean(list(found.values())) < MAX_MEAN_NME
    assert max(found.values()) < 0.12


@pytest.mark.slow
def test_afw_full_haar(model, assets, afw_full):
    found = _report("haar", _labelled_nmes(model, "haar", assets, afw_full))
    assert len(found) >= HAAR_MIN_FOUND
    assert np.mean(list(found.values())) < MAX_MEAN_NME


def test_evaluate_300w_list_detector_and_oracle(model, model_dir, assets, shared_dir, tmp_path, capsys):
    """``tf2dasl evaluate 300w`` on 3 listed faces (detector, JSON written); oracle crops need no detector."""
    folder = shared_dir / "data" / "300w" / "afw"
    names = sorted(p.name for p in folder.glob("*.jpg"))[:3]
    lst = tmp_path / "holdout.txt"
    lst.write_text("".join(f"{folder / n}\n" for n in names))
    out = tmp_path / "r.json"
    assert main(["evaluate", "300w", "--data", str(folder), str(shared_dir / "data/300w/helen_train"), "--model",
                 str(model_dir), "--assets", str(assets), "--list", str(lst), "--json", str(out), "--no-progress"]) == 0
    assert "detection rate: 3/3 = 100.00%" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["boxes"] == "detector" and r["faces"] == 3 and r["found"] == 3 and r["detection_rate"] == 100.0
    assert [Path(f["image"]).name for f in r["per_face"]] == names
    assert 1.0 < r["nme_68_interocular"]["mean"] < 10.0  # failure_rate_8: % of the faces with NME > 8% (or missed)
    assert r["failure_rate_8"] == pytest.approx(100.0 * np.mean([f["nme"] > 8.0 for f in r["per_face"]]))
    o = evaluate_300w([folder], model, boxes="oracle", list_file=lst)
    assert o["faces"] == 3 and o["found"] == 3 and o["detector"] is None
    assert abs(o["nme_68_interocular"]["mean"] - r["nme_68_interocular"]["mean"]) < 2.0
    json.dumps(o, allow_nan=False)


def test_evaluate_300w_cli_errors(model_dir, tmp_path, capsys):
    assert main(["evaluate", "300w", "--data", str(tmp_path / "nope"), "--model", str(model_dir)]) == 2
    (tmp_path / "a.jpg").write_bytes(b"")
    assert main(["evaluate", "300w", "--data", str(tmp_path), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "folder not found" in err[0] and "no image with a .pts" in err[1]


def _check_record(rec: dict, path: Path, n_faces_min: int = 1):
    assert set(rec) == {"image", "width", "height", "faces"}
    assert rec["image"] == str(path)
    h, w = read_image(path).shape[:2]
    assert (rec["width"], rec["height"]) == (w, h)
    assert len(rec["faces"]) >= n_faces_min
    for f in rec["faces"]:
        assert set(f) == {"bbox", "score", "roi_box", "landmarks_2d", "landmarks_3d", "pose", "params"}
        assert np.shape(f["landmarks_2d"]) == (68, 2) and np.shape(f["landmarks_3d"]) == (68, 3)
        assert set(f["pose"]) == {"yaw", "pitch", "roll"}
        assert len(f["params"]) == 62 and len(f["roi_box"]) == 4 and 0.0 < f["score"] <= 1.0
        x0, y0, x1, y1 = f["bbox"]
        assert -1 <= x0 < x1 <= w and -1 <= y0 < y1 <= h, (f["bbox"], w, h)
        np.testing.assert_allclose(np.array(f["landmarks_3d"])[:, :2], f["landmarks_2d"])
        lm = np.array(f["landmarks_2d"])
        assert np.all((lm > -0.1 * w) & (lm < 1.1 * np.array([w, h])))


def test_reconstruct_json_contract(model_dir, assets, shared_dir, tmp_path, capsys):
    photos = [shared_dir / "data" / "images" / n for n in ("trump_hillary.jpg", "JianzhuGuo.jpg")]
    out = tmp_path / "out"
    rc = main(["reconstruct", *map(str, photos), "--model", str(model_dir), "--out", str(out), "--assets", str(assets)])
    assert rc == 0, capsys.readouterr()
    two = json.loads((out / "trump_hillary.json").read_text())
    _check_record(two, photos[0], 2)
    assert len(two["faces"]) == 2
    _check_record(json.loads((out / "JianzhuGuo.json").read_text()), photos[1], 1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"images": 2, "faces": 3, "without_faces": [], "failures": [], "complete": True}
    assert "2/2 images reconstructed, 3 faces" in capsys.readouterr().out


def test_reconstruct_with_pts(model_dir, shared_dir, tmp_path):
    """``--pts``: the 68 points beside the image replace detection and the first regression (a .ppm photo)."""
    src = shared_dir / "data" / "images"
    folder = tmp_path / "in"
    folder.mkdir()
    for n in ("takeo.ppm", "takeo.pts"):
        shutil.copy(src / n, folder / n)
    gt = read_pts(folder / "takeo.pts")
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "--model", str(model_dir), "--out", str(out), "--pts",
                 "--detector", "haar"]) == 0
    rec = json.loads((out / "takeo.json").read_text())
    _check_record(rec, folder / "takeo.ppm", 1)
    (face,) = rec["faces"]
    np.testing.assert_allclose(face["bbox"], [*gt.min(0), *gt.max(0)], atol=1e-3)
    assert face["score"] == 1.0
    nme = nme_interocular(np.array(face["landmarks_2d"])[None], gt[None])[0]
    print(f"\ntakeo.ppm with its .pts: NME {100 * nme:.2f}%")  # measured 4.69%
    assert nme < 0.07


def test_reconstruct_bad_inputs_are_reported_and_the_rest_continue(model_dir, assets, face_crop, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(face_crop, folder / "good.jpg")
    data = face_crop.read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[:200] + bytes(range(256)) * 4)  # a JPEG header, then garbage
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("a text file given as an input\n")
    gx = np.tile(np.linspace(0, 255, 320, dtype=np.float32), (240, 1))
    gradient = np.stack([gx, gx[::-1, ::-1], np.full_like(gx, 128)], -1).astype(np.uint8)
    cv2.imwrite(str(folder / "gradient.png"), gradient)
    (folder / "ignored.txt").write_text("not an image extension: not listed\n")
    out = tmp_path / "out"
    rc = main(["reconstruct", str(folder), str(notes), "--model", str(model_dir), "--out", str(out),
               "--assets", str(assets)])
    captured = capsys.readouterr()
    assert rc == 1
    for name in ("corrupt.jpg", "empty.png", "text.png", "notes.txt"):
        assert name in captured.err, (name, captured.err)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 6 and summary["faces"] == 1
    assert sorted(Path(f["image"]).name for f in summary["failures"]) == ["corrupt.jpg", "empty.png", "notes.txt",
                                                                          "text.png"]
    assert [Path(p).name for p in summary["without_faces"]] == ["gradient.png"]
    assert json.loads((out / "gradient.json").read_text())["faces"] == []
    assert len(json.loads((out / "good.json").read_text())["faces"]) == 1
    assert not (out / "corrupt.json").exists() and not (out / "ignored.json").exists()
    assert "2/6 images reconstructed, 1 faces, 1 without faces, 4 failed" in captured.out


def test_unusual_formats_end_to_end(model_dir, assets, face_crop, tmp_path):
    """Grayscale PNG, 16-bit PNG, WebP and PPM versions of one photo all give the face of the original."""
    bgr = cv2.imread(str(face_crop), cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "orig.png"), bgr)
    cv2.imwrite(str(folder / "gray.png"), gray)
    cv2.imwrite(str(folder / "deep16.png"), bgr.astype(np.uint16) * 257)
    assert cv2.imwrite(str(folder / "lossy.webp"), bgr, [cv2.IMWRITE_WEBP_QUALITY, 95])
    cv2.imwrite(str(folder / "netpbm.ppm"), bgr)
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "--model", str(model_dir), "--out", str(out), "--assets", str(assets)]) == 0
    ref = np.array(json.loads((out / "orig.json").read_text())["faces"][0]["landmarks_2d"])
    gt = read_pts(face_crop.with_suffix(".pts"))
    for name in ("gray.png", "deep16.png", "lossy.webp", "netpbm.ppm"):
        rec = json.loads((out / (Path(name).stem + ".json")).read_text())
        assert Path(rec["image"]).name == name
        assert (rec["width"], rec["height"]) == (bgr.shape[1], bgr.shape[0])
        assert len(rec["faces"]) == 1, name
        lm = np.array(rec["faces"][0]["landmarks_2d"])
        assert nme_interocular(lm[None], ref[None])[0] < 0.03, name  # near the colour original's fit
        assert nme_interocular(lm[None], gt[None])[0] < 0.10, name


def test_pictures_and_meshes(model_dir, assets, face_crop, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(face_crop, folder / "face.jpg")
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "--model", str(model_dir), "--out", str(out), "--assets", str(assets),
                 "--overlay", "--depth", "--pncc", "--obj", "--ply"]) == 0
    for name in ("face.json", "face_overlay.png", "face_depth.png", "face_pncc.png", "face_0.obj", "face_0.ply"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    photo = cv2.imread(str(folder / "face.jpg"))
    lm = np.array(json.loads((out / "face.json").read_text())["faces"][0]["landmarks_2d"])
    depth = cv2.imread(str(out / "face_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.shape[:2] == photo.shape[:2]
    d = depth if depth.ndim == 2 else depth.max(axis=2)
    x0, y0 = np.floor(lm.min(0)).astype(int)
    x1, y1 = np.ceil(lm.max(0)).astype(int)
    inner = d[y0 + (y1 - y0) // 4:y1 - (y1 - y0) // 4, x0 + (x1 - x0) // 4:x1 - (x1 - x0) // 4]
    assert (inner > 0).mean() > 0.95  # the face is drawn where its landmarks are
    nose = np.round(lm[30]).astype(int)
    assert d[nose[1], nose[0]] > 128  # the nose tip is near: bright
    assert d[:5, :5].max() == 0 and d[-5:, -5:].max() == 0  # corners are background
    pncc = cv2.imread(str(out / "face_pncc.png"))
    assert pncc.shape == photo.shape and (pncc[y0:y1, x0:x1].max(axis=2) > 0).mean() > 0.5
    overlay = cv2.imread(str(out / "face_overlay.png"))
    assert overlay.shape == photo.shape and np.abs(overlay.astype(int) - photo.astype(int)).max() > 50
    obj = (out / "face_0.obj").read_text().splitlines()
    assert sum(ln.startswith("v ") for ln in obj) == 38365 and sum(ln.startswith("f ") for ln in obj) == 76073
    head = (out / "face_0.ply").read_bytes()[:400].decode("ascii", "replace")
    assert "element vertex 38365" in head and "element face 76073" in head


def test_missing_model_dir_is_one_line_exit_2(face_crop, tmp_path, capsys):
    rc = main(["reconstruct", str(face_crop), "--model", str(tmp_path / "no_model"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no_model" in err[0] and "Traceback" not in err[0]


def test_reconstruct_with_given_boxes(shared_dir, model_dir, tmp_path, capsys):
    """`--boxes FILE` replaces detection for the images it lists; a malformed file is one clear line."""
    from tf2dasl.cli import main

    photo = shared_dir / "data/images/trump_hillary.jpg"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({photo.name: [[150.0, 100.0, 470.0, 420.0]]}))
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "--model", str(model_dir), "--out", str(out), "--boxes", str(boxes),
                 "--detector", "haar"]) == 0
    faces = json.loads((out / "trump_hillary.json").read_text())["faces"]
    assert len(faces) == 1 and faces[0]["bbox"] == [150.0, 100.0, 470.0, 420.0]
    lm = np.array(faces[0]["landmarks_2d"])
    assert 150 < lm[:, 0].mean() < 470 and 100 < lm[:, 1].mean() < 420
    boxes.write_text('{"x.jpg": [[1, 2, 3]]}')
    assert main(["reconstruct", str(photo), "--model", str(model_dir), "--out", str(out), "--boxes", str(boxes)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected" in err

