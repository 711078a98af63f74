"""stages.synthesize: the typed ``synthesize:`` section (splits from the config, unknown keys, coercion, help)."""

import json

import pytest

from formats.params import ConfigError
from stages import synthesize
from stages.common import load_params, run_stage
from stages.synthesize import SplitConfig, SynthesizeConfig


def test_params_yaml_section_is_the_config_defaults():
    config = SynthesizeConfig.from_mapping(load_params("synthesize"), section="synthesize")
    assert config == SynthesizeConfig()
    assert SynthesizeConfig.split_names() == ("train", "val", "test")
    assert config.val == SplitConfig(seed=501, num_sequences=1)
    seeds = [getattr(config, name).seed for name in SynthesizeConfig.split_names()]
    assert len(set(seeds)) == len(seeds)  # every split renders its own world


def test_val_split_job_uses_its_own_seed():
    job = SynthesizeConfig().job("val", "out")
    assert (job.split, job.seed, job.num_sequences) == ("val", 501, 1)
    assert SynthesizeConfig().job("val", "out", seed=7, num_sequences=3).seed == 7


def test_unknown_keys_are_named_at_every_level():
    with pytest.raises(ConfigError, match="synthesize: unknown key.*'frames'"):
        SynthesizeConfig.from_mapping({"frames": 3}, section="synthesize")
    with pytest.raises(ConfigError, match="synthesize.wild_path: unknown key.*'turns'"):
        SynthesizeConfig.from_mapping({"wild_path": {"turns": 3}}, section="synthesize")


def test_bad_values_are_named():
    with pytest.raises(ConfigError) as error:
        SynthesizeConfig.from_mapping({"workers": 0, "layout": "nuscenes", "val": {"seed": 1}}, section="synthesize")
    message = str(error.value)
    assert "synthesize.workers: must be >= 1" in message and "synthesize.layout: must be one of" in message
    with pytest.raises(ConfigError, match="val.seed: 1 is also train.seed"):
        SynthesizeConfig.from_mapping({"val": {"seed": 1, "num_sequences": 1}}, section="synthesize")


def test_yaml_strings_are_coerced():
    config = SynthesizeConfig.from_mapping(
        {"fps": "1.5e1", "camera": "null", "wild_path": {"speed_max": "2e1"}, "wild_camera": {"fps": "10,25"}}
    )
    assert config.fps == 15.0 and config.camera is None
    assert config.wild_path.speed_max == 20.0 and config.wild_camera.fps == (10.0, 25.0)


def test_unknown_key_in_params_file_exits_2(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("synthesize:\n  layout: kitti_raw\n  supersample: 3\n")
    argv = ["--params", str(params), "--output", str(tmp_path / "out"), "--quiet"]
    assert run_stage(synthesize.main, argv) == 2
    assert "'supersample'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit):
        synthesize.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--val.seed", "--wild_camera.sizes", "--wild_path.speed_max", "--world", "--split"):
        assert flag in text
    assert "--val.seed INT world seed of the split's drives (default: 501)" in text
    assert "(default: null)" in text  # camera: null = as world


def test_val_split_renders(tmp_path):
    output = tmp_path / "val"
    argv = ["--split", "val", "--output", str(output), "--quiet", "--width", "64", "--height", "32"]
    synthesize.main(argv + ["--frames_per_sequence", "2", "--supersampling", "1", "--workers", "1"])
    described = json.loads((output / "synthetic.json").read_text())
    assert (described["split"], described["seed"], described["num_sequences"]) == ("val", 501, 1)
