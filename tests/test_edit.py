"""Face swap and expression retargeting (tf2dasl.texture.edit, tf2dasl.texture.edit_video) on synthetic faces, and the swap /
retarget commands' one-line errors."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from synthetic_faces import checker_texture, place_face, smooth_texture, uv_face_model
from tf2dasl import render
from tf2dasl.texture.edit import EditConfig, Retargeter, retarget_expression, swap_face, swap_mask

CONFIG = EditConfig(texture_size=128)


@pytest.fixture(scope="module")
def mm():
    return uv_face_model()


def photo(mm, face, texture, shape=(300, 320), background=(70, 110, 90)):
    img = np.empty((*shape, 3), np.uint8)
    img[:] = background
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img[..., 1] = (img[..., 1] + (xx // 8 % 2) * 30).astype(np.uint8)  # a background with structure
    return render.render_textured(img, face.vertices, mm.triangles, mm.uv, texture)


def _corr(a, b):
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def test_swap_puts_the_source_pattern_on_the_target_and_leaves_the_rest(mm):
    src_tex = checker_texture(128, cells=7)  # odd: left-right symmetric, so mirrored texels are right too
    tgt_tex = smooth_texture(128, seed=3)
    sf = place_face(mm, yaw=-5, height=200, centre=(150, 150))
    tf = place_face(mm, yaw=20, roll=10, height=190, centre=(170, 150))
    source, target = photo(mm, sf, src_tex), photo(mm, tf, tgt_tex)
    out = swap_face(mm, source, sf, target, tf, CONFIG)
    assert out.shape == target.shape and out.dtype == np.uint8
    mask = swap_mask(target.shape, tf, mm.triangles, CONFIG) > 0
    assert mask.sum() > 5000
    # inside: the source's pattern as it would look on the target's geometry (grey levels: colours are matched)
    expected = render.render_textured(target, tf.vertices, mm.triangles, mm.uv, src_tex)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    g = lambda a: cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)[inner]  # noqa: E731
    assert _corr(g(out), g(expected)) > 0.8
    assert _corr(g(out), g(expected)) > _corr(g(out), g(target)) + 0.3
    # outside the mask (and a margin for Poisson's boundary) the target is untouched
    outside = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    np.testing.assert_array_equal(out[outside], target[outside])


def test_match_colours_moves_lab_statistics_to_the_target():
    from tf2dasl.texture.edit import match_colours
    from tf2dasl.texture import OBSERVED, Texture

    src = Texture(checker_texture(64, colours=((30, 30, 200), (60, 60, 240))), np.ones((64, 64), np.float32),
                  np.full((64, 64), OBSERVED, np.uint8))
    tgt = Texture(checker_texture(64, colours=((200, 120, 40), (230, 160, 90))), np.ones((64, 64), np.float32),
                  np.full((64, 64), OBSERVED, np.uint8))
    lab = lambda a: cv2.cvtColor(a.astype(np.float32) / 255, cv2.COLOR_BGR2LAB).reshape(-1, 3)  # noqa: E731
    out = lab(match_colours(src, tgt))
    np.testing.assert_allclose(out.mean(0), lab(tgt.image).mean(0), atol=1.5)
    np.testing.assert_allclose(out.std(0), lab(tgt.image).std(0), atol=1.5)
    assert _corr(out[:, 0], lab(src.image)[:, 0]) > 0.99  # the source's pattern is kept
    nothing = Texture(tgt.image, np.zeros((64, 64), np.float32), tgt.source)
    np.testing.assert_array_equal(match_colours(src, nothing), src.image)  # no common texel: unchanged


def test_retarget_with_the_same_expression_changes_nothing(mm):
    tf = place_face(mm, yaw=15, height=200)
    target = photo(mm, tf, smooth_texture(128))
    out = retarget_expression(mm, target, tf, tf.params[52:62], config=CONFIG)
    np.testing.assert_array_equal(out, target)


def test_retarget_moves_the_mouth_region_only(mm):
    tf = place_face(mm, height=200)
    target = photo(mm, tf, smooth_texture(128))
    rt = Retargeter(mm, target, tf, CONFIG)
    expression = np.zeros(10, np.float32)
    expression[0] = 12000.0  # basis 0 pulls the chin region down
    new = rt.vertices(expression)
    np.testing.assert_allclose(rt.vertices(tf.params[52:62]), tf.vertices, atol=2e-3)  # the pose fit is exact
    moved = np.linalg.norm(new[:, :2] - tf.vertices[:, :2], axis=1)
    assert moved.max() > 10 and np.median(moved) < 0.5
    out = rt(expression)
    diff = np.abs(out.astype(int) - target.astype(int)).max(-1) > 3
    # changed pixels lie around the moved vertices (the lower centre), not in the upper face or the background
    lm = new[mm.landmark_vertices]
    assert diff.sum() > 200
    ys, xs = np.nonzero(diff)
    assert ys.min() > lm[27:36, 1].min()  # below the top of the nose
    assert not diff[:40].any() and not diff[:, :40].any()


def test_video_retarget_writes_an_mp4(tmp_path, mm, monkeypatch):
    """retarget_video with a stand-in reconstructor: each frame's 'face' carries an expression; the MP4 has one
    frame per source frame at the source's frame rate, and the lost frames are counted."""
    from tf2dasl.texture import edit_video

    tf = place_face(mm, height=180)
    target = photo(mm, tf, smooth_texture(128))
    clip = tmp_path / "src.mp4"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (64, 48))
    for i in range(6):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()

    def follow(rec, frames, **kw):
        for i, frame in enumerate(frames):
            f = None
            if i != 3:
                f = place_face(mm, height=180, expression=np.r_[3000.0 * i, np.zeros(9)])
            yield frame, f

    monkeypatch.setattr(edit_video, "follow_face", follow)
    out = tmp_path / "out.mp4"
    summary = edit_video.retarget_video(mm, None, clip, target, tf, out, config=CONFIG, progress=False)
    assert summary.frames == 6 and summary.followed == 5 and summary.lost_frames == [3]
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(fr)
    assert len(frames) == 6 and frames[0].shape == target.shape
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 12.0) < 0.01
    with pytest.raises(Exception, match="exists"):
        edit_video.retarget_video(mm, None, clip, target, tf, out, config=CONFIG, progress=False)


