"""Matching predicted poses to ground-truth frames (pure; the stage tests run the same rules end to end)."""

import numpy as np
import pytest

from evaluation import odometry_evaluation as oe
from evaluation import trajectory as tr


def tum(times, source="pred.txt"):
    text = "".join(f"{float(t)!r} 0 0 {k} 0 0 0 1\n" for k, t in enumerate(times))
    return tr.parse_trajectory(text, source, "tum")


def kitti(count, frames=None, source="pred.txt"):
    rows = ["1 0 0 0 0 1 0 0 0 0 1 0"] * count
    if frames is not None:
        rows = [f"{f} {row}" for f, row in zip(frames, rows)]
    return tr.parse_trajectory("\n".join(rows) + "\n", source, "kitti")


def test_timestamps_match_the_nearest_ground_truth_time_within_the_tolerance():
    gt = kitti(4, source="gt.txt")
    times = np.array([0.0, 0.1, 0.2, 0.3])
    frames, matching, details = oe.match_frames(tum([-0.005, 0.099, 0.21, 0.305]), gt, times, 0.01)
    assert frames.tolist() == [0, 1, 2, 3] and matching == "timestamp"
    assert details["largest_time_diff_s"] == pytest.approx(0.01, abs=1e-9)
    assert oe.match_frames(tum([0.2]), gt, times, 0.01)[0].tolist() == [2]  # one pose in the middle
    with pytest.raises(
        tr.TrajectoryFileError,
        match=r"^pred.txt:2: timestamp 0.15 has no ground-truth pose within "
        r"0.01 s \(nearest: frame 1 at 0.1\); 1 of 2 poses unmatched",
    ):
        oe.match_frames(tum([0.1, 0.15]), gt, times, 0.01)
    with pytest.raises(tr.TrajectoryFileError, match=r"^pred.txt:2: matches ground-truth frame 1 .* like line 1"):
        oe.match_frames(tum([0.1, 0.14]), gt, times, 0.06)
    with pytest.raises(ValueError, match="4 poses but 3 ground-truth timestamps"):
        oe.match_frames(tum([0.1]), gt, times[:3], 0.01)
    with pytest.raises(ValueError, match="do not increase"):
        oe.match_frames(tum([0.1]), gt, times[::-1], 0.01)
    single = kitti(1, source="gt1.txt")
    assert oe.match_frames(tum([5.0]), single, np.array([5.002]), 0.01)[0].tolist() == [0]


def test_ground_truth_in_tum_carries_the_times_and_excludes_gt_times():
    gt = tum([10.0, 10.5, 11.0], source="gt.txt")
    assert oe.match_frames(tum([10.5, 11.0]), gt)[0].tolist() == [1, 2]
    with pytest.raises(ValueError, match="own timestamps"):
        oe.match_frames(tum([10.5]), gt, np.array([0.0, 1.0, 2.0]))


def test_frame_numbers_and_line_order():
    gt = kitti(10, source="gt.txt")
    frames, matching, _ = oe.match_frames(kitti(3, frames=[2, 3, 7]), gt)
    assert frames.tolist() == [2, 3, 7] and matching == "frame_number"
    with pytest.raises(tr.TrajectoryFileError, match=r"^pred.txt:2: frame number 10 is beyond .* 10 poses"):
        oe.match_frames(kitti(2, frames=[9, 10]), gt)
    frames, matching, _ = oe.match_frames(kitti(10), gt)
    assert frames.tolist() == list(range(10)) and matching == "line_order"
    with pytest.raises(tr.TrajectoryFileError, match="9 poses but the ground truth gt.txt has 10"):
        oe.match_frames(kitti(9), gt)
    # TUM without ground-truth times: line order too, so the counts must agree
    assert oe.match_frames(tum(np.arange(10.0)), gt)[1] == "line_order"
    with pytest.raises(tr.TrajectoryFileError, match="timestamps"):
        oe.match_frames(tum([0.0, 1.0]), gt)


def test_constant_velocity_baseline_sits_at_the_frame_numbers():
    poses = oe.constant_velocity_at(np.array([2, 3, 5]))
    assert poses[:, 2, 3].tolist() == [0.0, 1.0, 3.0]
    np.testing.assert_array_equal(poses[:, :3, :3], np.tile(np.eye(3), (3, 1, 1)))
