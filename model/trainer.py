"""The training loop (reference spec 3.5): Adam, per-tensor gradient clipping, checkpoints, resume, metrics.

One step: read a batch of triplets (``model/data.py``), evaluate ``DepthMotionModel.compute_loss`` at the
current global step (which drives the layer-norm noise ramp), clip every gradient tensor to norm 10
separately (tf_slim's ``clip_gradient_norms``, not a global norm), and apply Adam (beta1 0.9, beta2 0.999,
epsilon 1e-8, the TF1 defaults). The global step is the optimizer's iteration counter.

Around the step:
- ``tf.distribute``: the default strategy on CPU or one GPU, ``MirroredStrategy`` on several GPUs,
  ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set. ``batch_size`` is the global batch;
- checkpoints ``<checkpoint_dir>/model-<step>`` every ``checkpoint_freq`` steps (0: once per epoch, i.e.
  records // batch_size, as released) and at the end; ``keep_checkpoints`` are kept. A run restarted with the
  same checkpoint_dir resumes from the latest checkpoint with its step count; otherwise the depth encoder is
  optionally initialised from ImageNet weights (``model/imagenet.py``);
- a non-finite loss or gradient stops the run with ``NonFiniteLossError`` before the update is applied and
  before anything is saved, so the newest checkpoint on disk is the last good state;
- progress bar (tqdm); dvclive metrics (loss terms, learned intrinsics fx/fy/cx/cy, step time) every
  ``summary_freq`` steps; TensorBoard scalars and depth images in ``<checkpoint_dir>/tensorboard``;
- ``<checkpoint_dir>/model_config.json`` holds the model configuration that ``model/inference.py`` needs to
  rebuild the network for any checkpoint of the directory.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from formats import atomic
from model import data
from model.depth_motion_model import DepthMotionModel, ModelConfig
from model.imagenet import load_imagenet_encoder

LOGGER = logging.getLogger(__name__)
MODEL_CONFIG_FILE = "model_config.json"
CHECKPOINT_NAME = "model"
DIAGNOSTIC_KEYS = ("intrinsics", "depth")


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN/Inf; the update was not applied and nothing was saved."""


@dataclasses.dataclass
class TrainerConfig:
    """Loop settings. Steps count optimizer updates; frequencies are in steps."""

    checkpoint_dir: str
    learning_rate: float = 1e-4
    beta1: float = 0.9
    clip_gradient_norm: float = 10.0     # per tensor; 0 disables
    train_steps: int = 1_000_000          # total, including steps of earlier runs resumed from
    summary_freq: int = 100
    checkpoint_freq: int = 0              # 0: every epoch (records // batch_size), as released
    keep_checkpoints: int = 5
    seed: int = 8964
    mixed_precision: bool = False         # mixed_bfloat16 compute (GPU option; no loss scaling needed)
    jit_compile: bool = False             # XLA-compile the step
    debug: bool = False                   # one step; dump tensors to <checkpoint_dir>/debug; print losses
    imagenet_ckpt: Optional[str] = None
    metrics_dir: Optional[str] = None     # dvclive directory; None: no dvclive
    progress: bool = True

    @classmethod
    def from_params(cls, checkpoint_dir: str, params: dict, **overrides) -> "TrainerConfig":
        """Build from the ``train:`` section of params.yaml (unrelated keys ignored) plus explicit overrides."""
        names = {field.name for field in dataclasses.fields(cls)} - {"checkpoint_dir"}
        values = {key: value for key, value in params.items() if key in names}
        values.update(overrides)
        return cls(checkpoint_dir=str(checkpoint_dir), **values)


def select_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored with TF_CONFIG, Mirrored with several GPUs, else the default strategy."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def clip_per_tensor(gradients, clip_norm: float):
    """Clip each gradient tensor to L2 norm ``clip_norm`` separately (tf_slim ``clip_gradient_norms``).

    Returns (clipped gradients, squared norm of each unclipped gradient). The norms are computed once and
    reused: a NaN or Inf anywhere in a gradient makes its norm non-finite, which is the finiteness check.
    """
    squared_norms = [tf.reduce_sum(tf.square(gradient)) for gradient in gradients]
    if clip_norm <= 0:
        return list(gradients), squared_norms
    clipped = []
    for gradient, squared in zip(gradients, squared_norms):
        norm = tf.sqrt(squared)
        scale = tf.minimum(1.0, clip_norm / tf.maximum(norm, 1e-12))  # tf.clip_by_norm's rule
        clipped.append(gradient * scale)
    return clipped, squared_norms


