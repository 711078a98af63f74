import pytest

from stages import common


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "train:\n  train_steps: 10\n  learn_intrinsics: true\n  learning_rate: 1.0e-4\n  name: x\n"
        "  checkpoint: null\n  sub:\n    seed: 3\n"
    )
    return path


def test_flags_override_params_absl_style(params_file):
    params, _, _ = common.parse_stage_args(
        "train", "t", ["--params", str(params_file), "--train_steps=1", "--nolearn_intrinsics", "--sub.seed=7"]
    )
    assert params == {
        "train_steps": 1,
        "learn_intrinsics": False,
        "learning_rate": 1e-4,
        "name": "x",
        "checkpoint": None,
        "sub": {"seed": 7},
    }


def test_boolean_forms(params_file):
    for argv, expected in ((["--learn_intrinsics=false"], False), (["--learn_intrinsics"], True), ([], True)):
        params, _, _ = common.parse_stage_args("train", "t", ["--params", str(params_file)] + argv)
        assert params["learn_intrinsics"] is expected


def test_unknown_flag_is_an_error_unless_allowed(params_file):
    with pytest.raises(SystemExit):
        common.parse_stage_args("train", "t", ["--params", str(params_file), "--bogus=1"])
    _, _, unknown = common.parse_stage_args(
        "train", "t", ["--params", str(params_file), "--runner=DirectRunner"], allow_unknown=True
    )
    assert unknown == ["--runner=DirectRunner"]


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


# --- params.yaml comments are the flags' help ------------------------------------------------------------------


def test_param_comments_follow_keys_nesting_and_continuations(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "train:\n"
        "  # a section comment, not a key's\n"
        "  steps: 10        # optimizer updates\n"
        "  rate: 1.0e-4     # Adam learning rate;\n"
        "                   #   continued here\n"
        "  bare: 3\n"
        "  sub:             # nested options\n"
        "    seed: 3        # world seed\n"
        "  url: 'a#b'       # quoted hash kept out\n"
        "other:\n"
        "  steps: 1         # not train's\n"
    )
    comments = common.param_comments("train", path)
    assert comments == {
        "steps": "optimizer updates",
        "rate": "Adam learning rate; continued here",
        "sub": "nested options",
        "sub.seed": "world seed",
        "url": "quoted hash kept out",
    }


def test_every_flag_of_every_stage_section_has_help():
    """--help explains every flag: each key of params.yaml's stage sections carries a comment."""
    import yaml

    document = yaml.safe_load(common.DEFAULT_PARAMS.read_text())
    missing = []
    for section, values in document.items():
        comments = common.param_comments(section)
        missing += [f"{section}.{name}" for name, _ in common._flatten(values or {}) if name not in comments]
    assert not missing, f"params.yaml keys without a comment (their --help would be empty): {missing}"


def test_help_shows_the_comment(params_file, capsys):
    params_file.write_text("train:\n  train_steps: 10   # total optimizer updates\n")
    with pytest.raises(SystemExit):
        common.parse_stage_args("train", "t", ["--params", str(params_file), "--help"])
    assert "total optimizer updates (default: 10)" in " ".join(capsys.readouterr().out.split())
