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


@pytest.fixture(scope="session")
def export_dir_mb05(export_src_model_dir: Path, tmp_path_factory) -> Path:
    """``tf2dasl export`` of mb05 (SavedModel, TFLite float32/float16/int8, ONNX), made once per session."""
    from tf2dasl.export import export_model

    out = tmp_path_factory.mktemp("export") / "mb05"
    export_model(export_src_model_dir, out, log=lambda *a: None)
    return out