def named_variables(variables, strip_root: bool = False) -> Dict[str, tf.Variable]:
    """Variable path -> variable, checking that paths are unique. ``strip_root`` drops the first path
    component (Keras numbers optimizer names per process: ``adam``, ``adam_1``, ...)."""
    named: Dict[str, tf.Variable] = {}
    for variable in variables:
        key = variable.path.split("/", 1)[-1] if strip_root else variable.path
        if key in named:
            raise ValueError(f"two variables share the path {key!r}; checkpoints need unique paths")
        named[key] = variable
    return named


def make_checkpoint(model, optimizer=None) -> tf.train.Checkpoint:
    """A checkpoint keyed by variable path (``model_variables/<path>``, ``optimizer_variables/<path>``).

    Keyed by path rather than by ``tf.train.Checkpoint(model=model)``'s object graph: with Keras 3, layers kept
    in Python lists or dicts (the encoder blocks, the decoder levels) are not tracked by that graph, so most
    variables would silently be left out. The optimizer's learning rate is not saved: the flag of the current
    run decides it, also when resuming.
    """
    objects = {"model_variables": named_variables(model.variables)}
    if optimizer is not None:
        objects["optimizer_variables"] = {path: variable for path, variable in
                                          named_variables(optimizer.variables, strip_root=True).items()
                                          if path != "learning_rate"}
    return tf.train.Checkpoint(**objects)


def write_model_config(checkpoint_dir, model_config: ModelConfig) -> Path:
    """Atomically write ``<checkpoint_dir>/model_config.json`` (the fields of ModelConfig)."""
    path = Path(checkpoint_dir) / MODEL_CONFIG_FILE
    atomic.write_text(path, json.dumps(dataclasses.asdict(model_config), indent=2, sort_keys=True) + "\n")
    return path


def _summary_metadata(plugin: str) -> bytes:
    """TensorBoard plugin metadata, so summaries are written without the tensorboard package installed."""
    from tensorflow.core.framework import summary_pb2
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata.SerializeToString()


def write_scalar_summary(name: str, value: float, step: int) -> None:
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_summary_metadata("scalars"))


def write_image_summary(name: str, images: tf.Tensor, step: int) -> None:
    """uint8 images [B, H, W, C] as TensorBoard's image-plugin tensor [width, height, png...]."""
    height, width = int(images.shape[1]), int(images.shape[2])
    encoded = [tf.io.encode_png(image) for image in tf.unstack(images)]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + encoded)
    tf.summary.write(name, tensor, step=step, metadata=_summary_metadata("images"))


def depth_to_image(depth: tf.Tensor) -> tf.Tensor:
    """Depth [B, H, W, 1] -> uint8 grey image of disparity 1/depth, scaled to each image's maximum."""
    disparity = 1.0 / tf.maximum(tf.cast(depth, tf.float32), 1e-6)
    disparity /= tf.reduce_max(disparity, axis=[1, 2, 3], keepdims=True) + 1e-12
    return tf.cast(tf.clip_by_value(disparity, 0.0, 1.0) * 255.0, tf.uint8)


