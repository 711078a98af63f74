"""Elements that flow through the preprocessing pipelines.

Conventions: images are RGB uint8 (H, W, 3); intrinsics are 3x3 float64 K arrays in pixels of the image
they travel with (pixel centres at integer coordinates, see ``formats.camera``), everywhere in the pipeline
(only the record writer turns K into text); masks are uint8 (H, W)
instance ids with 0 = static background. Sizes are (width, height); crop boxes are
(top, bottom, left, right) in native pixels, bottom/right exclusive.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Optional, Tuple

import numpy as np

# Dead-letter reason codes: a reason is written "<code>: <detail>" and the manifest counts by code.
CORRUPT_VIDEO = "corrupt_video"
TRUNCATED_VIDEO = "truncated_video"
UNREADABLE_FRAME = "unreadable_frame"
MISSING_CALIBRATION = "missing_calibration"
BAD_CALIBRATION = "bad_calibration"  # K (or distortion) present but invalid for the images
IMAGE_TOO_LARGE = "image_too_large"  # header claims more than formats.image_header.MAX_IMAGE_PIXELS
GREY_FRAME = "grey_frame"  # a grey frame: records are colour
SIZE_CHANGE = "size_change"
NON_MONOTONIC_TIMESTAMP = "non_monotonic_timestamp"
MISSING_TIMESTAMP = "missing_timestamp"
MISSING_MASK = "missing_mask"
BAD_MASK = "bad_mask"
RESOLVE_FAILED = "resolve_failed"
DOWNLOAD_FAILED = "download_failed"
NO_INPUT = "no_input"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_sequence_name(name: str) -> str:
    """The sequence folder name for a raw name (drive, video stem, folder, city + number), safe in list files
    and paths: one path component of [A-Za-z0-9_.-], not hidden. A name already safe is kept; otherwise the
    other characters become '_' and 8 hex digits of the raw name's SHA-1 are appended, so two raw names
    never share a folder (e.g. 'drive 1' -> 'drive_1_<hash>', distinct from a real 'drive_1')."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned == name and name and name[0] not in ".-":
        return name
    cleaned = cleaned.lstrip(".-") or "sequence"
    return f"{cleaned}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


@dataclasses.dataclass
class FrameRef:
    """A raw frame stored as one image file, planned for decoding (sources with one file per frame)."""

    source: str
    sequence: str
    index: int  # 0-based position among the sampled frames of the sequence
    raw_index: int  # index of the raw frame in its sequence (file number, frame number)
    path: str  # local path or any Beam filesystem URL (gs://...)
    timestamp: float  # seconds from the start of the sequence
    intrinsics: Optional[np.ndarray]  # 3x3 K at native resolution; None = unknown (the default guess)
    segment: int = 0  # triplets never span two segments (cut, missing frame, burst boundary)
    groundtruth_dir: Optional[str] = None
    crop: str = "none"  # "none" or "cityscapes" (rows 1/4..3/4, columns 192/2048..1856/2048)
    distortion: Optional[np.ndarray] = None  # OpenCV coefficients of the native frame (formats.distortion)


@dataclasses.dataclass(frozen=True)
class VideoInput:
    """One video file to decode as one sequence."""

    source: str
    sequence: str
    path: str  # local path or any Beam filesystem URL
    groundtruth_dir: Optional[str] = None


@dataclasses.dataclass
class Frame:
    """One sampled frame of one sequence, at working resolution after resize/crop."""

    source: str  # source kind, e.g. "kitti_raw", "video"
    sequence: str  # output folder of the sequence, e.g. "2011_09_26_drive_0001_sync_02"
    index: int  # 0-based position among the *sampled* frames of the sequence
    frame_id: str  # the raw frame's identity for humans (file path, or "video.mp4@123")
    timestamp: float  # seconds from the start of the sequence
    image: np.ndarray  # RGB uint8 (H, W, 3), working resolution
    intrinsics: np.ndarray  # 3x3 K of ``image``
    mask: Optional[np.ndarray] = None  # uint8 (H, W) ids, set by the segmenter
    native_image: Optional[np.ndarray] = None  # RGB uint8 at raw resolution, kept only if a segmenter asks
    groundtruth_dir: Optional[str] = None  # synthetic world: the sequence's groundtruth/ folder
    raw_index: Optional[int] = None  # index of the raw frame within its sequence
    segment: int = 0  # see FrameRef.segment
    native_size: Optional[Tuple[int, int]] = None  # (width, height) of the raw frame
    crop_box: Optional[Tuple[int, int, int, int]] = None  # crop applied before the resize
    distortion: Optional[np.ndarray] = None  # coefficients undistorted away before the crop/resize
    native_intrinsics: Optional[np.ndarray] = None  # 3x3 K of the native frame when ``distortion`` is set


@dataclasses.dataclass
class Triplet:
    """Three consecutive frames of one sequence, ready to be written as record ``record_id``."""

    sequence: str
    record_id: str
    frames: Tuple[Frame, Frame, Frame]
    masks: Tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Filtered:
    """An input left out on purpose (not an error): e.g. an Eigen test scene or a static triplet."""

    reason: str
    item: str


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A rejected input, written as one JSON line: which source and frame, and why."""

    source: str
    frame: str
    reason: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @property
    def code(self) -> str:
        """The reason code, e.g. ``unreadable_frame`` for ``unreadable_frame: empty file``."""
        return self.reason.split(":", 1)[0].strip()


def dead_letter(source: str, frame: str, code: str, detail: str = "") -> DeadLetter:
    return DeadLetter(source=source, frame=frame, reason=f"{code}: {detail}" if detail else code)
