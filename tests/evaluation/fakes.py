"""Test doubles for the evaluation stages: a tiny KITTI-raw-layout world and a predictor that "sees" it.

Every frame encodes its index in a uniform band of red value (index + 1) in the top 8 rows (uniform, so it
survives any bilinear resize); the rest of the image encodes inverse depth as grey level. The fake predictor
reads both back: depth from the grey level (times an arbitrary scale, which median scaling must remove) and the
relative motion T_a_from_b of the two frames it is given from the world's ground-truth poses (translation
times ``motion_scale``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from formats import groundtruth, struct2depth

BAND_ROWS = 8
DATE = "2011_09_26"


def yaw(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def scene_depth(height: int, width: int, shift: float) -> np.ndarray:
    """Road-like depth: a ground plane below the horizon (depth ~ 1 / (row - horizon)), 60 m above it."""
    rows = np.arange(height, dtype=np.float64)[:, None]
    horizon = 0.4 * height
    ground = 1.6 * 0.8 * width / np.maximum(rows - horizon, 1e-6)
    depth = np.where(rows > horizon + 1, np.minimum(ground, 60.0), 60.0) * np.ones((1, width))
    columns = np.arange(width)[None, :]
    depth = depth * (1.0 + 0.3 * np.sin(columns / 7.0 + shift) * (rows > horizon + 1))
    return depth.astype(np.float32)


def frame_image(depth: np.ndarray, index: int) -> np.ndarray:
    grey = np.clip(255.0 * 2.0 / depth, 0, 255).astype(np.uint8)
    image = np.repeat(grey[:, :, None], 3, axis=2)
    image[:BAND_ROWS] = 0
    image[:BAND_ROWS, :, 0] = index + 1
    return image


def trajectory(num_frames: int, speed: float, yaw_rate: float) -> np.ndarray:
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    for k in range(1, num_frames):
        step = np.eye(4)
        step[:3, :3] = yaw(yaw_rate)
        step[:3, 3] = [0.05 * speed, 0.0, speed]
        poses[k] = poses[k - 1] @ step
    return poses


def make_kitti_raw_world(
    root: Path, num_drives: int = 2, num_frames: int = 8, size: Tuple[int, int] = (90, 300)
) -> Dict[str, np.ndarray]:
    """Write drives ``<root>/<DATE>/<DATE>_drive_000N_sync`` with images and groundtruth/; return poses by drive.

    Frame indices are global across drives (drive d, frame k -> index d * num_frames + k) so each image is unique.
    """
    height, width = size
    poses_by_drive = {}
    for drive_number in range(num_drives):
        drive = Path(root) / DATE / f"{DATE}_drive_{drive_number + 1:04d}_sync"
        poses = trajectory(num_frames, speed=1.0 + 0.3 * drive_number, yaw_rate=0.02 * (drive_number + 1))
        for k in range(num_frames):
            depth = scene_depth(height, width, shift=0.3 * k + drive_number)
            image = frame_image(depth, drive_number * num_frames + k)
            path = drive / "image_02" / "data" / f"{k:010d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(struct2depth.encode_png(image))
            groundtruth.write_frame(drive / "groundtruth", k, depth, np.zeros((height, width), np.uint8))
        intrinsics = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
        groundtruth.write_sequence(
            drive / "groundtruth", groundtruth.GroundTruth(poses, intrinsics, 0.1 * np.arange(num_frames))
        )
        poses_by_drive[drive.name] = poses
    return poses_by_drive


def write_triplet_folder(folder: Path, frames: List[np.ndarray]) -> None:
    """The release's odometry test layout: triplet k = frames (k, k+1, k+2) side by side, named by k."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(len(frames) - 2):
        triplet = struct2depth.pack_triplet(frames[k : k + 3])
        (folder / f"{k:010d}.png").write_bytes(struct2depth.encode_png(triplet))


class FakePredictor:
    """Same methods as ``model.inference.InferenceModel``; records its calls."""

    def __init__(
        self,
        image_size=(32, 96),
        poses_by_index: Dict[int, np.ndarray] | None = None,
        depth_scale: float = 0.37,
        motion_scale: float = 0.5,
        intrinsics_scale: float = 0.8,
    ):
        self.image_size = tuple(image_size)
        self.poses_by_index = poses_by_index or {}
        self.depth_scale = depth_scale
        self.motion_scale = motion_scale
        self.intrinsics_scale = intrinsics_scale
        self.depth_calls: List[Tuple[tuple, bool]] = []
        self.egomotion_calls: List[tuple] = []
        self.egomotion_flips: List[bool] = []

    def _check(self, images: np.ndarray) -> None:
        assert images.dtype == np.float32 and images.ndim == 4 and images.shape[1:] == self.image_size + (3,)
        assert 0.0 <= images.min() and images.max() <= 1.0

    @staticmethod
    def frame_index(image: np.ndarray) -> int:
        return int(round(float(image[0, 0, 0]) * 255.0)) - 1

    def predict_depth(self, images: np.ndarray, flip_augment: bool = True) -> np.ndarray:
        self._check(images)
        self.depth_calls.append((images.shape, flip_augment))
        grey = images[..., 1].astype(np.float64)
        return (self.depth_scale * 2.0 / np.maximum(grey, 2.0 / 255.0)).astype(np.float32)

    def predict_egomotion(self, image_a: np.ndarray, image_b: np.ndarray, flip_augment: bool = False):
        """The true motion (a mirror-averaged exact motion is the motion itself, so ``flip_augment`` is only
        recorded in ``egomotion_flips``)."""
        self._check(image_a)
        self._check(image_b)
        self.egomotion_calls.append(image_a.shape)
        self.egomotion_flips.append(flip_augment)
        rotations, translations = [], []
        for a, b in zip(image_a, image_b):
            pose_a = self.poses_by_index[self.frame_index(a)]
            pose_b = self.poses_by_index[self.frame_index(b)]
            relative = np.linalg.inv(pose_a) @ pose_b  # T_a_from_b
            rotations.append(relative[:3, :3])
            translations.append(self.motion_scale * relative[:3, 3])
        height, width = self.image_size
        k = np.array(
            [[self.intrinsics_scale * width, 0, width / 2], [0, self.intrinsics_scale * width, height / 2], [0, 0, 1.0]]
        )
        count = image_a.shape[0]
        return (
            np.array(rotations, np.float32),
            np.array(translations, np.float32),
            np.repeat(k[None], count, axis=0).astype(np.float32),
        )
