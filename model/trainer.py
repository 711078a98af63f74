"""The training loop (the release's ``train.py``): Adam, per-tensor gradient clipping, checkpoints, resume,
validation, metrics.

One step: read a batch of triplets (``model/data.py``), evaluate ``DepthMotionModel.compute_loss`` at the
current global step (which drives the layer-norm noise ramp), clip every gradient tensor to norm 10
separately (tf_slim's ``clip_gradient_norms``, not a global norm), and apply Adam (beta1 0.9, beta2 0.999,
epsilon 1e-8, the TF1 defaults). The global step is the optimizer's iteration counter.

Around the step:
- ``configure_runtime`` (called by the stage before the trainer is built) sets the Python, numpy and TF
  seeds, Keras's global precision policy and TensorFlow's thread pools: process-wide settings, so no
  constructor sets them;
- ``tf.distribute``: the default strategy on CPU or one GPU, ``MirroredStrategy`` on several GPUs,
  ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set. ``batch_size`` is the global batch;
- checkpoints ``<checkpoint_dir>/model-<step>`` every ``checkpoint_freq`` steps (0: once per epoch, i.e.
  records // batch_size, as released) and at the end; ``keep_checkpoints`` are kept. A run restarted with the
  same checkpoint_dir resumes from the latest checkpoint with its step count and continues the input stream
  where it stopped (the checkpoint holds the next stream position, ``model/data.py``); half-written
  ``model-<step>_temp/`` folders that a kill during a save left behind are removed first. Without a
  checkpoint to resume, the model starts from ``init_checkpoint`` (a wilddepth checkpoint or a release TF1
  checkpoint; fine-tuning, with a fresh optimizer), else the depth encoder optionally from ImageNet weights
  (``model/imagenet.py``). The checkpoint helpers live in ``model/checkpoints.py``;
- hyper-parameters are checked when the config is built (``formats.params``: finite, in range, ConfigError);
- a non-finite loss or gradient stops the run with ``NonFiniteLossError`` (exit status 3) before the update
  is applied; an update that makes any model variable non-finite stops it too, and every save first checks
  that all model and optimizer variables are finite, so every checkpoint written is finite ("good"). The
  error names the newest checkpoint on disk whose weights are finite;
- validation every ``val_freq`` steps and at the last step (``Validation``): the training loss on at most
  ``val_batches`` fixed batches of ``<val_data_dir>/<val_file>.txt`` in inference mode (``val/loss`` and
  ``val/<term>``), and with ``val_depth_dir`` the depth Abs Rel of at most ``val_depth_images`` frames of a
  synthetic world against its ground truth (``val/abs_rel``, median scaling, no flip);
- progress bar (tqdm); dvclive metrics (loss terms, learned intrinsics fx/fy/cx/cy, step time) every
  ``summary_freq`` steps; TensorBoard scalars and depth images in ``<checkpoint_dir>/tensorboard``;
- with several workers (``TF_CONFIG``) only the chief (``is_chief``) writes checkpoints, TensorBoard, dvclive
  and ``model_config.json``; every worker resumes from the chief's ``checkpoint_dir`` (shared storage) and runs
  the same validation (only the chief logs it);
- ``<checkpoint_dir>/model_config.json`` holds the model configuration that ``model/inference.py`` needs to
  rebuild the network for any checkpoint of the directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from evaluation import depth_evaluation
from formats import atomic
from model import data
from model.checkpoints import (
    CHECKPOINT_NAME,
    MODEL_CONFIG_FILE,  # noqa: F401 (re-exported: the file name beside the checkpoints)
    CheckpointMismatchError,  # noqa: F401 (re-exported)
    NonFiniteLossError,
    last_finite_text,
    load_initial_weights,
    make_checkpoint,
    non_finite_tensors,
    non_finite_variables,
    remove_stale_checkpoint_temporaries,
    save_if_finite,
    write_model_config,
)
from model.config import DataConfig, ModelConfig, TrainerConfig
from model.depth_motion_model import DepthMotionModel
from model.imagenet import load_imagenet_encoder

LOGGER = logging.getLogger(__name__)
DIAGNOSTIC_KEYS = ("intrinsics", "depth")


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


def configure_runtime(config: TrainerConfig) -> None:
    """Process-wide settings of a run, applied before its model is built: the Python, numpy and TF seeds
    (the release's ``--seed``), Keras's global precision policy (``mixed_bfloat16`` with
    ``mixed_precision``, else ``float32``) and TensorFlow's thread pools (``intra_op_threads``,
    ``inter_op_threads``; ``set_op_threads``). Call it before any other TensorFlow work of the process when
    ``TF_CONFIG`` is set (MultiWorkerMirroredStrategy must be created at program start)."""
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if config.mixed_precision else "float32")
    set_op_threads(config.intra_op_threads, config.inter_op_threads)


def set_op_threads(intra_op: int, inter_op: int) -> bool:
    """Sets TensorFlow's thread pools (0 = its default) -> whether they now have these sizes. TensorFlow fixes
    them when its runtime starts; a process that already ran TensorFlow work keeps its pools, with a warning
    naming the values that could not be applied."""
    threading = tf.config.threading
    current = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    if current == (intra_op, inter_op):
        return True
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        LOGGER.warning(
            "TensorFlow is already running: its thread pools stay intra_op %d / inter_op %d (asked: %d / %d)",
            *current,
            intra_op,
            inter_op,
        )
        return False
    return True


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


class ScaledAdam(keras.optimizers.Adam):
    """Adam in which chosen variables take steps of ``factor`` x the learning rate (their moments are Adam's
    own; the state and its checkpoint layout are those of ``keras.optimizers.Adam``). Adam's step is about
    the learning rate whatever the gradient's size, so scaling a loss term's gradient cannot speed up one
    group of weights; this does, exactly as a per-variable learning rate would."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._learning_rate_factors: Dict[int, float] = {}

    def scale_learning_rate(self, variables, factor: float) -> None:
        """From now on the Adam step of each of ``variables`` (built with this optimizer) is ``factor`` x the
        learning rate."""
        for variable in variables:
            self._learning_rate_factors[self._var_key(variable)] = float(factor)

    def update_step(self, gradient, variable, learning_rate):
        factor = self._learning_rate_factors.get(self._var_key(variable))
        if factor is not None:
            learning_rate = tf.cast(learning_rate, variable.dtype) * factor
        super().update_step(gradient, variable, learning_rate)


