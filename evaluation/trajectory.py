"""Trajectories from relative motions, and their file formats (KITTI 3x4, TUM, the release's XYZ).

A relative motion ``(R, t) = T_k_from_k+1`` maps points of camera k+1 into camera k (what the motion network
returns for the image pair (frame k, frame k+1), spec 2.5). Poses are camera-to-first-frame ``G_k``, with
``G_0 = I``; camera axes x right, y down, z forward.

Accumulation orders (spec 5.1), starting from orientation O = I and position p = 0, for each step in order:

- ``"compose"`` (wilddepth's default, exact): p <- p + O t, then O <- O R. Equivalently G_k+1 = G_k T_k_from_k+1.
- ``"dfv"`` (the release's DFV/trajectory_inference.py): O <- O R, then p <- p + O t (the *updated* O rotates
  the translation). Kept to reproduce the release's trajectories; it differs from exact composition by
  rotating every step's translation by that step's own rotation.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

ACCUMULATIONS = ("compose", "dfv")


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest (Frobenius) to a 3x3 matrix, via SVD with the determinant fixed to +1."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    correction = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ correction @ vt


def accumulate(rotations: np.ndarray, translations: np.ndarray, order: str = "compose") -> np.ndarray:
    """(N+1, 4, 4) camera-to-first-frame poses from N relative motions T_k_from_k+1 (R [N,3,3], t [N,3])."""
    rotations = np.asarray(rotations, dtype=np.float64)
    translations = np.asarray(translations, dtype=np.float64)
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
        raise ValueError(f"rotations must be (N, 3, 3), got {rotations.shape}")
    if translations.shape != (rotations.shape[0], 3):
        raise ValueError(f"translations must be ({rotations.shape[0]}, 3), got {translations.shape}")
    if order not in ACCUMULATIONS:
        raise ValueError(f"order must be one of {ACCUMULATIONS}, got {order!r}")
    poses = np.tile(np.eye(4), (rotations.shape[0] + 1, 1, 1))
    orientation, position = np.eye(3), np.zeros(3)
    for index, (rotation, translation) in enumerate(zip(rotations, translations)):
        if order == "compose":
            position = position + orientation @ translation
            orientation = orientation @ rotation
        else:
            orientation = orientation @ rotation
            position = position + orientation @ translation
        poses[index + 1, :3, :3] = orientation
        poses[index + 1, :3, 3] = position
    return poses


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (qx, qy, qz, qw), qw >= 0, of a rotation matrix (projected onto SO(3) first)."""
    r = nearest_rotation(rotation)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s])
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = np.array([0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s])
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = np.array([(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = np.array([(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_rotation(quaternion: np.ndarray) -> np.ndarray:
    """3x3 rotation of a quaternion (qx, qy, qz, qw), normalised first."""
    x, y, z, w = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def format_tum(timestamps: np.ndarray, poses: np.ndarray) -> str:
    """TUM lines ``time tx ty tz qx qy qz qw`` (seconds, metres or model units), one per pose."""
    timestamps = np.asarray(timestamps, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    if timestamps.shape != (poses.shape[0],):
        raise ValueError(f"need one timestamp per pose: {timestamps.shape} vs {poses.shape[0]} poses")
    lines = []
    for time, pose in zip(timestamps, poses):
        values = [*pose[:3, 3], *rotation_to_quaternion(pose[:3, :3])]
        lines.append(f"{time:.6f} " + " ".join(f"{v:.9e}" for v in values))
    return "\n".join(lines) + "\n"


def parse_tum(text: str, source: str = "<text>") -> Tuple[np.ndarray, np.ndarray]:
    """TUM text -> (timestamps (N,), poses (N, 4, 4)); ``#`` comment lines are skipped."""
    times, poses = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) != 8:
            raise ValueError(f"{source}:{number}: a TUM line needs 8 values, got {len(tokens)}")
        values = [float(token) for token in tokens]
        pose = np.eye(4)
        pose[:3, :3] = quaternion_to_rotation(values[4:])
        pose[:3, 3] = values[1:4]
        times.append(values[0])
        poses.append(pose)
    return np.array(times), np.array(poses).reshape(-1, 4, 4)


def format_xyz(poses: np.ndarray) -> str:
    """The release's ``odometry_<name>.txt``: ``x y z`` per pose, first line the origin."""
    return "".join(" ".join(repr(float(v)) for v in pose[:3, 3]) + "\n" for pose in np.asarray(poses))
