"""Helpers the test modules share (not tests, not fixtures: those are in conftest.py): one-line CLI errors, runs of
``reconstruct`` and checks of their output folder, a small tmpfs, the synthetic training config, small models, and
the numpy/TF helpers that exist only to test the pipeline."""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
import textwrap
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from tf2dasl.cli import main
from tf2dasl.io.outputs import is_temporary
from tf2dasl.io.run_folder import MANIFEST_NAME
from tf2dasl.data.augment import AugmentConfig, augment_stack, colour_jitter, sample_geometry, to_uint8, warp_images
from tf2dasl.geometry.landmark_map import landmark_map
from tf2dasl.inference.crops import normalize_crops
from tf2dasl.models.dasl import expand_to_four_channels
from tf2dasl.models.task import FaceTask

#: a small MobileNetV1 keeps the training tests fast
WIDTH = 0.25


# ---------------------------------------------------------------------------- the CLI
def one_line_error(capsys, argv, *needles, code=2) -> str:
    """Run ``tf2dasl argv``: exit ``code``, one line on stderr holding every needle, no traceback."""
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def run_reconstruct(capsys, model, out, inputs, boxes=None, *extra) -> tuple[int, str, str]:
    """``tf2dasl reconstruct INPUTS --model M --out OUT [--boxes B] --detector haar EXTRA``: (exit status, stdout,
    stderr)."""
    given = ["--boxes", str(boxes)] if boxes is not None else []
    rc = main(["reconstruct", *map(str, inputs), "--model", str(model), "--out", str(out), *given,
               "--detector", "haar", *extra])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def read_summary(out: Path, name: str = "summary.json") -> dict:
    return json.loads((out / name).read_text())


def check_all_complete(out: Path, users: tuple[str, ...] = ()) -> None:
    """Every file in ``out`` but the ``users``' is whole: JSON parses, PNG decodes, OBJ holds the lines its
    header announces; no temporary file is left."""
    for p in out.iterdir():
        assert not is_temporary(p.name), p
        if p.name in users:
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            assert cv2.imread(str(p)) is not None, p
        elif p.suffix == ".obj":  # as many v and f lines as its header announces
            lines = p.read_text().splitlines()
            n, t = (int(w) for w in re.match(r"# tf2dasl mesh: (\d+) vertices, (\d+) faces", lines[0]).groups())
            assert n > 1000 and sum(ln.startswith("v ") for ln in lines) == n, p
            assert sum(ln.startswith("f ") for ln in lines) == t and lines[-1].startswith("f "), p
        elif p.name == MANIFEST_NAME:
            assert p.read_bytes().endswith(b"\n")


@contextlib.contextmanager
def mounted_tmpfs(size: str):
    """A fresh tmpfs of ``size`` (``"180k"``) mounted on a temporary folder, unmounted afterwards; the test is
    skipped, with the reason, where one cannot be mounted (not root, no ``mount``): the fault-injecting tests
    cover the same cases there."""
    import pytest

    with tempfile.TemporaryDirectory() as mnt:
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True,
                               text=True)
        except OSError as exc:
            pytest.skip(f"cannot mount a tmpfs ({exc}); needs root")
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs ({(r.stderr or r.stdout).strip() or r.returncode}); needs root")
        try:
            yield Path(mnt)
        finally:
            subprocess.run(["umount", mnt], check=True)


def train_config(synth, tmp_path, epochs=2, **extra) -> Path:
    """A tiny training config over the synthetic checkout and wild faces (conftest's ``synth``)."""
    text = textwrap.dedent(f"""
        name: synth
        seed: 3
        epochs: {epochs}
        steps_per_epoch: 2
        teacher: false
        model: {{width: {WIDTH}, channels: 4, morphable_model: "{synth['checkout']}", critic_hidden: [32, 16]}}
        loss: {{wpdc: 0.0, landmark: 0.0, self_2d: 1.0, self_3d: 0.5, cycle: 1.0, adversarial: 0.0}}
        optim: {{optimizer: sgd, lr: 0.001, lr_schedule: cosine}}
        data:
          wild: {{pts_folders: ["{synth['wild']}"], batch_size: 4}}
    """)
    for k, v in extra.items():
        text += f"{k}: {v}\n"
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- models
def four_channel_model(task: FaceTask, name: str = "four", seed: int = 0, scale: float = 0.05) -> FaceTask:
    """``task`` expanded to 4 channels, its landmark-map kernel slice random (so a map changes the output)."""
    reg4 = expand_to_four_channels(task.regressor)
    conv = reg4.backbone.layers[2] if reg4.backbone_name != "mobilenet_v1" else reg4.backbone.get_layer("conv1")
    w = conv.get_weights()
    w[0][:, :, 3] = np.random.default_rng(seed).normal(0, scale, w[0][:, :, 3].shape)
    conv.set_weights(w)
    return FaceTask(task.spec.replace(channels=4, name=name), task.mm, regressor=reg4)


