"""Image plumbing shared by the evaluation stages: model inputs, prediction resizing, depth visualisations.

Resize convention (the one wilddepth's evaluation uses everywhere, docs/release.md §6.1 / 1.5): the whole raw
image (after an optional crop, e.g. Cityscapes' rows 256:768, columns 192:1856) is resized to the model's (H, W) with
OpenCV bilinear interpolation (``cv2.INTER_LINEAR``, pixel-centre aligned), no aspect-preserving crop. The
predicted depth is resized back to the ground truth's size bilinearly, either the depth itself (``"depth"``,
SfMLearner) or its inverse (``"disparity"``, Monodepth2), then median-scaled.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

RESIZE_MODES = ("depth", "disparity")


def model_input(rgb: np.ndarray, size_hw: Tuple[int, int], crop_box: Optional[Sequence[int]] = None) -> np.ndarray:
    """RGB uint8 (H0, W0, 3) -> float32 (H, W, 3) in [0, 1] at the model's size; ``crop_box`` = (t, b, l, r)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    if crop_box is not None:
        top, bottom, left, right = (int(v) for v in crop_box)
        if not (0 <= top < bottom <= rgb.shape[0] and 0 <= left < right <= rgb.shape[1]):
            raise ValueError(f"crop box {tuple(crop_box)} does not fit an image of {rgb.shape[:2]}")
        rgb = rgb[top:bottom, left:right]
    height, width = (int(v) for v in size_hw)
    if (rgb.shape[0], rgb.shape[1]) != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return rgb.astype(np.float32) / 255.0


def resize_prediction(depth: np.ndarray, size_hw: Tuple[int, int], mode: str = "depth") -> np.ndarray:
    """Bilinear resize of a predicted depth map to (H, W): of the depth, or of 1/depth (``"disparity"``)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"predicted depth must be (H, W), got {depth.shape}")
    if not np.all(np.isfinite(depth)) or np.any(depth <= 0):
        raise ValueError("predicted depth must be finite and positive")
    height, width = (int(v) for v in size_hw)
    if mode == "depth":
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
    return 1.0 / cv2.resize(1.0 / depth, (width, height), interpolation=cv2.INTER_LINEAR)


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """BGR uint8 visualisation: inverse depth on OpenCV's MAGMA map (near bright); depth <= 0 is black."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    inverse = np.zeros_like(depth)
    inverse[valid] = 1.0 / np.clip(depth[valid], min_depth, max_depth)
    scaled = (inverse - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)
    colour = cv2.applyColorMap(np.clip(scaled * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_MAGMA)
    colour[~valid] = 0
    return colour


def comparison_panel(
    rgb: np.ndarray, prediction: np.ndarray, ground_truth: np.ndarray, max_width: int = 640
) -> np.ndarray:
    """BGR image: input RGB, predicted depth, ground truth stacked vertically (all at the ground truth's size).

    The colour range is shared: from the 5th percentile of the valid ground truth (near) to its maximum. Sparse
    (Velodyne) ground truth is dilated by 2 pixels for visibility.
    """
    height, width = ground_truth.shape
    valid = ground_truth[ground_truth > 0]
    near = float(np.percentile(valid, 5)) if valid.size else 1.0
    far = float(valid.max()) if valid.size else 80.0
    near, far = max(near, 1e-3), max(far, near * 1.01)
    image = cv2.cvtColor(cv2.resize(np.asarray(rgb, np.uint8), (width, height)), cv2.COLOR_RGB2BGR)
    shown_gt = ground_truth
    if valid.size and valid.size < 0.5 * ground_truth.size:
        shown_gt = cv2.dilate(ground_truth.astype(np.float32), np.ones((3, 3), np.uint8), iterations=2)
    panel = np.concatenate([image, colorize_depth(prediction, near, far), colorize_depth(shown_gt, near, far)])
    if width > max_width:
        panel = cv2.resize(
            panel, (max_width, int(round(panel.shape[0] * max_width / width))), interpolation=cv2.INTER_AREA
        )
    return panel
