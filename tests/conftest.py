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
