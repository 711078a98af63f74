"""Pinhole intrinsics and how they change when an image is resized or cropped.

Pixel-centre convention (used everywhere in wilddepth, including the warping in ``model/geometry.py``):
the centre of the pixel in column i and row j has coordinates (x, y) = (i, j). OpenCV's ``cv2.resize``
maps an output pixel centre x' to the input position (x' + 0.5) / s - 0.5 for a scale s = W'/W, so the
exact intrinsics after a resize are fx' = s * fx and cx' = s * (cx + 0.5) - 0.5 (same for y).

The original Struct2depth scripts used cx' = s * cx (a corner-origin approximation that is off by
0.5 * (1 - s) pixels, about a third of a pixel at KITTI's 1242 -> 416); wilddepth uses the exact form.
The tensor forms used in training (K of a batch, K of a horizontally flipped image, fy tied to fx) are
``model.geometry.intrinsics_matrix``, ``model.geometry.flip_intrinsics`` and ``model.geometry.tie_focal_aspect``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """3x3 float64 K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def validate_intrinsics(intrinsics: np.ndarray) -> np.ndarray:
    """Return K as float64 3x3 or raise ValueError if it is not a finite pinhole matrix with fx, fy > 0."""
    matrix = np.asarray(intrinsics, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"intrinsics contain non-finite values: {matrix.tolist()}")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise ValueError(f"focal lengths must be positive, got fx={matrix[0, 0]}, fy={matrix[1, 1]}")
    return matrix


PRINCIPAL_POINT_MARGIN = 0.25  # the principal point may lie this fraction of the size outside the image


def check_intrinsics_for_image(
    intrinsics: np.ndarray, size: Tuple[int, int], what: str = "intrinsics", margin: float = PRINCIPAL_POINT_MARGIN
) -> np.ndarray:
    """Validate K for an image of ``size`` = (width, height) pixels: a finite pinhole matrix (zero skew
    allowed or not), fx, fy > 0 and the principal point inside the image, or near it: within
    [-0.5 - margin W, W - 0.5 + margin W] x [-0.5 - margin H, H - 0.5 + margin H] (pixel-centre convention;
    margin 0.25 admits off-centre crops, rejects a K meant for another resolution). Returns K as float64;
    raises ValueError naming ``what``."""
    try:
        matrix = validate_intrinsics(intrinsics)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    if not np.allclose(matrix[2], (0.0, 0.0, 1.0)) or matrix[1, 0] != 0.0:
        raise ValueError(f"{what}: not a pinhole matrix (last row must be 0 0 1, K[1,0] = 0): {matrix.tolist()}")
    width, height = size
    cx, cy = matrix[0, 2], matrix[1, 2]
    if not (
        -0.5 - margin * width <= cx <= width - 0.5 + margin * width
        and -0.5 - margin * height <= cy <= height - 0.5 + margin * height
    ):
        raise ValueError(f"{what}: principal point ({cx:g}, {cy:g}) is not inside or near the {width}x{height} image")
    return matrix


def scale_intrinsics(intrinsics: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """K of an image resized by (scale_x, scale_y) = (W'/W, H'/H), exact for pixel-centre coordinates."""
    matrix = validate_intrinsics(intrinsics).copy()
    matrix[0, 0] *= scale_x
    matrix[0, 1] *= scale_x
    matrix[1, 1] *= scale_y
    matrix[0, 2] = scale_x * (matrix[0, 2] + 0.5) - 0.5
    matrix[1, 2] = scale_y * (matrix[1, 2] + 0.5) - 0.5
    return matrix


def resized_pixel_aspect(native_size: Tuple[int, int], output_size: Tuple[int, int]) -> float:
    """fy / fx of an image resized from ``native_size`` to ``output_size`` (both (width, height)) when the native
    pixels are square (fy = fx): (H'/H) / (W'/W). The aspect a resize gives, whatever the focal length."""
    (native_w, native_h), (width, height) = native_size, output_size
    if min(native_w, native_h, width, height) <= 0:
        raise ValueError(f"sizes must be positive, got {native_size} -> {output_size}")
    return (height / float(native_h)) / (width / float(native_w))


def tie_focal_aspect(intrinsics: np.ndarray, pixel_aspect) -> np.ndarray:
    """K [..., 3, 3] with fy replaced by fx * ``pixel_aspect`` (fy / fx, a scalar or one per K): learned
    intrinsics with a known pixel aspect (``focal_aspect: records``, docs/training.md). fx, cx, cy kept."""
    matrix = np.array(intrinsics, dtype=np.float64)
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be [..., 3, 3], got shape {matrix.shape}")
    aspect = np.asarray(pixel_aspect, dtype=np.float64)
    if not np.all(np.isfinite(aspect)) or np.any(aspect <= 0):
        raise ValueError(f"pixel aspect must be finite and > 0, got {pixel_aspect}")
    matrix[..., 1, 1] = matrix[..., 0, 0] * aspect
    return matrix


def crop_intrinsics(intrinsics: np.ndarray, left: int, top: int) -> np.ndarray:
    """K of the crop whose first column is ``left`` and first row is ``top`` (in input pixels)."""
    matrix = validate_intrinsics(intrinsics).copy()
    matrix[0, 2] -= left
    matrix[1, 2] -= top
    return matrix


def crop_and_resize_intrinsics(
    intrinsics: np.ndarray,
    crop_box: Tuple[int, int, int, int],
    output_size: Tuple[int, int],
) -> np.ndarray:
    """K after cropping rows top:bottom, columns left:right, then resizing to (width, height).

    ``crop_box`` is (top, bottom, left, right) in input pixels, bottom/right exclusive.
    """
    top, bottom, left, right = crop_box
    width, height = output_size
    cropped = crop_intrinsics(intrinsics, left, top)
    return scale_intrinsics(cropped, width / float(right - left), height / float(bottom - top))
