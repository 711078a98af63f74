import math

import numpy as np
import pytest

from evaluation import odometry_metrics as om
from formats import kitti


@pytest.fixture(scope="module", params=["09", "10"])
def gt_poses(request, real_data):
    return kitti.read_poses(real_data / "kitti_odometry" / "poses" / f"{request.param}.txt")


def straight_line(num_frames, step=1.0):
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    poses[:, 2, 3] = step * np.arange(num_frames)
    return poses


def yaw(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_snippet_ate_hand_computed():
    g = np.array([[0, 0, k] for k in range(5)], dtype=float)
    q = g.copy()
    q[4, 0] = 1.0  # last frame 1 m to the right
    # s = 30 / 31; residuals 0, -1/31, -2/31, -3/31, (30/31, 0, -4/31): sum of squares 930 / 961
    assert om.snippet_ate(g, q) == pytest.approx(math.sqrt(930) / 31 / 5)
    # the first-frame offset is removed before scaling
    assert om.snippet_ate(g, q + np.array([3.0, -2.0, 7.0])) == pytest.approx(math.sqrt(930) / 31 / 5)
    # a prediction that never moves: scale 0, ATE = sqrt(sum |g|^2) / n
    assert om.snippet_ate(g, np.zeros((5, 3))) == pytest.approx(math.sqrt(0 + 1 + 4 + 9 + 16) / 5)
    with pytest.raises(ValueError):
        om.snippet_ate(g, q[:4])


def test_ground_truth_against_itself_is_zero_at_any_scale(gt_poses):
    count = gt_poses.shape[0] - 4
    for scale in (1.0, 0.01, 37.0):
        scaled = gt_poses.copy()
        scaled[:, :3, 3] *= scale
        ates = om.snippet_ates(gt_poses, scaled, 5)
        assert ates.shape == (count,)
        assert np.max(ates) < 1e-9
        assert om.trajectory_ate(gt_poses, scaled)["rmse"] < 1e-6
        assert om.trajectory_ate(gt_poses, scaled)["scale"] == pytest.approx(1.0 / scale)


def test_a_rigid_change_of_world_frame_does_not_change_the_ate(gt_poses):
    world = np.eye(4)
    world[:3, :3] = yaw(0.7)
    world[:3, 3] = [5.0, -1.0, 100.0]
    moved = np.einsum("ij,kjl->kil", world, gt_poses)
    assert np.max(om.snippet_ates(gt_poses, moved)) < 1e-9


def test_a_frozen_prediction_scores_the_snippet_path_length(gt_poses):
    frozen = np.tile(np.eye(4), (gt_poses.shape[0], 1, 1))
    ates = om.snippet_ates(gt_poses, frozen)
    for start in (0, 200, gt_poses.shape[0] - 5):
        inverse = np.linalg.inv(gt_poses[start])
        positions = [(inverse @ gt_poses[start + k])[:3, 3] for k in range(5)]
        assert ates[start] == pytest.approx(math.sqrt(sum(float(p @ p) for p in positions)) / 5)


def test_moving_one_frame_changes_only_its_snippets(gt_poses):
    perturbed = gt_poses.copy()
    frame = 300
    perturbed[frame, :3, 3] += perturbed[frame, :3, :3] @ np.array([0.5, 0.0, 0.0])  # 0.5 m to its right
    ates = om.snippet_ates(gt_poses, perturbed)
    touched = np.zeros(ates.size, dtype=bool)
    touched[frame - 4:frame + 1] = True
    assert np.max(ates[~touched]) < 1e-9
    assert np.all(ates[touched] > 1e-3)
    # first snippet containing it: frame 300 is the 5th; hand-compute with the snippet formula
    start = frame - 4
    inverse = np.linalg.inv(gt_poses[start])
    g = np.array([(inverse @ gt_poses[start + k])[:3, 3] for k in range(5)])
    q = np.array([(inverse @ perturbed[start + k])[:3, 3] for k in range(5)])
    s = np.sum(g * q) / np.sum(q * q)
    assert ates[start] == pytest.approx(math.sqrt(np.sum((s * q - g) ** 2)) / 5)


def test_snippet_summary_and_errors():
    summary = om.summarize_snippets(np.array([1.0, 3.0]))
    assert summary == {"ate5_mean": 2.0, "ate5_std": 1.0, "num_snippets": 2}
    assert "ate3_mean" in om.summarize_snippets(np.array([1.0]), 3)
    with pytest.raises(ValueError, match="length"):
        om.snippet_ates(straight_line(10), straight_line(9))
    with pytest.raises(ValueError, match="snippet"):
        om.snippet_ates(straight_line(3), straight_line(3))
    with pytest.raises(ValueError, match="non-finite"):
        om.snippet_ates(straight_line(6), np.full((6, 4, 4), np.nan))


def test_constant_velocity_baseline_is_exact_on_straight_constant_speed_motion():
    gt = straight_line(20, step=1.3)
    baseline = om.constant_velocity_poses(20)
    assert np.max(om.snippet_ates(gt, baseline)) < 1e-12
    assert om.trajectory_ate(gt, baseline)["scale"] == pytest.approx(1.3)


def test_kitti_relative_errors_hand_cases():
    gt = straight_line(1001)  # 1 m per frame along z: a segment of L metres ends exactly L frames later
    perfect = om.kitti_relative_errors(gt, gt)
    assert perfect["t_err_percent"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["r_err_deg_per_100m"] == pytest.approx(0.0, abs=1e-6)
    # first frames 0, 10, ..., each length L fits while first + L <= 1000
    assert perfect["num_segments"] == sum(len(range(0, 1001 - int(L), 10)) for L in om.KITTI_SEGMENT_LENGTHS)
    longer = gt.copy()
    longer[:, :3, 3] *= 1.1
    assert om.kitti_relative_errors(gt, longer, align_scale=False)["t_err_percent"] == pytest.approx(10.0)
    assert om.kitti_relative_errors(gt, longer, align_scale=True)["t_err_percent"] == pytest.approx(0.0, abs=1e-9)
    turning = gt.copy()
    theta = math.radians(0.01)  # 0.01 degree per frame = per metre -> 1 degree per 100 m
    for k in range(gt.shape[0]):
        turning[k, :3, :3] = yaw(theta * k)
    result = om.kitti_relative_errors(gt, turning, segment_lengths=(100.0,))
    assert result["r_err_deg_per_100m"] == pytest.approx(1.0, rel=1e-6)
    short = om.kitti_relative_errors(straight_line(20), straight_line(20))
    assert short["t_err_percent"] is None and short["num_segments"] == 0


def test_kitti_relative_errors_on_real_ground_truth(gt_poses):
    assert om.kitti_relative_errors(gt_poses, gt_poses)["t_err_percent"] == pytest.approx(0.0, abs=1e-6)
    baseline = om.kitti_relative_errors(gt_poses, om.constant_velocity_poses(gt_poses.shape[0]))
    assert baseline["num_segments"] > 100
    assert baseline["t_err_percent"] > 10.0  # a straight line is far from the real, curvy drive
    noisy = gt_poses.copy()
    noisy[:, :3, 3] += np.random.default_rng(0).normal(0, 0.05, size=(gt_poses.shape[0], 3))
    noisy_errors = om.kitti_relative_errors(gt_poses, noisy)
    assert 0.0 < noisy_errors["t_err_percent"] < 1.0
