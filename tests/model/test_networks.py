"""Network structure: activation shapes at 128 x 416 (docs/release.md §2.1 / 2.3 tables), normalizer layout, heads."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.layers import RandomizedLayerNormalization
from model.networks import DepthNetwork, MotionNetwork


@pytest.fixture(scope="module")
def depth_features():
    network = DepthNetwork()
    return network, network.features(tf.zeros([1, 128, 416, 3]))


def test_depth_network_shapes_at_128x416(depth_features):
    _, features = depth_features
    expected = {
        "econv1": (64, 208, 64),
        "pool1": (32, 104, 64),
        "conv2_2": (32, 104, 64),
        "conv3_1": (16, 52, 128),
        "conv3_2": (16, 52, 128),
        "conv4_2": (8, 26, 256),
        "conv5_2": (4, 13, 512),
        "upconv5": (8, 26, 256),
        "iconv5": (8, 26, 256),
        "upconv4": (16, 52, 128),
        "iconv4": (16, 52, 128),
        "upconv3": (32, 104, 64),
        "iconv3": (32, 104, 64),
        "upconv2": (64, 208, 32),
        "iconv2": (64, 208, 32),
        "upconv1": (128, 416, 16),
        "iconv1": (128, 416, 16),
        "disp1": (128, 416, 1),
    }
    for name, shape in expected.items():
        assert tuple(features[name].shape[1:]) == shape, name
    assert np.all(features["disp1"].numpy() > 0)  # softplus


def test_release_layout_has_batch_norm_in_three_blocks(depth_features):
    network, _ = depth_features
    kinds = {scope: type(layer) for scope, layer in network.tf1_scopes().items() if "/bn" in scope}
    batch_norm = sorted(scope for scope, kind in kinds.items() if kind is keras.layers.BatchNormalization)
    assert batch_norm == [
        "conv2_2/bn_1",
        "conv2_2/bn_2",
        "conv3_2/bn_1",
        "conv3_2/bn_2",
        "conv4_2/bn_1",
        "conv4_2/bn_2",
    ]
    assert sum(kind is RandomizedLayerNormalization for kind in kinds.values()) == 11  # conv1 + 5 blocks x 2
    everywhere = DepthNetwork(normalization="randomized_layer_norm")
    assert all(
        isinstance(layer, RandomizedLayerNormalization)
        for scope, layer in everywhere.tf1_scopes().items()
        if "/bn" in scope
    )
    with pytest.raises(ValueError):
        DepthNetwork(normalization="group_norm")


def test_depth_network_rejects_sizes_that_are_not_multiples_of_32():
    network = DepthNetwork(normalization="randomized_layer_norm")
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        network(tf.zeros([1, 48, 96, 3]))


def test_depth_inference_is_batch_independent_with_rln_everywhere():
    network = DepthNetwork(normalization="randomized_layer_norm")
    images = tf.random.stateless_normal([2, 32, 64, 3], seed=[0, 1])
    both = network(images).numpy()
    np.testing.assert_allclose(network(images[1:]).numpy(), both[1:], rtol=1e-4, atol=1e-5)
    noisy = network(images, training=True, noise_stddev=0.5).numpy()
    assert not np.allclose(noisy, both)


@pytest.fixture(scope="module")
def motion_outputs():
    network = MotionNetwork()
    images = tf.random.stateless_uniform([2, 128, 416, 6], seed=[2, 3])
    return network, images, network(images)


def test_motion_network_shapes_at_128x416(motion_outputs):
    network, images, (rotation, translation, residual, intrinsics) = motion_outputs
    assert rotation.shape == (2, 3) and translation.shape == (2, 1, 1, 3)
    assert residual.shape == (2, 128, 416, 3) and intrinsics.shape == (2, 3, 3)
    x = images
    spatial = [(64, 208), (32, 104), (16, 52), (8, 26), (4, 13), (2, 7), (1, 4)]
    for conv, size, channels in zip(network.encoder, spatial, (16, 32, 64, 128, 256, 512, 1024)):
        x = conv(x)
        assert tuple(x.shape[1:]) == size + (channels,), conv.name
    widths = {r.tower_a.filters for r in network.refinements}
    assert widths == {1024, 512, 256, 128, 64, 32, 16, 6}


def test_motion_outputs_are_scaled_and_intrinsics_head_follows_the_release(motion_outputs):
    network, images, (rotation, translation, residual, intrinsics) = motion_outputs
    features = images
    for conv in network.encoder:
        features = conv(features)
    bottleneck = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
    raw = network.background_motion(bottleneck).numpy()[:, 0, 0]
    np.testing.assert_allclose(rotation.numpy(), 0.01 * raw[:, :3], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(translation.numpy()[:, 0, 0], 0.01 * raw[:, 3:], rtol=1e-5, atol=1e-9)
    focal = network.foci(bottleneck).numpy()[:, 0, 0]  # softplus already applied by the layer
    offsets = network.offsets(bottleneck).numpy()[:, 0, 0]
    K = intrinsics.numpy()
    np.testing.assert_allclose(K[:, 0, 0], focal[:, 0] * 416, rtol=1e-5)
    np.testing.assert_allclose(K[:, 1, 1], focal[:, 1] * 128, rtol=1e-5)
    np.testing.assert_allclose(K[:, 0, 2], (offsets[:, 0] + 0.5) * 416, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(K[:, 1, 2], (offsets[:, 1] + 0.5) * 128, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(K[:, 2], np.broadcast_to([0.0, 0.0, 1.0], (2, 3)))
    assert K[0, 0, 1] == 0.0 and K[0, 1, 0] == 0.0


def test_scale_constraint_keeps_scales_at_least_0_001():
    network = MotionNetwork()
    network(tf.zeros([1, 64, 64, 6]))
    assert float(network.rotation_scale) == pytest.approx(0.01)
    constraint = network.rotation_scale.constraint
    np.testing.assert_allclose(constraint(tf.constant([-1.0, 0.0005, 0.02])).numpy(), [0.001, 0.001, 0.02])
    # Applied by a Keras optimizer after the update.
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    optimizer.apply([tf.constant(5.0)], [network.rotation_scale])
    assert float(network.rotation_scale) == pytest.approx(0.001)


def test_scale_initial_value_sets_both_scales_and_scales_outputs_linearly():
    """The scales multiply the raw motion outputs, so a 10x init gives 10x rotation, translation and field."""
    images = tf.random.stateless_uniform([1, 64, 96, 6], seed=[3, 4])
    release = MotionNetwork(width=0.25)
    release(images)
    larger = MotionNetwork(width=0.25, scale_initial_value=0.1)
    larger(images)
    assert float(larger.rotation_scale) == pytest.approx(0.1)
    assert float(larger.translation_scale) == pytest.approx(0.1)
    larger.set_weights([weight if weight.shape else np.float32(0.1) for weight in release.get_weights()])
    for small, large in zip(release(images)[:3], larger(images)[:3]):
        np.testing.assert_allclose(large.numpy(), 10.0 * small.numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(larger(images)[3].numpy(), release(images)[3].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="scale_initial_value"):
        MotionNetwork(scale_initial_value=0.0005)


def test_residual_field_starts_from_background_translation():
    """With zeroed refinement bottlenecks the field is the background translation upsampled (release v1)."""
    network = MotionNetwork()
    images = tf.random.stateless_uniform([1, 64, 96, 6], seed=[7, 8])
    network(images)
    for refinement in network.refinements:
        refinement.bottleneck.kernel.assign(tf.zeros_like(refinement.bottleneck.kernel))
    _, translation, residual, _ = network(images)
    np.testing.assert_allclose(residual.numpy(), np.broadcast_to(translation.numpy(), residual.shape), rtol=1e-5)


def test_width_multiplier_scales_every_channel_count():
    """A slimmer network (the CPU default) keeps the architecture; only channel counts change."""
    slim = DepthNetwork(width=0.5)
    features = slim.features(tf.zeros([1, 64, 96, 3]))
    assert features["econv1"].shape[-1] == 32 and features["conv5_2"].shape[-1] == 256
    assert features["iconv1"].shape[-1] == 8 and features["disp1"].shape == (1, 64, 96, 1)
    motion = MotionNetwork(width=0.25)
    rotation, translation, residual, intrinsics = motion(tf.zeros([2, 64, 96, 6]))
    assert [conv.filters for conv in motion.encoder] == [4, 8, 16, 32, 64, 128, 256]
    assert rotation.shape == (2, 3) and residual.shape == (2, 64, 96, 3) and intrinsics.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="width"):
        DepthNetwork(width=0.0)
