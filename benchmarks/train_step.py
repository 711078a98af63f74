"""Benchmark: the trainer's step against the bare networks' forward+backward, and the input pipeline.

    python benchmarks/train_step.py                         # 128x416 and the params.yaml size, batch 4
    python benchmarks/train_step.py --sizes 64x224 --steps 10 --xla

For each size it prints (medians over --steps timed steps, after warm-up):
- ``step``: ``Trainer.train_step`` (compute_loss, gradients, finiteness check, per-tensor clipping, Adam);
- ``fwd+bwd``: ``compute_loss`` and its gradients in a plain ``tf.function``, nothing else;
- ``ratio`` = step / fwd+bwd (target <= 1.3: the loop adds little beyond the networks' own cost);
- ``input``: examples/s of the tf.data pipeline alone (decode, augment, batch) on generated records;
- with ``--xla`` the same step with ``jit_compile=True``.
The CPU is shared: repeat and compare ratios rather than absolute times.

``--compare_precision`` instead builds a float32 trainer and a ``mixed_precision`` (bfloat16 compute) trainer
in one process and times them in ``--repeats`` interleaved rounds of ``--steps`` training steps each (fresh
batches from each trainer's own input pipeline), so both see the same machine load. It prints, per
precision: the median step, steps/s, examples/s, the median bare forward+backward and the ratio
step / fwd+bwd, the peak GPU memory when a GPU is used, and the bfloat16 / float32 step-time ratio
(< 1: bfloat16 is faster). ``benchmarks/gpu_check.sh`` runs this at 416x128 with the release's widths.

    python benchmarks/train_step.py --compare_precision --sizes 64x224 --steps 5 --repeats 4

TensorFlow's thread pools are fixed when its runtime starts, so ``--set intra_op_threads=0`` against the default
(1) needs two processes; run them alternately (A B A B) on an otherwise idle machine and compare the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from formats import struct2depth  # noqa: E402
from formats.camera import intrinsics_matrix  # noqa: E402
from model import data  # noqa: E402
from model.config import (
    ModelConfig,  # noqa: E402
    TrainerConfig,  # noqa: E402
)
from model.trainer import Trainer, configure_runtime, set_op_threads  # noqa: E402
from stages.common import load_params  # noqa: E402


def write_records(root: Path, height: int, width: int, count: int = 16) -> None:
    rng = np.random.default_rng(0)
    entries = []
    for index in range(count):
        frames = [(rng.random((height, width, 3)) * 255).astype(np.uint8) for _ in range(3)]
        masks = [np.zeros((height, width), np.uint8) for _ in range(3)]
        record_id = struct2depth.sample_id(index)
        struct2depth.write_record(
            root, "seq", record_id, frames, masks, intrinsics_matrix(0.6 * width, 1.8 * height, width / 2, height / 2)
        )
        entries.append(("seq", record_id))
    struct2depth.write_list(root / "train.txt", entries)


def _threads(params: dict) -> dict:
    """The train: section's TensorFlow thread-pool sizes (intra_op_threads, inter_op_threads)."""
    config = TrainerConfig.from_mapping(params, section="train", strict=False, checkpoint_dir="unused")
    return {"intra_op_threads": config.intra_op_threads, "inter_op_threads": config.inter_op_threads}


def timed(function, steps: int) -> float:
    durations = []
    for _ in range(steps):
        began = time.perf_counter()
        function()
        durations.append(time.perf_counter() - began)
    return statistics.median(durations)


