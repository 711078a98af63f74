import numpy as np
import pytest

from evaluation import kitti_depth_gt as gt_module
from formats import kitti

DRIVE = "2011_09_26_drive_sfnd_sync"


@pytest.fixture(scope="module")
def date_dir(real_data):
    return real_data / "kitti_raw_mini" / "2011_09_26"


def test_projection_rounds_then_subtracts_one_and_keeps_the_nearest():
    # Use a matrix where u = 10*y/x, v = 10*z/x, w = x (Velodyne x forward is the depth).
    projection = np.array([[0, 10.0, 0, 0], [0, 0, 10.0, 0], [1.0, 0, 0, 0]])
    points = np.array(
        [
            [2.0, 0.44, 0.62, 0.5],  # u = 2.2 -> round 2 -> 1; v = 3.1 -> 3 -> 2
            [4.0, 0.88, 1.24, 0.5],  # same pixel (1, 2), farther: the nearer (2.0) must win
            [5.0, 1.26, 1.0, 0.5],  # u = 2.52 -> 3 -> 2; v = 2.0 -> 2 -> 1
            [-3.0, 0.0, 0.0, 0.5],  # behind (x < 0): dropped
            [1.0, 0.0, 0.0, 0.5],  # u = v = 0 -> -1: outside the image
            [1.0, 0.45, 0.0, 0.5],  # u = 4.5 -> round half to even 4 -> 3 (inside), v = -1: outside
        ]
    )
    depth = gt_module.project_to_depth_map(points, projection, (4, 5))
    expected = np.zeros((4, 5), dtype=np.float32)
    expected[2, 1] = 2.0
    expected[1, 2] = 5.0
    np.testing.assert_array_equal(depth, expected)
    with pytest.raises(ValueError):
        gt_module.project_to_depth_map(points[:, :2], projection, (4, 5))
    with pytest.raises(ValueError):
        gt_module.project_to_depth_map(points, projection[:2], (4, 5))


def test_real_kitti_scan_gives_a_plausible_sparse_depth_map(date_dir):
    depth = gt_module.kitti_raw_depth(date_dir, DRIVE, "0000000000")
    assert depth.shape == (375, 1242) and depth.dtype == np.float32
    valid = depth > 0
    assert 10_000 < valid.sum() < 30_000  # a 64-beam scan covers roughly 4 % of the image
    assert depth[valid].min() > 1.0 and depth[valid].max() < 120.0
    assert 4.0 < np.median(depth[valid]) < 30.0
    rows = np.nonzero(valid.any(axis=1))[0]
    assert rows.min() > 50  # the Velodyne looks at most ~2 degrees up: top rows empty
    assert np.all(np.isfinite(depth))


def test_real_points_checked_by_hand(date_dir):
    """Project a few raw points with the calibration numbers typed in from the files."""
    r_velo = np.array(
        [
            7.533745e-03,
            -9.999714e-01,
            -6.166020e-04,
            1.480249e-02,
            7.280733e-04,
            -9.998902e-01,
            9.998621e-01,
            7.523790e-03,
            1.480755e-02,
        ]
    ).reshape(3, 3)
    t_velo = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])
    r_rect = np.array(
        [
            9.999239e-01,
            9.837760e-03,
            -7.445048e-03,
            -9.869795e-03,
            9.999421e-01,
            -4.278459e-03,
            7.402527e-03,
            4.351614e-03,
            9.999631e-01,
        ]
    ).reshape(3, 3)
    p_rect = np.array(
        [7.215377e02, 0, 6.095593e02, 4.485728e01, 0, 7.215377e02, 1.728540e02, 2.163791e-01, 0, 0, 1, 2.745884e-03]
    ).reshape(3, 4)
    points = kitti.read_velodyne(date_dir / DRIVE / "velodyne_points" / "data" / "0000000000.bin")
    depth = gt_module.kitti_raw_depth(date_dir, DRIVE, "0000000000")
    forward = points[points[:, 0] > 5.0]
    checked = 0
    for point in forward[:: max(1, len(forward) // 50)]:
        camera = r_rect @ (r_velo @ point[:3].astype(np.float64) + t_velo)
        pixel = p_rect @ np.append(camera, 1.0)
        u, v = round(pixel[0] / pixel[2]) - 1, round(pixel[1] / pixel[2]) - 1
        if 0 <= u < 1242 and 0 <= v < 375:
            # the map holds this point's forward distance, or a nearer point's on the same pixel
            assert 0 < depth[v, u] <= point[0] + 1e-4
            checked += 1
    assert checked >= 10


def test_points_behind_the_camera_never_land_in_the_image(date_dir):
    cam_to_cam, velo_to_cam = gt_module.read_raw_calibration(date_dir)
    projection = gt_module.velodyne_projection(cam_to_cam, velo_to_cam)
    points = kitti.read_velodyne(date_dir / DRIVE / "velodyne_points" / "data" / "0000000003.bin")
    homogeneous = np.c_[points[:, :3], np.ones(len(points))] @ projection.T
    behind = points[(points[:, 0] >= 0) & (homogeneous[:, 2] <= 0)]
    assert len(behind) > 0  # the protocol keeps x >= 0 points even just behind the camera ...
    assert not gt_module.project_to_depth_map(behind, projection, (375, 1242)).any()  # ... harmlessly here


def test_missing_scan_is_a_clear_error(date_dir):
    with pytest.raises(FileNotFoundError, match="Velodyne"):
        gt_module.kitti_raw_depth(date_dir, DRIVE, "0000000099")
