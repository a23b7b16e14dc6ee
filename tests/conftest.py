"""Shared pytest fixtures: where ../shared is (tests skip with a clear reason without it), the models and exports
every test module uses — each built once per test run, shared by pytest-xdist's workers — and the synthetic data
the training tests share."""
from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

import pytest

from synthetic import PHOTO_BOX, random_morphable_model, write_fake_checkout, write_noise_photos, write_wild_faces

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")).resolve()


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(path)`` once per test run, its ``path`` shared by every pytest-xdist worker (the first one builds
    under a file lock, the others wait and reuse it); tests must not change what it holds."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / "built_once"
    folder.mkdir(exist_ok=True)
    path, done = folder / name, folder / f"{name}.done"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if not (root / "assets").is_dir():
        pytest.skip(f"shared assets not found at {root} (set TF2DASL_SHARED to the shared/ folder)")
    return root


@pytest.fixture(scope="session")
def v2_checkout(shared_dir: Path) -> Path:
    path = shared_dir / "assets" / "3ddfa_v2"
    if not (path / "weights" / "mb05_120x120.pth").is_file():
        pytest.skip(f"3DDFA_V2 checkout with mb05_120x120.pth not found under {path}")
    return path


@pytest.fixture(scope="session")
def aflw_dev_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "aflw2000_3d_dev"
    if not (path / "AFLW2000-3D_crop.list").is_file():
        pytest.skip(f"AFLW2000-3D dev slice not found at {path}")
    return path


@pytest.fixture(scope="session")
def aflw_dev(aflw_dev_dir: Path):
    """The AFLW2000-3D dev slice with 3DDFA's protocol crops, loaded once."""
    from tf2dasl.evaluate import load_aflw2000

    return load_aflw2000(aflw_dev_dir)


# --------------------------------------------------------------------------- mb05: model directory, task, export
@pytest.fixture(scope="session")
def mb05_dir(v2_checkout: Path, tmp_path_factory) -> Path:
    """mb05 imported from the 3DDFA_V2 checkout into a session temp model directory."""
    from tf2dasl.io.import_3ddfa import import_3ddfa_v2
    from tf2dasl.io.model_dir import save_model_dir

    return built_once(tmp_path_factory, "mb05", lambda p: save_model_dir(import_3ddfa_v2(v2_checkout, "mb05_120x120"), p))


@pytest.fixture(scope="session")
def mb05(mb05_dir: Path):
    """The mb05 model directory loaded (a FaceTask); tests must not change it."""
    from tf2dasl.io.model_dir import load_model_dir

    return load_model_dir(mb05_dir)


#: calibration faces of the test exports: a small set keeps the suite fast (``tf2dasl export`` draws 500)
TEST_CALIBRATION_FACES = 48


@pytest.fixture(scope="session")
def calibration_set(shared_dir: Path):
    """``TEST_CALIBRATION_FACES`` training faces (AFLW crops and 300-W faces) for the int8 exports."""
    from tf2dasl.data.calibration import default_sources, load_calibration

    folders = default_sources(shared_dir)
    if not folders:
        pytest.skip(f"no calibration faces (data/aflw_wild, data/300w) under {shared_dir}")
    return load_calibration(folders, TEST_CALIBRATION_FACES)


@pytest.fixture(scope="session")
def export_dir_mb05(mb05_dir: Path, calibration_set, tmp_path_factory) -> Path:
    """``tf2dasl export`` of mb05 (SavedModel, TFLite float32/float16/int8, ONNX float32/int8), made once per
    session; the int8 files calibrated on ``calibration_set``."""
    from tf2dasl.export import export_model

    return built_once(tmp_path_factory, "export_mb05",
                      lambda p: export_model(mb05_dir, p, log=lambda *a: None, calibration=calibration_set))


@pytest.fixture(scope="session")
def served(export_dir_mb05: Path):
    """The export's SavedModels loaded by the TF Serving test double (tests/serving_double.py), once."""
    from serving_double import LocalModels, load_served_models

    return LocalModels(load_served_models(export_dir_mb05))


# --------------------------------------------------------------------------- a 4-channel (2DASL) model and its export
@pytest.fixture(scope="session")
def model4_dir(mb05, tmp_path_factory) -> Path:
    """mb05 expanded to 4 channels with a random landmark-map kernel slice (its maps change its output)."""
    from helpers import four_channel_model
    from tf2dasl.io.model_dir import save_model_dir

    return built_once(tmp_path_factory, "mb05_4ch", lambda p: save_model_dir(four_channel_model(mb05, "mb05_4ch"), p))


@pytest.fixture(scope="session")
def export_dir_4ch(model4_dir: Path, tmp_path_factory) -> Path:
    """The 4-channel model's export (SavedModel, TFLite float32, ONNX and its with-map graph), once."""
    from tf2dasl.export import export_model

    return built_once(tmp_path_factory, "export_mb05_4ch",
                      lambda p: export_model(model4_dir, p, log=lambda *a: None, tflite_variants=("float32",),
                                             onnx_variants=("float32",)))


# --------------------------------------------------------------------------- synthetic data (no ../shared needed)
@pytest.fixture(scope="session")
def mm():
    """A small random dense morphable model (300 vertices)."""
    return random_morphable_model()


@pytest.fixture(scope="session")
def synth(tmp_path_factory, mm):
    """A fake 3DDFA_V2 checkout of ``mm`` and a folder of wild faces drawn from it."""
    root = tmp_path_factory.mktemp("synth")
    return {"checkout": write_fake_checkout(root / "checkout", mm), "wild": write_wild_faces(root / "wild", mm, 16)}


# --------------------------------------------------------------------------- output folders under faults


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Three small noise photos in ``tmp_path/in`` (faces come from ``boxes``: no detection)."""
    return write_noise_photos(tmp_path / "in")


@pytest.fixture
def boxes(tmp_path, photos) -> Path:
    """A --boxes file giving each photo one face box."""
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({p.name: [PHOTO_BOX] for p in photos}))
    return path


@pytest.fixture
def fail_writes(monkeypatch):
    """``fail_writes(predicate, err)``: the atomic writes of tf2dasl.io.outputs whose destination name matches
    ``predicate`` fail with ``err`` after writing part of their data (the temporary file is open then)."""
    from tf2dasl.io import outputs
    from tf2dasl.io.outputs import temporary_target

    def arm(predicate, err: int = errno.ENOSPC):
        real_open = open

        class Failing:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise OSError(err, os.strerror(err))

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        def fake_open(file, *a, **k):
            f = real_open(file, *a, **k)
            name = Path(file).name
            target = temporary_target(name) or name
            return Failing(f) if predicate(target) else f

        monkeypatch.setattr(outputs, "open", fake_open, raising=False)
    return arm
