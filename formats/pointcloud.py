"""Point clouds from depth maps: pinhole back-projection and coloured PLY files.

Conventions of ``formats`` (see its docstring): camera axes x right, y down, z forward; the centre of pixel
(column i, row j) is at (x, y) = (i, j), and K maps camera points to those coordinates. A pixel with depth z
(the distance along the optical axis, not along the ray) back-projects to

    X = (i - cx) z / fx - s (j - cy) z / (fx fy),   Y = (j - cy) z / fy,   Z = z

(the inverse of K for a skew s = K[0, 1]; s = 0 for every camera wilddepth writes).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

from formats import atomic
from formats.camera import validate_intrinsics

PLY_PROPERTIES = (
    ("x", "float"),
    ("y", "float"),
    ("z", "float"),
    ("red", "uchar"),
    ("green", "uchar"),
    ("blue", "uchar"),
)
_PLY_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def backproject(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-frame points (H, W, 3) float64 of a depth map (H, W) with K in pixels of that map.

    Depth is along z (camera axis), in the depth map's unit; the points are in the same unit.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    matrix = validate_intrinsics(intrinsics)
    height, width = depth.shape
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([columns, rows, np.ones_like(columns)], axis=-1)  # (H, W, 3) homogeneous (x, y, 1)
    rays = pixels @ np.linalg.inv(matrix).T  # K^-1 [x, y, 1]^T, z component 1
    return rays * depth[..., np.newaxis]


def valid_points(points: np.ndarray, colours: np.ndarray, depth: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Flatten (H, W, 3) points and RGB uint8 colours, keeping pixels whose depth is finite and > 0."""
    depth = np.asarray(depth)
    colours = np.asarray(colours)
    if points.shape[:2] != depth.shape or colours.shape != (*depth.shape, 3):
        raise ValueError(f"points {points.shape}, colours {colours.shape} and depth {depth.shape} disagree")
    keep = np.isfinite(depth) & (depth > 0)
    return points[keep], colours[keep].astype(np.uint8)


def encode_ply(points: np.ndarray, colours: Optional[np.ndarray] = None) -> bytes:
    """Binary little-endian PLY: one vertex per row of ``points`` (N, 3) as float32 x y z and uchar RGB
    (``colours`` (N, 3) uint8, RGB order; grey 128 when None)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(points)):
        raise ValueError("point cloud contains NaN or Inf")
    if colours is None:
        colours = np.full(points.shape, 128, np.uint8)
    colours = np.asarray(colours).reshape(-1, 3)
    if colours.shape[0] != points.shape[0]:
        raise ValueError(f"{points.shape[0]} points but {colours.shape[0]} colours")
    vertices = np.empty(points.shape[0], dtype=_PLY_DTYPE)
    for axis, name in enumerate("xyz"):
        vertices[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = colours[:, channel]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment wilddepth: camera frame, x right, y down, z forward",
        f"element vertex {points.shape[0]}",
    ]
    header += [f"property {kind} {name}" for name, kind in PLY_PROPERTIES]
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii") + vertices.tobytes()


def write_ply(path: os.PathLike, points: np.ndarray, colours: Optional[np.ndarray] = None) -> None:
    """Atomically write :func:`encode_ply` to ``path``."""
    atomic.write_bytes(path, encode_ply(points, colours))


def read_ply(path: os.PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) float32, colours (N, 3) uint8) of a PLY written by :func:`write_ply`."""
    data = open(path, "rb").read()
    marker = b"end_header\n"
    end = data.find(marker)
    if not data.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY is read")
    properties = tuple(tuple(line.split()[2:0:-1]) for line in header if line.startswith("property "))
    if properties != PLY_PROPERTIES:
        raise ValueError(f"{path}: unexpected vertex properties {properties}")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex "))
    vertices = np.frombuffer(data[end + len(marker) :], dtype=_PLY_DTYPE, count=count)
    points = np.stack([vertices[name] for name in "xyz"], axis=1)
    colours = np.stack([vertices[name] for name in ("red", "green", "blue")], axis=1)
    return points, colours