def learning_rate_schedule(config: TrainerConfig):
    """Adam's learning rate: ``config.learning_rate``, or with ``learning_rate_decay_steps`` a piecewise constant
    schedule equal to ``config.learning_rate_at(step)`` (Keras evaluates it at the optimizer's ``iterations``,
    the steps already done, so step s reads iterations s - 1). Only the iteration count is checkpointed, so a
    run resumes on the same schedule, and a schedule can be added or changed when resuming."""
    steps = list(config.learning_rate_decay_steps)
    if not steps:
        return config.learning_rate
    values = [config.learning_rate * config.learning_rate_decay**count for count in range(len(steps) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay([step - 1 for step in steps], values)


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


class Validation:
    """The validation of a run (see the module docstring): built at start-up, so a missing world or an
    unreadable validation list stops the run at once; :meth:`run` returns the ``val/...`` scalars."""

    def __init__(self, trainer: "Trainer"):
        config, data_config = trainer.config, trainer.data_config
        self.trainer = trainer
        self.dataset: Optional[tf.data.Dataset] = None
        self.reader: Optional[data.RecordDataset] = None
        self.depth_samples: list = []
        if config.val_freq == 0:
            return
        if config.val_data_dir is not None:
            self._open_records(Path(config.val_data_dir) / f"{config.val_file}.txt", data_config)
        if config.val_depth_dir is not None:
            # eval_depth's protocol (crop, depth range, median scaling) on the synthetic world, without flip.
            self.depth_protocol = depth_evaluation.DepthEvalConfig(
                dataset="synthetic", data_dir=config.val_depth_dir, flip_augment=False, num_images=0
            )
            samples = depth_evaluation.build_samples(self.depth_protocol)
            picked = np.unique(np.linspace(0, len(samples) - 1, min(config.val_depth_images, len(samples))).round())
            self.depth_samples = [samples[int(index)] for index in picked]
            LOGGER.info("validation: val/abs_rel on %d frames of %s", len(self.depth_samples), config.val_depth_dir)
        if self.depth_samples or self.dataset is not None:
            # autograph=False: plain tracing needs no conversion here, and autograph once resolved this call to
            # another converted method under mixed_precision (docs/training.md, bfloat16 section).
            self._predict_depth = tf.function(
                lambda images: trainer.model.predict_depth(images, flip_augment=False),
                reduce_retracing=True,
                autograph=False,
            )
            self._loss = tf.function(
                lambda batch: trainer.strategy.run(
                    lambda b: trainer.model.compute_loss(b, trainer.optimizer.iterations, training=False), args=(batch,)
                )
            )

    def _open_records(self, list_path: Path, data_config: DataConfig) -> None:
        """The fixed validation batches: list order, no augmentation, no repeat; skipped without a list."""
        lines = list_path.read_text(errors="replace").split("\n") if list_path.is_file() else []
        count = sum(1 for line in lines if line.strip())
        if count == 0:
            LOGGER.info("validation loss skipped: %s is %s", list_path, "empty" if lines else "absent")
            return
        config = dataclasses.replace(
            data_config,
            data_dir=str(list_path.parent),
            input_file=list_path.stem,
            batch_size=min(data_config.batch_size, count),
            shuffle=False,
            repeat=False,
            color_probability=0.0,
            flip_probability=0.0,
        )
        dataset, self.reader = data.make_dataset(config)
        self.dataset = dataset.take(self.trainer.config.val_batches)
        LOGGER.info(
            "validation: val/loss on at most %d batches of %d from %s every %d steps",
            self.trainer.config.val_batches,
            config.batch_size,
            list_path,
            self.trainer.config.val_freq,
        )

    @property
    def enabled(self) -> bool:
        return self.dataset is not None or bool(self.depth_samples)

    def due(self, step: int, target: int) -> bool:
        """Validation runs every ``val_freq`` steps and at the last step of the run."""
        return self.enabled and (step % self.trainer.config.val_freq == 0 or step == target)

    def run(self) -> Dict[str, float]:
        """``val/loss`` and ``val/<term>`` (means over the validation batches) and ``val/abs_rel``; no weight
        changes (inference mode: batch norm on its moving statistics, no layer-norm noise)."""
        scalars: Dict[str, float] = {}
        if self.dataset is not None:
            scalars.update(self.loss_scalars())
        if self.depth_samples:
            abs_rel = self.abs_rel()
            if abs_rel is not None:
                scalars["val/abs_rel"] = abs_rel
        return scalars

    def loss_scalars(self) -> Dict[str, float]:
        sums: Dict[str, float] = {}
        batches = 0
        for batch in self.dataset:
            batch = {key: value for key, value in batch.items() if key != "position"}
            outputs = self._loss(batch)
            for key, value in outputs.items():
                if key not in DIAGNOSTIC_KEYS:
                    value = self.trainer.strategy.experimental_local_results(value)[0]
                    sums[key] = sums.get(key, 0.0) + float(value)
            batches += 1
        if not batches:
            LOGGER.warning("validation: no readable batch in %s", self.reader.config.list_path)
            return {}
        return {("val/loss" if key == "total" else f"val/{key}"): total / batches for key, total in sums.items()}

    def abs_rel(self) -> Optional[float]:
        """Mean depth Abs Rel of the validation frames (median scaling, no flip, eval_depth's crop and range)."""
        try:
            result = depth_evaluation.evaluate(self.depth_samples, self, self.depth_protocol)
        except ValueError as error:  # e.g. a depth map that is not positive everywhere early in training
            LOGGER.warning("validation: val/abs_rel not computed: %s", error)
            return None
        return float(result["model"]["abs_rel"])

    # The predictor interface of evaluation.depth_evaluation.
    @property
    def image_size(self):
        return self.trainer.model_config.img_height, self.trainer.model_config.img_width

    def predict_depth(self, images, flip_augment: bool = False) -> np.ndarray:
        return self._predict_depth(tf.constant(images, tf.float32)).numpy()[..., 0]


class Trainer:
    """Trains a DepthMotionModel on Struct2depth records. ``model_factory`` builds the model from the config.

    Call :func:`configure_runtime` first (seeds, precision policy); the constructor changes no global state.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        data_config: DataConfig,
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
        if config.learning_rate == 0:
            LOGGER.warning("learning_rate is 0: the weights will not change")
        # The strategy comes before any other TensorFlow work: MultiWorkerMirroredStrategy must be created first.
        self.strategy = select_strategy()
        self.is_chief = is_chief(self.strategy)
        dataset, self.reader = data.make_dataset(data_config)  # resolves the frame size; a readable record
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
        self.steps_per_epoch = max(1, len(self.reader) // data_config.batch_size)
        self.checkpoint_freq = config.checkpoint_freq or self.steps_per_epoch
        self.dataset = self.strategy.experimental_distribute_dataset(dataset)  # from stream position 0

        factory = model_factory or DepthMotionModel
        with self.strategy.scope():
            self.model = factory(model_config)
            self.optimizer = ScaledAdam(
                learning_rate=learning_rate_schedule(config), beta_1=config.beta1, beta_2=0.999, epsilon=1e-8
            )
            self.optimizer.build(self.model.trainable_variables)
            if config.intrinsics_learning_rate_factor != 1.0:
                if not hasattr(self.model, "intrinsics_variables"):
                    raise ValueError(
                        f"intrinsics_learning_rate_factor={config.intrinsics_learning_rate_factor}: "
                        f"{type(self.model).__name__} has no intrinsics head (intrinsics_variables)"
                    )
                if not model_config.learn_intrinsics:
                    LOGGER.warning(
                        "intrinsics_learning_rate_factor has no effect without learn_intrinsics: the head gets "
                        "no gradient"
                    )
                head = self.model.intrinsics_variables
                self.optimizer.scale_learning_rate(head, config.intrinsics_learning_rate_factor)
                LOGGER.info(
                    "intrinsics head (%d variables): Adam step %g x learning_rate",
                    len(head),
                    config.intrinsics_learning_rate_factor,
                )
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
        self.validation = Validation(self)

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
                    f"{last_finite_text(self.manager, skip=latest)}. Delete the non-finite checkpoints (or use another "
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
        return non_finite_variables(list(self.model.variables) + list(self.optimizer.variables))

    def save(self) -> str:
        """Save a checkpoint of the current step, only if every model and optimizer variable is finite; a
        non-chief worker takes part in the save but keeps nothing."""
        variables = list(self.model.variables) + list(self.optimizer.variables)
        return save_if_finite(self.manager, self.checkpoint, self.step, variables, write=self.is_chief)

    # --- the loop ----------------------------------------------------------------------------------------

    def train(self) -> Dict[str, float]:
        """Train until ``train_steps`` (or one step with ``debug``); returns the last logged value of every
        scalar (training terms of the last summary, ``val/...`` of the last validation)."""
        start = self.restore_or_initialize()
        target = start + 1 if self.config.debug else self.config.train_steps
        if start >= target:
            LOGGER.info("checkpoint is already at step %d >= train_steps %d; nothing to do", start, target)
            return {}
        iterator = iter(self._input_stream())
        logs = _RunLogs(self, start, target)
        last: Dict[str, float] = {}
        step_times: List[float] = []
        try:
            while self.step < target:
                batch, outputs, elapsed = self._checked_step(iterator)
                if self.step > start + 1:  # the first step includes tracing
                    step_times.append(elapsed)
                last.update(self._after_step(logs, batch, outputs, step_times, target))
        except PEER_FAILURES as error:
            # A lost peer surfaces in whichever collective runs next: the step's all-reduce, or the reads of
            # sync-on-read variables (batch-norm statistics) when checking or saving the weights.
            if not os.environ.get("TF_CONFIG"):
                raise
            raise self._worker_lost(error) from error
        finally:
            logs.close()
            LOGGER.info("input: %s", self.reader.report.summary())
        return last

    def _input_stream(self) -> tf.distribute.DistributedDataset:
        """The distributed training batches from the saved stream position on (0: the stream from its start)."""
        position = int(self.data_position.numpy())
        if not position:
            return self.dataset
        return self.strategy.experimental_distribute_dataset(self.reader.build(position))

    def _checked_step(self, iterator):
        """One optimizer step on the next batch -> (batch, outputs, seconds). NonFiniteLossError if the update
        was refused (non-finite loss or gradient) or made a weight non-finite; advances the stream position."""
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
                f"(e.g. {bad[0] if bad else '?'}); nothing was saved; {last_finite_text(self.manager)}. "
                "Lower --learning_rate, then rerun to resume."
            )
        self.data_position.assign(max(int(np.max(value.numpy())) for value in positions) + 1)
        return batch, outputs, elapsed

    def _after_step(self, logs: "_RunLogs", batch, outputs, step_times, target: int) -> Dict[str, float]:
        """Debug dump, summary, validation and checkpoint of the step just taken; returns the scalars logged."""
        config, step = self.config, self.step
        logs.bar.update(1)
        if config.debug:
            self._dump_debug(batch, outputs)
        scalars: Dict[str, float] = {}
        images = None
        if step % config.summary_freq == 0 or step == target or config.debug:
            scalars = self._scalars(outputs, step_times)
            images = outputs["depth"]
            logs.bar.set_postfix(
                loss=f"{scalars['loss/total']:.4f}", s_per_step=f"{scalars.get('time/step_s', float('nan')):.3f}"
            )
        if self.validation.due(step, target):
            scalars.update(self.validation.run())
        if scalars:
            logs.log(step, scalars, images)
        if step % self.checkpoint_freq == 0 or step == target:
            self.save()
        return scalars

    def _worker_lost(self, error: Exception) -> WorkerLostError:
        first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        return WorkerLostError(
            f"training stopped after step {self.step}: a worker of the cluster stopped or became unreachable "
            f"({type(error).__name__}: {first_line}); the step or save in progress was not completed. "
            f"Last checkpoint: {self.manager.latest_checkpoint or 'none'}. Restart every worker with the "
            "same TF_CONFIG and --checkpoint_dir to resume."
        )

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
            f"the update was not applied and nothing was saved; {last_finite_text(self.manager)}. "
            "Lower --learning_rate or inspect the data, then rerun to resume."
        )

    def _scalars(self, outputs, step_times) -> Dict[str, float]:
        scalars = {
            f"loss/{key}": float(value)
            for key, value in outputs.items()
            if key not in DIAGNOSTIC_KEYS + ("applied", "weights_finite", "gradient_norm")
        }
        scalars["gradient_norm"] = float(outputs["gradient_norm"])
        scalars["learning_rate"] = self.config.learning_rate_at(self.step)
        intrinsics = np.asarray(outputs["intrinsics"], np.float64).mean(axis=0)
        for name, (row, column) in {"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}.items():
            scalars[f"intrinsics/{name}"] = float(intrinsics[row, column])
        recent = step_times[-self.config.summary_freq :]
        if recent:
            scalars["time/step_s"] = float(np.mean(recent))
            scalars["time/examples_per_s"] = self.data_config.batch_size / scalars["time/step_s"]
        return scalars

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


class _RunLogs:
    """Where a run reports: the progress bar, TensorBoard (chief only) and dvclive (chief, with metrics_dir)."""

    def __init__(self, trainer: Trainer, start: int, target: int):
        config = trainer.config
        self.bar = tqdm(
            total=target, initial=start, desc="train", unit="step", disable=not config.progress, dynamic_ncols=True
        )
        self.writer = (
            tf.summary.create_file_writer(str(trainer.checkpoint_dir / "tensorboard"))
            if trainer.is_chief
            else tf.summary.create_noop_writer()
        )
        self.live = None
        if config.metrics_dir and trainer.is_chief:
            from dvclive import Live  # optional dependency of the training extra

            self.live = Live(config.metrics_dir, resume=start > 0, save_dvc_exp=False, dvcyaml=False)

    def log(self, step: int, scalars: Dict[str, float], depth: Optional[tf.Tensor]) -> None:
        """The scalars of one step to dvclive and TensorBoard, with the disparity of ``depth`` [B, H, W, 1]."""
        if self.live is not None:
            self.live.step = step
            for name, value in scalars.items():
                self.live.log_metric(name, value)
            self.live.next_step()
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                write_scalar_summary(name, value, step)
            if depth is not None:
                write_image_summary("depth/t1_disparity", depth_to_image(depth[:2]), step)
        self.writer.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        if self.live is not None:
            self.live.end()
