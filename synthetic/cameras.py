"""Per-sequence cameras of the "wild" world: every sequence is filmed by its own pinhole camera.

A camera is drawn from :class:`CameraRanges` with its own random stream ``default_rng([seed, sequence, 1])``
(independent of the scene's stream, so the scenery of a sequence does not depend on its camera):

- native frame size (and so aspect ratio): one of ``sizes`` (``"WIDTHxHEIGHT"``);
- horizontal field of view uniform in [``hfov_min_deg``, ``hfov_max_deg``]; square pixels, so
  fx = fy = (W / 2) / tan(hfov / 2) at the native size;
- principal point: the image centre ((W - 1) / 2, (H - 1) / 2 in the pixel-centre convention of
  :mod:`formats.camera`) plus an offset uniform in +-``principal_point_offset`` x W (x) and x H (y);
- frame rate: one of ``fps``.

Rendering at another size scales the native K exactly (:func:`formats.camera.scale_intrinsics`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Tuple

import numpy as np

from formats.camera import intrinsics_matrix, scale_intrinsics
from formats.params import Config, param

CAMERA_STREAM = 1  # third entropy word of the camera's random stream


def parse_size(text) -> Tuple[int, int]:
    """``"1280x720"`` (or a (width, height) pair) -> (1280, 720); ValueError on anything else."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        width, height = text
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        if len(parts) != 2:
            raise ValueError(f"bad frame size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
        width, height = parts
    try:
        width, height = int(width), int(height)
    except ValueError:
        raise ValueError(f"bad frame size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if width < 8 or height < 8:
        raise ValueError(f"frame size {text!r} is too small (at least 8x8)")
    return width, height


@dataclasses.dataclass(frozen=True)
class CameraRanges(Config):
    """What a wild camera is drawn from (angles in degrees, offsets as a fraction of the frame size); the
    ``wild_camera:`` mapping of params.yaml."""

    hfov_min_deg: float = param(
        40.0, help="horizontal field of view, uniform in [min, max] degrees; square pixels", minimum=1.0
    )
    hfov_max_deg: float = param(90.0, help="upper end of the field-of-view range (degrees, < 179)")
    principal_point_offset: float = param(
        0.03, help="cx, cy = image centre + uniform +-offset x width (x) / height (y); in [0, 0.5)", minimum=0.0
    )
    sizes: Tuple[str, ...] = param(
        ("1242x375", "1280x720", "960x540", "1024x768", "640x480"),
        help="native frame sizes WIDTHxHEIGHT (aspect ratios) to pick from",
    )
    fps: Tuple[float, ...] = param(
        (10.0, 15.0, 20.0),
        help="frame rates to pick from (a sequence lasts frames_per_sequence / fps seconds)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "sizes", tuple(f"{w}x{h}" for w, h in self.frame_sizes))  # canonical WxH

    def check(self) -> Iterable[str]:
        if not self.hfov_min_deg <= self.hfov_max_deg < 179.0:
            yield (
                f"hfov_max_deg: need 1 <= hfov_min_deg <= hfov_max_deg < 179, got "
                f"{self.hfov_min_deg}..{self.hfov_max_deg}"
            )
        if not self.principal_point_offset < 0.5:
            yield f"principal_point_offset: must be in [0, 0.5), got {self.principal_point_offset}"
        if not self.sizes:
            yield "sizes: sizes is empty"
        for size in self.sizes:
            try:
                parse_size(size)
            except ValueError as error:
                yield f"sizes: {error}"
        if not self.fps or not all(value > 0 for value in self.fps):
            yield f"fps: must be a non-empty list of positive frame rates, got {list(self.fps)}"

    @property
    def frame_sizes(self) -> Tuple[Tuple[int, int], ...]:
        """``sizes`` as (width, height) pairs in pixels."""
        return tuple(parse_size(size) for size in self.sizes)


@dataclasses.dataclass(frozen=True)
class Camera:
    """A sequence's camera at its rendered size: K in pixels (pixel-centre convention), fps in frames/s."""

    width: int
    height: int
    intrinsics: np.ndarray
    fps: float
    native_size: Tuple[int, int]
    hfov_deg: float  # horizontal field of view at the native size (unchanged by scaling)


def draw_camera(ranges: CameraRanges, seed: int, sequence: int) -> Camera:
    """The native camera of sequence ``sequence`` of the world drawn with ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(sequence), CAMERA_STREAM])
    width, height = parse_size(ranges.sizes[int(rng.integers(len(ranges.sizes)))])
    hfov = float(rng.uniform(ranges.hfov_min_deg, ranges.hfov_max_deg))
    focal = (width / 2.0) / math.tan(math.radians(hfov) / 2.0)
    offset_x, offset_y = rng.uniform(-ranges.principal_point_offset, ranges.principal_point_offset, 2)
    cx = (width - 1) / 2.0 + offset_x * width
    cy = (height - 1) / 2.0 + offset_y * height
    fps = float(ranges.fps[int(rng.integers(len(ranges.fps)))])
    return Camera(width, height, intrinsics_matrix(focal, focal, cx, cy), fps, (width, height), hfov)


def rendered_size(native_size: Tuple[int, int], width: int = 0, height: int = 0) -> Tuple[int, int]:
    """(width, height) in pixels to render a camera of ``native_size`` at: both 0 = native; one 0 = that side
    follows the native aspect ratio (rounded); both given = exactly that size. The one rule of every layout's
    camera and every wild camera; raises ValueError below 8x8 or for negative sizes."""
    native_width, native_height = int(native_size[0]), int(native_size[1])
    width, height = int(width), int(height)
    if width < 0 or height < 0:
        raise ValueError(f"width and height must be >= 0, got {width}x{height}")
    if width == 0 and height == 0:
        width, height = native_width, native_height
    elif height == 0:
        height = max(1, int(round(width * native_height / native_width)))
    elif width == 0:
        width = max(1, int(round(height * native_width / native_height)))
    if width < 8 or height < 8:
        raise ValueError(f"frame size {width}x{height} is too small (at least 8x8)")
    return width, height


def sized(camera: Camera, width: int = 0, height: int = 0) -> Camera:
    """``camera`` rendered at the size ``rendered_size`` gives (then fx/fy may change by different factors).
    K exact (``formats.camera.scale_intrinsics``)."""
    native_width, native_height = camera.native_size
    if (camera.width, camera.height) != camera.native_size:
        raise ValueError("sized() takes a native camera (from draw_camera)")
    if int(width) == 0 and int(height) == 0:
        return camera
    width, height = rendered_size(camera.native_size, width, height)
    K = scale_intrinsics(camera.intrinsics, width / native_width, height / native_height)
    return dataclasses.replace(camera, width=width, height=height, intrinsics=K)
