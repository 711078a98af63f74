"""Throughput of ``stages.predict`` vs the bare networks' batched forward pass, in one process.

For each size (224x64 at the CPU default's widths 0.5, 416x128 at the release's widths 1.0) it builds an
initialised checkpoint, then times on the real dash-cam clip (``../shared/data/real/video``):

- ``bare depth``: ``InferenceModel.predict_depth`` on the same frames, already decoded and resized in memory,
  same batch size and flip setting: the network alone;
- ``predict depth``: ``stages.predict.main(--notrajectory)``: decode, sample, resize, depth, 16-bit PNG,
  colour preview, .npy, preview video, all written atomically;
- ``bare depth+motion`` and ``predict full`` (the default: trajectory on, one motion pass per pair).

Ratios predict / bare (target >= 0.8: the rest is decode, resize, encode). The model is loaded once, outside
the timings, and traced by a warm-up. Rounds alternate bare and predict and the best of each is reported,
since other processes on the machine disturb single timings.

It also times ``read`` (predict's reader alone: decode every frame of the clip, sample, resize, convert to the
network's float input; nothing written)
and measures CPU time (``time.process_time``, all threads) per output frame of ``read`` and ``bare depth``.
With C cores, predict could at best run at C / (read + network CPU ms) frames/s if encoding and writing were
free; ``bound`` is that rate over the bare depth rate, each round's figures taken together (min and max over
the rounds are printed). It is an estimate, not a proof: TensorFlow's thread pools may spin while they wait,
so the network's CPU ms can exceed the work it needs (an H.264 decoder, by contrast, must decode every
reference frame, sampled or not).

    python benchmarks/predict_throughput.py [--fps 10] [--batch_size 8] [--rounds 2] [--sizes 224x64,416x128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model.checkpoints import make_checkpoint, write_model_config  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.depth_motion_model import DepthMotionModel  # noqa: E402
from model.inference import InferenceModel  # noqa: E402
from pipelines import footage  # noqa: E402
from stages import predict  # noqa: E402

CLIP = os.path.join(os.path.dirname(ROOT), "shared", "data", "real", "video", "dashcam_highway.mp4")
WIDTHS = {(224, 64): 0.5, (416, 128): 1.0}


def checkpoint(folder: str, size, width_multiplier: float) -> InferenceModel:
    config = ModelConfig(
        img_height=size[1],
        img_width=size[0],
        depth_network_width=width_multiplier,
        motion_network_width=width_multiplier,
        learn_intrinsics=True,
    )
    write_model_config(folder, config)
    make_checkpoint(DepthMotionModel(config)).save(os.path.join(folder, "model"))
    return InferenceModel.from_checkpoint(folder)


def sampled_frames(model: InferenceModel, fps: float) -> np.ndarray:
    """The frames predict sees (same reader), as float32 [N, H, W, 3] in memory."""
    params = {
        "input": CLIP,
        "output": "unused",
        "video": {"fps": fps},
        "intrinsics": None,
        "image_folder": {"stride": 1, "fps": 10.0},
    }
    config = predict.preprocess_config(params, model.image_size)
    item = footage.find_inputs(CLIP)[0][0]
    frames = [frame.image for frame in footage.stream_frames(item, config) if hasattr(frame, "image")]
    return np.stack(frames).astype(np.float32) / 255.0


def read_only(model: InferenceModel, fps: float) -> tuple:
    """(output frames/s, CPU ms per output frame) of predict's reader alone: decode, sample, resize, to float."""
    cpu, start = time.process_time(), time.perf_counter()
    count = len(sampled_frames(model, fps))
    return count / (time.perf_counter() - start), (time.process_time() - cpu) * 1000.0 / count


def bare(model: InferenceModel, images: np.ndarray, batch: int, motion: bool) -> float:
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        chunk = images[first : first + batch]
        model.predict_depth(chunk, flip_augment=True)
        if motion:
            previous = images[max(first - 1, 0) : first + len(chunk) - 1]
            following = images[max(first, 1) : first + len(chunk)]
            if len(previous):
                model.predict_egomotion(previous, following)
    return len(images) / (time.perf_counter() - start)


