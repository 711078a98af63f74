"""``python -m stages.train``: the seed's one-step command as written, exit codes, --debug, NaN stop."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from model import checkpoints, trainer
from stages import train
from stages.common import REPO_ROOT, run_stage
from tests.model.test_data import HEIGHT, WIDTH, write_records
from tests.model.test_trainer import NaNAfterStepTwo, TinyModel

SMALL = ["--batch_size=2", "--quiet"]


def run(argv):
    return run_stage(train.main, [str(arg) for arg in argv])


@pytest.mark.slow
def test_seed_one_step_command_on_the_real_example_runs_as_written(real_data, tmp_path):
    """The seed's smoke command, verbatim: the 416x128 frame size comes from the example's images."""
    checkpoint_dir = tmp_path / "x"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.train",
            f"--data_dir={real_data / 'struct2depth_example'}",
            f"--checkpoint_dir={checkpoint_dir}",
            "--train_steps=1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(checkpoint_dir)).endswith("model-1")
    config = (checkpoint_dir / checkpoints.MODEL_CONFIG_FILE).read_text()
    assert '"img_height": 128' in config and '"img_width": 416' in config


@pytest.mark.slow
def test_learned_intrinsics_one_step_on_the_real_example(real_data, tmp_path):
    code = run(
        [
            f"--data_dir={real_data / 'struct2depth_example'}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            "--train_steps=1",
            "--learn_intrinsics",
            "--img_height=128",
            "--img_width=416",
            "--quiet",
        ]
    )
    assert code == 0


def test_a_frame_size_that_disagrees_with_the_records_is_one_line_exit_2(tmp_path, capsys):
    write_records(tmp_path / "data", count=2)
    code = run(
        [
            f"--data_dir={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            "--img_height=128",
            "--img_width=416",
            "--quiet",
        ]
    )
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "give 416x128 (WxH) but the records of" in error[0] and "are 96x64" in error[0]
    assert "Traceback" not in error[0]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--learning_rate=1e6", "train.learning_rate: must be <= 1.0"),
        ("--learning_rate=-0.1", "train.learning_rate: must be >= 0"),
        ("--batch_size=0", "train.batch_size: must be >= 1"),
        ("--val_freq=-2", "train.val_freq: must be >= 0"),
        ("--smooth_weight=-1", "train.smooth_weight: must be >= 0"),
        ("--flip_rule=corner", "train.flip_rule: must be one of pixel_center, release; got 'corner'"),
    ],
)
def test_bad_hyper_parameters_exit_2_before_anything_is_written(tmp_path, capsys, flag, message):
    write_records(tmp_path / "data", count=2)
    code = run([f"--data_dir={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path / 'ckpt'}", flag, "--quiet"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--learning_rate=nan", "--learning_rate: expected a finite number"),
        ("--smooth_weight=inf", "--smooth_weight: expected a finite number"),
        ("--train_steps=2.5", "--train_steps: expected a whole number"),
    ],
)
def test_values_a_flag_cannot_take_are_usage_errors(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit) as stopped:
        run([f"--data_dir={tmp_path}", f"--checkpoint_dir={tmp_path / 'ckpt'}", flag])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


def test_unknown_params_key_is_named_and_help_describes_every_flag(tmp_path, capsys, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text().replace("train:\n", "train:\n  lerning_rate: 1\n", 1))
    code = run([f"--params={params}", f"--data_dir={tmp_path}", f"--checkpoint_dir={tmp_path / 'ckpt'}"])
    assert code == 2 and "train: unknown key(s) 'lerning_rate'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        run(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert stopped.value.code == 0
    for text in (
        "--val_freq INT steps between validations (and at the last step); 0 = never (default: 500)",
        "--learning_rate FLOAT Adam learning rate (release: 1e-4) (default: 0.0005)",
        "--weight_reg FLOAT accepted for compatibility; has no effect",
        "--val_depth_dir VAL_DEPTH_DIR a synthetic world",
    ):
        assert text in shown, text


def test_missing_init_checkpoint_exits_2(tmp_path, capsys, monkeypatch):
    write_records(tmp_path / "data", count=2)
    monkeypatch.setattr(trainer, "DepthMotionModel", TinyModel)
    code = run(
        [
            f"--data_dir={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            f"--init_checkpoint={tmp_path / 'nothing'}",
            *SMALL,
        ]
    )
    assert code == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_nan_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    write_records(tmp_path / "data", count=2)
    monkeypatch.setattr(trainer, "DepthMotionModel", NaNAfterStepTwo)
    code = run(
        [
            f"--data_dir={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            "--train_steps=10",
            "--checkpoint_freq=2",
            *SMALL,
        ]
    )
    assert code == 3
    error = capsys.readouterr().err
    assert "non-finite loss or gradient at step 4" in error and "model-2 (step 2)" in error
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")


def test_debug_runs_one_step_and_dumps_tensors(tmp_path, capsys, caplog, monkeypatch):
    write_records(tmp_path / "data", count=2)
    monkeypatch.setattr(trainer, "DepthMotionModel", TinyModel)
    with caplog.at_level(logging.WARNING):
        code = run(
            [
                f"--data_dir={tmp_path / 'data'}",
                f"--checkpoint_dir={tmp_path / 'ckpt'}",
                "--debug",
                "--weight_reg=0.5",
                f"--img_height={HEIGHT}",
                *SMALL,
            ]
        )
    assert code == 0
    assert "weight_reg=0.5 has no effect" in caplog.text
    assert "total: " in capsys.readouterr().out
    debug = tmp_path / "ckpt" / "debug"
    assert np.load(debug / "input_images.npy").shape == (2, HEIGHT, WIDTH, 9)
    assert np.load(debug / "depth.npy").shape == (2, HEIGHT, WIDTH, 1)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-1")


def test_metrics_file_holds_the_training_headline(tmp_path, monkeypatch):
    import json

    write_records(tmp_path / "data", count=4)
    monkeypatch.setattr(trainer, "DepthMotionModel", TinyModel)
    metrics_file = tmp_path / "metrics" / "train.json"
    code = run(
        [
            f"--data_dir={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            "--train_steps=2",
            "--summary_freq=1",
            f"--metrics_file={metrics_file}",
            *SMALL,
        ]
    )
    assert code == 0
    headline = json.loads(metrics_file.read_text())
    assert set(headline) == {"loss", "steps", "step_s"} and headline["steps"] == 2
    assert np.isfinite(headline["loss"])


def test_validation_on_a_val_list_reaches_the_headline(tmp_path, monkeypatch, caplog):
    import json

    write_records(tmp_path / "data", count=4)
    (tmp_path / "data" / "val.txt").write_text((tmp_path / "data" / "train.txt").read_text())
    monkeypatch.setattr(trainer, "DepthMotionModel", TinyModel)
    metrics_file = tmp_path / "train.json"
    with caplog.at_level(logging.INFO):
        code = run(
            [
                f"--data_dir={tmp_path / 'data'}",
                f"--checkpoint_dir={tmp_path / 'ckpt'}",
                "--train_steps=3",
                "--val_freq=2",
                f"--metrics_file={metrics_file}",
                *SMALL,
            ]
        )
    assert code == 0
    assert f"val/loss on at most 8 batches of 2 from {tmp_path / 'data' / 'val.txt'} every 2 steps" in caplog.text
    headline = json.loads(metrics_file.read_text())
    assert set(headline) == {"loss", "steps", "step_s", "val_loss"} and np.isfinite(headline["val_loss"])


def test_training_headline_hand_case():
    assert train.training_headline({"loss/total": 0.5, "time/step_s": 0.3, "loss/rgb": 0.1}, 3000) == {
        "loss": 0.5,
        "steps": 3000,
        "step_s": 0.3,
    }
    scalars = {"loss/total": 0.5, "val/loss": 0.4, "val/rgb": 0.1, "val/abs_rel": 0.2}
    assert train.training_headline(scalars, 3)["val_loss"] == 0.4
    assert train.training_headline(scalars, 3)["val_abs_rel"] == 0.2
