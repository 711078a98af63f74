"""Tiny hand-made inputs in the real datasets' layouts (written into pytest's tmp_path)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from formats import kitti

K_NATIVE = np.array([[120.0, 0.0, 47.5], [0.0, 118.0, 23.25], [0.0, 0.0, 1.0]])
NATIVE = (96, 48)  # width, height


def frame_image(seed: int, size=NATIVE) -> np.ndarray:
    """A smooth textured BGR frame; neighbouring seeds look alike (no false scene cuts)."""
    width, height = size
    x = np.linspace(0, 4 * np.pi, width)[None, :] + 0.15 * seed
    y = np.linspace(0, 2 * np.pi, height)[:, None]
    base = (np.sin(x) * np.cos(y) + 1.0) * 100 + 20
    return np.stack([base, base * 0.8 + 10, 255 - base], axis=-1).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(data.tobytes())


def kitti_calibration(intrinsics=K_NATIVE, size=NATIVE) -> str:
    projection = np.zeros((3, 4))
    projection[:, :3] = intrinsics
    return kitti.format_calibration(
        {
            "S_rect_02": np.array(size, dtype=float),
            "P_rect_02": projection,
            "S_rect_03": np.array(size, dtype=float),
            "P_rect_03": projection,
        }
    )


def make_kitti_drive(
    root: Path,
    date: str,
    drive: int,
    frames: int,
    calibration: bool = True,
    timestamps: Optional[Sequence[float]] = None,
    camera: int = 2,
) -> Path:
    """<root>/<date>/<date>_drive_<drive:04d>_sync/image_0X/data/<10 digits>.png"""
    date_dir = root / date
    date_dir.mkdir(parents=True, exist_ok=True)
    if calibration:
        (date_dir / "calib_cam_to_cam.txt").write_text(kitti_calibration())
    drive_dir = date_dir / f"{date}_drive_{drive:04d}_sync"
    image_dir = drive_dir / f"image_0{camera}"
    for index in range(frames):
        write_png(image_dir / "data" / f"{index:010d}.png", frame_image(index + 7 * drive))
    if timestamps is not None:
        start = dt.datetime(2011, 9, 26, 13, 0, 0)
        (image_dir / "timestamps.txt").write_text(kitti.format_raw_timestamps(np.array(timestamps), start))
    return drive_dir


def make_video(path: Path, frames: int, fps: float = 10.0, size=NATIVE, fourcc: str = "mp4v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for index in range(frames):
        writer.write(frame_image(index, size))
    writer.release()
    return path
