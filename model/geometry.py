"""Warping geometry of the depth/motion model (docs/release.md §4), pure TensorFlow, float32.

Conventions (shared with ``formats/camera.py`` and ``docs/model.md``):
- camera axes: x right, y down, z forward;
- pixel centres: the pixel in column i and row j has its centre at (x, y) = (i, j) (no +0.5);
- intrinsics K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels, one per batch element, [B, 3, 3];
- a motion (R, T) named ``T_a_from_b`` maps 3D points of camera b into camera a: P_a = R P_b + T.
  The motion network given (frame a, frame b) predicts exactly this transform; T may be a per-pixel field
  on b's pixel grid (object motion);
- rotation angles r = (rx, ry, rz) in radians give R = Rx(rx) Ry(ry) Rz(rz) (docs/release.md §4.1).

Warping frame b's depth into camera a (docs/release.md §4.2): for each pixel p = (x, y, 1) of b,
P_b = D_b(p) K^-1 p, P_a = R P_b + T(p), (X, Y, Z) = K P_a, and p maps to (X/Z, Y/Z) in image a with depth Z.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


def matrix_from_angles(angles: tf.Tensor) -> tf.Tensor:
    """Rotation matrices R = Rx(rx) @ Ry(ry) @ Rz(rz) from angles [..., 3] (radians) -> [..., 3, 3].

    Elementary rotations are the standard right-handed ones, e.g. Rz = [[c, -s, 0], [s, c, 0], [0, 0, 1]].
    """
    angles = tf.convert_to_tensor(angles, tf.float32)
    rx, ry, rz = tf.unstack(angles, axis=-1)
    zero, one = tf.zeros_like(rx), tf.ones_like(rx)

    def matrix(rows):
        return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)

    cx, sx = tf.cos(rx), tf.sin(rx)
    cy, sy = tf.cos(ry), tf.sin(ry)
    cz, sz = tf.cos(rz), tf.sin(rz)
    rotation_x = matrix([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    rotation_y = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rotation_z = matrix([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    return rotation_x @ rotation_y @ rotation_z


def intrinsics_matrix(fx, fy, cx, cy) -> tf.Tensor:
    """K [..., 3, 3] = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] from tensors [...] in pixels (the tensor form of
    ``formats.camera.intrinsics_matrix``)."""
    zero, one = tf.zeros_like(fx), tf.ones_like(fx)
    return tf.stack(
        [tf.stack([fx, zero, cx], axis=-1), tf.stack([zero, fy, cy], axis=-1), tf.stack([zero, zero, one], axis=-1)],
        axis=-2,
    )


def flip_intrinsics(intrinsics: tf.Tensor, width, rule: str = "pixel_center") -> tf.Tensor:
    """K [..., 3, 3] of a horizontally flipped image: fx, fy, cy kept; cx' = W-1-cx ("pixel_center", exact for
    pixel centres: x' = W-1-x) or W-cx ("release"). K is rebuilt from fx, fy, cx, cy as the release does (skew
    dropped)."""
    intrinsics = tf.convert_to_tensor(intrinsics, tf.float32)
    offset = tf.cast(width, tf.float32) - (1.0 if rule == "pixel_center" else 0.0)
    fx, fy = intrinsics[..., 0, 0], intrinsics[..., 1, 1]
    cx, cy = intrinsics[..., 0, 2], intrinsics[..., 1, 2]
    return intrinsics_matrix(fx, fy, offset - cx, cy)


def tie_focal_aspect(intrinsics: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """K [..., 3, 3] with fy = fx * (fy / fx of ``reference`` [..., 3, 3]): learned intrinsics whose pixel aspect
    is the records' (the tensor form of ``formats.camera.tie_focal_aspect``). fx, cx, cy kept."""
    intrinsics = tf.convert_to_tensor(intrinsics, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.float32)
    fx, cx, cy = intrinsics[..., 0, 0], intrinsics[..., 0, 2], intrinsics[..., 1, 2]
    aspect = reference[..., 1, 1] / reference[..., 0, 0]
    return intrinsics_matrix(fx, fx * aspect, cx, cy)


def pixel_grid(height: int, width: int) -> tf.Tensor:
    """Homogeneous pixel-centre coordinates [H, W, 3]: entry (j, i) = (x=i, y=j, 1)."""
    x, y = tf.meshgrid(tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32))
    return tf.stack([x, y, tf.ones_like(x)], axis=-1)


def back_project(depth: tf.Tensor, intrinsics: tf.Tensor) -> tf.Tensor:
    """3D points in the camera frame [B, H, W, 3] = depth * K^-1 (x, y, 1) for depth [B, H, W] (z, not range)."""
    height, width = tf.shape(depth)[1], tf.shape(depth)[2]
    rays = tf.einsum("bij,hwj->bhwi", tf.linalg.inv(intrinsics), pixel_grid(height, width))
    return rays * depth[..., tf.newaxis]


def transform_points(points: tf.Tensor, rotation: tf.Tensor, translation: tf.Tensor) -> tf.Tensor:
    """P' = R P + T for points [B, H, W, 3], R [B, 3, 3], T [B, 3] or a per-pixel field [B, H, W, 3]."""
    translation = tf.convert_to_tensor(translation, tf.float32)
    if translation.shape.rank == 2:
        translation = translation[:, tf.newaxis, tf.newaxis, :]
    return tf.einsum("bij,bhwj->bhwi", rotation, points) + translation


def project(points: tf.Tensor, intrinsics: tf.Tensor):
    """Pinhole projection of camera-frame points [B, H, W, 3] -> (x, y, z), each [B, H, W] (pixels, depth).

    Points with z = 0 give inf/NaN pixel coordinates; ``clamp_and_filter`` marks them invalid.
    """
    image_points = tf.einsum("bij,bhwj->bhwi", intrinsics, points)
    x, y, z = tf.unstack(image_points, axis=-1)
    return x / z, y / z, z


