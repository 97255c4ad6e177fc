"""Shared fixtures for the training-core tests: where the real data sets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def find_data_dir() -> Path | None:
    """INITLAB_DATA_DIR if set, else the shared folder next to the checkout."""
    configured = os.environ.get("INITLAB_DATA_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets")
    for candidate in candidates:
        if (candidate / "mnist").is_dir() and (candidate / "fashion_mnist").is_dir():
            return candidate.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = find_data_dir()
    if found is None:
        pytest.skip(
            "real data sets not found: set INITLAB_DATA_DIR to a folder holding "
            "mnist/ and fashion_mnist/ with the IDX .gz files"
        )
    return found
