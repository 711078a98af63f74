"""Elements that flow through the preprocessing pipelines.

Conventions: images are RGB uint8 (H, W, 3); intrinsics are 3x3 float64 K in pixels of the image they
travel with (pixel centres at integer coordinates, see ``formats.camera``); masks are uint8 (H, W)
instance ids with 0 = static background.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Frame:
    """One sampled frame of one sequence, at working resolution after resize/crop."""

    source: str                 # source kind, e.g. "kitti_raw", "video"
    sequence: str               # output folder of the sequence, e.g. "2011_09_26_drive_0001_sync_02"
    index: int                  # 0-based position among the *sampled* frames of the sequence
    frame_id: str               # the raw frame's identity for humans (file path, or "video.mp4@123")
    timestamp: float            # seconds from the start of the sequence
    image: np.ndarray           # RGB uint8 (H, W, 3), working resolution
    intrinsics: np.ndarray      # 3x3 K of ``image``
    mask: Optional[np.ndarray] = None          # uint8 (H, W) ids, set by the segmenter
    native_image: Optional[np.ndarray] = None  # RGB uint8 at raw resolution, kept only if a segmenter asks
    groundtruth_dir: Optional[str] = None      # synthetic world: the sequence's groundtruth/ folder
    raw_index: Optional[int] = None            # index of the raw frame within its sequence


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A rejected input, written as one JSON line: which source and frame, and why."""

    source: str
    frame: str
    reason: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
