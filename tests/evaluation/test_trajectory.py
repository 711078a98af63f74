import math

import numpy as np
import pytest

from evaluation import trajectory as tr
from formats import kitti


def yaw(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_compose_accumulation_rebuilds_the_real_trajectory(real_data):
    gt = kitti.read_poses(real_data / "kitti_odometry" / "poses" / "10.txt")[:300]
    gt = np.linalg.inv(gt[0]) @ gt  # camera-to-first-frame
    relative = np.linalg.inv(gt[:-1]) @ gt[1:]  # T_k_from_k+1
    rebuilt = tr.accumulate(relative[:, :3, :3], relative[:, :3, 3], "compose")
    np.testing.assert_allclose(rebuilt, gt, atol=1e-6)


def test_dfv_order_rotates_each_translation_by_its_own_rotation():
    rotations = np.stack([yaw(math.pi / 2)] * 2)
    translations = np.array([[0.0, 0.0, 1.0]] * 2)
    compose = tr.accumulate(rotations, translations, "compose")
    dfv = tr.accumulate(rotations, translations, "dfv")
    # compose: p1 = t = (0,0,1); p2 = p1 + R t = (1,0,1).  dfv: p1 = R t = (1,0,0); p2 = p1 + R R t = (1,0,-1)
    np.testing.assert_allclose(compose[1:, :3, 3], [[0, 0, 1], [1, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(dfv[1:, :3, 3], [[1, 0, 0], [1, 0, -1]], atol=1e-12)
    np.testing.assert_allclose(compose[:, :3, :3], dfv[:, :3, :3])
    assert np.array_equal(compose[0], np.eye(4))
    with pytest.raises(ValueError):
        tr.accumulate(rotations, translations, "average")
    with pytest.raises(ValueError):
        tr.accumulate(rotations, translations[:1])


def test_quaternions_round_trip_including_large_angles():
    rng = np.random.default_rng(3)
    for _ in range(50):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0, math.pi)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rotation = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
        quaternion = tr.rotation_to_quaternion(rotation)
        assert quaternion[3] >= 0 and np.linalg.norm(quaternion) == pytest.approx(1.0)
        np.testing.assert_allclose(tr.quaternion_to_rotation(quaternion), rotation, atol=1e-9)
    assert tr.rotation_to_quaternion(np.eye(3)).tolist() == [0.0, 0.0, 0.0, 1.0]
    # 90 degrees about y: q = (0, sin 45, 0, cos 45)
    np.testing.assert_allclose(tr.rotation_to_quaternion(yaw(math.pi / 2)), [0, math.sqrt(0.5), 0, math.sqrt(0.5)])


def test_tum_text_parses_back(real_data):
    gt = kitti.read_poses(real_data / "kitti_odometry" / "poses" / "09.txt")[:50]
    times = kitti.parse_odometry_times((real_data / "kitti_odometry" / "sequences" / "09" / "times.txt").read_text())
    text = tr.format_tum(times[:50], gt)
    assert len(text.splitlines()) == 50 and len(text.splitlines()[1].split()) == 8
    parsed_times, parsed = tr.parse_tum("# time tx ty tz qx qy qz qw\n" + text)
    np.testing.assert_allclose(parsed_times, times[:50], atol=1e-6)
    np.testing.assert_allclose(parsed, gt, atol=1e-5)  # KITTI's own rotations are orthonormal to ~1e-6
    with pytest.raises(ValueError, match="8 values"):
        tr.parse_tum("1 2 3\n")
    with pytest.raises(ValueError, match="timestamp"):
        tr.format_tum(times[:3], gt)


def test_nearest_rotation_fixes_an_averaged_matrix():
    averaged = 0.5 * (yaw(0.1) + yaw(0.3))  # what the 2.5 average gives: not orthonormal
    rotation = tr.nearest_rotation(averaged)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation, yaw(0.2), atol=1e-12)


# --- prediction files read for evaluation ---------------------------------------------------------------


def kitti_line(pose, frame=None):
    values = " ".join(f"{v:.9e}" for v in np.asarray(pose)[:3, :4].reshape(-1))
    return values if frame is None else f"{frame} {values}"


def test_kitti_files_with_and_without_frame_numbers(real_data):
    gt = kitti.read_poses(real_data / "kitti_odometry" / "poses" / "09.txt")[:6]
    plain = tr.parse_trajectory("".join(kitti_line(p) + "\n" for p in gt), "plain.txt")
    assert plain.format == "kitti" and plain.frames is None and plain.timestamps is None
    np.testing.assert_allclose(plain.poses, gt, atol=1e-9)
    numbered_text = "# frame r11 ... t3\n" + "".join(kitti_line(p, 2 + k) + "\n\n" for k, p in enumerate(gt))
    numbered = tr.parse_trajectory(numbered_text, "numbered.txt")
    assert numbered.frames.tolist() == [2, 3, 4, 5, 6, 7]
    assert numbered.line_numbers.tolist() == [2, 4, 6, 8, 10, 12]
    np.testing.assert_allclose(numbered.poses, gt, atol=1e-9)
    assert tr.detect_format(numbered_text) == "kitti"
    assert tr.detect_format("# c\n0 1 2 3 0 0 0 1\n") == "tum"


@pytest.mark.parametrize(
    "text, fmt, line, message",
    [
        ("1 0 0 0 0 1 0 0 0 0 1\n", "auto", 1, "11 values"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1\n", "auto", 2, "got 11"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n0 1 0 0 0 0 1 0 0 0 0 1 0\n", "auto", 2, "13 values where earlier lines have 12"),
        ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 nan 0 1 0 0 0 0 1 0\n", "auto", 2, "non-finite"),
        ("1 0 0 0 0 1 0 0 0 0 1 inf\n", "auto", 1, "non-finite"),
        ("1 0 0 0 0 1 0 0 0 0 1 x7\n", "kitti", 1, "not a number: 'x7'"),
        ("1 0 0 0 0 1 0 0 0 0 1.2 0\n", "auto", 1, "not orthonormal"),
        ("-1 0 0 0 0 1 0 0 0 0 1 0\n", "auto", 1, "determinant"),
        ("3 1 0 0 0 0 1 0 0 0 0 1 0\n3 1 0 0 0 0 1 0 0 0 0 1 0\n", "auto", 2, "does not increase"),
        ("2.5 1 0 0 0 0 1 0 0 0 0 1 0\n", "auto", 1, "not a non-negative integer"),
        ("-1 1 0 0 0 0 1 0 0 0 0 1 0\n", "auto", 1, "not a non-negative integer"),
        ("0 0 0 0 0 0 0 1\n0 0 0 0 0 0 0 1\n", "tum", 2, "timestamp 0.0 does not increase"),
        ("0 0 0 0 0 0 0 1.1\n", "auto", 1, "quaternion norm 1.1"),
        ("0 0 0 0 0 0 0 0\n", "auto", 1, "zero quaternion"),
        ("0 0 0 0 0 0 0 1 0 0 0 0\n", "tum", 1, "needs 8 values"),
        ("1 2 3 4 5\n", "auto", 1, "neither a KITTI pose"),
    ],
)
def test_bad_trajectory_lines_name_the_file_and_line(text, fmt, line, message):
    with pytest.raises(tr.TrajectoryFileError, match=f"^pred.txt:{line}: .*{message}") as caught:
        tr.parse_trajectory(text, "pred.txt", fmt)
    assert "\n" not in str(caught.value)


def test_rotation_checks_follow_the_tolerance_and_can_be_skipped():
    slightly_off = "1.0005 0 0 0 0 1 0 0 0 0 1 0\n"  # max |R R^T - I| = 0.001
    assert tr.parse_trajectory(slightly_off, "p", rotation_tolerance=2e-3).num_poses == 1
    with pytest.raises(tr.TrajectoryFileError, match="tolerance 0.0001"):
        tr.parse_trajectory(slightly_off, "p", rotation_tolerance=1e-4)
    assert tr.parse_trajectory("1 0 0 0 0 1 0 0 0 0 3 0\n", "p", rotation_tolerance=None).num_poses == 1
    assert tr.rotation_error(np.diag([1.0, 1.0, 1.0005])) == pytest.approx(0.0005 * 2.0005)


def test_empty_missing_and_binary_files(tmp_path):
    with pytest.raises(tr.TrajectoryFileError, match="no poses"):
        tr.parse_trajectory("# only a comment\n\n", "empty.txt")
    with pytest.raises(FileNotFoundError, match="not found"):
        tr.read_trajectory(tmp_path / "missing.txt")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(tr.TrajectoryFileError, match="binary.txt: not a text file"):
        tr.read_trajectory(tmp_path / "binary.txt")
    with pytest.raises(ValueError, match="format"):
        tr.parse_trajectory("", "p", "g2o")
