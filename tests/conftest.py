"""Shared pytest fixtures: where ../shared is, and skips with a clear reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("TF2DASL_SHARED", REPO.parent / "shared")).resolve()


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


# --------------------------------------------------------------------------- export (tests/test_export.py, test_serving.py)
@pytest.fixture(scope="session")
def export_src_model_dir(v2_checkout: Path, tmp_path_factory) -> Path:
    """mb05 imported from the 3DDFA_V2 checkout into a session temp model directory."""
    from tf2dasl.io.import_3ddfa import import_3ddfa_v2
    from tf2dasl.io.model_dir import save_model_dir

    return save_model_dir(import_3ddfa_v2(v2_checkout, "mb05_120x120"), tmp_path_factory.mktemp("export_src") / "mb05")


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
def export_dir_mb05(export_src_model_dir: Path, calibration_set, tmp_path_factory) -> Path:
    """``tf2dasl export`` of mb05 (SavedModel, TFLite float32/float16/int8, ONNX float32/int8), made once per
    session; the int8 files calibrated on ``calibration_set``."""
    from tf2dasl.export import export_model

    out = tmp_path_factory.mktemp("export") / "mb05"
    export_model(export_src_model_dir, out, log=lambda *a: None, calibration=calibration_set)
    return out
