"""Loss terms on hand-computed cases, invariants and NaN guards (docs/release.md §3.1-3.3, 8)."""

import numpy as np
import pytest
import tensorflow as tf

from model import geometry, losses

H, W = 8, 10


def _identity_warp(depth_value=2.0, mask=None, batch=1):
    x, y = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    mask = np.ones((batch, H, W), np.float32) if mask is None else mask
    return geometry.WarpResult(
        x=tf.constant(np.broadcast_to(x, (batch, H, W))),
        y=tf.constant(np.broadcast_to(y, (batch, H, W))),
        depth=tf.fill([batch, H, W], depth_value),
        mask=tf.constant(mask),
    )


def _image(seed, batch=1):
    return tf.random.stateless_uniform([batch, H, W, 3], seed=[seed, 0])


def test_ssim_of_identical_images_is_zero_and_ignores_brightness():
    x = _image(1)
    weight = tf.random.stateless_uniform([1, H, W], seed=[2, 0])
    error, average_weight = losses.weighted_ssim(x, x, weight)
    assert error.shape == (1, H - 2, W - 2, 3) and average_weight.shape == (1, H - 2, W - 2, 1)
    np.testing.assert_allclose(error.numpy(), 0.0, atol=1e-4)
    shifted, _ = losses.weighted_ssim(x + 0.3, x, weight)  # c1 = inf: means do not matter
    np.testing.assert_allclose(shifted.numpy(), 0.0, atol=1e-4)
    inverted, _ = losses.weighted_ssim(1.0 - x, x, weight)  # anti-correlated -> error near 1
    assert float(tf.reduce_mean(inverted)) > 0.95


def test_ssim_hand_case_3x3():
    x = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], np.float32)
    y = np.array([[0.1, 0.1, 0.2], [0.9, 0.5, 0.4], [0.3, 0.6, 0.8]], np.float32)
    error, average_weight = losses.weighted_ssim(x[None, :, :, None], y[None, :, :, None], tf.ones([1, 3, 3]))
    covariance = np.mean(x * y) - x.mean() * y.mean()
    structure = (2 * covariance + 9e-6) / (x.var() + y.var() + 9e-6)
    assert float(error[0, 0, 0, 0]) == pytest.approx((1 - structure) / 2, rel=1e-4)
    assert float(average_weight[0, 0, 0, 0]) == pytest.approx(1.0)


def test_rgbd_consistency_hand_case_with_occlusion():
    target_rgb = _image(3)
    source_rgb = target_rgb + tf.constant([0.1, 0.0, 0.0])
    target_depth = np.full((1, H, W, 1), 3.0, np.float32)
    target_depth[0, :, :5] = 1.0  # left half: target surface in front of the warped one -> occluded
    mask = np.ones((1, H, W), np.float32)
    mask[0, 0, :] = 0.0  # first row out of bounds
    terms = losses.rgbd_consistency_loss(_identity_warp(2.0, mask), source_rgb, target_rgb, target_depth)
    consistent = np.zeros((H, W))
    consistent[1:, 5:] = 1.0  # valid and not occluded
    np.testing.assert_array_equal(terms["mask"].numpy()[0], consistent)
    assert float(terms["depth_error"]) == pytest.approx(1.0 * consistent.mean(), rel=1e-5)
    assert float(terms["rgb_error"]) == pytest.approx(0.1 / 3 * consistent.mean(), rel=1e-4)
    identical = losses.rgbd_consistency_loss(_identity_warp(2.0), target_rgb, target_rgb, tf.fill([1, H, W, 1], 2.5))
    assert float(identical["rgb_error"]) == pytest.approx(0.0, abs=1e-6)
    assert float(identical["ssim_error"]) == pytest.approx(0.0, abs=1e-5)
    assert float(identical["depth_error"]) == pytest.approx(0.5, rel=1e-5)  # |2.5 - 2| everywhere


