"""The training loop: learning on a tiny set, resume after a kill, NaN stop, per-tensor clipping, metrics.

The loop's own behaviour (resume, NaN stop) is tested around ``TinyModel``, a small stand-in with the
DepthMotionModel interface, so these tests take seconds; the learning test uses the full model (slow).
"""

import csv
import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from formats import struct2depth
from formats.params import ConfigError, check_keys
from model import checkpoints, data, trainer
from model.config import ModelConfig
from model.depth_motion_model import imagenet_normalize
from tests.model.test_data import HEIGHT, WIDTH, write_records

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIG = ModelConfig(img_height=HEIGHT, img_width=WIDTH, learn_intrinsics=False)


@pytest.fixture
def records(tmp_path):
    write_records(tmp_path / "data", count=2)
    return tmp_path / "data"


def make_trainer(records, checkpoint_dir, model_factory=None, **overrides):
    data_config = data.DataConfig(str(records), img_height=HEIGHT, img_width=WIDTH, batch_size=2, seed=1)
    values = dict(learning_rate=2e-4, train_steps=4, checkpoint_freq=2, summary_freq=1, progress=False)
    values.update(overrides)
    config = trainer.TrainerConfig(str(checkpoint_dir), **values)
    trainer.configure_runtime(config)
    return trainer.Trainer(MODEL_CONFIG, data_config, config, model_factory=model_factory)


