"""Provenance of a checkpoint's intrinsics: learned head or K given by the records (untrained head)."""

import dataclasses
import json

import numpy as np
import pytest

from evaluation.intrinsics_evaluation import SOURCES
from model.checkpoints import make_checkpoint, write_model_config
from model.config import ModelConfig
from model.depth_motion_model import DepthMotionModel
from model.inference import INTRINSICS_SOURCES, InferenceModel, intrinsics_source


def test_source_follows_the_trainers_model_config(tmp_path):
    given, learned = tmp_path / "given", tmp_path / "learned"
    write_model_config(given, ModelConfig(img_height=64, img_width=96, learn_intrinsics=False))
    write_model_config(learned, ModelConfig(img_height=64, img_width=96, learn_intrinsics=True))
    assert intrinsics_source(given) == "given"
    assert intrinsics_source(learned) == "learned"
    assert INTRINSICS_SOURCES == SOURCES  # the TensorFlow-free evaluation side accepts exactly these
    # a checkpoint prefix reads the config of its folder
    assert intrinsics_source(given / "model-3000") == "given"
    # an older config without the key: ModelConfig's default, which is what that trainer used
    fields = dataclasses.asdict(ModelConfig(img_height=64, img_width=96))
    del fields["learn_intrinsics"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model_config.json").write_text(json.dumps(fields))
    assert intrinsics_source(tmp_path / "old") == ("learned" if ModelConfig.learn_intrinsics else "given")


def test_missing_or_bad_configs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_config.json not found"):
        intrinsics_source(tmp_path)
    (tmp_path / "model_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        intrinsics_source(tmp_path)
    (tmp_path / "model_config.json").write_text(json.dumps({"learn_intrinsics": "no"}))
    with pytest.raises(ValueError, match="true or false"):
        intrinsics_source(tmp_path)


def test_loaded_model_reports_the_same_source(tmp_path):
    config = ModelConfig(
        img_height=64, img_width=96, depth_network_width=0.25, motion_network_width=0.25, learn_intrinsics=False
    )
    write_model_config(tmp_path, config)
    make_checkpoint(DepthMotionModel(config)).save(str(tmp_path / "model"))
    loaded = InferenceModel.from_checkpoint(tmp_path)
    assert loaded.intrinsics_source == intrinsics_source(tmp_path) == "given"
    images = np.random.default_rng(0).random((1, 64, 96, 3)).astype(np.float32)
    assert loaded.predict_egomotion(images, images)[2].shape == (1, 3, 3)  # still computed, but not a result
