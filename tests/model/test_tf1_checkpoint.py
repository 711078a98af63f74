"""The TF1 name map of docs/release.md §7 and restoring a TF1-style checkpoint written by the test itself."""

import numpy as np
import pytest
import tensorflow as tf

from model.config import ModelConfig
from model.depth_motion_model import DepthMotionModel
from model.tf1_checkpoint import (
    CheckpointMismatchError,
    is_skipped,
    load_tf1_checkpoint,
    tf1_variable_map,
    tf1_variable_shapes,
)


def _spec_table():
    """docs/release.md §7.1 / 7.2 written out independently of the code: TF1 name -> shape."""
    table = {
        "depth_prediction/conv1/conv/kernel": (7, 7, 3, 64),
        "depth_prediction/conv1/bn/beta": (64,),
        "depth_prediction/conv1/bn/gamma": (64,),
    }
    in_channels = 64
    for stage, channels in zip((2, 3, 4, 5), (64, 128, 256, 512)):
        for index in (1, 2):
            scope = f"depth_prediction/conv{stage}_{index}"
            first_in = in_channels if index == 1 else channels
            table[f"{scope}/conv_1/kernel"] = (3, 3, first_in, channels)
            table[f"{scope}/conv_2/kernel"] = (3, 3, channels, channels)
            if first_in != channels:
                table[f"{scope}/shortcut/kernel"] = (1, 1, first_in, channels)
            names = ["beta", "gamma"]
            if index == 2 and stage in (2, 3, 4):
                names += ["moving_mean", "moving_variance"]
            for bn in ("bn_1", "bn_2"):
                for name in names:
                    table[f"{scope}/{bn}/{name}"] = (channels,)
        in_channels = channels
    decoder = {
        "upconv5": (3, 3, 256, 512),
        "iconv5": (3, 3, 512, 256),
        "upconv4": (3, 3, 128, 256),
        "iconv4": (3, 3, 256, 128),
        "upconv3": (3, 3, 64, 128),
        "iconv3": (3, 3, 128, 64),
        "upconv2": (3, 3, 32, 64),
        "iconv2": (3, 3, 96, 32),
        "upconv1": (3, 3, 16, 32),
        "iconv1": (3, 3, 16, 16),
        "disp1": (3, 3, 16, 1),
    }
    for scope, shape in decoder.items():
        table[f"depth_prediction/{scope}/weights"] = shape
        table[f"depth_prediction/{scope}/biases"] = (shape[2] if scope.startswith("upconv") else shape[3],)

    channels = [6, 16, 32, 64, 128, 256, 512, 1024]
    for k in range(1, 8):
        table[f"MotionFieldNet/Conv{k}/weights"] = (3, 3, channels[k - 1], channels[k])
        table[f"MotionFieldNet/Conv{k}/biases"] = (channels[k],)
    table["MotionFieldNet/background_motion/weights"] = (1, 1, 1024, 6)
    table["MotionFieldNet/Scales/rotation"] = ()
    table["MotionFieldNet/Scales/translation"] = ()
    table["MotionFieldNet/CameraIntrinsics/foci/weights"] = (1, 1, 1024, 2)
    table["MotionFieldNet/CameraIntrinsics/foci/biases"] = (2,)
    table["MotionFieldNet/CameraIntrinsics/offsets/weights"] = (1, 1, 1024, 2)
    for k, c in enumerate([1024, 512, 256, 128, 64, 32, 16, 6]):
        n = max(4, c)
        for offset, shape in enumerate([(3, 3, c + 3, n), (3, 3, c + 3, n), (3, 3, n, n)]):
            name = "Conv" if 3 * k + offset == 0 else f"Conv_{3 * k + offset}"
            table[f"MotionFieldNet/{name}/weights"] = shape
            table[f"MotionFieldNet/{name}/biases"] = (n,)
        source = f"MotionFieldNet/Conv{7 - k}/Relu" if k < 7 else "concat"
        table[f"MotionFieldNet/compute_loss/{source}/MotionBottleneck/weights"] = (1, 1, 2 * n, 3)
    return table


@pytest.fixture(scope="module")
def model():
    return DepthMotionModel(ModelConfig(img_height=64, img_width=96))


def test_name_map_matches_spec_table(model):
    assert tf1_variable_shapes(model) == _spec_table()
    # Every Keras variable of both networks is covered exactly once.
    mapped = {id(v) for v in tf1_variable_map(model).values()}
    all_variables = model.depth_net.weights + model.motion_net.weights
    assert mapped == {id(v) for v in all_variables}