class Trainer:
    """Trains a DepthMotionModel on Struct2depth records. ``model_factory`` builds the model from the config."""

    def __init__(self, model_config: ModelConfig, data_config: data.DataConfig, config: TrainerConfig,
                 model_factory: Callable[[ModelConfig], keras.Model] = None):
        if (data_config.img_height, data_config.img_width) != (model_config.img_height, model_config.img_width):
            raise ValueError("data and model image sizes differ: "
                             f"{data_config.img_height}x{data_config.img_width} vs "
                             f"{model_config.img_height}x{model_config.img_width}")
        self.model_config, self.data_config, self.config = model_config, data_config, config
        self.checkpoint_dir = Path(config.checkpoint_dir)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(config.seed)  # Python, numpy and TF seeds, as the release's --seed
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")

        self.strategy = select_strategy()
        self.reader = data.RecordDataset(data_config)
        self.reader.check_readable()
        self.steps_per_epoch = max(1, len(self.reader) // data_config.batch_size)
        self.checkpoint_freq = config.checkpoint_freq or self.steps_per_epoch
        self.dataset = self.strategy.experimental_distribute_dataset(self.reader.build())

        factory = model_factory or DepthMotionModel
        with self.strategy.scope():
            self.model = factory(model_config)
            self.optimizer = keras.optimizers.Adam(
                learning_rate=config.learning_rate, beta_1=config.beta1, beta_2=0.999, epsilon=1e-8)
            self.optimizer.build(self.model.trainable_variables)
            self.checkpoint = make_checkpoint(self.model, self.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.checkpoint_dir), max_to_keep=config.keep_checkpoints,
            checkpoint_name=CHECKPOINT_NAME)
        self._step_function = tf.function(self._replica_step, jit_compile=config.jit_compile)

    # --- one step ----------------------------------------------------------------------------------------

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def _replica_step(self, batch):
        """Loss, gradients, finiteness check and (only if all finite on every replica) the Adam update."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model.compute_loss(batch, self.optimizer.iterations, training=True)
            total = tf.cast(outputs["total"], tf.float32)
            scaled = total / self.strategy.num_replicas_in_sync
        # Variables the loss does not reach get no gradient (e.g. the intrinsics head with given intrinsics).
        pairs = [(gradient, variable) for gradient, variable in zip(tape.gradient(scaled, variables), variables)
                 if gradient is not None]
        gradients = [gradient for gradient, _ in pairs]
        clipped, squared_norms = clip_per_tensor(gradients, self.config.clip_gradient_norm)
        squared_global_norm = tf.add_n(squared_norms)
        finite = tf.logical_and(tf.math.is_finite(total), tf.math.is_finite(squared_global_norm))
        replica_context = tf.distribute.get_replica_context()
        failures = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        all_finite = failures < 0.5

        def apply():
            self.optimizer.apply_gradients([(gradient, variable) for gradient, (_, variable) in zip(clipped, pairs)])
            return tf.constant(True)

        applied = tf.cond(all_finite, apply, lambda: tf.constant(False))
        outputs = dict(outputs)
        outputs["applied"] = applied
        outputs["gradient_norm"] = tf.sqrt(squared_global_norm)   # before clipping
        return outputs

    def train_step(self, distributed_batch) -> Dict[str, tf.Tensor]:
        """Run one step on every replica; returns the first replica's outputs (losses, K, depth, applied)."""
        per_replica = self.strategy.run(self._step_function, args=(distributed_batch,))
        return {key: self.strategy.experimental_local_results(value)[0] for key, value in per_replica.items()}

    # --- start, resume -----------------------------------------------------------------------------------

    def restore_or_initialize(self) -> int:
        """Resume from the newest checkpoint in checkpoint_dir, else apply ImageNet init; returns the step."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_consumed()
            LOGGER.info("resumed from %s at step %d", latest, self.step)
        elif self.config.imagenet_ckpt:
            report = load_imagenet_encoder(self.model, self.config.imagenet_ckpt)
            LOGGER.info("depth encoder initialised from %s: %d variables restored, %d in the file unused",
                        self.config.imagenet_ckpt, len(report.restored), len(report.unused))
        write_model_config(self.checkpoint_dir, self.model_config)
        return self.step

    def save(self) -> str:
        path = self.manager.save(checkpoint_number=self.step)
        LOGGER.info("saved %s", path)
        return path

    # --- the loop ----------------------------------------------------------------------------------------

    def train(self) -> Dict[str, float]:
        """Train until ``train_steps`` (or one step with ``debug``); returns the last logged scalars."""
        config = self.config
        start = self.restore_or_initialize()
        target = start + 1 if config.debug else config.train_steps
        if start >= target:
            LOGGER.info("checkpoint is already at step %d >= train_steps %d; nothing to do", start, target)
            return {}
        live = self._open_dvclive(resumed=start > 0)
        writer = tf.summary.create_file_writer(str(self.checkpoint_dir / "tensorboard"))
        iterator = iter(self.dataset)
        scalars: Dict[str, float] = {}
        step_times = []
        last_saved = start
        bar = tqdm(total=target, initial=start, desc="train", unit="step", disable=not config.progress,
                   dynamic_ncols=True)
        try:
            while self.step < target:
                batch = next(iterator)
                began = time.perf_counter()
                outputs = self.train_step(batch)
                applied = bool(outputs["applied"].numpy())   # waits for the step to finish
                elapsed = time.perf_counter() - began
                if not applied:
                    raise NonFiniteLossError(self._non_finite_message(outputs, last_saved))
                if self.step > start + 1:                    # the first step includes tracing
                    step_times.append(elapsed)
                step = self.step
                bar.update(1)
                if config.debug:
                    self._dump_debug(batch, outputs)
                if step % config.summary_freq == 0 or step == target or config.debug:
                    scalars = self._scalars(outputs, step_times)
                    bar.set_postfix(loss=f"{scalars['loss/total']:.4f}",
                                    s_per_step=f"{scalars.get('time/step_s', float('nan')):.3f}")
                    self._log(live, writer, step, scalars, outputs)
                if step % self.checkpoint_freq == 0 or step == target:
                    self.save()
                    last_saved = step
        finally:
            bar.close()
            writer.close()
            if live is not None:
                live.end()
            LOGGER.info("input: %s", self.reader.report.summary())
        return scalars

    # --- helpers -----------------------------------------------------------------------------------------

    def _non_finite_message(self, outputs, last_saved: int) -> str:
        bad = [key for key, value in outputs.items() if key not in DIAGNOSTIC_KEYS + ("applied",)
               and not np.all(np.isfinite(np.asarray(value, np.float64)))]
        latest = self.manager.latest_checkpoint or "none (no checkpoint was written)"
        return (f"non-finite loss or gradient at step {self.step + 1} (non-finite: {', '.join(bad) or 'gradients'}); "
                f"the update was not applied and nothing was saved. Last good checkpoint: {latest} "
                f"(step {last_saved}). Lower --learning_rate or inspect the data, then rerun to resume.")

    def _scalars(self, outputs, step_times) -> Dict[str, float]:
        scalars = {f"loss/{key}": float(value) for key, value in outputs.items()
                   if key not in DIAGNOSTIC_KEYS + ("applied", "gradient_norm")}
        scalars["gradient_norm"] = float(outputs["gradient_norm"])
        intrinsics = np.asarray(outputs["intrinsics"], np.float64).mean(axis=0)
        for name, (row, column) in {"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}.items():
            scalars[f"intrinsics/{name}"] = float(intrinsics[row, column])
        recent = step_times[-self.config.summary_freq:]
        if recent:
            scalars["time/step_s"] = float(np.mean(recent))
            scalars["time/examples_per_s"] = self.data_config.batch_size / scalars["time/step_s"]
        return scalars

    def _open_dvclive(self, resumed: bool):
        if not self.config.metrics_dir:
            return None
        from dvclive import Live  # optional dependency of the training extra
        return Live(self.config.metrics_dir, resume=resumed, save_dvc_exp=False, dvcyaml=False)

    def _log(self, live, writer, step: int, scalars: Dict[str, float], outputs) -> None:
        if live is not None:
            live.step = step
            for name, value in scalars.items():
                live.log_metric(name, value)
            live.next_step()
        with writer.as_default(step=step):
            for name, value in scalars.items():
                write_scalar_summary(name, value, step)
            write_image_summary("depth/t1_disparity", depth_to_image(outputs["depth"][:2]), step)
        writer.flush()

    def _dump_debug(self, batch, outputs) -> None:
        """--debug: every input and output tensor as .npy under <checkpoint_dir>/debug; losses to stdout."""
        folder = self.checkpoint_dir / "debug"
        folder.mkdir(exist_ok=True)
        tensors = {**{f"input_{k}": v for k, v in batch.items()}, **outputs}
        for name, value in tensors.items():
            value = self.strategy.experimental_local_results(value)[0] if name.startswith("input_") else value
            with atomic.atomic_open(folder / f"{name}.npy", "wb") as handle:
                np.save(handle, np.asarray(value))
        for name, value in sorted(outputs.items()):
            if np.asarray(value).ndim == 0:
                print(f"{name}: {np.asarray(value)}")
