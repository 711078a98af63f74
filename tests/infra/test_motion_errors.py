"""benchmarks/motion_errors.py: the split of frame-to-frame motions and the hybrids built from it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from evaluation.trajectory import accumulate
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def motion_errors():
    spec = importlib.util.spec_from_file_location("motion_errors", REPO_ROOT / "benchmarks" / "motion_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def turning_drive(frames: int = 12, yaw_deg: float = 2.0, step: float = 1.0) -> np.ndarray:
    """Camera-to-world poses of a camera that turns by ``yaw_deg`` about y and moves ``step`` forward per frame."""
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec([0.0, np.radians(yaw_deg), 0.0]).as_matrix()
    motion[:3, 3] = (0.0, 0.0, step)
    poses = [np.eye(4)]
    for _ in range(frames - 1):
        poses.append(poses[-1] @ motion)
    return np.stack(poses)


def test_chaining_the_frame_motions_gives_the_poses_back(motion_errors):
    poses = turning_drive()
    motions = motion_errors.frame_motions(poses)
    assert motions.shape == (11, 4, 4)
    np.testing.assert_allclose(Rotation.from_matrix(motions[:, :3, :3]).as_rotvec(degrees=True)[:, 1], 2.0)
    np.testing.assert_allclose(accumulate(motions[:, :3, :3], motions[:, :3, 3]), poses, atol=1e-12)


def test_hybrids_take_each_part_from_where_they_are_told(motion_errors):
    truth, straight = turning_drive(yaw_deg=2.0, step=1.0), turning_drive(yaw_deg=0.0, step=3.0)
    true_motions, straight_motions = motion_errors.frame_motions(truth), motion_errors.frame_motions(straight)
    # all three parts true: the true drive; the true rotation and direction with another speed: a scaled drive
    np.testing.assert_allclose(motion_errors.hybrid(true_motions, true_motions, true_motions), truth, atol=1e-12)
    scaled = motion_errors.hybrid(true_motions, true_motions, straight_motions)
    np.testing.assert_allclose(scaled[:, :3, 3], 3.0 * truth[:, :3, 3], atol=1e-9)
    # ATE-5 aligns the scale, so only the speed differs and the score is zero; without the turn it is not
    assert motion_errors.ate5(truth, scaled) < 1e-9
    assert motion_errors.ate5(truth, motion_errors.hybrid(straight_motions, true_motions, true_motions)) > 0.01