# ---------------------------------------------------------------------------- the pipeline's geometry, for tests
def affine_for_roi(roi_box, size: int = 120) -> np.ndarray:
    """``(2, 3)`` crop → image map ``A`` of roi box ``[x0, y0, x1, y1]`` (image = ``A @ [u, v, 1]``)."""
    x0, y0, x1, y1 = [float(v) for v in roi_box]
    return np.array([[(x1 - x0) / size, 0, x0], [0, (y1 - y0) / size, y0]], np.float64)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine applied to points ``(..., 2)``."""
    m = np.asarray(matrix, np.float64)
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def augment_faces(images, landmarks, rand, cfg: AugmentConfig, augment: bool = True, pixel_scale=None):
    """``augment_stack`` of a batch of same-size ``images (B, H, W, 3)`` uint8 BGR."""
    images = tf.convert_to_tensor(images)
    return augment_stack(images, tf.range(tf.shape(images)[0]), landmarks, rand, cfg, augment, pixel_scale)


def augment_face(image, landmarks, rand, cfg: AugmentConfig, augment: bool = True, pixel_scale: float = 1.0):
    """One face through one ``ImageProjectiveTransformV3`` warp and one colour matrix: ``crop (S, S, 3)`` uint8 and
    ``labels (68, 2)`` crop pixels."""
    rand = tf.convert_to_tensor(rand, tf.float32)[None]
    transforms, labels = sample_geometry(tf.convert_to_tensor(landmarks, tf.float32)[None], rand, cfg, augment,
                                         tf.reshape(tf.cast(pixel_scale, tf.float32), [1]))
    crop = warp_images(tf.convert_to_tensor(image)[None], transforms, cfg.size)
    return (colour_jitter(crop, rand, cfg) if augment else to_uint8(crop))[0], labels[0]


def network_input(crops: np.ndarray, norm_mean: float, norm_scale: float, channels: int,
                  maps: np.ndarray | None = None) -> np.ndarray:
    """Crops ``(B, S, S, 3)`` (+ landmark maps, None: empty) → the regressor's ``(B, S, S, channels)`` input."""
    x = normalize_crops(crops, norm_mean, norm_scale)
    if channels == 4:
        if maps is None:
            maps = landmark_map(None, x.shape[1], batch=x.shape[0])
        x = np.concatenate([x, np.asarray(maps, np.float32)[..., None]], axis=-1)
    return x


# ---------------------------------------------------------------------------- synthetic AFLW faces
def colour_of(i: int) -> np.ndarray:
    """A distinct BGR colour per landmark index (all channels >= 40)."""
    return np.array([40 + (i * 37) % 216, 40 + (i * 71) % 216, 40 + (i * 113) % 216], np.uint8)


def write_aflw(root, n=6, seed=0, **override):
    """An ``aflw_wild``-style folder: 120-px dot crops (a dot per visible point) and ``annotations.npz``."""
    rng = np.random.default_rng(seed)
    (root / "crops").mkdir(parents=True, exist_ok=True)
    pts = rng.uniform(25, 95, (n, 21, 2)).astype(np.float32)
    pts[:, :, 0] = np.linspace(25, 95, 21)[None] + rng.uniform(-1, 1, (n, 21))  # distinct x: dots do not merge
    for i in range(n):
        pts[i, rng.choice(21, 3 + i % 4, replace=False)] = np.nan
    names = np.array([f"image{i:05d}.jpg" for i in range(n)])
    for name, p in zip(names, pts):
        img = np.zeros((120, 120, 3), np.uint8)
        for k, (x, y) in enumerate(p):
            if np.isfinite(x):
                img[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2] = colour_of(k)
        cv2.imwrite(str(root / "crops" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    arrays = {"names": names, "pts21_crop": pts, "pts21_image": pts * 2, "roi_box": np.tile([0, 0, 240, 240], (n, 1)),
              "yaw": rng.uniform(-90, 90, n).astype(np.float32)}
    arrays.update(override)
    np.savez(root / "annotations.npz", **arrays)
    (root / "list.txt").write_text("\n".join(names) + "\n")
    return root
