"""Loss terms of the depth/motion model (docs/release.md §3.1-3.3 and the mask-free option of section 8).

Naming as in docs/release.md §3: frame 1 is the *source* (the frame whose pixels are warped and where every loss lives),
frame 2 the *target*; a ``WarpResult`` (model/geometry.py) says where each frame-1 pixel lands in frame 2.
Images are [B, H, W, 3] in [0, 1], depths [B, H, W, 1] (or [B, H, W]), translation fields [B, H, W, 3].
All terms are unweighted scalars; ``DepthMotionModel`` applies the weights.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from model.geometry import WarpResult, resample_bilinear
from model.masks import MIN_OBJECT_AREA, NUM_IDS

SSIM_C2 = 9e-6
SSIM_WEIGHT_EPSILON = 0.01
DEPTH_PROXIMITY_EPSILON = 1e-4
CYCLE_EPSILON = 1e-24
MOTION_NORMALIZER_EPSILON = 1e-12


def weighted_ssim(x, y, weight, c1=float("inf"), c2=SSIM_C2, weight_epsilon=SSIM_WEIGHT_EPSILON):
    """Weighted SSIM error of images x, y [B, H, W, C] with per-pixel weight [B, H, W] (docs/release.md §3.1).

    Every moment is a weighted 3x3 VALID average: avgpool(z (w + eps)) / (avgpool(w) + eps). With c1 = inf
    (the model's setting) only the contrast/structure factor (2 sxy + c2) / (sx + sy + c2) remains.
    Returns (error [B, H-2, W-2, C] = clip((1 - ssim) / 2, 0, 1), average weight [B, H-2, W-2, 1]).
    """
    weight = tf.convert_to_tensor(weight, tf.float32)[..., tf.newaxis]

    def pool(z):
        return tf.nn.avg_pool2d(z, 3, 1, "VALID")

    average_weight = pool(weight)
    weight_plus_epsilon = weight + weight_epsilon
    inverse_average_weight = 1.0 / (average_weight + weight_epsilon)

    def weighted_average(z):
        return pool(z * weight_plus_epsilon) * inverse_average_weight

    mu_x, mu_y = weighted_average(x), weighted_average(y)
    sigma_x = weighted_average(x * x) - mu_x * mu_x
    sigma_y = weighted_average(y * y) - mu_y * mu_y
    sigma_xy = weighted_average(x * y) - mu_x * mu_y
    if c1 == float("inf"):
        numerator = 2.0 * sigma_xy + c2
        denominator = sigma_x + sigma_y + c2
    else:
        numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * sigma_xy + c2)
        denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (sigma_x + sigma_y + c2)
    ssim = numerator / denominator
    return tf.clip_by_value((1.0 - ssim) / 2.0, 0.0, 1.0), average_weight


def rgbd_consistency_loss(warp: WarpResult, source_rgb, target_rgb, target_depth) -> Dict[str, tf.Tensor]:
    """Photometric (L1 and weighted SSIM) and depth consistency of one warp direction (docs/release.md §3.1).

    Occlusion-aware mask C = M and (warped depth < resampled target depth). Means run over all pixels (not
    normalised by sum(C)), as released. Also returns C (``mask``) for the motion cycle loss.
    """
    target_depth = tf.convert_to_tensor(target_depth, tf.float32)
    if target_depth.shape.rank == 3:
        target_depth = target_depth[..., tf.newaxis]
    resampled_depth = resample_bilinear(target_depth, warp.pixel_xy)[..., 0]
    resampled_rgb = resample_bilinear(target_rgb, warp.pixel_xy)
    closer = tf.cast(warp.depth < resampled_depth, tf.float32)
    mask = warp.mask * closer
    depth_difference = resampled_depth - warp.depth

    depth_error = tf.reduce_mean(tf.abs(depth_difference) * mask)
    rgb_error = tf.reduce_mean(tf.abs(resampled_rgb - source_rgb) * mask[..., tf.newaxis])

    # Depth-proximity weight: pixels whose depths disagree much more than the image's RMS disagreement count
    # little in SSIM. Gradient stopped (docs/release.md §3.1: training does not start otherwise).
    squared_difference = tf.square(depth_difference)
    second_moment = (
        tf.reduce_sum(squared_difference * mask, axis=[1, 2], keepdims=True)
        / (tf.reduce_sum(mask, axis=[1, 2], keepdims=True) + 1.0)
        + DEPTH_PROXIMITY_EPSILON
    )
    proximity_weight = tf.stop_gradient(second_moment / (squared_difference + second_moment) * warp.mask)
    ssim_error, average_weight = weighted_ssim(resampled_rgb, source_rgb, proximity_weight)
    return {
        "depth_error": depth_error,
        "rgb_error": rgb_error,
        "ssim_error": tf.reduce_mean(ssim_error * average_weight),
        "mask": mask,
    }


def motion_field_consistency_loss(warp: WarpResult, mask, rotation_1, translation_1, rotation_2, translation_2):
    """Rotation and translation cycle consistency of a forward/backward motion pair (docs/release.md §3.2).

    (rotation_1, translation_1): T_2_from_1, the motion used to warp frame 1 (rotation matrices [B, 3, 3],
    field [B, H, W, 3] on frame 1's grid); (rotation_2, translation_2): T_1_from_2 (field on frame 2's grid).
    The composition "apply 2 then 1" at corresponding pixels should be the identity.
    Returns (rotation_error, translation_error), scalars.
    """
    resampled_translation_2 = resample_bilinear(translation_2, tf.stop_gradient(warp.pixel_xy))
    matrix_1 = tf.convert_to_tensor(rotation_1, tf.float32)
    matrix_2 = tf.convert_to_tensor(rotation_2, tf.float32)
    identity = tf.eye(3, dtype=tf.float32)
    cycle_rotation = matrix_1 @ matrix_2
    cycle_translation = tf.einsum("bij,bhwj->bhwi", matrix_1, resampled_translation_2) + translation_1

    def mean_square(matrix):
        return tf.reduce_mean(tf.square(matrix - identity), axis=[-2, -1])

    rotation_error = tf.reduce_mean(
        mean_square(cycle_rotation) / (CYCLE_EPSILON + mean_square(matrix_1) + mean_square(matrix_2))
    )
    # As released: the normaliser uses translation_2 at the same pixel index, not resampled (DML changed it).
    translation_error = tf.reduce_mean(
        mask
        * tf.reduce_sum(tf.square(cycle_translation), axis=-1)
        / (
            CYCLE_EPSILON
            + tf.reduce_sum(tf.square(translation_1), axis=-1)
            + tf.reduce_sum(tf.square(translation_2), axis=-1)
        )
    )
    return rotation_error, translation_error


def depth_smoothness(depth, image) -> tf.Tensor:
    """Edge-aware L1 smoothness of mean-normalised disparity (docs/release.md §3.3), forward differences.

    d = (1/depth) / mean(1/depth) per image; mean|dx d| exp(-mean_c|dx I|) + mean|dy d| exp(-mean_c|dy I|).
    """
    disparity = 1.0 / tf.convert_to_tensor(depth, tf.float32)
    disparity = disparity / tf.reduce_mean(disparity, axis=[1, 2, 3], keepdims=True)
    disparity_dx = disparity[:, :, 1:] - disparity[:, :, :-1]
    disparity_dy = disparity[:, 1:] - disparity[:, :-1]
    image_dx = image[:, :, 1:] - image[:, :, :-1]
    image_dy = image[:, 1:] - image[:, :-1]
    weight_x = tf.exp(-tf.reduce_mean(tf.abs(image_dx), axis=3, keepdims=True))
    weight_y = tf.exp(-tf.reduce_mean(tf.abs(image_dy), axis=3, keepdims=True))
    return tf.reduce_mean(tf.abs(disparity_dx * weight_x)) + tf.reduce_mean(tf.abs(disparity_dy * weight_y))


def _rms_vector_norm(field) -> tf.Tensor:
    """sqrt(3 mean_{h,w,c}(m^2) + 1e-12) per image [B, 1, 1, 1]: the RMS length of the 3-vectors."""
    return tf.sqrt(3.0 * tf.reduce_mean(tf.square(field), axis=[1, 2, 3], keepdims=True) + MOTION_NORMALIZER_EPSILON)


def _total_variation(field, wrap_around: bool) -> tf.Tensor:
    """mean sqrt(1e-24 + (m - roll_H m)^2 + (m - roll_W m)^2); without wrap-around row 0 / column 0 dropped."""
    difference_y = field - tf.roll(field, 1, axis=1)
    difference_x = field - tf.roll(field, 1, axis=2)
    if not wrap_around:
        difference_y = difference_y[:, 1:, 1:]
        difference_x = difference_x[:, 1:, 1:]
    return tf.reduce_mean(tf.sqrt(CYCLE_EPSILON + tf.square(difference_y) + tf.square(difference_x)))


def motion_field_smoothness(translation_field) -> tf.Tensor:
    """Cyclic L1 total variation of the RMS-normalised translation field [B, H, W, 3] (docs/release.md §3.3).

    The differences wrap around the image border on purpose: a translation gradient across the image cannot
    be absorbed there and is pushed into the rotation.
    """
    field = tf.convert_to_tensor(translation_field, tf.float32)
    return _total_variation(field / _rms_vector_norm(field), wrap_around=True)


def motion_sparsity(residual_field, full_field) -> tf.Tensor:
    """DML (docs/release.md §8) "sqrt sparsity" of the residual field normalised by the full field's RMS.

    mean(2 m sqrt(|t| / m + 1)) with m = stop-gradient per-image, per-channel mean of |t|: L1-like near zero,
    sqrt-like far from zero, so the field tends to be zero except on a few compact regions.
    """
    field = residual_field / _rms_vector_norm(full_field)
    magnitude = tf.abs(field)
    mean = tf.stop_gradient(tf.reduce_mean(magnitude, axis=[1, 2], keepdims=True))
    return tf.reduce_mean(2.0 * mean * tf.sqrt(tf.math.divide_no_nan(magnitude, mean) + 1.0))


def residual_field_smoothness(residual_field, full_field) -> tf.Tensor:
    """DML (docs/release.md §8) L1 total variation of the residual field normalised by the full field's RMS,
    non-cyclic."""
    return _total_variation(residual_field / _rms_vector_norm(full_field), wrap_around=False)


def object_ground_contact(depth, ids, min_object_area: int = MIN_OBJECT_AREA, num_ids: int = NUM_IDS) -> tf.Tensor:
    """Ground-contact prior of whole objects (not in the paper or the release; docs/training.md): an object
    stands on the road where its mask ends, so its depth is about the road's depth there.

    For each object (id != 0 with more than ``min_object_area`` pixels, as ``model.masks.mobile_mask``)
    whose mask ends at a row y above two rows free of objects, the contact depth is the road's at the pixel's
    lower edge, from the disparity of those rows extrapolated linearly (a flat road's disparity is linear in
    the row): g = 1.5 d(y+1) - 0.5 d(y+2), clipped to [0.5, 2] x d(y+1). The term is the mean over such objects of
    |mean log depth over the object - mean log(1 / g) over its contact pixels|; the contact side is a
    stop-gradient, so the whole object moves. 0 without such objects. On the synthetic test drives' ground
    truth (224x64) the median of exp(that difference) is 1.01 and 0.92.

    ``depth`` [B, H, W, 1] (> 0), ``ids`` [B, H, W] integer instance ids in [0, num_ids).
    """
    depth = tf.convert_to_tensor(depth, tf.float32)[..., 0]
    ids = tf.cast(ids, tf.int32)
    batch = tf.shape(ids)[0]
    segments = batch * num_ids
    segment = tf.range(batch)[:, tf.newaxis, tf.newaxis] * num_ids + ids
    is_object = tf.cast(ids > 0, tf.float32)
    log_depth = tf.math.log(depth)
    object_sum = tf.math.unsorted_segment_sum(log_depth * is_object, segment, segments)
    area = tf.math.unsorted_segment_sum(is_object, segment, segments)
    edge = is_object[:, :-2] * (1.0 - is_object[:, 1:-1]) * (1.0 - is_object[:, 2:])
    below = 1.0 / depth[:, 1:-1]
    ground = tf.clip_by_value(1.5 * below - 0.5 / depth[:, 2:], 0.5 * below, 2.0 * below)
    ground_log_depth = tf.stop_gradient(-tf.math.log(ground))
    contact_sum = tf.math.unsorted_segment_sum(ground_log_depth * edge, segment[:, :-2], segments)
    contacts = tf.math.unsorted_segment_sum(edge, segment[:, :-2], segments)
    valid = tf.cast((area > float(min_object_area)) & (contacts > 0), tf.float32)
    error = tf.abs(tf.math.divide_no_nan(object_sum, area) - tf.math.divide_no_nan(contact_sum, contacts))
    return tf.math.divide_no_nan(tf.reduce_sum(valid * error), tf.reduce_sum(valid))
