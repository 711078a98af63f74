"""The training loop (the release's ``train.py``): Adam, per-tensor gradient clipping, checkpoints, resume, metrics.

One step: read a batch of triplets (``model/data.py``), evaluate ``DepthMotionModel.compute_loss`` at the
current global step (which drives the layer-norm noise ramp), clip every gradient tensor to norm 10
separately (tf_slim's ``clip_gradient_norms``, not a global norm), and apply Adam (beta1 0.9, beta2 0.999,
epsilon 1e-8, the TF1 defaults). The global step is the optimizer's iteration counter.

Around the step:
- ``tf.distribute``: the default strategy on CPU or one GPU, ``MirroredStrategy`` on several GPUs,
  ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set. ``batch_size`` is the global batch;
- checkpoints ``<checkpoint_dir>/model-<step>`` every ``checkpoint_freq`` steps (0: once per epoch, i.e.
  records // batch_size, as released) and at the end; ``keep_checkpoints`` are kept. A run restarted with the
  same checkpoint_dir resumes from the latest checkpoint with its step count and continues the input stream
  where it stopped (the checkpoint holds the next stream position, ``model/data.py``); half-written
  ``model-<step>_temp/`` folders that a kill during a save left behind are removed first. Without a
  checkpoint to resume, the model starts from ``init_checkpoint`` (a wilddepth checkpoint or a release TF1
  checkpoint; fine-tuning, with a fresh optimizer), else the depth encoder optionally from ImageNet weights
  (``model/imagenet.py``);
- hyper-parameters are validated when the config is built (finite, in range: ValueError);
- a non-finite loss or gradient stops the run with ``NonFiniteLossError`` (exit status 3) before the update
  is applied; an update that makes any model variable non-finite stops it too, and every save first checks
  that all model and optimizer variables are finite, so every checkpoint written is finite ("good"). The
  error names the newest checkpoint on disk whose weights are finite;
- progress bar (tqdm); dvclive metrics (loss terms, learned intrinsics fx/fy/cx/cy, step time) every
  ``summary_freq`` steps; TensorBoard scalars and depth images in ``<checkpoint_dir>/tensorboard``;
- with several workers (``TF_CONFIG``) only the chief (``is_chief``) writes checkpoints, TensorBoard, dvclive
  and ``model_config.json``; every worker resumes from the chief's ``checkpoint_dir`` (shared storage);
- ``<checkpoint_dir>/model_config.json`` holds the model configuration that ``model/inference.py`` needs to
  rebuild the network for any checkpoint of the directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from formats import atomic
from model import data
from model.data import checked_number
from model.depth_motion_model import DepthMotionModel, ModelConfig
from model.imagenet import load_imagenet_encoder
from model.tf1_checkpoint import CheckpointMismatchError, load_tf1_checkpoint, tf1_variable_map

LOGGER = logging.getLogger(__name__)
MODEL_CONFIG_FILE = "model_config.json"
CHECKPOINT_NAME = "model"
DIAGNOSTIC_KEYS = ("intrinsics", "depth")


class NonFiniteLossError(RuntimeError):
    """The loss, a gradient or the weights became NaN/Inf; nothing non-finite was saved (exit status 3)."""

    exit_code = 3


class WorkerLostError(RuntimeError):
    """Multi-worker training (``TF_CONFIG``): a peer stopped (killed, crashed, unreachable) during a step.

    The step's update is lost on every worker and nothing was saved for it; the newest checkpoint in
    ``checkpoint_dir`` is the last good state. Restart every worker with the same command to resume.
    """


# What a collective op raises when a peer is gone or the cluster's coordination service aborts it.
PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.FailedPreconditionError,
    tf.errors.InternalError,
)


MAX_LEARNING_RATE = 1.0  # Adam moves every weight by about the learning rate per step: above 1 is a typo


@dataclasses.dataclass
class TrainerConfig:
    """Loop settings. Steps count optimizer updates; frequencies are in steps."""

    checkpoint_dir: str
    learning_rate: float = 1e-4
    beta1: float = 0.9
    clip_gradient_norm: float = 10.0  # per tensor; 0 disables
    train_steps: int = 1_000_000  # total, including steps of earlier runs resumed from
    summary_freq: int = 100
    checkpoint_freq: int = 0  # 0: every epoch (records // batch_size), as released
    keep_checkpoints: int = 5
    seed: int = 8964
    mixed_precision: bool = False  # mixed_bfloat16 compute (GPU option; no loss scaling needed)
    jit_compile: bool = False  # XLA-compile the step
    debug: bool = False  # one step; dump tensors to <checkpoint_dir>/debug; print losses
    imagenet_ckpt: Optional[str] = None
    init_checkpoint: Optional[str] = None  # wilddepth or release TF1 checkpoint to fine-tune from (no resume)
    metrics_dir: Optional[str] = None  # dvclive directory; None: no dvclive
    progress: bool = True

    def __post_init__(self):
        """Validate at startup: a NaN, infinite, negative or absurd value is a ValueError naming the key."""
        self.learning_rate = checked_number("learning_rate", self.learning_rate, 0.0, MAX_LEARNING_RATE)
        self.beta1 = checked_number("beta1", self.beta1, 0.0, 0.999999)
        self.clip_gradient_norm = checked_number("clip_gradient_norm", self.clip_gradient_norm, 0.0)
        self.train_steps = checked_number("train_steps", self.train_steps, 1, integer=True)
        self.summary_freq = checked_number("summary_freq", self.summary_freq, 1, integer=True)
        self.checkpoint_freq = checked_number("checkpoint_freq", self.checkpoint_freq, 0, integer=True)
        self.keep_checkpoints = checked_number("keep_checkpoints", self.keep_checkpoints, 1, integer=True)
        self.seed = checked_number("seed", self.seed, 0, integer=True)
        if self.learning_rate == 0:
            LOGGER.warning("learning_rate is 0: the weights will not change")

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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (checkpoints, model_config.json, TensorBoard, dvclive).

    True without a cluster; with ``TF_CONFIG``, only for the task of type ``chief``, or ``worker`` 0 when the
    cluster has no ``chief`` task (TensorFlow's convention). Other workers still take part in every save (it
    may run collective ops) but write to a private temporary folder that is deleted at once.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (
        resolver.task_type == "worker"
        and int(resolver.task_id) == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


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


def make_checkpoint(model, optimizer=None, data_position: Optional[tf.Variable] = None) -> tf.train.Checkpoint:
    """A checkpoint keyed by variable path (``model_variables/<path>``, ``optimizer_variables/<path>``), plus
    the input stream's next position (``data_position``) when given.

    Keyed by path rather than by ``tf.train.Checkpoint(model=model)``'s object graph: with Keras 3, layers kept
    in Python lists or dicts (the encoder blocks, the decoder levels) are not tracked by that graph, so most
    variables would silently be left out. The optimizer's learning rate is not saved: the flag of the current
    run decides it, also when resuming.
    """
    objects = {"model_variables": named_variables(model.variables)}
    if optimizer is not None:
        objects["optimizer_variables"] = {
            path: variable
            for path, variable in named_variables(optimizer.variables, strip_root=True).items()
            if path != "learning_rate"
        }
    if data_position is not None:
        objects["data_position"] = data_position
    return tf.train.Checkpoint(**objects)


def checkpoint_key(variable_path: str, root: str = "model_variables") -> str:
    """The key of a model variable in a checkpoint written by ``make_checkpoint`` (TF escapes '.' and '/')."""
    return f"{root}/{variable_path.replace('.', '..').replace('/', '.S')}/.ATTRIBUTES/VARIABLE_VALUE"


def non_finite_tensors(prefix: str) -> list:
    """Names of the floating-point tensors of checkpoint ``prefix`` that hold NaN or Inf."""
    reader = tf.train.load_checkpoint(str(prefix))
    bad = []
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
            bad.append(name)
    return sorted(bad)


# TF's sharded save writes <prefix>_temp/part-... (older versions <prefix>_temp_<uuid hex>/part-...) and moves
# the parts into place at the end; a kill in between leaves the folder.
_TEMP_FOLDER = re.compile(r"^" + CHECKPOINT_NAME + r"-\d+_temp(_[0-9a-f]{32})?$")
_TEMP_PART = re.compile(r"^part-\d{5}-of-\d{5}(\.index|\.data-\d{5}-of-\d{5})?(\.tempstate\d+)?$")


def remove_stale_checkpoint_temporaries(checkpoint_dir) -> list:
    """Remove ``model-<step>_temp[_<uuid>]/`` folders of TF's checkpoint writer left in ``checkpoint_dir`` by a
    kill during a save. Only folders with exactly that name holding only ``part-*`` files are removed; anything
    else is left alone with a warning. Returns the removed folders."""
    removed = []
    for folder in sorted(Path(checkpoint_dir).iterdir()):
        if not (folder.is_dir() and not folder.is_symlink() and _TEMP_FOLDER.match(folder.name)):
            continue
        children = list(folder.iterdir())
        if not all(child.is_file() and not child.is_symlink() and _TEMP_PART.match(child.name) for child in children):
            LOGGER.warning("not removing %s: it holds files other than checkpoint parts", folder)
            continue
        for child in children:
            child.unlink()
        folder.rmdir()
        LOGGER.warning("removed %s, a half-written checkpoint left by an interrupted save", folder)
        removed.append(folder)
    return removed


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


@dataclasses.dataclass
class InitReport:
    """What ``load_initial_weights`` did: the checkpoint read, its kind, and variable paths or names."""

    prefix: str
    kind: str  # "wilddepth" or "tf1"
    restored: List[str]  # model variable paths set from the checkpoint
    not_restored: List[str]  # model variable paths left at their initial value
    unused: List[str]  # checkpoint variables no model variable took

    def summary(self) -> str:
        text = (
            f"initialised from {self.kind} checkpoint {self.prefix}: {len(self.restored)} of "
            f"{len(self.restored) + len(self.not_restored)} model variables restored"
        )
        if self.not_restored:
            text += "; not restored (initial values kept): " + ", ".join(self.not_restored)
        if self.unused:
            text += f"; {len(self.unused)} checkpoint variables unused: " + ", ".join(self.unused[:10])
            text += " ..." if len(self.unused) > 10 else ""
        return text + "; the optimizer starts fresh at step 0"


def checkpoint_prefix(path) -> str:
    """A checkpoint prefix from ``path``: a prefix (``.../model-3000``) or a directory (its newest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            raise FileNotFoundError(f"no checkpoint in directory {path}")
        return prefix
    if not Path(str(path) + ".index").is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected {path}.index or a checkpoint directory)")
    return str(path)


