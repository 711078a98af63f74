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
    touched[frame - 4 : frame + 1] = True
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


# --- Sim(3) / SE(3) alignment (Umeyama 1991) ---------------------------------------------------------------


def poses_at(positions, rotations=None):
    positions = np.asarray(positions, dtype=float)
    poses = np.tile(np.eye(4), (positions.shape[0], 1, 1))
    poses[:, :3, 3] = positions
    if rotations is not None:
        poses[:, :3, :3] = rotations
    return poses


def rotation_about(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def test_umeyama_recovers_a_known_similarity_exactly():
    source = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]], dtype=float)
    rotation = rotation_about([1, 2, 3], 0.9)
    target = 2.5 * source @ rotation.T + np.array([4.0, -1.0, 7.0])
    fitted_rotation, translation, scale = om.umeyama_alignment(source, target, with_scale=True)
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(translation, [4.0, -1.0, 7.0], atol=1e-12)
    assert scale == pytest.approx(2.5, rel=1e-12)
    # a rigid fit of the unscaled copy recovers the same rotation and translation, scale fixed to 1
    rigid = om.umeyama_alignment(source, source @ rotation.T + np.array([4.0, -1.0, 7.0]), with_scale=False)
    np.testing.assert_allclose(rigid[0], rotation, atol=1e-12)
    np.testing.assert_allclose(rigid[1], [4.0, -1.0, 7.0], atol=1e-12)
    assert rigid[2] == 1.0


