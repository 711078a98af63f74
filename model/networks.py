"""The depth network (ResNet-18 U-Net, docs/release.md §2.1) and the motion network with learned intrinsics
(docs/release.md §2.3).

Both are Keras models whose layers are named after their TF1 variable scopes (``/`` replaced by ``_``, since
Keras forbids ``/`` in names); ``tf1_scopes()`` returns the exact TF1 scope -> layer table used by
``model/tf1_checkpoint.py`` (docs/release.md §7).
"""

from __future__ import annotations

from typing import Dict, List

import keras
import tensorflow as tf

from model.config import DEPTH_NORMALIZATIONS, SCALE_INITIAL_VALUE, SCALE_MINIMUM
from model.geometry import intrinsics_matrix
from model.layers import RandomizedLayerNormalization, ReflectPaddedConv2D, resize_bilinear_legacy

# Residual blocks that the published checkpoints (DFV @ccc94ce3) normalise with real batch norm.
RELEASE_BATCH_NORM_BLOCKS = ("conv2_2", "conv3_2", "conv4_2")
BATCH_NORM_MOMENTUM = 0.99
BATCH_NORM_EPSILON = 1e-3

DECODER_FILTERS = (16, 32, 64, 128, 256)
MOTION_ENCODER_FILTERS = (16, 32, 64, 128, 256, 512, 1024)


def _encoder_initializer():
    """dalgu90 ResNet init: normal(0, sqrt(2 / (k * k * C_out)))."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _normalizer(kind: str, name: str):
    if kind == "batch_norm":
        return keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)
    return RandomizedLayerNormalization(name=name)


def _normalize(layer, inputs, training, noise_stddev):
    if isinstance(layer, RandomizedLayerNormalization):
        return layer(inputs, training=training, noise_stddev=noise_stddev)
    return layer(inputs, training=training)


class ResidualBlock(keras.layers.Layer):
    """ResNet basic block (dalgu90 layout): conv_1 3x3 -> bn_1 -> ReLU -> conv_2 3x3 -> bn_2 -> + shortcut -> ReLU.

    Shortcut: identity if channels and stride are unchanged, 1x1 max-pool with the stride if only the stride
    changes, else a bias-free 1x1 conv ``shortcut`` with the stride. All convs bias-free, SAME padding.
    """

    def __init__(self, in_channels: int, filters: int, strides: int, normalizer: str, **kwargs):
        super().__init__(**kwargs)
        self.strides = strides
        conv_args = dict(padding="same", use_bias=False, kernel_initializer=_encoder_initializer())
        self.conv_1 = keras.layers.Conv2D(filters, 3, strides=strides, name="conv_1", **conv_args)
        self.bn_1 = _normalizer(normalizer, "bn_1")
        self.conv_2 = keras.layers.Conv2D(filters, 3, name="conv_2", **conv_args)
        self.bn_2 = _normalizer(normalizer, "bn_2")
        self.shortcut = None
        if in_channels != filters:
            self.shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name="shortcut", **conv_args)

    def call(self, inputs, training=False, noise_stddev=0.0):
        if self.shortcut is not None:
            shortcut = self.shortcut(inputs)
        elif self.strides > 1:
            shortcut = tf.nn.max_pool2d(inputs, self.strides, self.strides, "VALID")
        else:
            shortcut = inputs
        x = tf.nn.relu(_normalize(self.bn_1, self.conv_1(inputs), training, noise_stddev))
        x = _normalize(self.bn_2, self.conv_2(x), training, noise_stddev)
        return tf.nn.relu(x + shortcut)

    def tf1_scopes(self) -> Dict[str, keras.layers.Layer]:
        scopes = {"conv_1": self.conv_1, "bn_1": self.bn_1, "conv_2": self.conv_2, "bn_2": self.bn_2}
        if self.shortcut is not None:
            scopes["shortcut"] = self.shortcut
        return scopes


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` times the network width multiplier, at least 4 (1.0 = the release's networks)."""
    if width <= 0:
        raise ValueError(f"network width multiplier must be > 0, got {width}")
    return max(4, int(round(channels * width)))