def test_motion_cycle_consistency():
    warp = _identity_warp()
    mask = tf.ones([1, H, W])
    rotation = geometry.matrix_from_angles([[0.0, 0.0, 0.1]])
    field = tf.fill([1, H, W, 3], 0.5)
    # Exact inverses: zero error.
    inverse_rotation = tf.transpose(rotation, [0, 2, 1])
    inverse_field = -tf.einsum("bij,bhwj->bhwi", inverse_rotation, field)
    rotation_error, translation_error = losses.motion_field_consistency_loss(
        warp, mask, rotation, field, geometry.matrix_from_angles([[0.0, 0.0, -0.1]]), inverse_field
    )
    assert float(rotation_error) == pytest.approx(0.0, abs=1e-6)
    assert float(translation_error) == pytest.approx(0.0, abs=1e-6)
    # Same rotation both ways: error = mean((R R - I)^2) / (2 mean((R - I)^2)), computed here by numpy.
    matrix = rotation[0].numpy()
    expected = np.mean((matrix @ matrix - np.eye(3)) ** 2) / (2 * np.mean((matrix - np.eye(3)) ** 2))
    rotation_error, translation_error = losses.motion_field_consistency_loss(
        warp, mask, rotation, tf.zeros([1, H, W, 3]), rotation, field
    )
    assert float(rotation_error) == pytest.approx(expected, rel=1e-4)
    # Backward translation missing: |R t2|^2 / (0 + |t2|^2) = 1.
    assert float(translation_error) == pytest.approx(1.0, rel=1e-5)


def test_zero_motion_gives_finite_values_and_gradients():
    zero_angles = tf.Variable(tf.zeros([1, 3]))
    zero_field = tf.Variable(tf.zeros([1, H, W, 3]))
    with tf.GradientTape() as tape:
        identity = geometry.matrix_from_angles(zero_angles)
        rotation_error, translation_error = losses.motion_field_consistency_loss(
            _identity_warp(), tf.ones([1, H, W]), identity, zero_field, identity, zero_field
        )
        smoothness = losses.motion_field_smoothness(zero_field)
        sparsity = losses.motion_sparsity(zero_field, zero_field)
        residual_tv = losses.residual_field_smoothness(zero_field, zero_field)
        total = rotation_error + translation_error + smoothness + sparsity + residual_tv
    assert np.isfinite(float(total))
    for gradient in tape.gradient(total, [zero_angles, zero_field]):
        assert np.all(np.isfinite(gradient.numpy()))