class TinyModel(keras.Model):
    """Stand-in with DepthMotionModel's training interface: a 3x3 conv "depth" of frame t1 that should
    reproduce frame t2's grey level (any smooth target would do for a loop test)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.depth_conv = keras.layers.Conv2D(1, 3, padding="same", activation="softplus", name="tiny_depth")
        self.depth_conv(tf.zeros([1, config.img_height, config.img_width, 3]))

    def compute_loss(self, batch, step, training=True):
        depth = self.depth_conv(imagenet_normalize(batch["images"][..., 3:6]))
        target = tf.reduce_mean(batch["images"][..., 6:9], axis=-1, keepdims=True)
        total = tf.reduce_mean(tf.square(depth - target))
        return {"total": total, "rgb": total, "intrinsics": batch["intrinsics"], "depth": depth}

    def predict_depth(self, images, flip_augment=True):
        return self.depth_conv(imagenet_normalize(images))


def variables_of(model):
    return [variable.numpy().copy() for variable in model.variables]


def test_clipping_is_per_tensor_and_detects_non_finite():
    gradients = [tf.constant([12.0, 16.0]), tf.constant([3.0, 4.0]), tf.constant([np.nan, 1.0])]
    clipped, squared = trainer.clip_per_tensor(gradients, 10.0)
    np.testing.assert_allclose(clipped[0], [6.0, 8.0], rtol=1e-6)  # norm 20 -> 10
    np.testing.assert_allclose(clipped[1], [3.0, 4.0], rtol=1e-6)  # norm 5: untouched (not a global norm)
    np.testing.assert_allclose([float(squared[0]), float(squared[1])], [400.0, 25.0])
    assert not np.isfinite(float(squared[2]))


# A configuration known to learn (the CPU defaults of params.yaml at a quarter width): overfitting one fixed
# batch (2 records, no augmentation) takes the loss from ~2.0 to ~0.11 in 40 steps at lr 1e-3 (measured).
LEARNABLE = ModelConfig(
    img_height=HEIGHT,
    img_width=WIDTH,
    learn_intrinsics=False,
    depth_network_width=0.25,
    motion_network_width=0.25,
    motion_scale_initial_value=0.1,
    motion_pairing="inverse",
    smooth_weight=1e-3,
)


def fixed_batch_losses(records, checkpoint_dir, learning_rate, steps, **overrides):
    """Train LEARNABLE on the same batch every step (2 records, batch 2, no augmentation); per-step losses."""
    data_config = data.DataConfig(str(records), batch_size=2, seed=1, color_probability=0.0, flip_probability=0.0)
    values = dict(
        learning_rate=learning_rate, train_steps=steps, checkpoint_freq=100, summary_freq=1, progress=False, seed=1
    )
    values.update(overrides)
    config = trainer.TrainerConfig(str(checkpoint_dir), **values)
    trainer.configure_runtime(config)
    run = trainer.Trainer(LEARNABLE, data_config, config)
    losses = []
    original = run.train_step

    def recording(batch):
        outputs = original(batch)
        losses.append(float(outputs["total"]))
        return outputs

    run.train_step = recording
    run.train()
    return np.array(losses)


@pytest.mark.slow
def test_full_model_overfits_one_batch_and_metrics_are_logged(records, tmp_path):
    """Learning, not noise: with the learning rate at 0 the same run's loss does not move (so the batch, the
    batch-norm statistics and the noise ramp are fixed), and with 1e-3 it falls far below that level."""
    frozen = fixed_batch_losses(records, tmp_path / "frozen", 0.0, steps=3)
    assert np.ptp(frozen) < 1e-3 * frozen[0], frozen
    losses = fixed_batch_losses(records, tmp_path / "ckpt", 1e-3, steps=40, metrics_dir=str(tmp_path / "live"))
    assert np.all(np.isfinite(losses))
    assert losses[0] == pytest.approx(frozen[0], rel=1e-4), "same model, same batch: the same first loss"
    # Measured 0.06x; a model that does not learn stays at 1x.
    assert losses[-5:].mean() < 0.5 * frozen.mean(), losses
    with open(tmp_path / "live" / "plots" / "metrics" / "loss" / "total.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(row["step"]) for row in rows] == list(range(1, 41))
    np.testing.assert_allclose([float(row["total"]) for row in rows], losses, rtol=1e-5)
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["step"] == 40 and summary["intrinsics"]["fx"] == pytest.approx(80.0)
    assert summary["time"]["step_s"] > 0
    assert (tmp_path / "ckpt" / "model-40.index").is_file()
    assert json.loads((tmp_path / "ckpt" / checkpoints.MODEL_CONFIG_FILE).read_text())["img_width"] == WIDTH
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
        trainer.Trainer(
            ModelConfig(img_height=32, img_width=WIDTH), data_config, trainer.TrainerConfig(str(tmp_path / "ckpt"))
        )


# --- poisoned checkpoints and hyper-parameters (issue 10, item 3) -----------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", float("nan"), "learning_rate: expected a finite number"),
        ("learning_rate", float("inf"), "learning_rate: expected a finite number"),
        ("learning_rate", -1e-4, "learning_rate: must be >= 0"),
        ("learning_rate", 1e6, "learning_rate: must be <= 1.0"),
        ("learning_rate", "fast", "learning_rate: expected a number"),
        ("beta1", 1.0, "beta1: must be <="),
        ("clip_gradient_norm", float("nan"), "clip_gradient_norm: expected a finite number"),
        ("train_steps", 0, "train_steps: must be >= 1"),
        ("train_steps", 2.5, "whole number"),
        ("summary_freq", 0, "summary_freq: must be >= 1"),
        ("checkpoint_freq", -1, "checkpoint_freq: must be >= 0"),
        ("keep_checkpoints", 0, "keep_checkpoints: must be >= 1"),
        ("val_freq", -1, "val_freq: must be >= 0"),
        ("val_batches", 0, "val_batches: must be >= 1"),
    ],
)
def test_bad_hyper_parameters_are_rejected_at_startup(field, value, message):
    with pytest.raises(ConfigError, match=message):
        trainer.TrainerConfig("/tmp/unused", **{field: value})


def test_numbers_written_as_yaml_strings_are_accepted():
    config = trainer.TrainerConfig("/tmp/unused", learning_rate="1e-4", train_steps="10", clip_gradient_norm=0)
    assert config.learning_rate == 1e-4 and config.train_steps == 10 and isinstance(config.train_steps, int)
    assert trainer.NonFiniteLossError.exit_code == 3


def test_the_train_section_builds_typed_configs_and_names_bad_keys():
    section = {"learning_rate": "1e-4", "batch_size": "2", "weight_reg": 0.5, "val_freq": 0, "smooth_weight": 0.1}
    config = trainer.TrainerConfig.from_mapping(section, section="train", strict=False, checkpoint_dir="/c")
    reader = data.DataConfig.from_mapping(section, section="train", strict=False, data_dir="/d")
    assert config.learning_rate == pytest.approx(1e-4) and config.weight_reg == 0.5 and config.val_freq == 0
    assert reader.batch_size == 2 and reader.data_dir == "/d"
    with pytest.raises(ConfigError, match=r"train\.learning_rate: must be <= 1.0.*\n.*train\.val_freq: must be >= 0"):
        trainer.TrainerConfig.from_mapping({"learning_rate": 2, "val_freq": -5}, section="train", checkpoint_dir="/c")
    with pytest.raises(ConfigError, match="train: unknown key.*'lerning_rate'"):
        check_keys({"lerning_rate": 1e-4}, [trainer.TrainerConfig, data.DataConfig, ModelConfig], "train")
    with pytest.raises(ConfigError, match="'checkpoint_dir'"):  # a stage argument, not a params key
        check_keys({"checkpoint_dir": "x"}, [trainer.TrainerConfig, data.DataConfig, ModelConfig], "train")


def test_configure_runtime_sets_the_seeds_and_the_precision_policy():
    trainer.configure_runtime(trainer.TrainerConfig("/unused", seed=5, mixed_precision=True))
    try:
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        first = np.random.random()
        trainer.configure_runtime(trainer.TrainerConfig("/unused", seed=5))
        assert keras.mixed_precision.global_policy().name == "float32"
        assert np.random.random() == first
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_scaled_adam_steps_chosen_variables_by_factor_times_the_rate():
    plain, boosted = tf.Variable([1.0, -2.0]), tf.Variable([1.0, -2.0])
    reference = tf.Variable([1.0, -2.0])
    optimizer = trainer.ScaledAdam(learning_rate=1e-3)
    optimizer.build([plain, boosted])
    optimizer.scale_learning_rate([boosted], 10.0)
    adam = keras.optimizers.Adam(learning_rate=1e-3)
    adam.build([reference])
    for gradient in ([0.5, -3.0], [0.2, 1.0], [-0.1, 4.0]):
        optimizer.apply_gradients([(tf.constant(gradient), plain), (tf.constant(gradient), boosted)])
        adam.apply_gradients([(tf.constant(gradient), reference)])
        np.testing.assert_array_equal(plain.numpy(), reference.numpy())  # not chosen: Adam itself
    # Same gradients, same moments: the chosen variable moved 10x the other's distance from their common start.
    np.testing.assert_allclose(boosted.numpy() - [1.0, -2.0], 10.0 * (plain.numpy() - [1.0, -2.0]), rtol=1e-4)


def test_learning_rate_decay_steps_hand_cases_and_bad_values():
    config = trainer.TrainerConfig("/unused", learning_rate=1e-2, learning_rate_decay_steps=[2, 4])
    assert config.learning_rate_decay == 0.1 and config.learning_rate_decay_steps == (2, 4)
    rates = [config.learning_rate_at(step) for step in range(1, 7)]
    np.testing.assert_allclose(rates, [1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-12)
    assert trainer.TrainerConfig("/unused", learning_rate=3e-4).learning_rate_at(10**6) == 3e-4  # the release
    assert trainer.learning_rate_schedule(trainer.TrainerConfig("/unused", learning_rate=3e-4)) == 3e-4
    for steps in ([0], [3, 2], [2, 2]):
        with pytest.raises(ConfigError, match="learning_rate_decay_steps: must be increasing"):
            trainer.TrainerConfig("/unused", learning_rate_decay_steps=steps)
    for decay in (0.0, 1.5):
        with pytest.raises(ConfigError, match="learning_rate_decay: must be"):
            trainer.TrainerConfig("/unused", learning_rate_decay=decay)


def test_adam_steps_follow_the_decay_schedule():
    """Adam's step is the learning rate when the gradient keeps its value (m / sqrt(v) = 1 after bias
    correction), so a variable pushed by a constant gradient moves by exactly the schedule, step by step."""
    config = trainer.TrainerConfig("/unused", learning_rate=1e-2, learning_rate_decay_steps=[2, 4])
    variable = tf.Variable(0.0)
    optimizer = trainer.ScaledAdam(learning_rate=trainer.learning_rate_schedule(config))
    optimizer.build([variable])
    moves = []
    for _ in range(6):
        before = float(variable.numpy())
        optimizer.apply_gradients([(tf.constant(-1.0), variable)])
        moves.append(float(variable.numpy()) - before)
    np.testing.assert_allclose(moves, [config.learning_rate_at(step) for step in range(1, 7)], rtol=1e-4)


def test_a_resumed_run_continues_on_the_schedule_and_logs_the_rate(records, tmp_path):
    first = make_trainer(records, tmp_path / "ck", TinyModel, train_steps=2)  # constant rate, as the release
    assert first.train()["learning_rate"] == pytest.approx(2e-4)
    resumed = make_trainer(records, tmp_path / "ck", TinyModel, train_steps=4, learning_rate_decay_steps=[3])
    assert resumed.restore_or_initialize() == 2
    kernel = resumed.model.depth_conv.kernel
    steps = []
    for _ in range(2):
        before = kernel.numpy().copy()
        resumed.train_step(next(iter(resumed.dataset)))
        steps.append(float(np.abs(kernel.numpy() - before).max()))
    assert resumed.step == 4
    # Step 3 at the full rate, step 4 at a tenth (Adam's step is at most about the rate).
    assert 0.5e-4 < steps[0] <= 2.1e-4 and steps[1] <= 2.1e-5, steps
    assert resumed.config.learning_rate_at(resumed.step) == pytest.approx(2e-5)


def test_intrinsics_learning_rate_factor_scales_the_head_only(records, tmp_path):
    class TinyWithHead(TinyModel):
        def __init__(self, config):
            super().__init__(config)
            self.head = self.add_weight(name="head", shape=(), initializer="ones")

        @property
        def intrinsics_variables(self):
            return [self.head]

        def compute_loss(self, batch, step, training=True):
            outputs = super().compute_loss(batch, step, training)
            outputs["total"] = outputs["total"] + self.head * tf.reduce_mean(batch["images"])
            return outputs

    moved = {}
    for factor in (1.0, 10.0):
        run = make_trainer(
            records, tmp_path / f"ck_{factor}", TinyWithHead, train_steps=1, intrinsics_learning_rate_factor=factor
        )
        kernel_before = run.model.depth_conv.kernel.numpy().copy()
        run.train_step(next(iter(run.dataset)))
        moved[factor] = (
            abs(float(run.model.head.numpy()) - 1.0),
            np.abs(run.model.depth_conv.kernel.numpy() - kernel_before),
        )
    np.testing.assert_allclose(moved[10.0][0], 10.0 * moved[1.0][0], rtol=1e-3)  # Adam's first step: the rate
    np.testing.assert_allclose(moved[10.0][1], moved[1.0][1], rtol=1e-5)  # every other weight as before
    with pytest.raises(ConfigError, match="intrinsics_learning_rate_factor"):
        trainer.TrainerConfig.from_mapping({"intrinsics_learning_rate_factor": 0}, section="train", checkpoint_dir="/c")
    with pytest.raises(ValueError, match="TinyModel has no intrinsics head"):
        make_trainer(records, tmp_path / "ck_headless", TinyModel, intrinsics_learning_rate_factor=10.0)


def test_configure_runtime_sets_the_thread_pools_of_a_fresh_process():
    code = (
        "import tensorflow as tf; from model import trainer; "
        "trainer.configure_runtime(trainer.TrainerConfig('/unused', intra_op_threads=1, inter_op_threads=3)); "
        "print(tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "3"]


def test_thread_pools_of_a_running_tensorflow_stay_with_a_warning(caplog):
    tf.constant(1.0) + 1.0  # the runtime is started
    threading = tf.config.threading
    current = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    assert trainer.set_op_threads(*current)  # nothing to change: no warning
    with caplog.at_level(logging.WARNING, logger="model.trainer"):
        assert not trainer.set_op_threads(current[0] + 1, current[1])
    assert "thread pools stay" in caplog.text and f"asked: {current[0] + 1} / {current[1]}" in caplog.text
    assert (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == current


class StatisticGoesNaN(TinyModel):
    """A finite loss and finite gradients, but a non-trainable statistic (like a batch-norm moving variance)
    that the step of global step 2 (the third update) sets to NaN."""

    def __init__(self, config):
        super().__init__(config)
        self.statistic = self.add_weight(shape=(), initializer="zeros", trainable=False, name="statistic")

    def compute_loss(self, batch, step, training=True):
        self.statistic.assign(tf.where(step >= 2, tf.constant(np.nan, tf.float32), 0.0))
        return super().compute_loss(batch, step, training)


def all_checkpoint_tensors_finite(prefix):
    return checkpoints.non_finite_tensors(str(prefix)) == []


def test_an_update_that_poisons_the_weights_is_never_saved(records, tmp_path):
    run = make_trainer(records, tmp_path / "ckpt", model_factory=StatisticGoesNaN, train_steps=6, checkpoint_freq=1)
    with pytest.raises(
        trainer.NonFiniteLossError,
        match=r"update of step 3 made 1 model variables non-finite .*statistic.*nothing was saved; "
        r"last good \(finite\) checkpoint: .*model-2 \(step 2\)",
    ):
        run.train()
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")
    assert all(all_checkpoint_tensors_finite(prefix) for prefix in run.manager.checkpoints)


def test_save_refuses_non_finite_weights_and_resume_refuses_a_poisoned_checkpoint(records, tmp_path):
    run = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel, train_steps=2, checkpoint_freq=1)
    run.train()
    kernel = run.model.depth_conv.kernel
    kernel.assign(tf.fill(kernel.shape, np.nan))
    with pytest.raises(trainer.NonFiniteLossError, match=r"not saving step 2: 1 variables .*model-2 \(step 2\)"):
        run.save()
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("model-2")
    # A poisoned checkpoint written by an older version (bypassing the check) is not resumed from.
    run.optimizer.iterations.assign(3)
    run.manager.save(checkpoint_number=3)
    again = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel, train_steps=5)
    with pytest.raises(
        trainer.NonFiniteLossError,
        match=r"cannot resume: .*model-3 holds non-finite values .*last good \(finite\) checkpoint: "
        r".*model-2 \(step 2\)",
    ):
        again.restore_or_initialize()


# --- resume continues the input stream; interrupted saves are cleaned (issue 10, item 4) ------------------


def recorded_steps(run):
    """Wrap ``run.train_step`` to record each batch's positions and images."""
    seen = []
    original = run.train_step

    def recording(batch):
        seen.append((batch["position"].numpy().copy(), batch["images"].numpy().copy()))
        return original(batch)

    run.train_step = recording
    return seen


