"""KITTI raw and KITTI odometry files: calibration, poses, timestamps, Velodyne scans.

Poses are camera-to-world (camera-to-first-frame for odometry ground truth), row-major 3x4 per line,
camera axes x right, y down, z forward.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Dict, List

import numpy as np

from formats import atomic
from formats.camera import check_intrinsics_for_image, validate_intrinsics


class CalibrationError(ValueError):
    """A calibration file is missing, or lacks or garbles a needed key."""


class InvalidIntrinsicsError(CalibrationError):
    """A calibration's K is present but impossible (fx or fy <= 0, principal point far outside the image)."""


def parse_calibration(text: str, source: str = "<text>") -> Dict[str, np.ndarray]:
    """Parse ``key: v1 v2 ...`` lines (KITTI ``calib_*.txt`` and odometry ``calib.txt``).

    Numeric values become float64 vectors; non-numeric lines (e.g. ``calib_time``) are skipped.
    """
    values: Dict[str, np.ndarray] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, rest = line.partition(":")
        try:
            values[key.strip()] = np.array([float(token) for token in rest.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. "calib_time: 09-Jan-2012 13:57:47"
    if not values:
        raise CalibrationError(f"{source}: no calibration entries found")
    return values


def read_calibration(path: os.PathLike) -> Dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found")
    return parse_calibration(path.read_text(), str(path))


def calibration_matrix(calibration: Dict[str, np.ndarray], key: str, shape, source: str = "") -> np.ndarray:
    """Fetch ``key`` from a parsed calibration and reshape it, with a clear error if absent or malformed."""
    if key not in calibration:
        raise CalibrationError(f"{source}: calibration has no key {key!r} (has {sorted(calibration)})")
    vector = calibration[key]
    if vector.size != int(np.prod(shape)):
        raise CalibrationError(f"{source}: {key} has {vector.size} values, expected {int(np.prod(shape))}")
    if not np.all(np.isfinite(vector)):
        raise CalibrationError(f"{source}: {key} has non-finite values")
    return vector.reshape(shape)


def intrinsics_from_projection(projection: np.ndarray) -> np.ndarray:
    """The left 3x3 block of a rectified 3x4 projection matrix P_rect = K [I | t]."""
    return np.asarray(projection, dtype=np.float64)[:, :3].copy()


def raw_camera_intrinsics(calibration: Dict[str, np.ndarray], camera: int = 2, source: str = "") -> np.ndarray:
    """K of rectified camera ``camera`` (0-3) from ``calib_cam_to_cam.txt``'s ``P_rect_0X``.

    Validated (``formats.camera.check_intrinsics_for_image``): positive focal lengths and, when the
    calibration has ``S_rect_0X``, a principal point inside or near that image; raises CalibrationError."""
    intrinsics = intrinsics_from_projection(calibration_matrix(calibration, f"P_rect_0{camera}", (3, 4), source))
    key = f"S_rect_0{camera}"
    try:
        if key in calibration:
            return check_intrinsics_for_image(
                intrinsics, raw_image_size(calibration, camera, source), f"{source}: P_rect_0{camera}"
            )
        return validate_intrinsics(intrinsics)
    except CalibrationError:
        raise
    except ValueError as error:
        message = str(error) if key in calibration else f"{source}: P_rect_0{camera}: {error}"
        raise InvalidIntrinsicsError(message) from None


def raw_image_size(calibration: Dict[str, np.ndarray], camera: int = 2, source: str = ""):
    """(width, height) of the rectified images, from ``S_rect_0X``."""
    width, height = calibration_matrix(calibration, f"S_rect_0{camera}", (2,), source)
    return int(round(width)), int(round(height))


def format_calibration(entries: Dict[str, np.ndarray]) -> str:
    """``key: v v v`` lines in KITTI's style (values in %e, as the devkit writes them)."""
    lines = []
    for key, value in entries.items():
        flat = np.asarray(value, dtype=np.float64).reshape(-1)
        lines.append(f"{key}: " + " ".join(f"{v:.6e}" for v in flat))
    return "\n".join(lines) + "\n"


# --- poses ----------------------------------------------------------------------------------------------


def parse_poses(text: str, source: str = "<text>") -> np.ndarray:
    """Row-major 3x4 matrices, one per line -> (N, 4, 4) float64 homogeneous camera-to-world poses."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    for index, tokens in enumerate(rows):
        if len(tokens) != 12:
            raise ValueError(f"{source}:{index + 1}: a pose needs 12 values, got {len(tokens)}")
        poses[index, :3, :] = np.array([float(t) for t in tokens]).reshape(3, 4)
    return poses


def read_poses(path: os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pose file not found")
    return parse_poses(path.read_text(), str(path))


def format_poses(poses: np.ndarray) -> str:
    """(N, 3, 4) or (N, 4, 4) poses -> KITTI text (12 values per line, %.9e)."""
    poses = np.asarray(poses, dtype=np.float64)
    return "".join(" ".join(f"{v:.9e}" for v in pose[:3, :4].reshape(-1)) + "\n" for pose in poses)


def write_poses(path: os.PathLike, poses: np.ndarray) -> None:
    atomic.write_text(path, format_poses(poses))


# --- timestamps -----------------------------------------------------------------------------------------


def parse_raw_timestamps(text: str, source: str = "<text>") -> np.ndarray:
    """KITTI raw ``timestamps.txt`` (``YYYY-MM-DD HH:MM:SS.fffffffff``) -> seconds since the first frame."""
    whole_seconds: List[int] = []
    fractions: List[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            date_part, _, fraction = line.partition(".")
            base = _dt.datetime.strptime(date_part, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
            whole_seconds.append(int(base.timestamp()))
            fractions.append(float("0." + fraction) if fraction else 0.0)
        except ValueError as error:
            raise ValueError(f"{source}:{number}: bad timestamp {line!r}") from error
    if not whole_seconds:
        return np.zeros(0, dtype=np.float64)
    # subtract whole seconds as integers first: epoch seconds in float64 would lose the nanoseconds
    whole = np.array(whole_seconds, dtype=np.int64) - whole_seconds[0]
    return whole.astype(np.float64) + (np.array(fractions) - fractions[0])


def format_raw_timestamps(seconds: np.ndarray, start: _dt.datetime) -> str:
    """Seconds after ``start`` -> KITTI raw timestamp lines with nanosecond digits."""
    lines = []
    for value in seconds:
        whole = int(np.floor(value))
        nanos = int(round((value - whole) * 1e9))
        if nanos == 1_000_000_000:
            whole, nanos = whole + 1, 0
        stamp = start + _dt.timedelta(seconds=whole)
        lines.append(stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{nanos:09d}")
    return "\n".join(lines) + "\n"


def parse_odometry_times(text: str) -> np.ndarray:
    """Odometry ``times.txt``: one float (seconds) per line."""
    return np.array([float(line) for line in text.split()], dtype=np.float64)


# --- velodyne -------------------------------------------------------------------------------------------


def read_velodyne(path: os.PathLike) -> np.ndarray:
    """A Velodyne ``.bin`` scan -> (N, 4) float32 (x forward, y left, z up, reflectance)."""
    data = np.fromfile(Path(path), dtype=np.float32)
    if data.size % 4:
        raise ValueError(f"{path}: size is not a multiple of 4 float32 values")
    return data.reshape(-1, 4)