def test_depth_smoothness_hand_case_and_scale_invariance():
    image = tf.fill([1, H, W, 3], 0.5)
    constant = tf.fill([1, H, W, 1], 4.0)
    assert float(losses.depth_smoothness(constant, image)) == pytest.approx(0.0, abs=1e-7)
    depth = np.full((1, H, W, 1), 2.0, np.float32)
    depth[:, :, W // 2 :] = 1.0  # disparity 0.5 | 1.0, mean 0.75 -> normalised step 2/3
    value = float(losses.depth_smoothness(depth, image))
    # One column of x-differences out of W-1 has |step| = 2/3; no y-differences; flat image -> weight 1.
    assert value == pytest.approx((2 / 3) / (W - 1), rel=1e-5)
    assert float(losses.depth_smoothness(depth * 7.0, image)) == pytest.approx(value, rel=1e-5)
    edge_image = np.full((1, H, W, 3), 0.0, np.float32)
    edge_image[:, :, W // 2 :] = 1.0  # an image edge at the depth edge lowers the penalty by e^-1
    assert float(losses.depth_smoothness(depth, edge_image)) == pytest.approx(value * np.exp(-1.0), rel=1e-5)


def test_motion_field_smoothness_is_cyclic_and_scale_invariant():
    constant = tf.fill([1, H, W, 3], 2.0)
    assert float(losses.motion_field_smoothness(constant)) == pytest.approx(0.0, abs=1e-6)
    ramp = np.zeros((1, H, W, 3), np.float32)
    ramp[..., 0] = np.arange(W, dtype=np.float32)[None, :]
    ramp[..., 2] = 5.0
    value = float(losses.motion_field_smoothness(ramp))
    assert value == pytest.approx(float(losses.motion_field_smoothness(ramp * 3.0)), rel=1e-5)
    # Wrap-around: column 0 is compared with column W-1, a jump of W-1 instead of 1.
    rms = np.sqrt(3 * np.mean(ramp**2))
    expected = ((W - 1) * 1.0 + (W - 1)) / W / rms / 3  # mean over W columns and 3 channels
    assert value == pytest.approx(expected, rel=1e-4)
    assert float(losses.residual_field_smoothness(ramp, ramp)) == pytest.approx(1.0 / rms / 3, rel=1e-4)


def test_motion_sparsity_hand_case():
    full = tf.fill([1, H, W, 3], 1.0)  # rms vector norm = sqrt(3)
    residual = np.zeros((1, H, W, 3), np.float32)
    residual[..., 0] = np.sqrt(3.0) * 0.2  # normalised |t| = 0.2 on channel 0, zero elsewhere
    value = float(losses.motion_sparsity(residual, full))
    # channel 0: m = 0.2 -> 2 * 0.2 * sqrt(2); channels 1, 2: m = 0 -> 0. Mean over channels.
    assert value == pytest.approx(2 * 0.2 * np.sqrt(2.0) / 3, rel=1e-5)


def _flat_road(rows=12, width=6, horizon=-2.0, scale=0.1):
    """Depth [1, rows, width, 1] of a flat road: disparity linear in the row, (y - horizon) * scale."""
    disparity = (np.arange(rows, dtype=np.float32) - horizon) * scale
    return np.broadcast_to((1.0 / disparity)[None, :, None, None], (1, rows, width, 1)).copy()


def _standing_object(depth_scale=1.0):
    """A road and an object (id 7, rows 1-5, columns 1-3: 15 pixels) standing on it at its lowest row's lower
    edge, the object's depth times ``depth_scale``; ids [1, 12, 6]."""
    depth = _flat_road()
    ids = np.zeros(depth.shape[:3], np.int32)
    ids[:, 1:6, 1:4] = 7
    depth[:, 1:6, 1:4] = depth_scale / ((5.5 + 2.0) * 0.1)
    return depth, ids


def test_object_ground_contact_is_zero_on_the_road_and_measures_a_far_object():
    depth, ids = _standing_object()
    assert float(losses.object_ground_contact(depth, ids, min_object_area=10)) == pytest.approx(0.0, abs=1e-6)
    far, _ = _standing_object(depth_scale=2.0)
    assert float(losses.object_ground_contact(far, ids, min_object_area=10)) == pytest.approx(np.log(2.0), rel=1e-5)
    # Objects of at most min_object_area pixels are ignored, as by the mobile mask.
    assert float(losses.object_ground_contact(far, ids, min_object_area=15)) == 0.0


def test_object_ground_contact_needs_two_free_rows_below_and_clips_the_extrapolated_road():
    far, ids = _standing_object(depth_scale=2.0)
    blocked = ids.copy()
    blocked[:, 7, :] = 3  # another object (6 pixels, too small to count) two rows below: object 7 has no contact
    assert float(losses.object_ground_contact(far, blocked, min_object_area=6)) == 0.0
    steep = far.copy()
    steep[:, 7] = 1.0 / 100.0  # row 7 claims disparity 100: 1.5 d6 - 50 < 0, clipped to 0.5 d6
    expected = abs(np.log(2.0 / ((5.5 + 2.0) * 0.1)) - np.log(1.0 / (0.5 * (6 + 2.0) * 0.1)))
    assert float(losses.object_ground_contact(steep, ids, min_object_area=10)) == pytest.approx(expected, rel=1e-5)


def test_object_ground_contact_moves_the_whole_object_and_averages_over_objects():
    far, ids = _standing_object(depth_scale=2.0)
    second = far.copy()
    second[:, 1:6, 1:4] = 1.0 / ((5.5 + 2.0) * 0.1)  # the same object, standing, in a second image
    depth, both = np.concatenate([far, second]), np.concatenate([ids, ids])
    value = losses.object_ground_contact(depth, both, min_object_area=10)
    assert float(value) == pytest.approx(np.log(2.0) / 2, rel=1e-5)  # one object at log 2, one at 0
    variable = tf.Variable(far)
    with tf.GradientTape() as tape:
        loss = losses.object_ground_contact(variable, ids, min_object_area=10)
    gradient = tape.gradient(loss, variable).numpy()[..., 0]
    assert np.array_equal(gradient != 0, ids == 7)  # every object pixel, nothing of the road
