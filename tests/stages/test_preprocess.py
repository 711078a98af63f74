"""stages.preprocess: flags from pipelines.config (with help), params.yaml keys checked, Beam defaults."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pipelines.config import PreprocessConfig
from stages import preprocess
from stages.common import parse_stage_args, run_stage
from tests.conftest import REPO_ROOT


def test_help_describes_every_flag():
    result = subprocess.run(
        [sys.executable, "-m", "stages.preprocess", "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for flag in ("--source", "--kitti_raw.cameras", "--video.fps", "--detectron2.classes", "--beam.runner"):
        assert flag in text
    assert "uniform: frames sampled per second of video" in text
    described = re.findall(r"--[\w.]+ (?:\[\w+\] )?(\S+)", text)
    assert described and not any(word.startswith("(default") for word in described), "a flag without help"


def test_flags_override_nested_keys_and_beam_defaults_fill_the_rest():
    argv = ["--video.fps=5", "--kitti_raw.cameras=2,3", "--nokitti_raw.exclude_eigen_test_scenes", "--runner=X"]
    params, _, unknown = parse_stage_args("preprocess", "t", argv, allow_unknown=True, configs=(PreprocessConfig,))
    config = PreprocessConfig.from_mapping(params, section="preprocess")
    assert config.video.fps == 5.0 and config.kitti_raw.cameras == (2, 3)
    assert config.kitti_raw.exclude_eigen_test_scenes is False
    assert preprocess.beam_arguments(config.beam.to_mapping(), unknown) == ["--runner=X"]  # direct_* dropped
    local = preprocess.beam_arguments(config.beam.to_mapping(), [])
    assert "--runner=DirectRunner" in local and "--direct_num_workers=2" in local


@pytest.mark.parametrize(
    "section,message",
    [("  kitti_cameras: [2]\n", "'kitti_cameras'"), ("  video:\n    fps: -1\n", "preprocess.video.fps: must be > 0")],
)
def test_bad_params_file_exits_2_naming_the_key(tmp_path, capsys, section, message):
    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n" + section)
    code = run_stage(preprocess.main, ["--params", str(params), "--input", str(tmp_path), "--output", "o"])
    assert code == 2
    assert message in capsys.readouterr().err
