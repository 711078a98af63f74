"""Cityscapes ``camera/*.json`` intrinsics and sequence file names."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from formats.camera import intrinsics_matrix, validate_intrinsics

FRAME_NAME = re.compile(r"^(?P<city>[a-z_]+)_(?P<sequence>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
IMAGE_SIZE = (2048, 1024)  # width, height of Cityscapes frames
CROP_BOX = (256, 768, 192, 1856)  # top, bottom, left, right (S2D util.CITYSCAPES_CROP)


class FrameName(NamedTuple):
    city: str
    sequence: int
    frame: int


def parse_frame_name(name: str) -> FrameName:
    match = FRAME_NAME.match(os.path.basename(name))
    if not match:
        raise ValueError(f"{name}: not a Cityscapes '<city>_<seq>_<frame>_leftImg8bit.png' name")
    return FrameName(match["city"], int(match["sequence"]), int(match["frame"]))


def frame_stem(city: str, sequence: int, frame: int) -> str:
    return f"{city}_{sequence:06d}_{frame:06d}"


def camera_json(intrinsics: np.ndarray, baseline: float = 0.209313) -> str:
    """The camera JSON Cityscapes ships (extrinsic block plus intrinsic fx, fy, u0, v0), indented as
    Cityscapes writes it, so that line-position parsers of the original scripts also work."""
    document = {
        "extrinsic": {"baseline": baseline, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": -0.0195, "z": 1.18},
        "intrinsic": {
            "fx": float(intrinsics[0, 0]),
            "fy": float(intrinsics[1, 1]),
            "u0": float(intrinsics[0, 2]),
            "v0": float(intrinsics[1, 2]),
        },
    }
    return json.dumps(document, indent=4) + "\n"


def read_camera_intrinsics(path: os.PathLike, read_text: Optional[Callable[[str], str]] = None) -> np.ndarray:
    """K (3x3 float64, pixels of the 2048x1024 frame) from a Cityscapes camera JSON (``intrinsic.fx, fy, u0, v0``).

    ``read_text`` reads the file (default: the local file system; the pipelines pass one that also reads
    ``gs://``). Raises FileNotFoundError for a missing local file, OSError when reading fails, and ValueError
    naming ``path`` for a file that is not a camera JSON or whose K is not a finite pinhole matrix with
    fx, fy > 0.
    """
    if read_text is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: camera file not found")
        text = Path(path).read_text()
    else:
        text = read_text(str(path))
    try:
        intrinsic = json.loads(text)["intrinsic"]
        matrix = intrinsics_matrix(
            float(intrinsic["fx"]), float(intrinsic["fy"]), float(intrinsic["u0"]), float(intrinsic["v0"])
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a Cityscapes camera file ({error})") from error
    try:
        return validate_intrinsics(matrix)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
