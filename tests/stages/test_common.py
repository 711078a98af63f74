import dataclasses
from typing import Optional

import pytest

from formats.params import Config, ConfigError, param
from stages import common


@dataclasses.dataclass(frozen=True)
class _Sub(Config):
    seed: int = param(1, help="world seed")


@dataclasses.dataclass(frozen=True)
class _Train(Config):
    train_steps: int = param(5, help="total optimizer updates", minimum=1)
    learn_intrinsics: bool = param(True, help="learn K")
    learning_rate: float = param(1e-3, help="Adam learning rate")
    name: str = param("y", help="a name")
    checkpoint: Optional[str] = param(None, help="a checkpoint")
    sub: _Sub = param(default_factory=_Sub, help="nested options")


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "train:\n  train_steps: 10\n  learn_intrinsics: true\n  learning_rate: 1e-4\n  name: x\n"
        "  checkpoint: null\n  sub:\n    seed: 3\n"
    )
    return path


def _parse(params_file, argv, **kwargs):
    return common.parse_stage_args("train", "t", ["--params", str(params_file)] + argv, configs=(_Train,), **kwargs)


def test_flags_override_params_absl_style(params_file):
    params, _, _ = _parse(params_file, ["--train_steps=1", "--nolearn_intrinsics", "--sub.seed=7"])
    assert params == {
        "train_steps": 1,
        "learn_intrinsics": False,
        "learning_rate": 1e-4,  # YAML 1.1 reads 1e-4 as a string: typed by the field
        "name": "x",
        "checkpoint": None,
        "sub": {"seed": 7},
    }
    assert _Train.from_mapping(params, section="train").sub == _Sub(seed=7)


def test_boolean_forms(params_file):
    for argv, expected in ((["--learn_intrinsics=false"], False), (["--learn_intrinsics"], True), ([], True)):
        params, _, _ = _parse(params_file, argv)
        assert params["learn_intrinsics"] is expected


def test_unknown_flag_is_an_error_unless_allowed(params_file):
    with pytest.raises(SystemExit):
        _parse(params_file, ["--bogus=1"])
    _, _, unknown = _parse(params_file, ["--runner=DirectRunner"], allow_unknown=True)
    assert unknown == ["--runner=DirectRunner"]


def test_unknown_key_in_the_section_is_named(params_file):
    params_file.write_text("train:\n  train_steps: 10\n  lerning_rate: 1.0\n")
    with pytest.raises(ConfigError, match="train: unknown key.*'lerning_rate'"):
        _parse(params_file, [])


def test_help_shows_the_field_help_and_default(params_file, capsys):
    with pytest.raises(SystemExit):
        _parse(params_file, ["--help"])
    assert "total optimizer updates (default: 10)" in " ".join(capsys.readouterr().out.split())


def test_missing_section(params_file):
    with pytest.raises(KeyError, match="no section"):
        common.load_params("nope", params_file)


# --- exit codes: one contract for every stage (stages/common.py) ---------------------------------------------


class _NonFinite(RuntimeError):
    exit_code = 3


@pytest.mark.parametrize(
    "error, code",
    [
        (common.StageError("bad folder"), 2),
        (FileNotFoundError("no such file: x.txt"), 2),
        (PermissionError("read-only"), 2),
        (ValueError("learning_rate must be finite"), 2),
        (_NonFinite("loss is nan"), 3),
        (RuntimeError("a bug"), 1),
        (KeyError("a bug"), 1),
    ],
)
def test_run_stage_maps_errors_to_documented_exit_codes(error, code, capsys):
    def main(argv=None):
        raise error

    assert common.run_stage(main, [], name="demo") == code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("demo: error: ") and type(error).__name__ in last
    if code == 1:
        assert "Traceback" in err  # a bug keeps its traceback
    else:
        assert "Traceback" not in err  # a user error is one line


def test_run_stage_success_and_explicit_codes():
    assert common.run_stage(lambda argv=None: {"metrics": 1}, []) == 0
    assert common.run_stage(lambda argv=None: None, []) == 0
    assert common.run_stage(lambda argv=None: 2, []) == 2


def test_missing_section_is_a_one_line_user_error(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("other: {a: 1}\n")

    def main(argv=None):
        return common.load_params("train", params)

    assert common.run_stage(main, [], name="train") == 2
    assert "has no section 'train'" in capsys.readouterr().err


def test_synthesize_cli_bad_layout_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "stages.synthesize", "--layout", "nope", "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=common.REPO_ROOT,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("synthesize: error: ConfigError: invalid SynthesizeConfig")
    assert "synthesize.layout: must be one of kitti_raw" in result.stderr


# --- every stage section of params.yaml is read by its configs; every flag explains itself -------------------


def _stage_configs():
    from evaluation.depth_evaluation import DepthEvalConfig
    from evaluation.odometry_evaluation import OdometryEvalConfig
    from evaluation.odometry_inference import TrajectoryInferenceConfig
    from pipelines.config import PreprocessConfig
    from stages.predict import PredictConfig
    from stages.synthesize import SynthesizeConfig
    from stages.train import CONFIGS

    return {
        "synthesize": (SynthesizeConfig,),
        "preprocess": (PreprocessConfig,),
        "train": CONFIGS,
        "eval_depth": (DepthEvalConfig,),
        "eval_odometry": (OdometryEvalConfig,),
        "trajectory_inference": (TrajectoryInferenceConfig,),
        "predict": (PredictConfig,),
    }


def test_every_section_of_params_yaml_is_read_by_its_stage_configs():
    import yaml

    from formats.params import check_keys

    document = yaml.safe_load(common.DEFAULT_PARAMS.read_text())
    configs = _stage_configs()
    assert set(document) == set(configs)
    for section, classes in configs.items():
        check_keys(document[section], classes, section)  # no key a config does not declare
        for cls in classes:
            fixed = {"img_height": 64, "img_width": 224} if cls.__name__ == "ModelConfig" else {}
            required = [
                f.name
                for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            fixed.update({name: "x" for name in required if name not in fixed})
            values = dict(document[section])
            if section == "predict":  # the user's footage: required, null in params.yaml
                values.update(checkpoint_path="ckpt", input="clip.mp4", output="out")
            cls.from_mapping(values, section=section, strict=False, **fixed)  # valid values


def test_every_flag_of_every_stage_has_a_description():
    import argparse

    from formats.params import add_flags

    for section, classes in _stage_configs().items():
        parser = argparse.ArgumentParser()
        add_flags(parser, classes, {})
        undescribed = [
            action.option_strings[0]
            for action in parser._actions
            if action.option_strings
            and action.help != argparse.SUPPRESS
            and action.help.split(" (default:")[0].strip() == ""
        ]
        assert not undescribed, f"{section}: flags without a description: {undescribed}"
