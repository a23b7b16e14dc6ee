"""Bad serving inputs are refused by name: the clients check before sending (a path instead of bytes,
no images, roi boxes that are not finite, empty or off the image, crops of the wrong type or shape: one-line
ServingErrors, nothing sent), and the exported SavedModel itself answers INVALID_ARGUMENT naming the input for
the same requests sent raw. Also: Ctrl-C at any moment of ``tf2dasl reconstruct`` is one line and exit 130."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tf2dasl.inference.grpc_runtime import GrpcClient
from tf2dasl.inference.rest_runtime import RestClient
from tf2dasl.inference.serving_client import ServingError

NAME = "mb05_120x120"
W, H = 40, 30


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((H, W, 3), 100, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture(params=["grpc", "rest"])
def offline_client(request, monkeypatch):
    """A client whose requests must never leave it (each case is refused before sending)."""
    client = GrpcClient("127.0.0.1:1", NAME) if request.param == "grpc" else RestClient("http://127.0.0.1:1", NAME)

    def sent(*a, **k):
        raise AssertionError("a request that should have been refused was sent")

    monkeypatch.setattr(client, "_request_once", sent)
    yield client
    client.close()


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, ServingError), msg
    return msg


@pytest.mark.parametrize("images, rois, match", [
    ("photos/face.jpg", [[0, 0, 10, 10]], "images must be encoded image bytes, not the path 'photos/face.jpg'"),
    (["photos/face.jpg"], [[0, 0, 10, 10]], r"images\[0\] must be encoded image bytes, not the path"),
    ([1234], [[0, 0, 10, 10]], r"images\[0\] must be encoded image bytes, got int"),
    ([], np.zeros((0, 4)), "images is empty"),
    (None, [[np.nan, 0, 10, 10]], r"roi_boxes\[0\] \[nan, 0.0, 10.0, 10.0\] is not finite"),
    (None, [[0, 0, np.inf, 10]], "is not finite"),
    (None, [[10, 10, 5, 20]], "needs x0 < x1 and y0 < y1"),  # inverted
    (None, [[10, 10, 10.2, 20]], "needs x0 < x1 and y0 < y1"),  # under a pixel
    (None, [[W + 5, 0, W + 50, 20]], f"lies outside its {W}x{H} image"),
    (None, [[-50, -40, -1, -1]], f"lies outside its {W}x{H} image"),
    (None, [[0, 0, 10]], r"roi_boxes must be \(N, 4\)"),
    (None, [[0, 0, 10, 10], [0, 0, 10, 10]], "1 images but 2 roi boxes"),
], ids=["path", "path-in-list", "not-bytes", "empty", "nan", "inf", "inverted", "tiny", "right-of-image",
        "above-left", "three-numbers", "two-boxes"])
def test_client_refuses_bad_image_requests_before_sending(offline_client, jpeg, images, rois, match):
    with pytest.raises(ServingError, match=match) as exc:
        offline_client.predict_images([jpeg] if images is None else images, rois)
    _one_line(exc)


@pytest.mark.parametrize("crops, match", [
    (np.zeros((1, 120, 120, 3), np.float32), "crops must be uint8"),
    (np.zeros((2, 120, 60, 3), np.uint8), r"shape \(B, S, S, 3\), got \(2, 120, 60, 3\)"),
    (np.zeros((120, 120), np.uint8), r"shape \(B, S, S, 3\)"),
    ("crop.png", "crops must be a uint8 array"),
], ids=["float", "not-square", "2d", "path"])
def test_client_refuses_bad_crops_before_sending(offline_client, crops, match):
    with pytest.raises(ServingError, match=match) as exc:
        offline_client.predict(crops)
    _one_line(exc)
    assert offline_client.predict(np.zeros((0, 120, 120, 3), np.uint8)).params.shape == (0, 62)  # nothing sent


def test_client_accepts_a_box_partly_outside_its_image(offline_client, jpeg, monkeypatch):
    seen = {}
    monkeypatch.setattr(offline_client, "_request_once", lambda inputs, sig: seen.update(inputs) or {})
    offline_client.predict_images([jpeg], [[-10, -10, 20, 15]])
    np.testing.assert_array_equal(seen["roi_boxes"], [[-10, -10, 20, 15]])


# ------------------------------------------------------------------------------ the model refuses them too


@pytest.mark.parametrize("rois, match", [
    ([[np.nan, 0, 10, 10]], "roi_boxes must be finite"),
    ([[10, 10, 5, 20]], "roi_boxes need x0 < x1 and y0 < y1"),
    ([[10, 10, 10.2, 20]], "roi_boxes need x0 < x1 and y0 < y1"),
    ([[W + 5, 0, W + 50, 20]], "roi_boxes: a box lies outside its image"),
], ids=["nan", "inverted", "tiny", "off-image"])
def test_savedmodel_answers_invalid_argument_naming_the_input(served, jpeg, rois, match):
    from serving_double import LocalServingError

    with pytest.raises(LocalServingError, match=match) as exc:
        served.predict(NAME, None, "predict_image",
                       {"images": np.array([jpeg], object), "roi_boxes": np.asarray(rois, np.float32)})
    assert exc.value.code == "INVALID_ARGUMENT"


def test_savedmodel_refuses_empty_batches(served):
    from serving_double import LocalServingError

    with pytest.raises(LocalServingError, match="images is empty") as exc:
        served.predict(NAME, None, "predict_image", {"images": np.array([], object).reshape(0),
                                                     "roi_boxes": np.zeros((0, 4), np.float32)})
    assert exc.value.code == "INVALID_ARGUMENT"
    with pytest.raises(LocalServingError, match="crops is empty"):
        served.predict(NAME, None, "serving_default", {"crops": np.zeros((0, 120, 120, 3), np.uint8)})


def test_raw_grpc_request_with_a_bad_box_is_invalid_argument(served, jpeg):
    from serving_double import serve

    srv = serve(port=0, rest_port=None, models=served)
    try:
        with GrpcClient(srv.target, NAME) as c:
            with pytest.raises(ServingError, match="INVALID_ARGUMENT.*roi_boxes must be finite") as exc:
                c.call_signature("predict_image", images=np.array([jpeg], object),
                                 roi_boxes=np.array([[np.nan, 0, 10, 10]], np.float32))
            _one_line(exc)
    finally:
        srv.stop()


# ----------------------------------------------------------------------------------------- Ctrl-C (slow)
def _interrupt_when(cmd: list[str], ready) -> subprocess.CompletedProcess:
    """Start ``cmd``, send SIGINT as soon as ``ready(pid)`` is true (polled), and wait for it to end."""
    # a shell without job control starts background jobs with SIGINT ignored, and the child would inherit that:
    # give it the default disposition a terminal's Ctrl-C meets
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while p.poll() is None and not ready(p.pid):
            time.sleep(0.002)  # polling for a state, not a timed assert
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _loaded(library: str):
    def ready(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/maps") as f:
                return library in f.read()
        except OSError:
            return False
    return ready


@pytest.mark.slow
@pytest.mark.parametrize("library", ["_pywrap_tensorflow_internal", "litert"])
def test_ctrl_c_at_any_moment_is_one_line(mb05_dir, shared_dir, tmp_path, library):
    """SIGINT while TensorFlow or LiteRT (the detector) is being loaded (LiteRT's native start-up turns it into
    an ImportError): still one line and exit 130."""
    if not sys.platform.startswith("linux"):
        pytest.skip("watches /proc/PID/maps")
    cmd = [sys.executable, "-m", "tf2dasl.cli", "reconstruct", str(shared_dir / "data" / "images" / "einstein.jpg"),
           "--model", str(mb05_dir), "--out", str(tmp_path / "out")]
    r = _interrupt_when(cmd, _loaded(library))
    assert r.returncode == 130, r.stderr
    last = r.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last in ("tf2dasl reconstruct: interrupted", "tf2dasl: interrupted"), r.stderr
    assert "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_ctrl_c_during_a_run_writes_the_summary(mb05_dir, shared_dir, tmp_path):
    import json
    import shutil

    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(8):
        shutil.copy(shared_dir / "data" / "images" / "emma.jpg", photos / f"e{i}.jpg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tf2dasl.cli", "reconstruct", str(photos), "--model", str(mb05_dir),
           "--out", str(out), "--overlay", "--obj"]
    r = _interrupt_when(cmd, lambda pid: (out / "e0.json").exists())
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert "stopped: interrupted (Ctrl-C)" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped"].startswith("interrupted")
    assert len(summary.get("not_processed", [])) + len(summary.get("incomplete", [])) >= 1
