"""Shared test fixtures: paths to the real samples beside the repository (never copied into it)."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real``: KITTI raw mini, dash-cam video, odometry poses, the Struct2depth example."""
    if not SHARED_REAL.is_dir():
        pytest.fail(f"real test samples not found at {SHARED_REAL}; CI clones the repo beside shared/")
    return SHARED_REAL
