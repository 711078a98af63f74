"""Crop and resize of frames and masks, with the intrinsics transformed in the same function.

Pixel-centre convention of ``formats.camera``: pixel (i, j) has its centre at (x, y) = (i, j). Images are
resized with ``cv2.INTER_AREA`` (area averaging, which maps output centre x' to input (x' + 0.5) / s - 0.5
like bilinear resizing, so ``formats.camera.scale_intrinsics`` is exact for it); masks with
``cv2.INTER_NEAREST`` so that object ids are never blended.
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from formats import camera
from formats.camera import crop_and_resize_intrinsics, scale_intrinsics

CropBox = Tuple[int, int, int, int]  # top, bottom, left, right (native pixels, bottom/right exclusive)


def validate_crop_box(crop_box: CropBox, native_size: Tuple[int, int]) -> None:
    width, height = native_size
    top, bottom, left, right = crop_box
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(f"crop box (top, bottom, left, right) = {crop_box} does not fit a {width}x{height} image")


def transform_image(
    image: np.ndarray,
    intrinsics: np.ndarray,
    size: Tuple[int, int],
    crop_box: Optional[CropBox] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Crop (optional) then resize ``image`` to ``size`` = (width, height); return (image, K of the result).

    ``intrinsics`` is K of the native ``image``. Works for any channel order (the pipelines resize BGR).
    """
    height, width = image.shape[:2]
    if crop_box is not None:
        validate_crop_box(crop_box, (width, height))
        top, bottom, left, right = crop_box
        image = image[top:bottom, left:right]
        matrix = crop_and_resize_intrinsics(intrinsics, crop_box, size)
    else:
        matrix = scale_intrinsics(intrinsics, size[0] / float(width), size[1] / float(height))
    if image.shape[1] != size[0] or image.shape[0] != size[1]:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image), matrix


def transform_mask(mask: np.ndarray, size: Tuple[int, int], crop_box: Optional[CropBox] = None) -> np.ndarray:
    """The same crop and resize for an (H, W) id mask at native resolution.

    Nearest neighbour with pixel-centre alignment (``INTER_NEAREST_EXACT``: output pixel x' takes the input
    pixel containing (x' + 0.5) / s - 0.5, the mapping ``resize_frame`` uses for images and K).
    """
    if crop_box is not None:
        validate_crop_box(crop_box, (mask.shape[1], mask.shape[0]))
        top, bottom, left, right = crop_box
        mask = mask[top:bottom, left:right]
    if mask.shape[1] != size[0] or mask.shape[0] != size[1]:
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST_EXACT)
    return np.ascontiguousarray(mask)


def mask_to_frame(frame, native_mask: np.ndarray) -> np.ndarray:
    """Map a mask computed on ``frame.native_image`` to ``frame.image``'s resolution (for segmenters): the
    frame's undistortion first (same map, nearest; ``formats.distortion``), then its crop and resize."""
    height, width = frame.image.shape[:2]
    if getattr(frame, "distortion", None) is not None:
        from formats.distortion import undistort_mask

        native_mask = undistort_mask(native_mask, frame.native_intrinsics, frame.distortion)
    return transform_mask(native_mask, (width, height), frame.crop_box)


def default_intrinsics(native_size: Tuple[int, int]) -> np.ndarray:
    """The guess used when a camera is unknown: fx = fy = native width (about 53 degrees of horizontal field
    of view), principal point at the image centre ((W - 1) / 2, (H - 1) / 2). The model can learn K."""
    width, height = native_size
    return camera.intrinsics_matrix(float(width), float(width), (width - 1) / 2.0, (height - 1) / 2.0)