def test_resume_continues_the_data_stream_where_it_stopped(tmp_path):
    write_records(tmp_path / "data", count=5)
    config = dict(model_factory=TinyModel, checkpoint_freq=3, train_steps=6)
    straight = make_trainer(tmp_path / "data", tmp_path / "straight", **config)
    uninterrupted = recorded_steps(straight)
    straight.train()
    first = make_trainer(tmp_path / "data", tmp_path / "resumed", **{**config, "train_steps": 3})
    first.train()
    second = make_trainer(tmp_path / "data", tmp_path / "resumed", **config)
    resumed = recorded_steps(second)
    second.train()
    assert len(uninterrupted) == 6 and len(resumed) == 3
    assert int(second.data_position.numpy()) == 12
    for (positions, images), (expected_positions, expected_images) in zip(resumed, uninterrupted[3:]):
        np.testing.assert_array_equal(positions, expected_positions)
        np.testing.assert_array_equal(images, expected_images)
    assert not np.array_equal(resumed[0][1], uninterrupted[0][1]), "a fresh stream's first batch is not repeated"
    for name, value in zip([v.path for v in second.model.variables], variables_of(second.model)):
        np.testing.assert_allclose(
            value,
            dict(zip([v.path for v in straight.model.variables], variables_of(straight.model)))[name],
            rtol=1e-5,
            atol=1e-7,
        )


