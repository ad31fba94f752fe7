"""Shared fixtures: a small generated MSRS-layout set and the real RoadScene pairs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msrs.synthetic import write_synthetic

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ROADSCENE = SHARED / "data" / "roadscene-50"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """24 train + 10 test synthetic scenes at 64x80 in the MSRS layout (read-only: copy it
    before corrupting anything)."""
    root = tmp_path_factory.mktemp("synthetic") / "msrs"
    return write_synthetic(root, train=24, test=10, height=64, width=80, seed=7)


@pytest.fixture(scope="session")
def roadscene() -> Path:
    """The 50 real RoadScene pairs of ../shared (CI has them; a missing folder is a failure)."""
    assert (ROADSCENE / "ir").is_dir(), f"{ROADSCENE}: shared RoadScene pairs not found"
    return ROADSCENE