@dataclasses.dataclass
class WarpResult:
    """Where each source pixel lands in the target image (all [B, H, W], on the source pixel grid).

    ``x``, ``y``: clamped pixel coordinates in the target image; ``depth``: the point's depth in the target
    camera; ``mask``: float32 1 where the point projects strictly inside the image (x < W-1, y < H-1), in
    front of the camera and is not NaN (docs/release.md §4.3).
    """

    x: tf.Tensor
    y: tf.Tensor
    depth: tf.Tensor
    mask: tf.Tensor

    @property
    def pixel_xy(self) -> tf.Tensor:
        """[B, H, W, 2] sampling coordinates (x = column, y = row) for ``resample_bilinear``."""
        return tf.stack([self.x, self.y], axis=-1)


def clamp_and_filter(x, y, z, height, width) -> WarpResult:
    """Validity mask and clamping of projected coordinates (docs/release.md §4.3).

    Valid: x >= 0, y >= 0, x < W-1, y < H-1 (strict), z > 0, and neither x nor y NaN. NaNs become 0, then x is
    clipped to [0, W-1] and y to [0, H-1], so invalid points sample the border.
    """
    width_f = tf.cast(width, tf.float32)
    height_f = tf.cast(height, tf.float32)
    is_finite_xy = tf.logical_not(tf.logical_or(tf.math.is_nan(x), tf.math.is_nan(y)))
    valid = tf.reduce_all(
        tf.stack([x >= 0.0, y >= 0.0, x < width_f - 1.0, y < height_f - 1.0, z > 0.0, is_finite_xy]), axis=0
    )
    x = tf.clip_by_value(tf.where(tf.math.is_nan(x), tf.zeros_like(x), x), 0.0, width_f - 1.0)
    y = tf.clip_by_value(tf.where(tf.math.is_nan(y), tf.zeros_like(y), y), 0.0, height_f - 1.0)
    return WarpResult(x=x, y=y, depth=z, mask=tf.cast(valid, tf.float32))


def warp(depth: tf.Tensor, rotation: tf.Tensor, translation: tf.Tensor, intrinsics: tf.Tensor) -> WarpResult:
    """Move the pixels of a source frame b into target camera a with ``T_a_from_b`` = (rotation, translation).

    Args:
      depth: source depth [B, H, W] or [B, H, W, 1].
      rotation: [B, 3, 3] matrices (``matrix_from_angles`` of the motion net's angles).
      translation: [B, 3] or a per-pixel field [B, H, W, 3] on the source grid (depth units).
      intrinsics: K [B, 3, 3] shared by both frames.
    Returns: ``WarpResult`` on the source grid (target coordinates, depth in the target camera, validity).
    """
    depth = tf.convert_to_tensor(depth, tf.float32)
    if depth.shape.rank == 4:
        depth = tf.squeeze(depth, axis=-1)
    rotation = tf.convert_to_tensor(rotation, tf.float32)
    points = transform_points(back_project(depth, intrinsics), rotation, translation)
    x, y, z = project(points, intrinsics)
    return clamp_and_filter(x, y, z, tf.shape(depth)[1], tf.shape(depth)[2])


def resample_bilinear(data: tf.Tensor, pixel_xy: tf.Tensor) -> tf.Tensor:
    """Bilinear sampling of data [B, H, W, C] at pixel_xy [B, H', W', 2] (x = column, y = row) -> [B, H', W', C].

    Same semantics as TF1 ``tf.contrib.resampler`` (docs/release.md §4.4): the 4 neighbours floor(x), floor(x)+1
    (same in y)
    are blended; neighbours outside the image contribute 0. Gather-based, with gradients to ``data`` and to
    ``pixel_xy`` (through the interpolation weights).
    """
    data = tf.convert_to_tensor(data)
    pixel_xy = tf.convert_to_tensor(pixel_xy, data.dtype)
    shape = tf.shape(data)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    x, y = pixel_xy[..., 0], pixel_xy[..., 1]
    x0, y0 = tf.floor(x), tf.floor(y)
    flat_data = tf.reshape(data, [batch, height * width, channels])

    def corner(x_corner, y_corner, weight):
        inside = (
            (x_corner >= 0.0)
            & (x_corner <= tf.cast(width - 1, data.dtype))
            & (y_corner >= 0.0)
            & (y_corner <= tf.cast(height - 1, data.dtype))
        )
        column = tf.clip_by_value(tf.cast(x_corner, tf.int32), 0, width - 1)
        row = tf.clip_by_value(tf.cast(y_corner, tf.int32), 0, height - 1)
        values = tf.gather(flat_data, row * width + column, batch_dims=1)
        return values * (weight * tf.cast(inside, data.dtype))[..., tf.newaxis]

    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    return (
        corner(x0, y0, wx0 * wy0)
        + corner(x0 + 1.0, y0, wx1 * wy0)
        + corner(x0, y0 + 1.0, wx0 * wy1)
        + corner(x0 + 1.0, y0 + 1.0, wx1 * wy1)
    )


def average_bidirectional_motion(rotation_ab, translation_ab, rotation_ba, translation_ba):
    """docs/release.md §2.5/4.6 estimate of T_a_from_b from the forward (a<-b) and backward (b<-a) predictions.

    R = (R_ab + R_ba^-1) / 2 (not re-orthonormalised, as released) and t = (t_ab - R t_ba) / 2.
    """
    rotation = 0.5 * (rotation_ab + tf.linalg.inv(rotation_ba))
    translation = 0.5 * (translation_ab - tf.linalg.matvec(rotation, translation_ba))
    return rotation, translation
