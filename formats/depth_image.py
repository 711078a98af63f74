"""Depth maps as 16-bit PNG, the KITTI depth benchmark's convention.

A pixel value v in 1..65535 means depth v / DEPTH_PNG_SCALE (KITTI: metres = v / 256); v = 0 means "no
depth" (non-finite or non-positive). Depths are rounded to the nearest 1/256 and clipped to
[1/256, 65535/256] = [0.0039, 255.996]; :func:`encode_depth_png` reports how many pixels were clipped.
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

DEPTH_PNG_SCALE = 256.0
MAX_VALUE = 65535


def depth_to_uint16(depth: np.ndarray, scale: float = DEPTH_PNG_SCALE) -> Tuple[np.ndarray, int]:
    """(uint16 (H, W) = round(depth * scale) clipped to 1..65535, 0 where invalid; number of clipped pixels)."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.zeros(depth.shape, dtype=np.float64)
    scaled[valid] = np.rint(depth[valid] * scale)
    clipped = int(np.count_nonzero(valid & ((scaled < 1) | (scaled > MAX_VALUE))))
    values = np.where(valid, np.clip(scaled, 1, MAX_VALUE), 0).astype(np.uint16)
    return values, clipped


def uint16_to_depth(values: np.ndarray, scale: float = DEPTH_PNG_SCALE) -> np.ndarray:
    """float32 depth of a 16-bit depth image; 0 stays 0 (no depth)."""
    values = np.asarray(values)
    if values.dtype != np.uint16 or values.ndim != 2:
        raise ValueError(f"expected a uint16 (H, W) depth image, got {values.dtype} {values.shape}")
    return (values.astype(np.float32) / np.float32(scale)).astype(np.float32)


def encode_depth_png(depth: np.ndarray, scale: float = DEPTH_PNG_SCALE) -> Tuple[bytes, int]:
    """(16-bit greyscale PNG bytes of :func:`depth_to_uint16`, number of clipped pixels)."""
    values, clipped = depth_to_uint16(depth, scale)
    ok, data = cv2.imencode(".png", values)
    if not ok:
        raise ValueError("OpenCV could not encode the depth PNG")
    return data.tobytes(), clipped


def decode_depth_png(data: bytes, scale: float = DEPTH_PNG_SCALE) -> np.ndarray:
    """float32 depth (H, W) of a 16-bit depth PNG's bytes (0 = no depth)."""
    values = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if values is None:
        raise ValueError("not a decodable PNG")
    return uint16_to_depth(values, scale)
