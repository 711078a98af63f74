"""Randomized layer normalization, reflect-padded convolution, legacy bilinear resize."""

import numpy as np
import pytest
import tensorflow as tf

from model.layers import RandomizedLayerNormalization, ReflectPaddedConv2D, resize_bilinear_legacy


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 3.0, (batch, 1, 1, 4))
    shift = rng.uniform(-2.0, 2.0, (batch, 1, 1, 4))
    return tf.constant((rng.standard_normal((batch, 16, 20, 4)) * scale + shift).astype(np.float32))


def test_without_noise_is_plain_layer_norm_per_sample_and_channel():
    x = _inputs()
    layer = RandomizedLayerNormalization()
    for training in (False, True):
        y = layer(x, training=training, noise_stddev=0.0).numpy()
        mean = x.numpy().mean(axis=(1, 2), keepdims=True)
        variance = x.numpy().var(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(y, (x.numpy() - mean) / np.sqrt(variance + 1e-3), atol=1e-4)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    # Batch independence: a sample's output does not depend on the other samples.
    np.testing.assert_allclose(layer(x[:1]).numpy(), y[:1], atol=1e-5)


def test_gamma_and_beta_apply_per_channel():
    x = _inputs()
    layer = RandomizedLayerNormalization()
    layer(x)
    layer.gamma.assign([1.0, 2.0, 3.0, 4.0])
    layer.beta.assign([0.0, 1.0, -1.0, 0.5])
    y = layer(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), np.broadcast_to([0.0, 1.0, -1.0, 0.5], (2, 4)), atol=1e-4)
    assert [w.name for w in layer.weights] == ["gamma", "beta"]


def test_noise_is_only_in_training_and_has_the_requested_spread():
    # Constant-offset input: x = c + unit-variance pattern. The noisy output's per-channel mean is
    # -c * e1 / sqrt(var + eps) with e1 ~ N(0, s) truncated at 2s -> its spread scales with s.
    rng = np.random.default_rng(1)
    pattern = rng.standard_normal((256, 8, 8, 16)).astype(np.float32)
    pattern = (pattern - pattern.mean((1, 2), keepdims=True)) / pattern.std((1, 2), keepdims=True)
    offset = 5.0
    x = tf.constant(pattern + offset)
    layer = RandomizedLayerNormalization()
    clean = layer(x, training=False, noise_stddev=0.5).numpy()
    np.testing.assert_allclose(clean, layer(x, training=True, noise_stddev=0.0).numpy(), atol=1e-5)
    tf.random.set_seed(0)
    noisy = layer(x, training=True, noise_stddev=0.2).numpy()
    # y = (x - m (1 + e1)) / s with m = offset, variance 1 and s^2 = (1 + e2) + eps, so
    # var(y) = 1 / s^2 and mean(y) = -offset e1 / s: invert for the noise actually drawn.
    scale_squared = 1.0 / noisy.var(axis=(1, 2))
    noise_variance = scale_squared - 1.0 - 1e-3
    noise_mean = -noisy.mean(axis=(1, 2)) * np.sqrt(scale_squared) / offset
    truncated_std = 0.2 * 0.8796  # std of a normal truncated at +-2 sigma
    assert np.std(noise_mean) == pytest.approx(truncated_std, rel=0.1)
    assert np.std(noise_variance) == pytest.approx(truncated_std, rel=0.1)
    assert np.max(np.abs(noise_mean)) <= 0.4 + 1e-3 and np.max(np.abs(noise_variance)) <= 0.4 + 1e-3
    assert abs(np.corrcoef(noise_mean.ravel(), noise_variance.ravel())[0, 1]) < 0.1


def test_reflect_padded_conv_keeps_size_and_reflects():
    layer = ReflectPaddedConv2D(1, 3, use_bias=False, kernel_initializer="zeros")
    x = tf.reshape(tf.range(12, dtype=tf.float32), [1, 3, 4, 1])
    layer(x)
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 0] = 1.0  # picks the left neighbour, which at column 0 is the reflected column 1
    layer.kernel.assign(kernel)
    y = layer(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(y, [[1, 0, 1, 2], [5, 4, 5, 6], [9, 8, 9, 10]])


def test_legacy_resize_uses_corner_origin_scaling():
    x = tf.reshape(tf.constant([0.0, 10.0, 20.0]), [1, 1, 3, 1])
    # 3 -> 6 columns: output j samples input j * 3 / 6 = 0, 0.5, 1, 1.5, 2, 2.5 (clamped neighbour at 2).
    y = resize_bilinear_legacy(x, [1, 6]).numpy().reshape(-1)
    np.testing.assert_allclose(y, [0, 5, 10, 15, 20, 20], atol=1e-6)
    # 1x1 -> anything is a broadcast (the motion-field start), and it differs from TF2's half-pixel resize.
    np.testing.assert_allclose(resize_bilinear_legacy(tf.ones([1, 1, 1, 3]) * 2.0, [2, 4]).numpy(), 2.0)
    half_pixel = tf.image.resize(x, [1, 6], method="bilinear").numpy().reshape(-1)
    assert not np.allclose(half_pixel, y)
    # Gradient exists (the refinement is trained through it).
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(resize_bilinear_legacy(x, [1, 6]))
    np.testing.assert_allclose(tape.gradient(total, x).numpy().reshape(-1), [1.5, 2.0, 2.5], atol=1e-6)
