"""Shared fixtures: a small generated MSRS-layout set and the real pairs of tests/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msrs.synthetic import write_synthetic

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """24 train + 10 test synthetic scenes at 64x80 in the MSRS layout (read-only: copy it
    before corrupting anything)."""
    root = tmp_path_factory.mktemp("synthetic") / "msrs"
    return write_synthetic(root, train=24, test=10, height=64, width=80, seed=7)


@pytest.fixture(scope="session")
def roadscene() -> Path:
    """The 3 real RoadScene pairs in tests/data/roadscene (read-only; see tests/data/README.md)."""
    return TEST_DATA / "roadscene"


@pytest.fixture(scope="session")
def msrs_pairs() -> Path:
    """The 2 real MSRS test pairs (640x480, one day, one night) in tests/data/msrs (read-only)."""
    return TEST_DATA / "msrs"
