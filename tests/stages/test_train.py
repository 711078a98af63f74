"""``python -m stages.train``: the seed's one-step command, exit codes, --debug, NaN stop through the CLI."""
import logging

import numpy as np
import pytest
import tensorflow as tf

from model import trainer
from stages import train
from tests.model.test_data import HEIGHT, WIDTH, write_records
from tests.model.test_trainer import NaNAfterStepTwo, TinyModel

SMALL = [f"--img_height={HEIGHT}", f"--img_width={WIDTH}", "--batch_size=2", "--quiet"]


@pytest.mark.slow
@pytest.mark.parametrize("intrinsics_flag", ["--learn_intrinsics", "--nolearn_intrinsics"])
def test_seed_one_step_command_on_the_real_example(real_data, tmp_path, intrinsics_flag):
    checkpoint_dir = tmp_path / "ckpt"
    code = train.main([f"--data_dir={real_data / 'struct2depth_example'}", f"--checkpoint_dir={checkpoint_dir}",
                       "--train_steps=1", intrinsics_flag, "--img_height=128", "--img_width=416", "--quiet"])
    assert code == 0
    assert tf.train.latest_checkpoint(str(checkpoint_dir)).endswith("model-1")
    assert (checkpoint_dir / trainer.MODEL_CONFIG_FILE).is_file()


def test_wrong_record_size_exits_with_a_clear_message(tmp_path, caplog):
    write_records(tmp_path / "data", count=2)
    with caplog.at_level(logging.ERROR):
        code = train.main([f"--data_dir={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path / 'ckpt'}",
                           "--img_height=128", "--img_width=416", "--quiet"])
    assert code == 2
    assert "none of the 2 records" in caplog.text and "expected 3 frames of 416x128" in caplog.text


def test_nan_exits_non_zero_and_keeps_the_last_good_checkpoint(tmp_path, caplog, monkeypatch):
    write_records(tmp_path / "data", count=2)
    monkeypatch.setattr(trainer, "DepthMotionModel", NaNAfterStepTwo)
    with caplog.at_level(logging.ERROR):
        code = train.main([f"--data_dir={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path / 'ckpt'}",
                           "--train_steps=10", "--checkpoint_freq=2", *SMALL])
    assert code == 1
    assert "training stopped: non-finite loss or gradient at step 4" in caplog.text
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")


def test_debug_runs_one_step_and_dumps_tensors(tmp_path, capsys, caplog, monkeypatch):
    write_records(tmp_path / "data", count=2)
    monkeypatch.setattr(trainer, "DepthMotionModel", TinyModel)
    with caplog.at_level(logging.WARNING):
        code = train.main([f"--data_dir={tmp_path / 'data'}", f"--checkpoint_dir={tmp_path / 'ckpt'}",
                           "--debug", "--weight_reg=0.5", *SMALL])
    assert code == 0
    assert "weight_reg=0.5 has no effect" in caplog.text
    assert "total: " in capsys.readouterr().out
    debug = tmp_path / "ckpt" / "debug"
    assert np.load(debug / "input_images.npy").shape == (2, HEIGHT, WIDTH, 9)
    assert np.load(debug / "depth.npy").shape == (2, HEIGHT, WIDTH, 1)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-1")
