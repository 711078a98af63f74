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
from typing import Tuple

import numpy as np

from formats.camera import intrinsics_matrix, scale_intrinsics

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
class CameraRanges:
    """What a wild camera is drawn from (angles in degrees, offsets as a fraction of the frame size)."""

    hfov_min_deg: float = 40.0
    hfov_max_deg: float = 90.0
    principal_point_offset: float = 0.03
    sizes: Tuple[Tuple[int, int], ...] = ((1242, 375), (1280, 720), (960, 540), (1024, 768), (640, 480))
    fps: Tuple[float, ...] = (10.0, 15.0, 20.0)

    @staticmethod
    def from_params(params) -> "CameraRanges":
        """From the ``wild_camera:`` mapping of params.yaml (sizes as ``WxH`` strings, fps as numbers)."""
        params = dict(params or {})
        known = {field.name for field in dataclasses.fields(CameraRanges)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"wild_camera: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = {}
        for name in ("hfov_min_deg", "hfov_max_deg", "principal_point_offset"):
            if name in params:
                values[name] = _number(params[name], f"wild_camera.{name}")
        if "sizes" in params:
            values["sizes"] = tuple(parse_size(size) for size in _as_list(params["sizes"]))
        if "fps" in params:
            values["fps"] = tuple(_number(value, "wild_camera.fps") for value in _as_list(params["fps"]))
        return CameraRanges(**values).validate()

    def validate(self) -> "CameraRanges":
        if not 1.0 <= self.hfov_min_deg <= self.hfov_max_deg < 179.0:
            raise ValueError(
                f"wild_camera: need 1 <= hfov_min_deg <= hfov_max_deg < 179, got "
                f"{self.hfov_min_deg}..{self.hfov_max_deg}"
            )
        if not 0.0 <= self.principal_point_offset < 0.5:
            raise ValueError(
                f"wild_camera.principal_point_offset must be in [0, 0.5), got {self.principal_point_offset}"
            )
        if not self.sizes:
            raise ValueError("wild_camera.sizes is empty")
        for size in self.sizes:
            parse_size(size)
        if not self.fps or not all(value > 0 and math.isfinite(value) for value in self.fps):
            raise ValueError(f"wild_camera.fps must be a non-empty list of positive frame rates, got {list(self.fps)}")
        return self


def _number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return number


def _as_list(value):
    if isinstance(value, str):
        return [item for item in value.split(",") if item.strip()]
    return list(value)


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


def sized(camera: Camera, width: int = 0, height: int = 0) -> Camera:
    """``camera`` rendered at another size: both 0 = native; one 0 = that side follows the native aspect
    ratio (rounded); both given = exactly that size (then fx/fy change by different factors). K exact."""
    native_width, native_height = camera.native_size
    if (camera.width, camera.height) != camera.native_size:
        raise ValueError("sized() takes a native camera (from draw_camera)")
    width, height = int(width), int(height)
    if width < 0 or height < 0:
        raise ValueError(f"width and height must be >= 0, got {width}x{height}")
    if width == 0 and height == 0:
        return camera
    if height == 0:
        height = max(1, int(round(width * native_height / native_width)))
    elif width == 0:
        width = max(1, int(round(height * native_width / native_height)))
    if width < 8 or height < 8:
        raise ValueError(f"frame size {width}x{height} is too small (at least 8x8)")
    K = scale_intrinsics(camera.intrinsics, width / native_width, height / native_height)
    return dataclasses.replace(camera, width=width, height=height, intrinsics=K)
