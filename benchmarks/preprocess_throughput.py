"""Throughput of the preprocessing pipeline (no masking) vs a tight single-process OpenCV loop.

Both read the same KITTI-layout synthetic frames, decode, resize to the record size (INTER_AREA), and
encode each triplet and its all-zero mask as PNG plus the _cam.txt; the loop writes plain files, the
pipeline its atomic ones. Prints frames per second and the ratios pipeline / loop for 1 and 2 workers
(target >= 0.8 on one worker, near-linear gain with two).

    python benchmarks/preprocess_throughput.py [--data DIR] [--sequences 4] [--frames 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from formats.struct2depth import PNG_PARAMS  # noqa: E402
from pipelines.config import PreprocessConfig  # noqa: E402
from pipelines.preprocess import run  # noqa: E402

SIZE = (416, 128)


def opencv_loop(data: str, output: str) -> int:
    """Decode, resize, encode triplets of every drive in one process; returns frames decoded."""
    count = 0
    for drive in sorted(glob.glob(os.path.join(data, "*", "*_drive_*_sync"))):
        folder = os.path.join(output, os.path.basename(drive) + "_02")
        os.makedirs(folder, exist_ok=True)
        small = []
        for path in sorted(glob.glob(os.path.join(drive, "image_02", "data", "*.png"))):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            small.append(cv2.cvtColor(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
            count += 1
        zeros = np.zeros((SIZE[1], 3 * SIZE[0], 3), np.uint8)
        for middle in range(1, len(small) - 1):
            triplet = cv2.cvtColor(np.concatenate(small[middle - 1 : middle + 2], axis=1), cv2.COLOR_RGB2BGR)
            stem = os.path.join(folder, f"{middle:010d}")
            with open(stem + ".png", "wb") as handle:
                handle.write(cv2.imencode(".png", triplet, PNG_PARAMS)[1].tobytes())
            with open(stem + "-fseg.png", "wb") as handle:
                handle.write(cv2.imencode(".png", zeros, PNG_PARAMS)[1].tobytes())
            with open(stem + "_cam.txt", "w") as handle:
                handle.write("1.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,1.0\n")
    return count


def pipeline(data: str, output: str, workers: int) -> None:
    config = PreprocessConfig.from_mapping(
        {
            "source": "kitti_raw",
            "input": data,
            "output": output,
            "width": SIZE[0],
            "height": SIZE[1],
            "segmenter": "none",
            "kitti_raw": {"exclude_eigen_test_scenes": False},
        }
    )
    mode = "in_memory" if workers == 1 else "multi_processing"
    run(config, [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"])


def best_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="KITTI-layout folder (default: synthesize one in a temporary folder)")
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="wilddepth-bench-")
    try:
        data = args.data
        if not data:
            from stages import synthesize

            data = os.path.join(scratch, "world")
            synthesize.main(
                [
                    "--layout",
                    "kitti_raw",
                    "--world",
                    "original",  # the world of the documented figures (one native size)
                    "--output",
                    data,
                    "--num_sequences",
                    str(args.sequences),
                    "--frames_per_sequence",
                    str(args.frames),
                    "--seed",
                    "1",
                    "--quiet",
                ]
            )
        frames = len(glob.glob(os.path.join(data, "*", "*_drive_*_sync", "image_02", "data", "*.png")))
        out = lambda name: os.path.join(scratch, name)  # noqa: E731
        loop_time = best_time(lambda: opencv_loop(data, out("loop")), args.repeats)
        one_time = best_time(lambda: pipeline(data, out("one"), 1), args.repeats)
        two_time = best_time(lambda: pipeline(data, out("two"), 2), args.repeats)
        print(f"frames: {frames} ({os.cpu_count()} CPUs), record size {SIZE[0]}x{SIZE[1]}")
        print(f"opencv loop        : {frames / loop_time:7.1f} frames/s")
        print(f"pipeline, 1 worker : {frames / one_time:7.1f} frames/s   ratio to loop {loop_time / one_time:.2f}")
        print(
            f"pipeline, 2 workers: {frames / two_time:7.1f} frames/s   ratio to loop {loop_time / two_time:.2f}"
            f"   gain over 1 worker {one_time / two_time:.2f}"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