def staged(model: InferenceModel, output: str, fps: float, batch: int, trajectory: bool) -> float:
    shutil.rmtree(output, ignore_errors=True)
    argv = [
        f"--checkpoint_path={model.checkpoint_path}",
        f"--input={CLIP}",
        f"--output={output}",
        f"--video.fps={fps}",
        f"--batch_size={batch}",
        "--quiet",
        "--trajectory" if trajectory else "--notrajectory",
    ]
    start = time.perf_counter()
    manifest = predict.main(argv, model=model)
    return manifest["counts"]["frames"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=10.0, help="video frames sampled per second")
    parser.add_argument("--batch_size", type=int, default=8, help="frames per forward pass")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds (best is reported)")
    parser.add_argument("--sizes", default="224x64,416x128", help="comma-separated WxH model sizes")
    args = parser.parse_args()
    if not os.path.isfile(CLIP):
        raise SystemExit(f"benchmark clip not found: {CLIP}")
    results = []
    with tempfile.TemporaryDirectory(prefix="wilddepth-predict-bench-") as scratch:
        for text in args.sizes.split(","):
            size = tuple(int(v) for v in text.lower().split("x"))
            folder = os.path.join(scratch, f"ckpt_{text}")
            model = checkpoint(folder, size, WIDTHS.get(size, 1.0))
            images = sampled_frames(model, args.fps)
            bare(model, images[: 2 * args.batch_size], args.batch_size, True)  # trace both networks
            timings = {"bare_depth": [], "predict_depth": [], "bare_full": [], "predict_full": [], "read": []}
            cpu_ms = {"read": [], "bare_depth": []}
            for _ in range(args.rounds):
                rate, read_ms = read_only(model, args.fps)
                timings["read"].append(rate)
                cpu_ms["read"].append(read_ms)
                cpu = time.process_time()  # all threads: the bare pass's CPU ms per frame
                timings["bare_depth"].append(bare(model, images, args.batch_size, False))
                cpu_ms["bare_depth"].append((time.process_time() - cpu) * 1000.0 / len(images))
                timings["predict_depth"].append(
                    staged(model, os.path.join(scratch, "out"), args.fps, args.batch_size, False)
                )
                timings["bare_full"].append(bare(model, images, args.batch_size, True))
                timings["predict_full"].append(
                    staged(model, os.path.join(scratch, "out"), args.fps, args.batch_size, True)
                )
            best = {key: max(values) for key, values in timings.items()}
            least_ms = {key: min(values) for key, values in cpu_ms.items()}
            cores = os.cpu_count() or 1
            bounds = [
                min(1.0, cores * 1000.0 / (read_ms + network_ms) / rate)
                for read_ms, network_ms, rate in zip(cpu_ms["read"], cpu_ms["bare_depth"], timings["bare_depth"])
            ]
            row = {
                "size": f"{size[0]}x{size[1]}",
                "network_width": WIDTHS.get(size, 1.0),
                "frames": len(images),
                "batch_size": args.batch_size,
                "fps": {k: round(v, 2) for k, v in best.items()},
                "ratio_depth": round(best["predict_depth"] / best["bare_depth"], 3),
                "ratio_full": round(best["predict_full"] / best["bare_full"], 3),
                "cpu_ms_per_frame": {k: [round(v, 2) for v in values] for k, values in cpu_ms.items()},
                "bound_depth": [round(bound, 3) for bound in bounds],
                "all_rounds": {k: [round(v, 2) for v in values] for k, values in timings.items()},
            }
            results.append(row)
            print(
                f"{row['size']} (width {row['network_width']}, {row['frames']} frames, batch {args.batch_size}): "
                f"bare depth {best['bare_depth']:.1f} f/s, predict --notrajectory {best['predict_depth']:.1f} f/s, "
                f"ratio {row['ratio_depth']:.2f}; bare depth+motion {best['bare_full']:.1f} f/s, "
                f"predict (default) {best['predict_full']:.1f} f/s, ratio {row['ratio_full']:.2f}",
                flush=True,
            )
            print(
                f"  read alone (decode, sample, resize) {best['read']:.1f} f/s, {least_ms['read']:.2f} CPU ms per "
                f"output frame; bare depth {least_ms['bare_depth']:.2f} CPU ms per frame; with free writing predict "
                f"--notrajectory could reach at most {min(bounds):.2f}-{max(bounds):.2f} of bare depth on {cores} "
                "cores (per round; an estimate)",
                flush=True,
            )
    print(json.dumps({"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "results": results}))


if __name__ == "__main__":
    main()