def test_half_written_checkpoint_folders_are_removed_and_nothing_else(records, tmp_path):
    checkpoint_dir = tmp_path / "ckpt"
    checkpoint_dir.mkdir()
    stale = checkpoint_dir / "model-7_temp"
    stale.mkdir()
    (stale / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (stale / "part-00000-of-00001.index").write_bytes(b"x")
    old_style = checkpoint_dir / ("model-9_temp_" + "0123456789abcdef" * 2)
    old_style.mkdir()
    (old_style / "part-00000-of-00001").write_bytes(b"x")
    kept = [checkpoint_dir / "model-8_temp", checkpoint_dir / "mymodel-3_temp", checkpoint_dir / "model-x_temp"]
    for folder in kept:
        folder.mkdir()
    (kept[0] / "notes.txt").write_text("mine")
    (checkpoint_dir / "model-5_temp").write_text("a file, not a folder")
    run = make_trainer(records, checkpoint_dir, model_factory=TinyModel)
    assert run.restore_or_initialize() == 0
    assert not stale.exists() and not old_style.exists()
    assert all(folder.is_dir() for folder in kept) and (kept[0] / "notes.txt").read_text() == "mine"
    assert (checkpoint_dir / "model-5_temp").is_file()


# --- fine-tuning from a checkpoint (issue 13, item 2) -------------------------------------------------------

SMALL_MODEL = ModelConfig(
    img_height=HEIGHT, img_width=WIDTH, learn_intrinsics=True, depth_network_width=0.25, motion_network_width=0.25
)


def predictions(model, images):
    depth = model.predict_depth(images).numpy()
    rotation, translation, intrinsics = (value.numpy() for value in model.predict_egomotion(images, images[::-1]))
    return depth, rotation, translation, intrinsics


def full_trainer(records, checkpoint_dir, seed, **overrides):
    data_config = data.DataConfig(str(records), batch_size=2, seed=seed)
    values = dict(learning_rate=1e-3, train_steps=1, checkpoint_freq=1, summary_freq=1, progress=False, seed=seed)
    values.update(overrides)
    config = trainer.TrainerConfig(str(checkpoint_dir), **values)
    trainer.configure_runtime(config)
    return trainer.Trainer(SMALL_MODEL, data_config, config)


def test_init_checkpoint_restores_every_model_variable_and_resume_wins(records, tmp_path, caplog):
    source = full_trainer(records, tmp_path / "source", seed=1)
    source.optimizer.iterations.assign(7)  # as if trained 7 steps (no step is traced: fast tier)
    source.save()
    images = tf.constant(np.random.default_rng(0).random((2, HEIGHT, WIDTH, 3)), tf.float32)
    expected = predictions(source.model, images)
    tuned = full_trainer(records, tmp_path / "tuned", seed=2, init_checkpoint=str(tmp_path / "source"))
    before = predictions(tuned.model, images)
    assert not np.allclose(before[0], expected[0]), "a fresh model must predict differently (else vacuous)"
    with caplog.at_level(logging.INFO, logger="model.trainer"):
        assert tuned.restore_or_initialize() == 0
    count = len(tuned.model.variables)
    assert (
        f"initialised from wilddepth checkpoint {tmp_path / 'source' / 'model-7'}: {count} of {count} model "
        "variables restored; the optimizer starts fresh" in caplog.text
    )
    for restored, original in zip(tuned.model.variables, source.model.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=restored.path)
    for value, reference in zip(predictions(tuned.model, images), expected):
        np.testing.assert_array_equal(value, reference)
    assert tuned.step == 0 and int(tuned.data_position.numpy()) == 0


def test_a_checkpoint_to_resume_wins_over_init_checkpoint(records, tmp_path, caplog):
    first = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel)
    first.optimizer.iterations.assign(2)
    first.save()
    # The init checkpoint does not even exist: resuming never reads it.
    again = make_trainer(records, tmp_path / "ckpt", model_factory=TinyModel, init_checkpoint=str(tmp_path / "none"))
    with caplog.at_level(logging.INFO, logger="model.trainer"):
        assert again.restore_or_initialize() == 2
    assert f"init_checkpoint {tmp_path / 'none'} ignored: resuming from" in caplog.text


