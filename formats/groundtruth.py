"""The synthetic world's ground-truth sidecar, one ``groundtruth/`` folder per sequence.

- ``depth/<frame>.npy``: float32 metres (z along the optical axis), H x W at raw resolution;
- ``masks/<frame>.png``: uint8 (or uint16 if ids > 255) instance ids, 0 = static background;
- ``poses.txt``: one row-major 3x4 camera-to-world matrix per frame (x right, y down, z forward);
- ``intrinsics.txt``: the 9 comma-separated values of K at raw resolution;
- ``timestamps.txt``: seconds, one per line.
``<frame>`` is the frame's index in the sequence, zero-padded to 10 digits.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from formats import atomic, kitti
from formats.struct2depth import format_intrinsics, parse_intrinsics

FRAME_DIGITS = 10


def frame_name(index: int) -> str:
    return f"{index:0{FRAME_DIGITS}d}"


class GroundTruth(NamedTuple):
    """Per-sequence ground truth: poses (N, 4, 4) camera-to-world, K (3, 3), timestamps (N,) seconds."""

    poses: np.ndarray
    intrinsics: np.ndarray
    timestamps: np.ndarray


def write_frame(folder: os.PathLike, index: int, depth: np.ndarray, mask: np.ndarray) -> None:
    folder = Path(folder)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(depth, dtype=np.float32))
    atomic.write_bytes(folder / "depth" / f"{frame_name(index)}.npy", buffer.getvalue())
    dtype = np.uint8 if int(np.max(mask, initial=0)) <= 255 else np.uint16
    ok, encoded = cv2.imencode(".png", np.asarray(mask).astype(dtype))
    if not ok:
        raise RuntimeError("failed to encode mask")
    atomic.write_bytes(folder / "masks" / f"{frame_name(index)}.png", encoded.tobytes())


def write_sequence(folder: os.PathLike, ground_truth: GroundTruth) -> None:
    folder = Path(folder)
    kitti.write_poses(folder / "poses.txt", ground_truth.poses)
    atomic.write_text(folder / "intrinsics.txt", format_intrinsics(ground_truth.intrinsics))
    atomic.write_text(folder / "timestamps.txt", "".join(f"{t:.6f}\n" for t in ground_truth.timestamps))


def read_sequence(folder: os.PathLike) -> GroundTruth:
    folder = Path(folder)
    return GroundTruth(
        poses=kitti.read_poses(folder / "poses.txt"),
        intrinsics=parse_intrinsics((folder / "intrinsics.txt").read_text(), str(folder / "intrinsics.txt")),
        timestamps=np.loadtxt(folder / "timestamps.txt", dtype=np.float64, ndmin=1),
    )


def read_depth(folder: os.PathLike, index: int) -> np.ndarray:
    return np.load(Path(folder) / "depth" / f"{frame_name(index)}.npy")


def read_mask(folder: os.PathLike, index: int) -> np.ndarray:
    path = Path(folder) / "masks" / f"{frame_name(index)}.png"
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FileNotFoundError(f"{path}: mask missing or unreadable")
    return mask