def benchmark(height: int, width: int, batch_size: int, steps: int, xla: bool, params: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_records(root / "data", height, width)
        model_config = ModelConfig.from_mapping(
            params, section="train", strict=False, img_height=height, img_width=width
        )
        data_config = data.DataConfig(str(root / "data"), img_height=height, img_width=width, batch_size=batch_size)
        reader = data.RecordDataset(data_config)
        dataset = reader.build()
        iterator = iter(dataset)
        next(iterator)
        count = 20
        began = time.perf_counter()
        for _ in range(count):
            next(iterator)
        input_rate = count * batch_size / (time.perf_counter() - began)

        results = {}
        for jit in [False, True] if xla else [False]:
            config = TrainerConfig(
                str(root / f"ckpt_{jit}"), learning_rate=1e-4, progress=False, jit_compile=jit, **_threads(params)
            )
            configure_runtime(config)
            trainer = Trainer(model_config, data_config, config)
            batch = next(iter(trainer.dataset))
            trainer.train_step(batch)["applied"].numpy()  # trace
            results[f"step{' (XLA)' if jit else ''}"] = timed(
                lambda: trainer.train_step(batch)["applied"].numpy(), steps
            )
            if not jit:
                model = trainer.model
                variables = model.trainable_variables

                @tf.function
                def forward_backward(batch):
                    with tf.GradientTape() as tape:
                        total = model.compute_loss(batch, tf.constant(0, tf.int64), training=True)["total"]
                    return total, tape.gradient(total, variables)

                plain_batch = next(iter(dataset))
                forward_backward(plain_batch)
                results["fwd+bwd"] = timed(lambda: forward_backward(plain_batch)[0].numpy(), steps)
                parameters = sum(int(np.prod(v.shape)) for v in variables)
        ratio = results["step"] / results["fwd+bwd"]
        line = ", ".join(f"{name} {value:.3f} s" for name, value in results.items())
        widths = f"widths depth {model_config.depth_network_width} motion {model_config.motion_network_width}"
        print(
            f"{height}x{width} batch {batch_size}, {widths} ({parameters / 1e6:.1f} M params): {line}; "
            f"ratio step/fwd+bwd {ratio:.2f} (target <= 1.3); input {input_rate:.0f} examples/s "
            f"({input_rate / batch_size * results['step']:.0f}x what the step consumes)",
            flush=True,
        )


def _gpu_peak_bytes() -> Optional[int]:
    """Peak bytes allocated on GPU:0 since the last reset, or None without a GPU."""
    if not tf.config.list_logical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def _reset_gpu_peak() -> None:
    if tf.config.list_logical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def compare_precision(height: int, width: int, batch_size: int, steps: int, repeats: int, params: dict) -> dict:
    """float32 against mixed_bfloat16 training steps, interleaved in one process; prints and returns the figures.

    Times are seconds per optimizer step, medians over all timed steps of all rounds; the first two steps of
    each trainer (tracing) are not timed. Peak GPU memory (bytes) is the highest peak over the rounds of that
    precision, reset before each round.
    """
    import keras

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_records(root / "data", height, width, count=max(16, 2 * batch_size))
        data_config = data.DataConfig(str(root / "data"), img_height=height, img_width=width, batch_size=batch_size)
        model_config = ModelConfig.from_mapping(
            params, section="train", strict=False, img_height=height, img_width=width
        )
        runs = {}
        for name, mixed in (("float32", False), ("bfloat16", True)):
            _reset_gpu_peak()
            try:
                config = TrainerConfig(
                    str(root / f"ckpt_{name}"),
                    learning_rate=1e-4,
                    progress=False,
                    mixed_precision=mixed,
                    **_threads(params),
                )
                configure_runtime(config)
                trainer = Trainer(model_config, data_config, config)
            except (tf.errors.OpError, TypeError, ValueError) as error:
                message = " ".join(str(error).split())[:300]
                print(f"  {name}: the trainer cannot be built: {type(error).__name__}: {message}", flush=True)
                continue
            finally:
                keras.mixed_precision.set_global_policy("float32")  # the next trainer decides its own policy
            iterator = iter(trainer.dataset)
            for _ in range(2):  # trace (the second call still retraces once)
                trainer.train_step(next(iterator))["applied"].numpy()
            model, variables = trainer.model, trainer.model.trainable_variables

            def forward_backward(batch, model=model, variables=variables):
                with tf.GradientTape() as tape:
                    total = tf.cast(
                        model.compute_loss(batch, tf.constant(0, tf.int64), training=True)["total"], tf.float32
                    )
                return total, tape.gradient(total, variables)

            plain = tf.function(forward_backward)
            plain_batch = next(iter(trainer.reader.build()))
            for _ in range(2):
                plain(plain_batch)
            runs[name] = {
                "trainer": trainer,
                "iterator": iterator,
                "plain": plain,
                "plain_batch": plain_batch,
                "step": [],
                "fwd_bwd": [],
                "peak": 0,
                "loss": None,
            }
        for _ in range(repeats):
            for name, run in list(runs.items()):
                trainer, iterator = run["trainer"], run["iterator"]
                _reset_gpu_peak()
                for _ in range(steps):
                    batch = next(iterator)
                    began = time.perf_counter()
                    outputs = trainer.train_step(batch)
                    if not bool(outputs["applied"].numpy()):
                        message = f"{name}: non-finite loss or gradient at step {trainer.step + 1}"
                        if name == "float32":
                            raise RuntimeError(message)
                        # A measured outcome of mixed precision, reported (docs/training.md), not a crash.
                        print(
                            f"  {message} (gradient norm {float(outputs['gradient_norm']):.3g}): no timing", flush=True
                        )
                        del runs[name]
                        break
                    run["step"].append(time.perf_counter() - began)
                if name not in runs:
                    continue
                run["loss"] = float(outputs["total"])
                run["peak"] = max(run["peak"], _gpu_peak_bytes() or 0)
                for _ in range(max(2, steps // 4)):
                    began = time.perf_counter()
                    run["plain"](run["plain_batch"])[0].numpy()
                    run["fwd_bwd"].append(time.perf_counter() - began)
        widths = f"widths depth {model_config.depth_network_width} motion {model_config.motion_network_width}"
        print(
            f"{height}x{width} batch {batch_size}, {widths}: {repeats} interleaved rounds of {steps} steps", flush=True
        )
        figures = {}
        for name, run in runs.items():
            step = statistics.median(run["step"])
            fwd_bwd = statistics.median(run["fwd_bwd"])
            peak = f", peak GPU memory {run['peak'] / 2**30:.2f} GiB" if _gpu_peak_bytes() is not None else ""
            figures[name] = {"step_s": step, "fwd_bwd_s": fwd_bwd, "peak_gpu_bytes": run["peak"] or None}
            print(
                f"  {name:8s}: step {step:.4f} s ({1 / step:.2f} steps/s, {batch_size / step:.1f} examples/s), "
                f"fwd+bwd {fwd_bwd:.4f} s, ratio step/fwd+bwd {step / fwd_bwd:.2f}{peak}; "
                f"loss at step {run['trainer'].step}: {run['loss']:.4f}",
                flush=True,
            )
        if len(runs) == 2:
            ratio = figures["bfloat16"]["step_s"] / figures["float32"]["step_s"]
            print(f"  bfloat16 / float32 training step time: {ratio:.2f} (< 1: bfloat16 faster)", flush=True)
            figures["ratio_bf16_fp32"] = ratio
        figures["depth_network"] = compare_depth_network(
            height, width, batch_size, steps, repeats, model_config.depth_network_width
        )
        return figures


def compare_depth_network(
    height: int, width: int, batch_size: int, steps: int, repeats: int, network_width: float
) -> dict:
    """The bare depth network's forward+backward in float32 against mixed_bfloat16, interleaved.

    The part of the step that bfloat16 can speed up (convolutions; on CPUs with AMX-BF16 oneDNN runs them on
    AMX tiles), measured even when the full model does not run in mixed precision. Returns median seconds.
    """
    import keras

    from model.networks import DepthNetwork

    images = tf.random.stateless_uniform([batch_size, height, width, 3], seed=[0, 1])
    functions = {}
    for name, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
        keras.mixed_precision.set_global_policy(policy)
        network = DepthNetwork(width=network_width)
        network(images)
        keras.mixed_precision.set_global_policy("float32")

        def forward_backward(images, network=network):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.cast(network(images, training=True), tf.float32))
            return loss, tape.gradient(loss, network.trainable_variables)

        functions[name] = tf.function(forward_backward)
        for _ in range(2):
            functions[name](images)
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            for _ in range(steps):
                began = time.perf_counter()
                function(images)[0].numpy()
                times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["bfloat16"] / medians["float32"]
    print(
        f"  depth network alone (width {network_width}) fwd+bwd: float32 {medians['float32']:.4f} s, "
        f"bfloat16 {medians['bfloat16']:.4f} s, ratio {ratio:.2f}",
        flush=True,
    )
    return {**medians, "ratio": ratio}


def main() -> None:
    params = load_params("train")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    frame = load_params("preprocess")  # the default run's frame size (training takes it from the records)
    parser.add_argument(
        "--sizes", default=f"128x416,{frame['height']}x{frame['width']}", help="comma-separated HxW list"
    )
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--xla", action="store_true", help="also time the step with jit_compile=True")
    parser.add_argument(
        "--compare_precision",
        action="store_true",
        help="time float32 against mixed_precision (bfloat16) training steps, interleaved",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved rounds of --steps steps per precision (--compare_precision)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train: parameter, e.g. --set motion_network_width=1.0 (repeatable)",
    )
    args = parser.parse_args()
    for item in args.set:
        key, value = item.split("=", 1)
        params[key] = value  # typed (and checked) when the configs are built from the section
    threads = _threads(params)
    set_op_threads(threads["intra_op_threads"], threads["inter_op_threads"])  # before any TensorFlow work
    print("TensorFlow threads:", ", ".join(f"{key} {value}" for key, value in threads.items()), "(0 = default)")
    for size in args.sizes.split(","):
        height, width = (int(value) for value in size.split("x"))
        if args.compare_precision:
            compare_precision(height, width, args.batch_size, args.steps, args.repeats, params)
        else:
            benchmark(height, width, args.batch_size, args.steps, args.xla, params)


if __name__ == "__main__":
    main()
