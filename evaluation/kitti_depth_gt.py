"""KITTI raw ground-truth depth: Velodyne scans projected into a rectified camera (docs/release.md §6.1).

Protocol (as SfMLearner's and Monodepth2's ``export_gt_depth`` with ``vel_depth=True``):

- projection = ``P_rect_0c @ R_rect_00 @ [R|T]velo_to_cam`` (3x4, homogeneous 4x4 in between);
- points with Velodyne forward coordinate x < 0 are dropped;
- pixel coordinates = projection divided by its third row, **rounded, then minus 1** (the KITTI MATLAB
  devkit's 1-based convention kept by the standard protocol); only pixels 0 <= u < W, 0 <= v < H are kept;
- depth = the Velodyne forward coordinate x (metres), not the camera z;
- several points on one pixel: the nearest (smallest depth) wins;
- pixels without a point are 0. The map has the rectified image size ``S_rect_0c`` (about 375 x 1242).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import numpy as np

from formats import kitti


def velodyne_to_camera_matrix(velo_to_cam: dict, source: str = "") -> np.ndarray:
    """4x4 rigid transform from ``calib_velo_to_cam.txt`` (keys ``R`` 3x3 and ``T`` 3)."""
    transform = np.eye(4)
    transform[:3, :3] = kitti.calibration_matrix(velo_to_cam, "R", (3, 3), source)
    transform[:3, 3] = kitti.calibration_matrix(velo_to_cam, "T", (3,), source)
    return transform


def velodyne_projection(cam_to_cam: dict, velo_to_cam: dict, camera: int = 2, source: str = "") -> np.ndarray:
    """3x4 matrix mapping homogeneous Velodyne points to homogeneous pixels of rectified camera ``camera``."""
    rectification = np.eye(4)
    rectification[:3, :3] = kitti.calibration_matrix(cam_to_cam, "R_rect_00", (3, 3), source)
    projection = kitti.calibration_matrix(cam_to_cam, f"P_rect_0{camera}", (3, 4), source)
    return projection @ rectification @ velodyne_to_camera_matrix(velo_to_cam, source)


def project_to_depth_map(points: np.ndarray, projection: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """Sparse float32 depth map (H, W) from Velodyne points (N, >=3: x forward, y left, z up, metres).

    ``image_size`` is (height, width). See the module docstring for the exact rules.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, 3) or (N, 4), got shape {points.shape}")
    projection = np.asarray(projection, dtype=np.float64)
    if projection.shape != (3, 4):
        raise ValueError(f"projection must be 3x4, got {projection.shape}")
    height, width = (int(v) for v in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    points = points[points[:, 0] >= 0, :3]
    homogeneous = np.concatenate([points, np.ones((points.shape[0], 1))], axis=1)
    pixels = homogeneous @ projection.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(pixels[:, 0] / pixels[:, 2]) - 1
        v = np.round(pixels[:, 1] / pixels[:, 2]) - 1
    depth = points[:, 0]
    inside = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, depth = u[inside].astype(np.int64), v[inside].astype(np.int64), depth[inside]
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, v * width + u, depth)
    nearest[~np.isfinite(nearest)] = 0.0
    return nearest.reshape(height, width).astype(np.float32)


def read_raw_calibration(date_dir: os.PathLike) -> Tuple[dict, dict]:
    """(cam_to_cam, velo_to_cam) parsed from a KITTI raw date folder (e.g. ``.../2011_09_26``)."""
    date_dir = Path(date_dir)
    return (
        kitti.read_calibration(date_dir / "calib_cam_to_cam.txt"),
        kitti.read_calibration(date_dir / "calib_velo_to_cam.txt"),
    )


def kitti_raw_depth(date_dir: os.PathLike, drive: str, frame: str, camera: int = 2) -> np.ndarray:
    """Ground-truth depth of frame ``frame`` (10 digits) of ``<date_dir>/<drive>`` for camera ``camera``."""
    date_dir = Path(date_dir)
    cam_to_cam, velo_to_cam = read_raw_calibration(date_dir)
    scan_path = date_dir / drive / "velodyne_points" / "data" / f"{frame}.bin"
    if not scan_path.is_file():
        raise FileNotFoundError(f"{scan_path}: Velodyne scan not found")
    width, height = kitti.raw_image_size(cam_to_cam, camera, str(date_dir / "calib_cam_to_cam.txt"))
    projection = velodyne_projection(cam_to_cam, velo_to_cam, camera, str(date_dir))
    return project_to_depth_map(kitti.read_velodyne(scan_path), projection, (height, width))