def test_other_bottleneck_sets_use_their_call_scopes(model):
    shapes = tf1_variable_shapes(model, bottleneck_set=3)
    assert "MotionFieldNet/compute_loss/MotionFieldNet_3/Conv5/Relu/MotionBottleneck/weights" in shapes
    assert "MotionFieldNet/compute_loss/concat_11/MotionBottleneck/weights" in shapes


def _write_tf1_checkpoint(prefix, shapes, extra=()):
    """A TF1 graph with one variable per (name, shape), random values, saved by tf.compat.v1.train.Saver."""
    graph = tf.Graph()
    with graph.as_default():
        for index, (name, shape) in enumerate(list(shapes.items()) + list(extra)):
            # Small weights keep the restored network finite; variances must be positive.
            low, high = (0.5, 1.5) if name.endswith("moving_variance") else (-0.05, 0.05)
            tf.compat.v1.get_variable(
                name,
                shape=shape,
                dtype=tf.float32,
                initializer=tf.compat.v1.random_uniform_initializer(low, high, seed=index),
            )
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix), write_meta_graph=False)


def test_restores_tf1_checkpoint_end_to_end(model, tmp_path):
    shapes = _spec_table()
    extra = [
        ("depth_prediction/conv1/conv/kernel/Adam", (7, 7, 3, 64)),
        ("depth_prediction/conv1/conv/kernel/Adam_1", (7, 7, 3, 64)),
        ("global_step", ()),
        ("beta1_power", ()),
        ("beta2_power", ()),
        ("MotionFieldNet/compute_loss/MotionFieldNet_1/Conv7/Relu/MotionBottleneck/weights", (1, 1, 2048, 3)),
    ]
    prefix = _write_tf1_checkpoint(tmp_path / "model-1", shapes, extra)
    unused = load_tf1_checkpoint(model, prefix)
    assert unused == ["MotionFieldNet/compute_loss/MotionFieldNet_1/Conv7/Relu/MotionBottleneck/weights"]
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(
        model.depth_net.tf1_scopes()["upconv5"].kernel.numpy(), reader.get_tensor("depth_prediction/upconv5/weights")
    )
    np.testing.assert_array_equal(
        model.depth_net.tf1_scopes()["conv2_2/bn_1"].moving_variance.numpy(),
        reader.get_tensor("depth_prediction/conv2_2/bn_1/moving_variance"),
    )
    np.testing.assert_array_equal(
        model.motion_net.refinements[0].bottleneck.kernel.numpy(),
        reader.get_tensor("MotionFieldNet/compute_loss/MotionFieldNet/Conv7/Relu/MotionBottleneck/weights"),
    )
    for name, variable in tf1_variable_map(model).items():
        np.testing.assert_array_equal(variable.numpy(), reader.get_tensor(name), err_msg=name)
    # The restored model runs.
    assert np.all(np.isfinite(model.predict_depth(tf.zeros([1, 64, 96, 3])).numpy()))


def test_missing_and_misshaped_variables_are_reported(model, tmp_path):
    shapes = _spec_table()
    del shapes["MotionFieldNet/Scales/rotation"]
    shapes["depth_prediction/iconv2/weights"] = (3, 3, 64, 32)
    prefix = _write_tf1_checkpoint(tmp_path / "model-2", shapes)
    before = model.depth_net.tf1_scopes()["disp1"].kernel.numpy().copy()
    with pytest.raises(CheckpointMismatchError) as error:
        load_tf1_checkpoint(model, prefix)
    message = str(error.value)
    assert "missing: MotionFieldNet/Scales/rotation" in message
    assert "shape mismatch: depth_prediction/iconv2/weights checkpoint (3, 3, 64, 32)" in message
    np.testing.assert_array_equal(model.depth_net.tf1_scopes()["disp1"].kernel.numpy(), before)  # nothing assigned


def test_skip_rules():
    assert is_skipped("depth_prediction/conv1/conv/kernel/Adam_1")
    assert is_skipped("global_step") and is_skipped("beta1_power") and is_skipped("beta2_power")
    assert not is_skipped("MotionFieldNet/Scales/rotation")


def test_slim_network_cannot_load_release_shapes(tmp_path):
    """Only width 1.0 matches the published checkpoints: a slim model gets a shape-mismatch error, not garbage."""
    prefix = _write_tf1_checkpoint(tmp_path / "model-1", _spec_table())
    slim = DepthMotionModel(ModelConfig(img_height=64, img_width=96, depth_network_width=0.5))
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        load_tf1_checkpoint(slim, prefix)
