"""Trajectories from relative motions, and their file formats (KITTI 3x4, TUM, the release's XYZ).

A relative motion ``(R, t) = T_k_from_k+1`` maps points of camera k+1 into camera k (what the motion network
returns for the image pair (frame k, frame k+1); the release's ``model.py`` inference graph averages it with the
inverse of the (k+1, k) prediction). Poses are camera-to-first-frame ``G_k``, with ``G_0 = I``; camera axes
x right, y down, z forward.

Accumulation orders, starting from orientation O = I and position p = 0, for each step in order:

- ``"compose"`` (wilddepth's default, exact): p <- p + O t, then O <- O R. Equivalently G_k+1 = G_k T_k_from_k+1.
- ``"dfv"`` (the release's ``depth_from_video_in_the_wild/trajectory_inference.py``): O <- O R, then
  p <- p + O t (the *updated* O rotates the translation). Kept to reproduce the release's trajectories; it
  differs from exact composition by rotating every step's translation by that step's own rotation.

Trajectory files read for evaluation (:func:`parse_trajectory`; every problem is a :class:`TrajectoryFileError`
naming the file and line):

- KITTI: one camera-to-world pose per line, the 12 values of the row-major 3x4 matrix, or 13 with a leading
  frame number (a non-negative integer, strictly increasing down the file);
- TUM: ``timestamp tx ty tz qx qy qz qw`` (seconds, strictly increasing; unit quaternion, scalar last);
- blank lines and lines starting with ``#`` are skipped; a non-number, NaN or infinity, a rotation that is not
  orthonormal with determinant +1 (max |R R^T - I| above the tolerance) or a quaternion whose norm is not 1
  within the tolerance is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

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
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


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


def parse_tum(
    text: str, source: str = "<text>", rotation_tolerance: Optional[float] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """TUM text -> (timestamps (N,), poses (N, 4, 4)); ``#`` comment lines are skipped (rules: module doc).

    Quaternions are normalised; with ``rotation_tolerance`` a norm further than that from 1 is an error.
    """
    parsed = parse_trajectory(text, source, "tum", rotation_tolerance)
    return parsed.timestamps, parsed.poses


TRAJECTORY_FORMATS = ("auto", "kitti", "tum")
DEFAULT_ROTATION_TOLERANCE = 1e-3
"""Largest accepted max |R R^T - I| (KITTI files) or | |q| - 1 | (TUM files) of a pose read for evaluation."""


class TrajectoryFileError(ValueError):
    """A trajectory file that cannot be evaluated; the message is one line ``FILE:LINE: what is wrong``."""


@dataclass
class TrajectoryFile:
    """A parsed trajectory file: ``poses`` (N, 4, 4) camera-to-world, and where each came from."""

    source: str
    format: str  # "kitti" or "tum"
    poses: np.ndarray  # (N, 4, 4) float64
    line_numbers: np.ndarray  # (N,) 1-based line of each pose in the file
    frames: Optional[np.ndarray] = None  # (N,) int64, KITTI files with a frame-number column
    timestamps: Optional[np.ndarray] = None  # (N,) seconds, TUM files

    @property
    def num_poses(self) -> int:
        return int(self.poses.shape[0])


def _fail(source: str, number: int, message: str):
    raise TrajectoryFileError(f"{source}:{number}: {message}")


def _numbers(tokens: List[str], source: str, number: int) -> np.ndarray:
    try:
        values = np.array([float(token) for token in tokens], dtype=np.float64)
    except ValueError:
        bad = next(token for token in tokens if not _is_float(token))
        _fail(source, number, f"not a number: {bad[:40]!r}")
    if not np.all(np.isfinite(values)):
        _fail(source, number, "non-finite value (NaN or infinity)")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def rotation_error(rotation: np.ndarray) -> float:
    """max |R R^T - I| of a 3x3 matrix (0 for an exact rotation)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    return float(np.max(np.abs(rotation @ rotation.T - np.eye(3))))