# ------------------------------------------------------------------------------------------------ commands
def _run(capsys, *argv):
    from tf2dasl.cli import main

    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.slow
def test_swap_and_retarget_commands(mb05_dir, shared_dir, tmp_path, capsys):
    images = shared_dir / "data" / "images"
    src, tgt = images / "JianzhuGuo.jpg", images / "trump_hillary.jpg"
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((200, 240, 3), 128, np.uint8))
    model = mb05_dir
    out = tmp_path / "swap.png"
    rc, stdout, err = _run(capsys, "swap", src, tgt, "--out", out, "--model", model, "--texture-size", 128)
    assert rc == 0, err
    result, target = cv2.imread(str(out)), cv2.imread(str(tgt))
    assert result.shape == target.shape and 0 < (np.abs(result.astype(int) - target).max(-1) > 10).mean() < 0.2
    # bad input: one line each, nothing written
    rc, _, err = _run(capsys, "swap", src, tgt, "--out", out, "--model", model)
    assert rc == 2 and "exists" in _one_line(err)
    rc, _, err = _run(capsys, "swap", grey, tgt, "--out", tmp_path / "a.png", "--model", model)
    assert rc == 2 and "no face found in the source" in _one_line(err) and str(grey) in err
    rc, _, err = _run(capsys, "swap", src, grey, "--out", tmp_path / "a.png", "--model", model)
    assert rc == 2 and "no face found in the target" in _one_line(err)
    rc, _, err = _run(capsys, "swap", src, tgt, "--out", tmp_path / "a.png", "--model", model, "--target-face", 5)
    assert rc == 2 and "face 5" in _one_line(err) and "has 2 face(s)" in err
    # the detector's options, as reconstruct's: faces under --min-size are not found
    rc, _, err = _run(capsys, "swap", src, tgt, "--out", tmp_path / "a.png", "--model", model, "--min-size", 5000)
    assert rc == 2 and "no face found in the source" in _one_line(err)
    no_uv = tmp_path / "no_uv"
    shutil.copytree(model, no_uv)
    with np.load(no_uv / "morphable_model.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "uv"}
    np.savez(no_uv / "morphable_model.npz", **arrays)
    rc, _, err = _run(capsys, "swap", src, tgt, "--out", tmp_path / "a.png", "--model", no_uv)
    line = _one_line(err)
    assert rc == 2 and "no UV coordinates" in line and "import-3ddfa" in line
    rc, _, err = _run(capsys, "retarget", "--expression", src, "--onto", tgt, "--out", tmp_path / "a.png",
                      "--model", no_uv)
    assert rc == 2 and "no UV coordinates" in _one_line(err)
    assert not (tmp_path / "a.png").exists()
    # retarget: a photo source; a video source needs .mp4 out; --pose needs a video
    rc, _, err = _run(capsys, "retarget", "--expression", src, "--onto", tgt, "--out", tmp_path / "r.png",
                      "--model", model, "--texture-size", 128)
    assert rc == 0, err and (tmp_path / "r.png").is_file()
    rc, _, err = _run(capsys, "retarget", "--expression", grey, "--onto", tgt, "--out", tmp_path / "r2.png",
                      "--model", model)
    assert rc == 2 and "no face found in the source" in _one_line(err)
    rc, _, err = _run(capsys, "retarget", "--expression", src, "--onto", tgt, "--out", tmp_path / "r.mp4",
                      "--model", model)
    assert rc == 2 and ".png" in _one_line(err)
    rc, _, err = _run(capsys, "retarget", "--expression", src, "--onto", tgt, "--out", tmp_path / "r3.png",
                      "--model", model, "--pose")
    assert rc == 2 and "--pose needs a video" in _one_line(err)
    rc, _, err = _run(capsys, "retarget", "--expression", tmp_path / "none.mp4", "--onto", tgt,
                      "--out", tmp_path / "r.mp4", "--model", model)
    assert rc == 2 and "none.mp4" in _one_line(err)


@pytest.mark.slow
def test_retarget_command_with_the_shared_clip(mb05_dir, shared_dir, tmp_path, capsys):
    clip = shared_dir / "data" / "videos" / "hamilton_clip.mp4"
    if not clip.is_file():
        pytest.skip("hamilton_clip.mp4 not in the shared data")
    out = tmp_path / "r.mp4"
    rc, stdout, err = _run(capsys, "retarget", "--expression", clip, "--onto",
                           shared_dir / "data" / "images" / "JianzhuGuo.jpg", "--out", out, "--model",
                           mb05_dir, "--start-frame", 100, "--max-frames", 8, "--pose",
                           "--texture-size", 128)
    assert rc == 0, err
    assert "8 frames written" in stdout
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
