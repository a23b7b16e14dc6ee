"""``tf2dasl plot``: CED curves and yaw-bin bars from ``evaluate aflw2000 --json`` results (hand-made results here,
no shared data); results it cannot draw are one-line errors."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tf2dasl.cli import main
from tf2dasl.evaluate import yaw_table
from tf2dasl.evaluate.metrics import bin_counts, ced
from tf2dasl.evaluate.plots import DPI, ROW_HEIGHT, PlotError, face_errors, plot_results, yaw_bars
from helpers import one_line_error  # noqa: E402


def _result(model: str, scale: float, dense: bool = True, n: int = 40) -> dict:
    """A result as `evaluate aflw2000 --json` writes it, from made-up per-face errors (fractions * scale)."""
    rng = np.random.default_rng(len(model))
    yaws = rng.uniform(-90, 90, n)
    metrics = ["nme_2d_68", "nme_3d_68"] + (["dense_2d", "dense_3d", "reconstruction"] if dense else [])
    per_face = {"names": [f"image{i:05d}.jpg" for i in range(n)], "yaw": yaws.tolist()}
    r = {"faces": n, "bins": bin_counts(yaws), "model": model, "runtime": "keras"}
    for m in metrics:
        e = rng.gamma(4.0, 0.01, n) * scale
        per_face[m] = (e * 100).tolist()
        table = yaw_table(e, yaws)
        if m == "nme_2d_68":
            r[m] = {"original": table, "reannotated": table}
        elif m == "nme_3d_68":
            r[m] = {"original": table}
        else:
            r[m] = table
    per_face["nme_2d_68"][0] = None  # a skipped face
    r["per_face"] = per_face
    return r


@pytest.fixture
def results(tmp_path):
    paths = []
    for name, scale, dense in (("mb05", 1.0, True), ("2DASL", 0.9, True), ("plain", 1.1, False)):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(_result(name, scale, dense)))
        paths.append(p)
    return paths


def test_ced_by_hand():
    x, y = ced(np.array([1.0, 2.0, 3.0, 4.0]), limit=4.0, steps=4)
    np.testing.assert_allclose(x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(y, [0, 0.25, 0.5, 0.75, 1.0])
    _, y = ced(np.array([1.0, np.inf]), limit=2.0, steps=2)  # a miss never counts as found
    np.testing.assert_allclose(y, [0, 0.5, 0.5])


def test_values_read_from_a_result(results):
    r = json.loads(results[0].read_text())
    e = face_errors(r, "nme_2d_68")
    assert len(e) == 39 and np.all(np.isfinite(e))  # the skipped face is left out
    assert yaw_bars(r, "dense_2d") == [r["dense_2d"][k] for k in ("yaw_0_30", "yaw_30_60", "yaw_60_90", "mean")]


def test_plot_writes_one_row_per_metric(results, tmp_path, capsys):
    out = tmp_path / "figs" / "ced.png"
    assert main(["plot", str(results[0]), str(results[1]), "--metric", "nme_2d_68", "dense_2d", "reconstruction",
                 "--out", str(out), "--title", "dev slice"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] == int(3 * ROW_HEIGHT * DPI) and img.shape[1] > img.shape[0] * 0.9
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 8  # curves, bars and text, not a blank canvas
    assert "wrote" in capsys.readouterr().out
    plot_results(results, tmp_path / "one.png", ["nme_2d_68"], labels=["a", "b", "c"])
    assert cv2.imread(str(tmp_path / "one.png")).shape[0] == int(ROW_HEIGHT * DPI)


def test_results_it_cannot_draw_are_one_line(results, tmp_path, capsys):
    three = [str(p) for p in results]
    one_line_error(capsys, ["plot", *three, "--metric", "dense_2d", "--out", str(tmp_path / "x.png")],
                    "plain.json", "no per-face dense_2d", "--dense")
    one_line_error(capsys, ["plot", three[0], "--out", str(tmp_path / "x.jpg")], "PNG")
    one_line_error(capsys, ["plot", three[0], "--labels", "a", "b", "--out", str(tmp_path / "x.png")],
                    "2 label(s) for 1 result(s)")
    one_line_error(capsys, ["plot", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.png")], "not found")
    (tmp_path / "w300.json").write_text(json.dumps({"benchmark": "300w", "per_face": []}))
    one_line_error(capsys, ["plot", str(tmp_path / "w300.json"), "--out", str(tmp_path / "x.png")],
                    "a 300w result", "evaluate aflw2000")
    (tmp_path / "bad.json").write_text("{")
    one_line_error(capsys, ["plot", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.png")], "not valid JSON")
    one_line_error(capsys, ["plot", three[0], "--max-error", "0", "--out", str(tmp_path / "x.png")], "--max-error")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(PlotError, match="--metric"):
        plot_results(three[:1], tmp_path / "y.png", ["nme_2d"])