def detect_format(text: str, source: str = "<text>") -> str:
    """``"kitti"`` (12 or 13 values on the first pose line) or ``"tum"`` (8 values)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        count = len(line.split())
        if count in (12, 13):
            return "kitti"
        if count == 8:
            return "tum"
        _fail(
            source,
            number,
            f"{count} values: neither a KITTI pose (12, or 13 with a frame number) nor a TUM "
            "pose (8: timestamp tx ty tz qx qy qz qw)",
        )
    raise TrajectoryFileError(f"{source}: no poses")


def parse_trajectory(
    text: str,
    source: str = "<text>",
    fmt: str = "auto",
    rotation_tolerance: Optional[float] = DEFAULT_ROTATION_TOLERANCE,
) -> TrajectoryFile:
    """Parse a KITTI or TUM trajectory (``fmt``: ``auto`` decides by the first pose line's column count).

    ``rotation_tolerance=None`` skips the orthonormality / unit-norm checks (for files this project wrote
    without projecting rotations onto SO(3)). Raises :class:`TrajectoryFileError`.
    """
    if fmt not in TRAJECTORY_FORMATS:
        raise ValueError(f"format must be one of {TRAJECTORY_FORMATS}, got {fmt!r}")
    if fmt == "auto":
        fmt = detect_format(text, source)
    expected = None
    poses, numbers, frames, times = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        if fmt == "tum":
            _check_tum_columns(tokens, source, number)
            poses.append(_tum_pose(_numbers(tokens, source, number), times, source, number, rotation_tolerance))
        else:
            expected = _check_kitti_columns(tokens, expected, source, number)
            values = _numbers(tokens, source, number)
            poses.append(_kitti_pose(values, tokens, frames, source, number, rotation_tolerance))
        numbers.append(number)
    if not poses:
        raise TrajectoryFileError(f"{source}: no poses")
    return TrajectoryFile(
        source=source,
        format=fmt,
        poses=np.array(poses),
        line_numbers=np.array(numbers, dtype=np.int64),
        frames=np.array(frames, dtype=np.int64) if frames else None,
        timestamps=np.array(times, dtype=np.float64) if fmt == "tum" else None,
    )


def _check_tum_columns(tokens: List[str], source: str, number: int) -> None:
    if len(tokens) != 8:
        _fail(source, number, f"a TUM line needs 8 values (timestamp tx ty tz qx qy qz qw), got {len(tokens)}")


def _check_kitti_columns(tokens: List[str], expected: Optional[int], source: str, number: int) -> int:
    """The column count every KITTI line of the file must have (12, or 13 with frame numbers)."""
    if len(tokens) not in (12, 13):
        _fail(source, number, f"a KITTI pose needs 12 values (13 with a leading frame number), got {len(tokens)}")
    if expected is not None and len(tokens) != expected:
        _fail(source, number, f"{len(tokens)} values where earlier lines have {expected}")
    return len(tokens) if expected is None else expected


def _tum_pose(values: np.ndarray, times: List, source: str, number: int, rotation_tolerance) -> np.ndarray:
    """4x4 pose of a TUM line ``time tx ty tz qx qy qz qw``; appends its (strictly increasing) time to ``times``."""
    pose = np.eye(4)
    quaternion = values[4:]
    norm = float(np.linalg.norm(quaternion))
    if norm == 0.0:
        _fail(source, number, "zero quaternion")
    if rotation_tolerance is not None and abs(norm - 1.0) > rotation_tolerance:
        _fail(source, number, f"quaternion norm {norm:.6g} is not 1 (tolerance {rotation_tolerance:g})")
    pose[:3, :3] = quaternion_to_rotation(quaternion)
    pose[:3, 3] = values[1:4]
    if times and values[0] <= times[-1]:
        _fail(source, number, f"timestamp {float(values[0])!r} does not increase (previous {float(times[-1])!r})")
    times.append(values[0])
    return pose


def _kitti_pose(
    values: np.ndarray, tokens: List[str], frames: List, source: str, number: int, rotation_tolerance
) -> np.ndarray:
    """4x4 pose of a KITTI line (3x4 row-major, optionally after a frame number, appended to ``frames``)."""
    pose = np.eye(4)
    if len(values) == 13:
        frame = values[0]
        if frame < 0 or frame != np.floor(frame) or frame > 2**53:
            _fail(source, number, f"frame number {tokens[0]!r} is not a non-negative integer")
        if frames and frame <= frames[-1]:
            _fail(source, number, f"frame number {int(frame)} does not increase (previous {int(frames[-1])})")
        frames.append(frame)
        values = values[1:]
    pose[:3, :] = values.reshape(3, 4)
    if rotation_tolerance is not None:
        error = rotation_error(pose[:3, :3])
        if error > rotation_tolerance or np.linalg.det(pose[:3, :3]) <= 0:
            _fail(
                source,
                number,
                f"rotation is not orthonormal with determinant +1 (max |R R^T - I| = "
                f"{error:.3g}, det {np.linalg.det(pose[:3, :3]):.3g}; tolerance {rotation_tolerance:g})",
            )
    return pose


def read_trajectory(
    path, fmt: str = "auto", rotation_tolerance: Optional[float] = DEFAULT_ROTATION_TOLERANCE
) -> TrajectoryFile:
    """:func:`parse_trajectory` of a file (FileNotFoundError if missing; undecodable text is an error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trajectory file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TrajectoryFileError(f"{path}: not a text file ({error.reason} at byte {error.start})") from None
    return parse_trajectory(text, str(path), fmt, rotation_tolerance)


def format_xyz(poses: np.ndarray) -> str:
    """The release's ``odometry_<name>.txt``: ``x y z`` per pose, first line the origin."""
    return "".join(" ".join(repr(float(v)) for v in pose[:3, 3]) + "\n" for pose in np.asarray(poses))
