"""Lens distortion (OpenCV's model) and undistortion of frames and id masks.

Coefficients are OpenCV's ``(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1, s2, s3, s4[, tx, ty]]]])``: 4, 5, 8, 12
or 14 values, for pixel coordinates with the pixel-centre convention of ``formats.camera``.

Choice of the new camera: frames are undistorted **onto the same K** (``cv2.initUndistortRectifyMap``
with ``newCameraMatrix = K``), not onto ``cv2.getOptimalNewCameraMatrix``'s. The undistorted frame then
has exactly the intrinsics K that were given, so every later step (crop, resize, ``scale_intrinsics``) stays
exact and unchanged; the image keeps its size. For barrel distortion (k1 < 0, the usual dash-cam lens)
every output pixel samples inside the input (the outermost input pixels are cropped away); for pincushion
distortion (k1 > 0) the corners of the output sample outside the input and are black (0). Frames are
sampled bilinearly, id masks with nearest neighbour (the same map, ids are never blended).

Camera files (``intrinsics.txt``, ``video.intrinsics_file``): line 1 is K (9 comma-separated floats,
row-major, native pixels); an optional line 2 holds the distortion coefficients (comma- or space-separated).
"""

from __future__ import annotations

import collections
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from formats.camera import validate_intrinsics

VALID_COUNTS = (4, 5, 8, 12, 14)
_MAPS: "collections.OrderedDict" = collections.OrderedDict()
_MAX_CACHED_MAPS = 4


def validate_distortion(coefficients: Sequence[float], what: str = "distortion") -> np.ndarray:
    """The coefficients as float64 (n,), n in 4, 5, 8, 12, 14, all finite; ValueError otherwise."""
    values = np.asarray(coefficients, dtype=np.float64).reshape(-1)
    if values.size not in VALID_COUNTS:
        raise ValueError(f"{what}: OpenCV distortion needs 4, 5, 8, 12 or 14 coefficients, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what}: distortion coefficients must be finite, got {values.tolist()}")
    return values


def parse_camera_text(text: str, source: str = "<text>") -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """A camera file: (K 3x3 float64, distortion (n,) or None). Raises ValueError naming ``source``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{source}: empty camera file (expected 9 comma-separated floats of K)")
    try:
        values = [float(token) for token in lines[0].split(",")]
    except ValueError:
        raise ValueError(f"{source}: line 1 is not 9 comma-separated floats: {lines[0]!r}") from None
    if len(values) != 9:
        raise ValueError(f"{source}: line 1 must hold 9 comma-separated floats (K), got {len(values)}")
    try:
        intrinsics = validate_intrinsics(np.array(values).reshape(3, 3))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if len(lines) == 1:
        return intrinsics, None
    if len(lines) > 2:
        raise ValueError(f"{source}: expected K on line 1 and distortion on line 2, got {len(lines)} lines")
    try:
        coefficients = [float(token) for token in lines[1].replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{source}: line 2 is not a list of distortion coefficients: {lines[1]!r}") from None
    return intrinsics, validate_distortion(coefficients, source)


def _maps(intrinsics: np.ndarray, distortion: np.ndarray, size: Tuple[int, int]):
    key = (np.asarray(intrinsics, np.float64).tobytes(), np.asarray(distortion, np.float64).tobytes(), tuple(size))
    if key in _MAPS:
        _MAPS.move_to_end(key)
        return _MAPS[key]
    matrix = validate_intrinsics(intrinsics)
    maps = cv2.initUndistortRectifyMap(matrix, validate_distortion(distortion), None, matrix, tuple(size), cv2.CV_32FC1)
    _MAPS[key] = maps
    while len(_MAPS) > _MAX_CACHED_MAPS:
        _MAPS.popitem(last=False)
    return maps


def undistort_image(image: np.ndarray, intrinsics: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """The undistorted image, same size and same K (bilinear; outside the input = 0)."""
    map_x, map_y = _maps(intrinsics, distortion, (image.shape[1], image.shape[0]))
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def undistort_mask(mask: np.ndarray, intrinsics: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """An (H, W) id mask through the same map as its frame, nearest neighbour (outside = 0, background)."""
    map_x, map_y = _maps(intrinsics, distortion, (mask.shape[1], mask.shape[0]))
    return cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def distort_pixels(points: np.ndarray, intrinsics: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """Where ideal (undistorted) pixels ``points`` (N, 2) appear in the distorted image, (N, 2)."""
    matrix = validate_intrinsics(intrinsics)
    points = np.asarray(points, np.float64).reshape(-1, 2)
    normalized = np.column_stack(
        [
            (points[:, 0] - matrix[0, 2]) / matrix[0, 0],
            (points[:, 1] - matrix[1, 2]) / matrix[1, 1],
            np.ones(len(points)),
        ]
    )
    projected, _ = cv2.projectPoints(normalized, np.zeros(3), np.zeros(3), matrix, validate_distortion(distortion))
    return projected.reshape(-1, 2)
