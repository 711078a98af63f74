"""pipelines.config: params.yaml's ``preprocess`` section as typed nested configs."""

from __future__ import annotations

import pickle

import pytest
import yaml

from formats.params import ConfigError
from pipelines.config import Detectron2Options, PreprocessConfig, VideoOptions
from stages.common import DEFAULT_PARAMS


def section():
    return yaml.safe_load(DEFAULT_PARAMS.read_text())["preprocess"]


def test_the_params_yaml_section_is_the_config_and_defaults_match_it():
    config = PreprocessConfig.from_mapping(section(), section="preprocess")
    assert config.kitti_raw.cameras == (2,) and config.cityscapes.splits == ("train",)
    assert config.val_fraction == 0.0 and config.size == (config.width, config.height)
    defaults = PreprocessConfig().to_mapping()
    read = config.to_mapping()
    for key in ("input", "output", "segmenter"):  # the dvc run's paths and masks; the library needs them named
        read.pop(key), defaults.pop(key)
    assert read == defaults


def test_unknown_keys_are_named_at_every_level():
    with pytest.raises(ConfigError, match="preprocess: unknown key.*'kitti_cameras'"):
        PreprocessConfig.from_mapping({"kitti_cameras": [2]}, section="preprocess")
    with pytest.raises(ConfigError, match="preprocess.video: unknown key.*'fsp'"):
        PreprocessConfig.from_mapping({"video": {"fsp": 2}}, section="preprocess")
    with pytest.raises(ConfigError, match="preprocess.beam: unknown key.*'project'"):
        PreprocessConfig.from_mapping({"beam": {"project": "p"}}, section="preprocess")


def test_bad_values_are_named_together():
    bad = {
        "source": "tiktok",
        "width": 0,
        "iou_threshold": 1.0,
        "kitti_raw": {"cameras": [4]},
        "video": {"sampling": "burst", "burst": 2},
        "detectron2": {"device": "tpu", "classes": []},
    }
    with pytest.raises(ConfigError) as caught:
        PreprocessConfig.from_mapping(bad, section="preprocess")
    message = str(caught.value)
    for expected in (
        "preprocess.source: must be one of",
        "preprocess.width: must be >= 1",
        "preprocess.kitti_raw.cameras: must be one of 2, 3",
        "preprocess.video.burst: must be >= 3 with burst sampling",
        "preprocess.detectron2.device: must be one of cpu, cuda",
    ):
        assert expected in message
    with pytest.raises(ConfigError, match="iou_threshold: must be < 1"):
        PreprocessConfig(iou_threshold=1.0)
    with pytest.raises(ConfigError, match="classes: name at least one class"):
        Detectron2Options(classes=[])
    with pytest.raises(ConfigError, match="kitti_raw.cameras: name at least one camera"):
        PreprocessConfig.from_mapping({"kitti_raw": {"cameras": []}})


def test_yaml_strings_are_coerced():
    config = PreprocessConfig.from_mapping(
        {
            "static_threshold": "1e-1",  # YAML 1.1 reads 1e-1 as a string
            "video": {"fps": "2.5e0", "intrinsics_file": "null"},
            "kitti_raw": {"cameras": "2,3"},
            "detectron2": {"classes": "car, person", "weights": ""},
        },
        section="preprocess",
    )
    assert config.static_threshold == pytest.approx(0.1) and config.video.fps == pytest.approx(2.5)
    assert config.video.intrinsics_file is None and config.kitti_raw.cameras == (2, 3)
    assert config.detectron2.classes == ("car", "person") and config.detectron2.weights is None


def test_the_named_camera_file_of_videos_and_folders():
    assert PreprocessConfig().intrinsics_file is None
    assert PreprocessConfig(video=VideoOptions(intrinsics_file="K.txt")).intrinsics_file == "K.txt"
    assert PreprocessConfig.from_mapping({"image_folder": {"intrinsics_file": "F.txt"}}).intrinsics_file == "F.txt"


def test_config_pickles_for_beam_workers():
    config = PreprocessConfig.from_mapping({"source": "video", "video": {"fps": 3}}, section="preprocess")
    assert pickle.loads(pickle.dumps(config)) == config


def test_manifest_parameters_are_nested_without_output_and_beam_options():
    config = PreprocessConfig.from_mapping({"input": "in", "output": "out", "segmenter": "none"})
    parameters = config.manifest_parameters()
    assert "output" not in parameters and "beam" not in parameters and "detectron2" not in parameters
    assert parameters["input"] == "in" and parameters["kitti_raw"]["cameras"] == [2]
    assert parameters["width"] == config.width and parameters["height"] == config.height  # model/data.py reads them
    masked = PreprocessConfig.from_mapping({"segmenter": "detectron2", "detectron2": {"score_threshold": 0.7}})
    assert masked.manifest_parameters()["detectron2"]["score_threshold"] == 0.7