@pytest.mark.slow
def test_init_checkpoint_from_a_release_tf1_checkpoint_and_mismatches(tmp_path):
    from model.depth_motion_model import DepthMotionModel
    from tests.model.test_tf1_checkpoint import _spec_table, _write_tf1_checkpoint

    prefix = _write_tf1_checkpoint(tmp_path / "release" / "model-199160", _spec_table(), [("global_step", ())])
    model = DepthMotionModel(ModelConfig(img_height=HEIGHT, img_width=WIDTH))
    report = checkpoints.load_initial_weights(model, prefix)
    assert report.kind == "tf1" and report.not_restored == [] and len(report.restored) == len(model.variables)
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(
        model.depth_net.tf1_scopes()["upconv5"].kernel.numpy(), reader.get_tensor("depth_prediction/upconv5/weights")
    )
    slim = DepthMotionModel(SMALL_MODEL)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="do not match"):
        checkpoints.load_initial_weights(slim, prefix)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        checkpoints.load_initial_weights(slim, tmp_path / "nothing")


# --- the data stream is data.make_dataset's, in a fixed order -----------------------------------------------

# Record indices of the first 10 stream positions of 5 records, data seed 1 and global seed 8964 (recorded with
# the trainer before it used data.make_dataset): the order the seeds give must never change silently.
FIRST_RECORDS_SEED_1 = [0, 3, 2, 4, 1, 3, 4, 2, 1, 0]