def test_aligned_ate_hand_case_square_stretched_in_y():
    # ground truth: the corners (+-1, 0, 0), (0, +-1, 0); prediction stretched 2x along y.
    # Sigma = diag(0.5, 1, 0), D = (1, 0.5, 0), R = I, sigma_q^2 = 10 / 4, c = 1.5 / 2.5 = 0.6:
    # aligned (+-0.6, 0, 0), (0, +-1.2, 0); errors 0.4, 0.4, 0.2, 0.2 -> RMSE sqrt(0.1).
    # SE(3): R = I, t = 0, errors 0, 0, 1, 1 -> RMSE sqrt(0.5).
    gt = poses_at([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    pred = poses_at([[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0]])
    sim3 = om.aligned_ate(gt, pred, with_scale=True)
    assert sim3["rmse"] == pytest.approx(math.sqrt(0.1), rel=1e-12)
    assert sim3["scale"] == pytest.approx(0.6, rel=1e-12)
    np.testing.assert_allclose(sim3["rotation"], np.eye(3), atol=1e-12)
    assert om.aligned_ate(gt, pred, with_scale=False)["rmse"] == pytest.approx(math.sqrt(0.5), rel=1e-12)
    # the same prediction in another world frame and scale: same Sim(3) ATE, scale 0.6 / 3
    world = rotation_about([0, 1, 0.2], 2.0)
    moved = poses_at(3.0 * pred[:, :3, 3] @ world.T + np.array([10.0, 0.0, -5.0]), world)
    moved_sim3 = om.aligned_ate(gt, moved, with_scale=True)
    assert moved_sim3["rmse"] == pytest.approx(math.sqrt(0.1), rel=1e-9)
    assert moved_sim3["scale"] == pytest.approx(0.2, rel=1e-9)


def test_se3_ate_of_a_scaled_copy_equals_the_hand_value():
    # prediction q = c g: the best rigid fit is R = I, t = (1 - c) mean(g); error (1 - c)(g - mean(g));
    # for the four corners (+-1, +-1, 5), mean |g - mean g|^2 = 2 -> RMSE |1 - c| sqrt(2)
    gt = poses_at([[1, 1, 5], [1, -1, 5], [-1, 1, 5], [-1, -1, 5]])
    for c in (0.5, 3.0):
        scaled = poses_at(c * gt[:, :3, 3])
        assert om.aligned_ate(gt, scaled, with_scale=False)["rmse"] == pytest.approx(abs(1 - c) * math.sqrt(2))
        assert om.aligned_ate(gt, scaled, with_scale=True)["rmse"] == pytest.approx(0.0, abs=1e-12)


def test_sim3_ate_of_a_transformed_real_trajectory_is_zero(gt_poses):
    world = np.eye(4)
    world[:3, :3] = rotation_about([0.3, 1.0, -0.2], 1.1)
    world[:3, 3] = [50.0, -3.0, 12.0]
    moved = np.einsum("ij,kjl->kil", world, gt_poses)
    moved[:, :3, 3] *= 0.037
    sim3 = om.aligned_ate(gt_poses, moved, with_scale=True)
    assert sim3["rmse"] < 1e-6
    assert sim3["scale"] == pytest.approx(1 / 0.037, rel=1e-9)
    np.testing.assert_allclose(sim3["rotation"], world[:3, :3].T, atol=1e-9)
    assert om.aligned_ate(gt_poses, moved, with_scale=False)["rmse"] > 10.0  # wrong scale: SE(3) cannot fix it


def test_umeyama_never_returns_a_reflection():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(30, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # the exact fit would be a reflection
    rotation, _, scale = om.umeyama_alignment(mirrored, gt, with_scale=True)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert om.aligned_ate(poses_at(gt), poses_at(mirrored))["rmse"] > 0.1
    assert scale > 0


def test_aligned_ate_of_degenerate_predictions():
    gt = straight_line(6, step=2.0)
    # a straight constant-speed prediction is exact under Sim(3), whatever its speed (R free about the line)
    assert om.aligned_ate(gt, om.constant_velocity_poses(6))["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert om.aligned_ate(gt, om.constant_velocity_poses(6))["scale"] == pytest.approx(2.0)
    # a prediction that never moves: scale 0, all points on the ground truth's mean -> its RMS spread
    frozen = om.aligned_ate(gt, np.tile(np.eye(4), (6, 1, 1)))
    spread = gt[:, 2, 3] - gt[:, 2, 3].mean()
    assert frozen["scale"] == 0.0
    assert frozen["rmse"] == pytest.approx(math.sqrt(np.mean(spread**2)))
    with pytest.raises(ValueError, match="length"):
        om.aligned_ate(gt, gt[:5])


def test_snippet_windows_skip_gaps_in_the_frame_numbers():
    frames = np.array([2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13])
    assert om.consecutive_window_starts(frames, 5).tolist() == [0, 5, 6]
    assert om.consecutive_window_starts(np.arange(7), 5).tolist() == [0, 1, 2]
    assert om.consecutive_window_starts(np.arange(3), 5).tolist() == []
    with pytest.raises(ValueError, match="increasing"):
        om.consecutive_window_starts([0, 2, 2, 3], 2)
    gt = straight_line(11)
    pred = gt.copy()
    pred[4, 0, 3] = 1.0  # only the window starting at position 0 contains it
    ates = om.snippet_ates(gt, pred, 5, starts=[0, 5, 6])
    assert ates.shape == (3,) and ates[0] > 0.01 and np.max(ates[1:]) < 1e-12
    with pytest.raises(ValueError, match="consecutive"):
        om.snippet_ates(gt, pred, 5, starts=[])


def test_sim3_and_se3_ate_match_evo_on_real_ground_truth(gt_poses):
    """evo's APE (what ``evo_ape kitti GT PRED --align [--correct_scale]`` runs) on a drifting, 0.2-scale copy of
    the real trajectory. evo is optional (not in the lock file): skipped when it is not importable."""
    pytest.importorskip("evo")
    from evo.core import metrics as evo_metrics
    from evo.core.trajectory import PosePath3D

    rng = np.random.default_rng(11)
    relative = np.linalg.inv(gt_poses[:-1]) @ gt_poses[1:]
    pred = np.tile(np.eye(4), (gt_poses.shape[0], 1, 1))
    for k, step in enumerate(relative):
        noisy = step.copy()
        noisy[:3, :3] = step[:3, :3] @ rotation_about(rng.normal(size=3), rng.normal(0, 0.002))
        noisy[:3, 3] = 0.2 * step[:3, 3] + rng.normal(0, 0.01, size=3)
        pred[k + 1] = pred[k] @ noisy
    for correct_scale in (True, False):
        reference, estimate = PosePath3D(poses_se3=list(gt_poses)), PosePath3D(poses_se3=list(pred))
        _, _, evo_scale = estimate.align(reference, correct_scale=correct_scale)
        ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
        ape.process_data((reference, estimate))
        ours = om.aligned_ate(gt_poses, pred, with_scale=correct_scale)
        assert ours["rmse"] == pytest.approx(ape.get_statistic(evo_metrics.StatisticsType.rmse), rel=1e-9)
        assert ours["scale"] == pytest.approx(evo_scale, rel=1e-9)
