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
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from formats import struct2depth  # noqa: E402
from formats.camera import intrinsics_matrix  # noqa: E402
from model import data  # noqa: E402
from model.depth_motion_model import ModelConfig  # noqa: E402
from model.trainer import Trainer, TrainerConfig  # noqa: E402
from stages.common import load_params  # noqa: E402


def write_records(root: Path, height: int, width: int, count: int = 16) -> None:
    rng = np.random.default_rng(0)
    entries = []
    for index in range(count):
        frames = [(rng.random((height, width, 3)) * 255).astype(np.uint8) for _ in range(3)]
        masks = [np.zeros((height, width), np.uint8) for _ in range(3)]
        record_id = struct2depth.sample_id(index)
        struct2depth.write_record(root, "seq", record_id, frames, masks,
                                  intrinsics_matrix(0.6 * width, 1.8 * height, width / 2, height / 2))
        entries.append(("seq", record_id))
    struct2depth.write_list(root / "train.txt", entries)


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
        model_config = ModelConfig.from_params({**params, "img_height": height, "img_width": width})
        data_config = data.DataConfig(str(root / "data"), img_height=height, img_width=width,
                                      batch_size=batch_size)
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
        for jit in ([False, True] if xla else [False]):
            trainer = Trainer(model_config, data_config, TrainerConfig(
                str(root / f"ckpt_{jit}"), learning_rate=1e-4, progress=False, jit_compile=jit))
            batch = next(iter(trainer.dataset))
            trainer.train_step(batch)["applied"].numpy()          # trace
            results[f"step{' (XLA)' if jit else ''}"] = timed(lambda: trainer.train_step(batch)["applied"].numpy(),
                                                             steps)
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
        print(f"{height}x{width} batch {batch_size}, {widths} ({parameters / 1e6:.1f} M params): {line}; "
              f"ratio step/fwd+bwd {ratio:.2f} (target <= 1.3); input {input_rate:.0f} examples/s "
              f"({input_rate / batch_size * results['step']:.0f}x what the step consumes)", flush=True)


def main() -> None:
    params = load_params("train")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=f"128x416,{params['img_height']}x{params['img_width']}",
                        help="comma-separated HxW list")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--xla", action="store_true", help="also time the step with jit_compile=True")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train: parameter, e.g. --set motion_network_width=1.0 (repeatable)")
    args = parser.parse_args()
    for item in args.set:
        key, value = item.split("=", 1)
        params[key] = type(params[key])(value) if key in params else value
    for size in args.sizes.split(","):
        height, width = (int(value) for value in size.split("x"))
        benchmark(height, width, args.batch_size, args.steps, args.xla, params)


if __name__ == "__main__":
    main()