def test_the_training_stream_is_make_dataset_in_the_order_the_seed_fixes(tmp_path):
    write_records(tmp_path / "data", count=5)
    run = make_trainer(tmp_path / "data", tmp_path / "ckpt", model_factory=TinyModel, train_steps=3)
    seen = recorded_steps(run)
    run.train()
    dataset, reader = data.make_dataset(run.data_config)
    assert [int(index) for _, index in reader.index_stream().take(10)] == FIRST_RECORDS_SEED_1
    for (positions, images), expected in zip(seen, dataset.take(3)):
        np.testing.assert_array_equal(positions, expected["position"].numpy())
        np.testing.assert_array_equal(images, expected["images"].numpy())
    assert len(seen) == 3


# --- validation ---------------------------------------------------------------------------------------------


def test_validation_logs_val_loss_at_its_steps_and_skips_without_a_list(records, tmp_path, caplog):
    run = make_trainer(records, tmp_path / "none", model_factory=TinyModel, val_data_dir=str(records), val_freq=2)
    assert not run.validation.enabled, "no val.txt: no validation"
    (records / "val.txt").write_text("")
    with caplog.at_level(logging.INFO, logger="model.trainer"):
        run = make_trainer(records, tmp_path / "empty", model_factory=TinyModel, val_data_dir=str(records))
    assert not run.validation.enabled and f"validation loss skipped: {records / 'val.txt'} is empty" in caplog.text

    write_records(records, count=3, seed=4, folder="seq_val")
    (records / "train.txt").write_text("seq_00 0000000001\nseq_00 0000000002\n")
    (records / "val.txt").write_text("seq_val 0000000001\nseq_val 0000000002\nseq_val 0000000003\n")
    run = make_trainer(
        records,
        tmp_path / "ckpt",
        model_factory=TinyModel,
        train_steps=5,
        summary_freq=1,
        val_data_dir=str(records),
        val_freq=2,
        val_batches=1,
        metrics_dir=str(tmp_path / "live"),
    )
    last = run.train()
    with open(tmp_path / "live" / "plots" / "metrics" / "val" / "loss.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(row["step"]) for row in rows] == [2, 4, 5], "every val_freq steps and at the last step"
    assert last["val/loss"] == pytest.approx(float(rows[-1]["loss"]), rel=1e-6) and "val/rgb" in last
    # One batch of the first 2 val records (batch size 2) in list order, no augmentation, inference mode.
    plain = dataclasses.replace(
        run.data_config, input_file="val", shuffle=False, repeat=False, color_probability=0.0, flip_probability=0.0
    )
    batch = next(iter(data.make_dataset(plain)[0]))
    assert batch["position"].numpy().tolist() == [0, 1]
    batch = {key: value for key, value in batch.items() if key != "position"}
    expected = run.model.compute_loss(batch, run.optimizer.iterations, training=False)["total"]
    assert last["val/loss"] == pytest.approx(float(expected), rel=1e-5)


def test_validation_changes_no_weight_of_the_full_model(records, tmp_path):
    struct2depth.write_list(records / "val.txt", struct2depth.read_list(records / "train.txt"))
    run = full_trainer(records, tmp_path / "ckpt", seed=1, val_data_dir=str(records), val_batches=1)
    before = variables_of(run.model)
    first = run.validation.run()
    second = run.validation.run()
    for value, original in zip(variables_of(run.model), before):
        np.testing.assert_array_equal(value, original)
    assert np.isfinite(first["val/loss"]) and first == second, "the same fixed batches every time"


class EagerDepth:
    """The predictor interface of evaluation.depth_evaluation around a model's predict_depth, without flip."""

    def __init__(self, model):
        self.model, self.image_size = model, (HEIGHT, WIDTH)

    def predict_depth(self, images, flip_augment=True):
        assert not flip_augment
        return self.model.predict_depth(tf.constant(images)).numpy()[..., 0]


def test_validation_abs_rel_on_a_tiny_synthetic_world(records, tmp_path):
    from evaluation import depth_evaluation
    from tests.evaluation.fakes import make_kitti_raw_world

    make_kitti_raw_world(tmp_path / "world", num_drives=2, num_frames=3, size=(HEIGHT, WIDTH))
    run = make_trainer(
        records, tmp_path / "ckpt", model_factory=TinyModel, val_depth_dir=str(tmp_path / "world"), val_depth_images=3
    )
    scalars = run.validation.run()
    assert set(scalars) == {"val/abs_rel"}
    samples = depth_evaluation.synthetic_samples(tmp_path / "world")
    assert [sample.name for sample in run.validation.depth_samples] == [samples[k].name for k in (0, 2, 5)]
    protocol = depth_evaluation.DepthEvalConfig(flip_augment=False)
    expected = depth_evaluation.evaluate([samples[k] for k in (0, 2, 5)], EagerDepth(run.model), protocol)
    assert scalars["val/abs_rel"] == pytest.approx(expected["model"]["abs_rel"], rel=1e-5)
    assert np.isfinite(scalars["val/abs_rel"]) and scalars["val/abs_rel"] > 0
    with pytest.raises(FileNotFoundError, match="no KITTI-raw-layout drive"):
        make_trainer(records, tmp_path / "other", model_factory=TinyModel, val_depth_dir=str(tmp_path / "nothing"))
