import pytest

from stages import common


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  train_steps: 10\n  learn_intrinsics: true\n  learning_rate: 1.0e-4\n  name: x\n"
                    "  checkpoint: null\n  sub:\n    seed: 3\n")
    return path


def test_flags_override_params_absl_style(params_file):
    params, _, _ = common.parse_stage_args(
        "train", "t", ["--params", str(params_file), "--train_steps=1", "--nolearn_intrinsics", "--sub.seed=7"])
    assert params == {"train_steps": 1, "learn_intrinsics": False, "learning_rate": 1e-4, "name": "x",
                      "checkpoint": None, "sub": {"seed": 7}}


def test_boolean_forms(params_file):
    for argv, expected in ((["--learn_intrinsics=false"], False), (["--learn_intrinsics"], True), ([], True)):
        params, _, _ = common.parse_stage_args("train", "t", ["--params", str(params_file)] + argv)
        assert params["learn_intrinsics"] is expected


def test_unknown_flag_is_an_error_unless_allowed(params_file):
    with pytest.raises(SystemExit):
        common.parse_stage_args("train", "t", ["--params", str(params_file), "--bogus=1"])
    _, _, unknown = common.parse_stage_args("train", "t", ["--params", str(params_file), "--runner=DirectRunner"],
                                            allow_unknown=True)
    assert unknown == ["--runner=DirectRunner"]


def test_missing_section(params_file):
    with pytest.raises(KeyError, match="no section"):
        common.load_params("nope", params_file)
