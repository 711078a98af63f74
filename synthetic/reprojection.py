"""Pure-NumPy inverse warping: the gold reference for the model's differentiable warp.

Pixel-centre convention: pixel (i, j) (column i, row j) has centre (x, y) = (i, j); camera axes x right,
y down, z forward; depth is z in the camera frame.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from formats.camera import validate_intrinsics


def warp_to_target(
    source_image: np.ndarray,
    target_depth: np.ndarray,
    intrinsics: np.ndarray,
    T_source_from_target: np.ndarray,
    min_depth: float = 1e-3,
) -> Tuple[np.ndarray, np.ndarray]:
    """Synthesise the target view from the source image.

    Each target pixel p is back-projected with its depth, P_t = depth * K^-1 [x, y, 1]^T, moved into the
    source camera with P_s = T_source_from_target P_t (4x4 or 3x4 rigid transform), projected with K, and the
    source image is sampled there bilinearly.

    Returns ``(warped, valid)``: ``warped`` has the target's H x W and the source's channels (float64);
    ``valid`` (H, W) bool is False where the target depth is not positive/finite, the point lands behind
    the source camera (z <= min_depth), or its projection falls outside [0, W-1] x [0, H-1] (warped = 0).
    """
    source = np.asarray(source_image, dtype=np.float64)
    depth = np.asarray(target_depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"target_depth must be H x W, got shape {depth.shape}")
    if source.ndim not in (2, 3):
        raise ValueError(f"source_image must be H x W or H x W x C, got shape {source.shape}")
    intrinsics = validate_intrinsics(intrinsics)
    transform = np.asarray(T_source_from_target, dtype=np.float64)
    if transform.shape not in ((3, 4), (4, 4)):
        raise ValueError(f"T_source_from_target must be 3x4 or 4x4, got shape {transform.shape}")
    height, width = depth.shape
    source_height, source_width = source.shape[:2]

    x, y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([x, y, np.ones_like(x)], axis=-1) @ np.linalg.inv(intrinsics).T
    good_depth = np.isfinite(depth) & (depth > 0)
    points = rays * np.where(good_depth, depth, 0.0)[..., None]
    moved = points @ transform[:3, :3].T + transform[:3, 3]
    z = moved[..., 2]
    in_front = z > min_depth
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = moved @ intrinsics.T
        u = projected[..., 0] / z
        v = projected[..., 1] / z
    valid = good_depth & in_front & (u >= 0) & (u <= source_width - 1) & (v >= 0) & (v <= source_height - 1)
    u = np.where(valid, u, 0.0)
    v = np.where(valid, v, 0.0)
    x0 = np.clip(np.floor(u).astype(np.int64), 0, max(source_width - 2, 0))
    y0 = np.clip(np.floor(v).astype(np.int64), 0, max(source_height - 2, 0))
    x1 = np.minimum(x0 + 1, source_width - 1)
    y1 = np.minimum(y0 + 1, source_height - 1)
    fx, fy = u - x0, v - y0
    if source.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    warped = (source[y0, x0] * (1 - fx) + source[y0, x1] * fx) * (1 - fy) + (
        source[y1, x0] * (1 - fx) + source[y1, x1] * fx
    ) * fy
    mask = valid[..., None] if source.ndim == 3 else valid
    return np.where(mask, warped, 0.0), valid


def T_source_from_target(pose_source: np.ndarray, pose_target: np.ndarray) -> np.ndarray:
    """4x4 transform from the target camera to the source camera, given camera-to-world poses."""

    def full(pose):
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape == (3, 4):
            pose = np.vstack([pose, [0, 0, 0, 1]])
        return pose

    return np.linalg.inv(full(pose_source)) @ full(pose_target)