def load_initial_weights(model, path) -> InitReport:
    """Set the model's variables from a wilddepth checkpoint (keys ``model_variables/<path>``, optimizer state
    ignored) or a release TF1 checkpoint (``model/tf1_checkpoint.py`` name map). Shapes must match (same network
    widths): CheckpointMismatchError lists every mismatch before anything is assigned. Variables the checkpoint
    lacks keep their initial values and are reported."""
    prefix = checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    if any(name.startswith("model_variables/") for name in shapes):
        keys = {checkpoint_key(variable.path): variable for variable in model.variables}
        problems = [
            f"{variable.path}: checkpoint {tuple(shapes[key])} vs model {tuple(variable.shape)}"
            for key, variable in keys.items()
            if key in shapes and tuple(shapes[key]) != tuple(variable.shape)
        ]
        if problems:
            raise CheckpointMismatchError(
                f"{prefix}: {len(problems)} variable(s) have other shapes (other network widths?):\n  "
                + "\n  ".join(problems[:20])
            )
        restored, not_restored = [], []
        for key, variable in keys.items():
            if key in shapes:
                variable.assign(np.asarray(reader.get_tensor(key), dtype=variable.dtype))
                restored.append(variable.path)
            else:
                not_restored.append(variable.path)
        unused = sorted(name for name in shapes if name.startswith("model_variables/") and name not in keys)
        kind = "wilddepth"
    elif any(name.startswith(("depth_prediction/", "MotionFieldNet/")) for name in shapes):
        unused = load_tf1_checkpoint(model, prefix)
        mapped = {id(variable) for variable in tf1_variable_map(model).values()}
        restored = [variable.path for variable in model.variables if id(variable) in mapped]
        not_restored = [variable.path for variable in model.variables if id(variable) not in mapped]
        kind = "tf1"
    else:
        raise CheckpointMismatchError(
            f"{prefix}: neither a wilddepth checkpoint (model_variables/...) nor a "
            "release TF1 checkpoint (depth_prediction/..., MotionFieldNet/...)"
        )
    if not restored:
        raise CheckpointMismatchError(f"{prefix}: no model variable of this network is in the checkpoint")
    return InitReport(prefix, kind, restored, not_restored, unused)