class DepthNetwork(keras.Model):
    """ResNet-18 encoder / U-Net decoder mapping an ImageNet-normalised RGB image [B, H, W, 3] to depth
    [B, H, W, 1] (positive, unbounded, up to scale; softplus output). H and W must be multiples of 32.

    ``normalization``: "release" puts real batch norm in conv2_2, conv3_2 and conv4_2 and randomized layer
    norm elsewhere (the layout of the published checkpoints); "randomized_layer_norm" uses it everywhere (the
    paper and the initial release).

    ``width`` multiplies every channel count (encoder and decoder). 1.0 is the release's ResNet-18 U-Net and
    the only width whose variables map to the TF1 checkpoints; smaller widths are a deviation for CPU budgets
    (the default synthetic run on 2 cores, docs/training.md).
    """

    def __init__(self, normalization: str = "release", width: float = 1.0, name: str = "depth_prediction", **kwargs):
        super().__init__(name=name, **kwargs)
        if normalization not in DEPTH_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {DEPTH_NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        self.width = float(width)
        stem_channels = scaled_channels(64, width)
        self.conv1_conv = keras.layers.Conv2D(
            stem_channels,
            7,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_encoder_initializer(),
            name="conv1_conv",
        )
        self.conv1_bn = RandomizedLayerNormalization(name="conv1_bn")
        self.blocks: List[ResidualBlock] = []
        self.block_names: List[str] = []
        in_channels = stem_channels
        for stage, base_filters in zip((2, 3, 4, 5), (64, 128, 256, 512)):
            filters = scaled_channels(base_filters, width)
            for index in (1, 2):
                block_name = f"conv{stage}_{index}"
                strides = 2 if (index == 1 and stage > 2) else 1
                kind = (
                    "batch_norm"
                    if (normalization == "release" and block_name in RELEASE_BATCH_NORM_BLOCKS)
                    else "randomized_layer_norm"
                )
                self.blocks.append(ResidualBlock(in_channels, filters, strides, kind, name=block_name))
                self.block_names.append(block_name)
                in_channels = filters

        decoder_args = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros")
        self.upconvs, self.iconvs = {}, {}
        for level, base_filters in zip((1, 2, 3, 4, 5), DECODER_FILTERS):
            filters = scaled_channels(base_filters, width)
            self.upconvs[level] = keras.layers.Conv2DTranspose(
                filters, 3, strides=2, padding="same", activation="relu", name=f"upconv{level}", **decoder_args
            )
            self.iconvs[level] = ReflectPaddedConv2D(
                filters, 3, activation="relu", name=f"iconv{level}", **decoder_args
            )
        # float32 under mixed precision too: a bfloat16 softplus rounds small depths to exactly 0.
        self.disp1 = ReflectPaddedConv2D(1, 3, activation="softplus", name="disp1", dtype="float32", **decoder_args)

    def call(self, images, training=False, noise_stddev=0.0):
        """images [B, H, W, 3] ImageNet-normalised -> depth [B, H, W, 1] float32 (whatever the compute dtype).
        ``noise_stddev``: RLN noise (training)."""
        return tf.cast(self.features(images, training=training, noise_stddev=noise_stddev)["disp1"], tf.float32)

    def features(self, images, training=False, noise_stddev=0.0) -> Dict[str, tf.Tensor]:
        """All named activations: econv1, pool1, conv2_1 ... conv5_2, upconv5, iconv5, ..., iconv1, disp1."""
        outputs = {}
        x = self.conv1_conv(images)
        outputs["econv1"] = tf.nn.relu(self.conv1_bn(x, training=training, noise_stddev=noise_stddev))
        x = outputs["pool1"] = tf.nn.max_pool2d(outputs["econv1"], 3, 2, "SAME")
        for block_name, block in zip(self.block_names, self.blocks):
            x = outputs[block_name] = block(x, training=training, noise_stddev=noise_stddev)
        skip_for_level = {5: "conv4_2", 4: "conv3_2", 3: "conv2_2", 2: "econv1", 1: None}
        for level in (5, 4, 3, 2, 1):
            x = outputs[f"upconv{level}"] = self.upconvs[level](x)
            if skip_for_level[level] is not None:
                x = tf.concat([x, outputs[skip_for_level[level]]], axis=-1)
            x = outputs[f"iconv{level}"] = self.iconvs[level](x)
        outputs["disp1"] = self.disp1(x)
        return outputs

    def tf1_scopes(self) -> Dict[str, keras.layers.Layer]:
        """TF1 scope (below ``depth_prediction/``) -> Keras layer."""
        scopes = {"conv1/conv": self.conv1_conv, "conv1/bn": self.conv1_bn}
        for block_name, block in zip(self.block_names, self.blocks):
            for sub_scope, layer in block.tf1_scopes().items():
                scopes[f"{block_name}/{sub_scope}"] = layer
        for level in (5, 4, 3, 2, 1):
            scopes[f"upconv{level}"] = self.upconvs[level]
            scopes[f"iconv{level}"] = self.iconvs[level]
        scopes["disp1"] = self.disp1
        return scopes


class MinimumValue(keras.constraints.Constraint):
    """v <- ReLU(v - minimum) + minimum, applied by the optimizer after each update (docs/release.md §2.3
    ``Scales``)."""

    def __init__(self, minimum: float):
        self.minimum = minimum

    def __call__(self, value):
        return tf.nn.relu(value - self.minimum) + self.minimum

    def get_config(self):
        return {"minimum": self.minimum}


class MotionFieldRefinement(keras.layers.Layer):
    """One refinement of the translation field with a feature layer L (c channels), n = max(4, c)
    (docs/release.md §2.3).

    u = legacy-bilinear resize of the field to L's size; z = [u, L]; A = conv3x3(z); B = conv3x3(conv3x3(z));
    out = u + conv1x1([A, B]) (3 channels, no bias). The three 3x3 convs (ReLU, SAME, bias) carry the TF1
    names ``Conv_{3k}``, ``Conv_{3k+1}``, ``Conv_{3k+2}``; the 1x1 is the ``MotionBottleneck``.
    """

    def __init__(self, feature_channels: int, index: int, **kwargs):
        super().__init__(**kwargs)
        width = max(4, feature_channels)
        conv_args = dict(padding="same", activation="relu", kernel_initializer="glorot_uniform")
        names = [f"Conv_{3 * index + offset}" if 3 * index + offset else "Conv" for offset in range(3)]
        self.tf1_conv_names = names
        self.tower_a = keras.layers.Conv2D(width, 3, name=names[0], **conv_args)
        self.tower_b_1 = keras.layers.Conv2D(width, 3, name=names[1], **conv_args)
        self.tower_b_2 = keras.layers.Conv2D(width, 3, name=names[2], **conv_args)
        self.bottleneck = keras.layers.Conv2D(
            3, 1, use_bias=False, kernel_initializer="glorot_uniform", name="MotionBottleneck"
        )

    def call(self, field, features):
        # In the layer's compute dtype (bfloat16 under mixed precision; a no-op in float32).
        upsampled = tf.cast(resize_bilinear_legacy(field, tf.shape(features)[1:3]), self.compute_dtype)
        inputs = tf.concat([upsampled, tf.cast(features, self.compute_dtype)], axis=-1)
        tower_a = self.tower_a(inputs)
        tower_b = self.tower_b_2(self.tower_b_1(inputs))
        return upsampled + self.bottleneck(tf.concat([tower_a, tower_b], axis=-1))


class MotionNetwork(keras.Model):
    """Motion and intrinsics network (DFV ``motion_field_net``, the v1 that the published checkpoints use).

    Input: two [0, 1] RGB frames concatenated, (image_a, image_b) -> [B, H, W, 6]. Outputs describe
    ``T_a_from_b`` (points of camera b into camera a):
      rotation [B, 3] (radians, R = Rx Ry Rz), background translation [B, 1, 1, 3],
      residual translation field [B, H, W, 3] on b's pixel grid, intrinsics K [B, 3, 3] (pixels).
    As in the release, the residual field is refined starting from the background translation (so it contains
    an upsampled copy of it); the mobile mask gates it outside the network.
    ``width`` multiplies the encoder's channel counts (and so the refinements'); 1.0 is the release.
    ``scale_initial_value`` initialises the two learned output scales (``Scales/rotation``, ``Scales/translation``;
    0.01 in the release). The raw outputs move by ~learning rate per Adam step, so this init sets how fast the
    predicted motion can grow in a short run (docs/training.md).
    """

    def __init__(
        self,
        width: float = 1.0,
        scale_initial_value: float = SCALE_INITIAL_VALUE,
        name: str = "MotionFieldNet",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if scale_initial_value < SCALE_MINIMUM:
            raise ValueError(f"scale_initial_value must be >= {SCALE_MINIMUM}, got {scale_initial_value}")
        self.width = float(width)
        encoder_filters = [scaled_channels(filters, width) for filters in MOTION_ENCODER_FILTERS]
        self.encoder = [
            keras.layers.Conv2D(
                filters,
                3,
                strides=2,
                padding="same",
                activation="relu",
                kernel_initializer="glorot_uniform",
                name=f"Conv{index}",
            )
            for index, filters in enumerate(encoder_filters, start=1)
        ]
        self.background_motion = keras.layers.Conv2D(
            6, 1, use_bias=False, kernel_initializer="glorot_uniform", name="background_motion"
        )
        # Refinements in order Conv7, Conv6, ..., Conv1, then the input images (6 channels).
        refinement_channels = list(reversed(encoder_filters)) + [6]
        self.refinement_sources = [f"Conv{index}" for index in range(7, 0, -1)] + ["images"]
        self.refinements = [
            MotionFieldRefinement(channels, index, name=f"refine_{source}")
            for index, (channels, source) in enumerate(zip(refinement_channels, self.refinement_sources))
        ]
        # The intrinsics heads stay float32 under mixed precision (a bfloat16 softplus can round a focal length to 0).
        self.foci = keras.layers.Conv2D(
            2, 1, activation="softplus", kernel_initializer="glorot_uniform", name="foci", dtype="float32"
        )
        self.offsets = keras.layers.Conv2D(
            2, 1, use_bias=False, kernel_initializer="glorot_uniform", name="offsets", dtype="float32"
        )
        scale_args = dict(
            shape=(),
            initializer=keras.initializers.Constant(scale_initial_value),
            constraint=MinimumValue(SCALE_MINIMUM),
        )
        self.rotation_scale = self.add_weight(name="rotation", **scale_args)
        self.translation_scale = self.add_weight(name="translation", **scale_args)

    def call(self, images, training=False):
        """images [B, H, W, 6] = (image_a, image_b) in [0, 1] -> (rotation, translation, residual, intrinsics)."""
        features = []
        x = images
        for conv in self.encoder:
            x = conv(x)
            features.append(x)
        bottleneck = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        background_motion = self.background_motion(bottleneck)
        rotation = background_motion[:, 0, 0, :3]
        translation = background_motion[:, :, :, 3:]

        field = translation
        for refinement, feature in zip(self.refinements, list(reversed(features)) + [images]):
            field = refinement(field, feature)

        # Outputs in float32 whatever the compute dtype (the warp and the losses run in float32).
        rotation_scale = tf.cast(tf.convert_to_tensor(self.rotation_scale), tf.float32)
        translation_scale = tf.cast(tf.convert_to_tensor(self.translation_scale), tf.float32)
        return (
            tf.cast(rotation, tf.float32) * rotation_scale,
            tf.cast(translation, tf.float32) * translation_scale,
            tf.cast(field, tf.float32) * translation_scale,
            self._intrinsics(bottleneck, tf.shape(images)[1], tf.shape(images)[2]),
        )

    def _intrinsics(self, bottleneck, height, width):
        """fx, fy = softplus(foci) * (W, H); cx, cy = (offsets + 0.5) * (W, H) (no softplus on offsets)."""
        size = tf.cast(tf.stack([width, height]), tf.float32)
        focal = tf.cast(self.foci(bottleneck)[:, 0, 0, :], tf.float32) * size
        centre = (tf.cast(self.offsets(bottleneck)[:, 0, 0, :], tf.float32) + 0.5) * size
        return intrinsics_matrix(focal[:, 0], focal[:, 1], centre[:, 0], centre[:, 1])

    def tf1_scopes(self) -> Dict[str, keras.layers.Layer]:
        """TF1 scope (below ``MotionFieldNet/``) -> Keras layer, for everything except the ``MotionBottleneck``
        1x1 convs (their TF1 scopes depend on the call; see ``bottleneck_layers``) and the two scale scalars."""
        scopes = {conv.name: conv for conv in self.encoder}
        scopes["background_motion"] = self.background_motion
        for refinement in self.refinements:
            scopes[refinement.tf1_conv_names[0]] = refinement.tower_a
            scopes[refinement.tf1_conv_names[1]] = refinement.tower_b_1
            scopes[refinement.tf1_conv_names[2]] = refinement.tower_b_2
        scopes["CameraIntrinsics/foci"] = self.foci
        scopes["CameraIntrinsics/offsets"] = self.offsets
        return scopes

    def bottleneck_layers(self) -> Dict[str, keras.layers.Layer]:
        """Refinement source ("Conv7" ... "Conv1", "images") -> its MotionBottleneck 1x1 conv."""
        return {source: refinement.bottleneck for source, refinement in zip(self.refinement_sources, self.refinements)}
