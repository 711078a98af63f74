"""InferenceModel: loading by directory or prefix, numpy shapes, agreement with the Keras model, errors."""

import numpy as np
import pytest

from model.checkpoints import make_checkpoint, write_model_config
from model.config import ModelConfig
from model.depth_motion_model import DepthMotionModel
from model.inference import InferenceModel

CONFIG = ModelConfig(img_height=64, img_width=96, depth_network_width=0.25, motion_network_width=0.25)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    model = DepthMotionModel(CONFIG)
    write_model_config(folder, CONFIG)
    prefix = make_checkpoint(model).save(str(folder / "model"))
    return model, folder, prefix


def images(seed, batch=2):
    return np.random.default_rng(seed).random((batch, 64, 96, 3)).astype(np.float32)


def test_loads_directory_or_prefix_and_matches_the_model(saved):
    model, folder, prefix = saved
    from_folder = InferenceModel.from_checkpoint(folder)
    from_prefix = InferenceModel.from_checkpoint(prefix)
    assert from_folder.checkpoint_path == prefix and from_folder.image_size == (64, 96)
    batch = images(0)
    depth = from_folder.predict_depth(batch)
    assert depth.shape == (2, 64, 96) and depth.dtype == np.float32 and np.all(depth > 0)
    np.testing.assert_allclose(depth, model.predict_depth(batch).numpy()[..., 0], rtol=1e-5)
    np.testing.assert_allclose(
        from_prefix.predict_depth(batch, flip_augment=False),
        model.predict_depth(batch, flip_augment=False).numpy()[..., 0],
        rtol=1e-5,
    )
    assert np.all(depth <= from_folder.predict_depth(batch, flip_augment=False) + 1e-6), "flip TTA takes the min"


def test_egomotion_shapes_and_intrinsics(saved):
    _, folder, _ = saved
    inference = InferenceModel.from_checkpoint(folder)
    rotation, translation, intrinsics = inference.predict_egomotion(images(1), images(2))
    assert rotation.shape == (2, 3, 3) and translation.shape == (2, 3) and intrinsics.shape == (2, 3, 3)
    np.testing.assert_allclose(intrinsics[:, 2], [[0, 0, 1]] * 2, atol=1e-6)
    assert np.all(intrinsics[:, 0, 0] > 0) and np.all(intrinsics[:, 1, 1] > 0)


def test_bad_inputs_and_missing_files(saved, tmp_path):
    _, folder, _ = saved
    inference = InferenceModel.from_checkpoint(folder)
    with pytest.raises(ValueError, match=r"must be \[B, 64, 96, 3\]"):
        inference.predict_depth(np.zeros((1, 128, 416, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        inference.predict_depth(np.full((1, 64, 96, 3), np.nan, np.float32))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        InferenceModel.from_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        InferenceModel.from_checkpoint(tmp_path / "model-7")
