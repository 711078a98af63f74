"""The training loop: learning on a tiny set, resume after a kill, NaN stop, per-tensor clipping, metrics.

The loop's own behaviour (resume, NaN stop) is tested around ``TinyModel``, a small stand-in with the
DepthMotionModel interface, so these tests take seconds; the learning test uses the full model (slow).
"""
import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from model import data, trainer
from model.depth_motion_model import ModelConfig
from tests.model.test_data import HEIGHT, WIDTH, write_records

MODEL_CONFIG = ModelConfig(img_height=HEIGHT, img_width=WIDTH, learn_intrinsics=False)


@pytest.fixture
def records(tmp_path):
    write_records(tmp_path / "data", count=2)
    return tmp_path / "data"


def make_trainer(records, checkpoint_dir, model_factory=None, **overrides):
    data_config = data.DataConfig(str(records), img_height=HEIGHT, img_width=WIDTH, batch_size=2, seed=1)
    values = dict(learning_rate=2e-4, train_steps=4, checkpoint_freq=2, summary_freq=1, progress=False)
    values.update(overrides)
    return trainer.Trainer(MODEL_CONFIG, data_config, trainer.TrainerConfig(str(checkpoint_dir), **values),
                           model_factory=model_factory)


class TinyModel(keras.Model):
    """Stand-in with DepthMotionModel's training interface: a 3x3 conv "depth" of frame t1 that should
    reproduce frame t2's grey level (any smooth target would do for a loop test)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.depth_conv = keras.layers.Conv2D(1, 3, padding="same", activation="softplus", name="tiny_depth")
        self.depth_conv(tf.zeros([1, config.img_height, config.img_width, 3]))

    def compute_loss(self, batch, step, training=True):
        depth = self.depth_conv(batch["images_normalized"][..., 3:6])
        target = tf.reduce_mean(batch["images"][..., 6:9], axis=-1, keepdims=True)
        total = tf.reduce_mean(tf.square(depth - target))
        return {"total": total, "rgb": total, "intrinsics": batch["intrinsics"], "depth": depth}


def variables_of(model):
    return [variable.numpy().copy() for variable in model.variables]


def test_clipping_is_per_tensor_and_detects_non_finite():
    gradients = [tf.constant([12.0, 16.0]), tf.constant([3.0, 4.0]), tf.constant([np.nan, 1.0])]
    clipped, squared = trainer.clip_per_tensor(gradients, 10.0)
    np.testing.assert_allclose(clipped[0], [6.0, 8.0], rtol=1e-6)      # norm 20 -> 10
    np.testing.assert_allclose(clipped[1], [3.0, 4.0], rtol=1e-6)      # norm 5: untouched (not a global norm)
    np.testing.assert_allclose([float(squared[0]), float(squared[1])], [400.0, 25.0])
    assert not np.isfinite(float(squared[2]))


@pytest.mark.slow
def test_full_model_loss_decreases_and_metrics_are_logged(records, tmp_path):
    run = make_trainer(records, tmp_path / "ckpt", train_steps=30, checkpoint_freq=100, learning_rate=1e-3,
                       metrics_dir=str(tmp_path / "live"))
    run.train()
    with open(tmp_path / "live" / "plots" / "metrics" / "loss" / "total.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(row["step"]) for row in rows] == list(range(1, 31))
    losses = np.array([float(row["total"]) for row in rows])
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["step"] == 30 and summary["intrinsics"]["fx"] == pytest.approx(80.0)
    assert summary["time"]["step_s"] > 0
    assert (tmp_path / "ckpt" / "model-30.index").is_file()
    assert json.loads((tmp_path / "ckpt" / trainer.MODEL_CONFIG_FILE).read_text())["img_width"] == WIDTH
    assert list((tmp_path / "ckpt" / "tensorboard").glob("events.out.tfevents.*"))


def test_killed_run_resumes_from_its_last_checkpoint(records, tmp_path):
    first = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel, train_steps=5)
    original_step = first.train_step

    def killed_in_step_three(batch):
        if first.step == 2:
            raise KeyboardInterrupt("simulated kill")
        return original_step(batch)

    first.train_step = killed_in_step_three
    with pytest.raises(KeyboardInterrupt):
        first.train()
    saved = variables_of(first.model)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")

    second = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel, train_steps=5)
    assert second.restore_or_initialize() == 2
    for restored, expected in zip(variables_of(second.model), saved):
        np.testing.assert_array_equal(restored, expected)
    second.train()
    assert second.step == 5
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-5")
    assert second.manager.checkpoints[-3:] == [str(tmp_path / "ckpt" / f"model-{n}") for n in (2, 4, 5)]


class NaNAfterStepTwo(TinyModel):
    """Injects a NaN loss from global step 3 on (the fourth update)."""

    def compute_loss(self, batch, step, training=True):
        outputs = super().compute_loss(batch, step, training)
        outputs["total"] = tf.where(step >= 3, tf.constant(np.nan, tf.float32), outputs["total"])
        return outputs


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(records, tmp_path):
    run = make_trainer(records, tmp_path / "ckpt", model_factory=NaNAfterStepTwo, train_steps=8)
    with pytest.raises(trainer.NonFiniteLossError, match=r"step 4 .*non-finite: .*total.*model-2 \(step 2\)"):
        run.train()
    assert run.step == 3, "the NaN update must not be applied"
    assert all(np.all(np.isfinite(value)) for value in variables_of(run.model))
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt" / "model-2"))
    for name, _ in tf.train.list_variables(str(tmp_path / "ckpt" / "model-2")):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_image_sizes_of_data_and_model_must_agree(records, tmp_path):
    data_config = data.DataConfig(str(records), img_height=HEIGHT, img_width=WIDTH)
    with pytest.raises(ValueError, match="image sizes differ"):
        trainer.Trainer(ModelConfig(img_height=32, img_width=WIDTH), data_config,
                        trainer.TrainerConfig(str(tmp_path / "ckpt")))
