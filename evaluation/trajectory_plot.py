"""A top view of a camera trajectory as an image (OpenCV only; no plotting library needed).

Camera axes x right, y down, z forward: the top view plots the camera centres' x (to the right) against z
(up the image), so a car driving forward goes up and a right turn bends to the right. Both axes share one
scale; the start is a green dot, the end a red one.
"""

from __future__ import annotations

import cv2
import numpy as np


def top_view(poses: np.ndarray, size: int = 480, margin: int = 30) -> np.ndarray:
    """BGR uint8 (size, size, 3) plot of the x-z path of camera-to-world poses (N, 3|4, 4)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((3, 4), (4, 4)) or poses.shape[0] == 0:
        raise ValueError(f"poses must be (N, 3, 4) or (N, 4, 4) with N >= 1, got {poses.shape}")
    if size <= 2 * margin:
        raise ValueError(f"size {size} leaves no room inside a margin of {margin}")
    x, z = poses[:, 0, 3], poses[:, 2, 3]
    centre = np.array([(x.min() + x.max()) / 2.0, (z.min() + z.max()) / 2.0])
    extent = max(x.max() - x.min(), z.max() - z.min(), 1e-9)
    scale = (size - 2 * margin) / extent
    columns = size / 2.0 + (x - centre[0]) * scale
    rows = size / 2.0 - (z - centre[1]) * scale
    points = np.round(np.stack([columns, rows], axis=1)).astype(np.int32)
    image = np.full((size, size, 3), 255, np.uint8)
    cv2.line(image, (margin // 2, size - margin // 2), (margin // 2, size - margin // 2 - 20), (160, 160, 160), 1)
    cv2.putText(image, "z", (margin // 2 - 4, size - margin // 2 - 24), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.line(image, (margin // 2, size - margin // 2), (margin // 2 + 20, size - margin // 2), (160, 160, 160), 1)
    cv2.putText(image, "x", (margin // 2 + 24, size - margin // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    if len(points) > 1:
        cv2.polylines(image, [points.reshape(-1, 1, 2)], False, (200, 80, 0), 2, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in points[0]), 5, (0, 160, 0), -1)
    cv2.circle(image, tuple(int(v) for v in points[-1]), 5, (0, 0, 220), -1)
    return image