class Trainer:
    """Trains a DepthMotionModel on Struct2depth records. ``model_factory`` builds the model from the config."""

    def __init__(
        self,
        model_config: ModelConfig,
        data_config: data.DataConfig,
        config: TrainerConfig,
        model_factory: Callable[[ModelConfig], keras.Model] = None,
    ):
        given = (data_config.img_height, data_config.img_width)
        if None not in given and given != (model_config.img_height, model_config.img_width):
            raise ValueError(
                "data and model image sizes differ: "
                f"{data_config.img_height}x{data_config.img_width} vs "
                f"{model_config.img_height}x{model_config.img_width}"
            )
        self.reader = data.RecordDataset(data_config)  # resolves the frame size from the records
        data_config = self.reader.config
        if (data_config.img_height, data_config.img_width) != (model_config.img_height, model_config.img_width):
            raise ValueError(
                "data and model image sizes differ: the records are "
                f"{data_config.img_height}x{data_config.img_width} (HxW), the model is "
                f"{model_config.img_height}x{model_config.img_width}"
            )
        self.model_config, self.data_config, self.config = model_config, data_config, config
        self.checkpoint_dir = Path(config.checkpoint_dir)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(config.seed)  # Python, numpy and TF seeds, as the release's --seed
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")

        self.strategy = select_strategy()
        self.is_chief = is_chief(self.strategy)
        self.reader.check_readable()
        self.steps_per_epoch = max(1, len(self.reader) // data_config.batch_size)
        self.checkpoint_freq = config.checkpoint_freq or self.steps_per_epoch
        self.dataset = self.strategy.experimental_distribute_dataset(self.reader.build())

        factory = model_factory or DepthMotionModel
        with self.strategy.scope():
            self.model = factory(model_config)
            self.optimizer = keras.optimizers.Adam(
                learning_rate=config.learning_rate, beta_1=config.beta1, beta_2=0.999, epsilon=1e-8
            )
            self.optimizer.build(self.model.trainable_variables)
            # The input stream's next position: saved with every checkpoint so a resumed run continues it.
            self.data_position = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_position")
            self.checkpoint = make_checkpoint(self.model, self.optimizer, self.data_position)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            str(self.checkpoint_dir),
            max_to_keep=config.keep_checkpoints,
            checkpoint_name=CHECKPOINT_NAME,
        )
        # strategy.run inside the tf.function, not a tf.function inside strategy.run: Adam's gradient aggregation
        # is a merge_call, which TensorFlow refuses inside a nested function when there are several replicas
        # (MultiWorkerMirroredStrategy, MirroredStrategy over GPUs): "merge_call called while defining a new graph".
        replica_step = tf.function(self._replica_step, jit_compile=True) if config.jit_compile else self._replica_step
        self._step_function = tf.function(lambda batch: self.strategy.run(replica_step, args=(batch,)))

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
        pairs = [
            (gradient, variable)
            for gradient, variable in zip(tape.gradient(scaled, variables), variables)
            if gradient is not None
        ]
        gradients = [gradient for gradient, _ in pairs]
        clipped, squared_norms = clip_per_tensor(gradients, self.config.clip_gradient_norm)
        squared_global_norm = tf.add_n(squared_norms)
        finite = tf.logical_and(tf.math.is_finite(total), tf.math.is_finite(squared_global_norm))
        replica_context = tf.distribute.get_replica_context()
        failures = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        all_finite = failures < 0.5

        grads_and_vars = [(gradient, variable) for gradient, (_, variable) in zip(clipped, pairs)]

        def apply_on_replica(grads_and_vars):
            self.optimizer.apply_gradients(grads_and_vars)

        def apply_if_finite(strategy, all_finite, grads_and_vars):
            """Cross-replica: the cond around the update, which (with its gradient all-reduce) runs on every
            replica. TensorFlow refuses the update's merge_call inside a cond taken in replica context when
            there are several replicas (MultiWorkerMirrored, multi-GPU); this is the pattern of Keras 2's
            LossScaleOptimizer. ``all_finite`` is the same on every replica (all-reduced above)."""
            finite = strategy.experimental_local_results(all_finite)[0]

            def apply():
                strategy.extended.call_for_each_replica(apply_on_replica, args=(grads_and_vars,))
                return tf.constant(True)

            return tf.cond(finite, apply, lambda: tf.constant(False))

        applied = replica_context.merge_call(apply_if_finite, args=(all_finite, grads_and_vars))
        # The weights after the update (a finite step can still overflow a weight, e.g. an absurd rate).
        weights_finite = tf.reduce_all(
            tf.stack(
                [
                    tf.reduce_all(tf.math.is_finite(variable))
                    for variable in self.model.variables
                    if tf.as_dtype(variable.dtype).is_floating
                ]
            )
        )
        outputs = dict(outputs)
        outputs["applied"] = applied
        outputs["weights_finite"] = weights_finite
        outputs["gradient_norm"] = tf.sqrt(squared_global_norm)  # before clipping
        return outputs

    def train_step(self, distributed_batch) -> Dict[str, tf.Tensor]:
        """Run one step on every replica; returns the first replica's outputs (losses, K, depth, applied,
        weights_finite). The batch's ``position`` entry (stream bookkeeping) is not passed to the model."""
        distributed_batch = {key: value for key, value in distributed_batch.items() if key != "position"}
        per_replica = self._step_function(distributed_batch)
        return {key: self.strategy.experimental_local_results(value)[0] for key, value in per_replica.items()}

    # --- start, resume -----------------------------------------------------------------------------------

    def restore_or_initialize(self) -> int:
        """Resume from the newest checkpoint in checkpoint_dir (it wins over ``init_checkpoint``), else start
        from ``init_checkpoint``, else apply the ImageNet init; returns the step.

        A checkpoint to resume from must hold finite weights: NonFiniteLossError (naming the newest finite
        one) otherwise. Checkpoints written before the stream position was saved resume the stream at
        step x batch_size (exact when no record was skipped)."""
        if self.is_chief:
            remove_stale_checkpoint_temporaries(self.checkpoint_dir)
        latest = self.manager.latest_checkpoint
        if latest:
            bad = non_finite_tensors(latest)
            if bad:
                raise NonFiniteLossError(
                    f"cannot resume: {latest} holds non-finite values ({len(bad)} tensors, e.g. {bad[0]}); "
                    f"{self._last_finite_text(skip=latest)}. Delete the non-finite checkpoints (or use another "
                    "--checkpoint_dir) to resume from an earlier one."
                )
            saved = dict(tf.train.list_variables(latest))
            if "data_position/.ATTRIBUTES/VARIABLE_VALUE" in saved:
                self.checkpoint.restore(latest).assert_consumed()
            else:
                make_checkpoint(self.model, self.optimizer).restore(latest).assert_consumed()
                self.data_position.assign(self.step * self.data_config.batch_size)
            LOGGER.info(
                "resumed from %s at step %d (input stream position %d)",
                latest,
                self.step,
                int(self.data_position.numpy()),
            )
            if self.config.init_checkpoint:
                LOGGER.info("init_checkpoint %s ignored: resuming from %s wins", self.config.init_checkpoint, latest)
        elif self.config.init_checkpoint:
            report = load_initial_weights(self.model, self.config.init_checkpoint)
            LOGGER.info("%s", report.summary())
            if self.config.imagenet_ckpt:
                LOGGER.info("imagenet_ckpt %s ignored: init_checkpoint sets the encoder", self.config.imagenet_ckpt)
        elif self.config.imagenet_ckpt:
            report = load_imagenet_encoder(self.model, self.config.imagenet_ckpt)
            LOGGER.info(
                "depth encoder initialised from %s: %d variables restored, %d in the file unused",
                self.config.imagenet_ckpt,
                len(report.restored),
                len(report.unused),
            )
        if self.is_chief:
            write_model_config(self.checkpoint_dir, self.model_config)
        return self.step

    def non_finite_variables(self) -> List[str]:
        """Paths of the model and optimizer variables holding NaN or Inf."""
        variables = list(self.model.variables) + list(self.optimizer.variables)
        return [
            variable.path
            for variable in variables
            if tf.as_dtype(variable.dtype).is_floating and not np.all(np.isfinite(variable.numpy()))
        ]

    def save(self) -> str:
        """Save a checkpoint of the current step, only if every model and optimizer variable is finite."""
        bad = self.non_finite_variables()
        if bad:
            raise NonFiniteLossError(
                f"not saving step {self.step}: {len(bad)} variables hold NaN or Inf (e.g. {bad[0]}); "
                f"{self._last_finite_text()}. Lower --learning_rate or inspect the data, then rerun to resume."
            )
        if not self.is_chief:  # take part in the save (collectives), keep nothing
            scratch = tempfile.mkdtemp(prefix="wilddepth-worker-checkpoint-")
            try:
                self.checkpoint.write(os.path.join(scratch, CHECKPOINT_NAME))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return ""
        path = self.manager.save(checkpoint_number=self.step)
        LOGGER.info("saved %s", path)
        return path

    def last_finite_checkpoint(self, skip: Optional[str] = None) -> Optional[str]:
        """The newest checkpoint of checkpoint_dir (other than ``skip``) whose tensors are all finite."""
        for prefix in reversed(self.manager.checkpoints):
            if prefix != skip and not non_finite_tensors(prefix):
                return prefix
        return None

    def _last_finite_text(self, skip: Optional[str] = None) -> str:
        prefix = self.last_finite_checkpoint(skip)
        if prefix is None:
            return "no finite checkpoint exists in " + str(self.checkpoint_dir)
        step = prefix.rsplit("-", 1)[-1]
        return f"last good (finite) checkpoint: {prefix} (step {step})"

    # --- the loop ----------------------------------------------------------------------------------------

    def train(self) -> Dict[str, float]:
        """Train until ``train_steps`` (or one step with ``debug``); returns the last logged scalars."""
        config = self.config
        start = self.restore_or_initialize()
        target = start + 1 if config.debug else config.train_steps
        if start >= target:
            LOGGER.info("checkpoint is already at step %d >= train_steps %d; nothing to do", start, target)
            return {}
        position = int(self.data_position.numpy())
        if position:
            self.dataset = self.strategy.experimental_distribute_dataset(self.reader.build(position))
        live = self._open_dvclive(resumed=start > 0)
        writer = (
            tf.summary.create_file_writer(str(self.checkpoint_dir / "tensorboard"))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )
        iterator = iter(self.dataset)
        scalars: Dict[str, float] = {}
        step_times = []
        bar = tqdm(
            total=target, initial=start, desc="train", unit="step", disable=not config.progress, dynamic_ncols=True
        )
        try:
            while self.step < target:
                batch = next(iterator)
                positions = self.strategy.experimental_local_results(batch["position"])
                began = time.perf_counter()
                outputs = self.train_step(batch)
                applied = bool(outputs["applied"].numpy())  # waits for the step to finish
                elapsed = time.perf_counter() - began
                if not applied:
                    raise NonFiniteLossError(self._non_finite_message(outputs))
                if not bool(outputs["weights_finite"].numpy()):
                    bad = self.non_finite_variables()
                    raise NonFiniteLossError(
                        f"the update of step {self.step} made {len(bad)} model variables non-finite "
                        f"(e.g. {bad[0] if bad else '?'}); nothing was saved; {self._last_finite_text()}. "
                        "Lower --learning_rate, then rerun to resume."
                    )
                self.data_position.assign(max(int(np.max(value.numpy())) for value in positions) + 1)
                if self.step > start + 1:  # the first step includes tracing
                    step_times.append(elapsed)
                step = self.step
                bar.update(1)
                if config.debug:
                    self._dump_debug(batch, outputs)
                if step % config.summary_freq == 0 or step == target or config.debug:
                    scalars = self._scalars(outputs, step_times)
                    bar.set_postfix(
                        loss=f"{scalars['loss/total']:.4f}",
                        s_per_step=f"{scalars.get('time/step_s', float('nan')):.3f}",
                    )
                    self._log(live, writer, step, scalars, outputs)
                if step % self.checkpoint_freq == 0 or step == target:
                    self.save()
        except PEER_FAILURES as error:
            # A lost peer surfaces in whichever collective runs next: the step's all-reduce, or the reads of
            # sync-on-read variables (batch-norm statistics) when checking or saving the weights.
            if not os.environ.get("TF_CONFIG"):
                raise
            first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise WorkerLostError(
                f"training stopped after step {self.step}: a worker of the cluster stopped or became unreachable "
                f"({type(error).__name__}: {first_line}); the step or save in progress was not completed. "
                f"Last checkpoint: {self.manager.latest_checkpoint or 'none'}. Restart every worker with the "
                "same TF_CONFIG and --checkpoint_dir to resume."
            ) from error
        finally:
            bar.close()
            writer.close()
            if live is not None:
                live.end()
            LOGGER.info("input: %s", self.reader.report.summary())
        return scalars

    # --- helpers -----------------------------------------------------------------------------------------

    def _non_finite_message(self, outputs) -> str:
        bad = [
            key
            for key, value in outputs.items()
            if key not in DIAGNOSTIC_KEYS + ("applied", "weights_finite")
            and not np.all(np.isfinite(np.asarray(value, np.float64)))
        ]
        return (
            f"non-finite loss or gradient at step {self.step + 1} (non-finite: {', '.join(bad) or 'gradients'}); "
            f"the update was not applied and nothing was saved; {self._last_finite_text()}. "
            "Lower --learning_rate or inspect the data, then rerun to resume."
        )

    def _scalars(self, outputs, step_times) -> Dict[str, float]:
        scalars = {
            f"loss/{key}": float(value)
            for key, value in outputs.items()
            if key not in DIAGNOSTIC_KEYS + ("applied", "weights_finite", "gradient_norm")
        }
        scalars["gradient_norm"] = float(outputs["gradient_norm"])
        intrinsics = np.asarray(outputs["intrinsics"], np.float64).mean(axis=0)
        for name, (row, column) in {"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}.items():
            scalars[f"intrinsics/{name}"] = float(intrinsics[row, column])
        recent = step_times[-self.config.summary_freq :]
        if recent:
            scalars["time/step_s"] = float(np.mean(recent))
            scalars["time/examples_per_s"] = self.data_config.batch_size / scalars["time/step_s"]
        return scalars

    def _open_dvclive(self, resumed: bool):
        if not self.config.metrics_dir or not self.is_chief:
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
