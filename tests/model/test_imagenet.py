"""ImageNet initialisation of the depth encoder from a dalgu90 TF checkpoint and from a torchvision .npz."""

import re

import numpy as np
import pytest
import tensorflow as tf

from model.config import ModelConfig
from model.depth_motion_model import DepthMotionModel
from model.imagenet import ImagenetWeightsError, encoder_variables, load_imagenet_encoder


@pytest.fixture(scope="module")
def model():
    return DepthMotionModel(ModelConfig(img_height=64, img_width=64))


def snapshot(model):
    return {variable.path: variable.numpy().copy() for variable in model.variables}


def dalgu90_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(size=variable.shape).astype(np.float32) for name, variable in encoder_variables(model).items()
    }


def write_tf1_checkpoint(prefix, arrays):
    """A name-based (TF1-style) checkpoint, as tf.compat.v1.train.Saver would write it."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(arrays[name]) for name in names],
    )


def torchvision_state(weights):
    """The inverse of the documented name map: dalgu90 arrays -> torchvision keys (kernels HWIO -> OIHW)."""
    state = {}
    for name, value in weights.items():
        if name == "conv1/conv/kernel":
            key = "conv1.weight"
        elif name.startswith("conv1/bn/"):
            key = "bn1." + ("weight" if name.endswith("gamma") else "bias")
        else:
            stage, block, rest = re.match(r"conv(\d)_(\d)/(.*)", name).groups()
            prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
            if rest == "shortcut/kernel":
                key = f"{prefix}.downsample.0.weight"
            elif rest.startswith("conv_"):
                key = f"{prefix}.conv{rest[5]}.weight"
            else:
                key = f"{prefix}.bn{rest[3]}." + ("weight" if rest.endswith("gamma") else "bias")
        state[key] = np.transpose(value, (3, 2, 0, 1)) if name.endswith("/kernel") else value
    return state


def assert_only_encoder_changed(model, before, weights):
    encoder = {variable.path: name for name, variable in encoder_variables(model).items()}
    after = snapshot(model)
    for path, value in after.items():
        if path in encoder:
            np.testing.assert_array_equal(value, weights[encoder[path]], err_msg=path)
        else:
            np.testing.assert_array_equal(value, before[path], err_msg=f"{path} must not change")
    names = set(encoder.values())
    assert "conv1/conv/kernel" in names and "conv5_2/bn_2/beta" in names and "conv3_1/shortcut/kernel" in names
    assert not any("moving" in name or name.startswith(("upconv", "iconv", "disp")) for name in names)


def test_dalgu90_checkpoint_sets_exactly_the_encoder(model, tmp_path):
    weights = dalgu90_weights(model, seed=1)
    extra = {"fc/fc/weights": np.ones((512, 1000), np.float32), "conv2_2/bn_1/mu": np.ones(64, np.float32)}
    write_tf1_checkpoint(tmp_path / "resnet18", {**weights, **extra})
    before = snapshot(model)
    report = load_imagenet_encoder(model, tmp_path / "resnet18")
    assert_only_encoder_changed(model, before, weights)
    assert report.unused == sorted(extra)
    assert len(report.restored) == len(weights)


def test_torchvision_npz_sets_exactly_the_encoder(model, tmp_path):
    weights = dalgu90_weights(model, seed=2)
    state = torchvision_state(weights)
    state.update(
        {
            "fc.weight": np.zeros((1000, 512), np.float32),
            "bn1.running_mean": np.zeros(64, np.float32),
            "layer2.0.downsample.1.weight": np.ones(128, np.float32),
        }
    )
    np.savez(tmp_path / "resnet18.npz", **state)
    before = snapshot(model)
    report = load_imagenet_encoder(model, tmp_path / "resnet18.npz")
    assert_only_encoder_changed(model, before, weights)
    assert report.unused == ["bn1.running_mean", "fc.weight", "layer2.0.downsample.1.weight"]


def test_incomplete_or_misshaped_file_assigns_nothing(model, tmp_path):
    weights = dalgu90_weights(model, seed=3)
    del weights["conv4_2/conv_1/kernel"]
    weights["conv1/conv/kernel"] = np.zeros((3, 3, 3, 64), np.float32)
    np.savez(tmp_path / "partial.npz", **weights)
    before = snapshot(model)
    with pytest.raises(ImagenetWeightsError, match=r"shape: conv1/conv/kernel[\s\S]*missing: conv4_2/conv_1/kernel"):
        load_imagenet_encoder(model, tmp_path / "partial.npz")
    after = snapshot(model)
    assert all(np.array_equal(after[path], before[path]) for path in before)
    with pytest.raises(ImagenetWeightsError, match="not a readable checkpoint"):
        load_imagenet_encoder(model, tmp_path / "nothing_here")
