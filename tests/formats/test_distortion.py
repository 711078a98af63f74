"""Undistortion onto the same K: a distorted checkerboard comes back straight, K stays exact."""

import cv2
import numpy as np
import pytest

from formats.camera import intrinsics_matrix
from formats.distortion import distort_pixels, parse_camera_text, undistort_image, undistort_mask, validate_distortion

SIZE = (640, 480)
K = intrinsics_matrix(400.0, 400.0, 319.5, 239.5)
DIST = np.array([-0.25, 0.08, 0.001, -0.0005, 0.0])  # a dash-cam-like barrel lens (k1 = -0.25)
SQUARE = 40.0
INNER = (11, 7)  # inner corners per row, per column


def ideal_checkerboard(width, height, oversample=4) -> np.ndarray:
    """An anti-aliased checkerboard (squares of SQUARE px, inner corners on a grid centred in the image)."""
    xs = (np.arange(width * oversample) + 0.5) / oversample - 0.5
    ys = (np.arange(height * oversample) + 0.5) / oversample - 0.5
    x0 = (width - 1) / 2.0 - SQUARE * (INNER[0] - 1) / 2.0
    y0 = (height - 1) / 2.0 - SQUARE * (INNER[1] - 1) / 2.0
    cells = (np.floor((xs[None, :] - x0) / SQUARE) + np.floor((ys[:, None] - y0) / SQUARE)) % 2
    inside = (
        (xs[None, :] >= x0 - SQUARE)
        & (xs[None, :] <= x0 + SQUARE * INNER[0])
        & (ys[:, None] >= y0 - SQUARE)
        & (ys[:, None] <= y0 + SQUARE * INNER[1])
    )
    fine = np.where(inside, 40 + 180 * cells, 220).astype(np.float32)
    return cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA).astype(np.uint8)


def distorted(image: np.ndarray) -> np.ndarray:
    """What the lens records: pixel p of the distorted image shows the ideal point that distorts to p."""
    height, width = image.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).reshape(-1, 1, 2).astype(np.float64)
    ideal = cv2.undistortPointsIter(
        grid, K, DIST, None, K, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    )
    maps = ideal.reshape(height, width, 2).astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def corners(image: np.ndarray) -> np.ndarray:
    found, points = cv2.findChessboardCorners(image, INNER)
    assert found, "checkerboard not found"
    points = cv2.cornerSubPix(
        image, points, (5, 5), (-1, -1), (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-4)
    )
    return points.reshape(-1, 2)


def max_line_residual(points: np.ndarray) -> float:
    """Largest distance of a corner from the total-least-squares line through its row (and its column)."""
    grid = points.reshape(INNER[1], INNER[0], 2)
    worst = 0.0
    for line in list(grid) + list(grid.transpose(1, 0, 2)):
        centred = line - line.mean(axis=0)
        normal = np.linalg.svd(centred)[2][-1]
        worst = max(worst, float(np.abs(centred @ normal).max()))
    return worst


@pytest.fixture(scope="module")
def boards():
    ideal = ideal_checkerboard(*SIZE)
    return ideal, distorted(ideal)


def test_distorted_checkerboard_is_bent(boards):
    _, bent = boards
    assert max_line_residual(corners(bent)) > 3.0  # the test would notice a missing undistortion


def test_undistorted_checkerboard_is_straight_and_in_place(boards):
    ideal, bent = boards
    straight = undistort_image(bent, K, DIST)
    assert straight.shape == bent.shape
    found = corners(straight)
    assert max_line_residual(found) < 0.5
    # same K: the corners are where the ideal pinhole camera puts them (K exact, not re-estimated)
    np.testing.assert_allclose(found, corners(ideal), atol=0.5)


def test_mask_follows_the_same_map_with_nearest_ids(boards):
    ideal, bent = boards
    ids = (bent < 128).astype(np.uint8) * 7
    straight_ids = undistort_mask(ids, K, DIST)
    assert set(np.unique(straight_ids)) <= {0, 7}  # never blended
    agree = (straight_ids == 7) == (undistort_image(bent, K, DIST) < 128)
    assert agree.mean() > 0.99


def test_distort_pixels_matches_opencv_inverse():
    points = np.array([[10.0, 10.0], [319.5, 239.5], [600.0, 400.0]])
    bent = distort_pixels(points, K, DIST)
    np.testing.assert_allclose(bent[1], [319.5, 239.5], atol=1e-9)  # principal point is fixed
    back = cv2.undistortPointsIter(
        bent.reshape(-1, 1, 2), K, DIST, None, K, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    )
    np.testing.assert_allclose(back.reshape(-1, 2), points, atol=1e-6)


def test_camera_file_with_and_without_distortion():
    K_text = "400,0,319.5,0,400,239.5,0,0,1"
    matrix, none = parse_camera_text(K_text + "\n")
    np.testing.assert_array_equal(matrix, K)
    assert none is None
    matrix, coefficients = parse_camera_text(K_text + "\n-0.25, 0.08 0.001 -0.0005 0\n")
    np.testing.assert_array_equal(coefficients, DIST)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty camera file"),
        ("400,0,319.5,0,400,239.5,0,0\n", "9 comma-separated"),
        ("0,0,319.5,0,400,239.5,0,0,1\n", "focal lengths"),
        ("400,0,319.5,0,400,239.5,0,0,1\n-0.25 0.08 0.001\n", "4, 5, 8, 12 or 14"),
        ("400,0,319.5,0,400,239.5,0,0,1\n-0.25 nan 0 0\n", "finite"),
        ("400,0,319.5,0,400,239.5,0,0,1\n-0.25 x 0 0\n", "not a list"),
    ],
)
def test_malformed_camera_files_are_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_camera_text(text, "cam.txt")


def test_validate_distortion_counts():
    for count in (4, 5, 8, 12, 14):
        assert validate_distortion(np.zeros(count)).shape == (count,)
