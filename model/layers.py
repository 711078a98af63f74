"""Small building blocks of the networks: randomized layer normalization, reflect-padded convolution, and the
TF1 ``resize_bilinear`` used by the motion-field refinement (docs/release.md §2.2, 7.3)."""

from __future__ import annotations

import keras
import tensorflow as tf

LAYER_NORM_EPSILON = 1e-3


class RandomizedLayerNormalization(keras.layers.Layer):
    """Per-sample, per-channel normalization over H and W with multiplicative noise on the moments
    (docs/release.md §2.2).

    For x [B, H, W, C]: mean and variance over (H, W) per sample and channel ([B, 1, 1, C]). In training with
    ``noise_stddev`` > 0 they are multiplied by (1 + e1) and (1 + e2), e1, e2 ~ truncated normal (std
    ``noise_stddev``, re-drawn beyond two std), drawn independently per sample and channel. Output =
    gamma (x - mean) / sqrt(variance + 1e-3) + beta. No moving statistics: inference is batch-independent and
    noise-free.

    ``noise_stddev`` is a call argument (a Python float or scalar tensor), so a training step can pass the
    ramped value of docs/release.md §2.2 without retracing.
    """

    def __init__(self, epsilon: float = LAYER_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, inputs, training=False, noise_stddev=0.0):
        mean, variance = tf.nn.moments(inputs, axes=[1, 2], keepdims=True)
        if training:
            noise_stddev = tf.cast(noise_stddev, inputs.dtype)
            noise_shape = tf.shape(mean)
            mean = mean * (1.0 + tf.random.truncated_normal(noise_shape, stddev=noise_stddev, dtype=inputs.dtype))
            variance = variance * (
                1.0 + tf.random.truncated_normal(noise_shape, stddev=noise_stddev, dtype=inputs.dtype)
            )
        normalized = (inputs - mean) * tf.math.rsqrt(variance + self.epsilon)
        return normalized * self.gamma + self.beta


class ReflectPaddedConv2D(keras.layers.Conv2D):
    """A stride-1 Conv2D preceded by a REFLECT pad of kernel_size // 2 pixels and run with VALID padding
    (the decoder convolutions of docs/release.md §2.1). Weights are those of ``keras.layers.Conv2D``."""

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(filters, kernel_size, strides=1, padding="valid", **kwargs)

    def call(self, inputs):
        pad_h, pad_w = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        padded = tf.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")
        return super().call(padded)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


def resize_bilinear_legacy(images: tf.Tensor, size) -> tf.Tensor:
    """TF1 ``tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False)``.

    Output pixel (i, j) samples the input at (i * H_in / H_out, j * W_in / W_out), bilinearly, with the upper
    neighbour clamped to the last row/column (corner-origin scaling, unlike TF2 ``tf.image.resize``, which
    uses half-pixel centres). Uses the raw ``ResizeBilinear`` kernel, which has a registered gradient.
    """
    return tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=False, half_pixel_centers=False)
