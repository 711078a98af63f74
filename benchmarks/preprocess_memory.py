"""Peak memory of preprocessing against the length of a sequence, and throughput against a tight OpenCV loop.

Writes one long KITTI-layout drive (default 2,400 frames) and one short one (default 60 frames) with
OpenCV (a smooth texture sliding sideways: no scene cuts, no static triplets), then preprocesses each in
a fresh subprocess on Beam's local runner in ``in_memory`` mode (one process, so its peak resident set,
``ru_maxrss``, is the whole job's) and prints both peaks and their ratio (target <= 1.2: memory does not
grow with the length of a sequence). Then it times, each in a fresh subprocess over the long drive: a
tight single-process OpenCV loop (decode, INTER_AREA resize, PNG-encode triplet and mask, write
``_cam.txt``), the pipeline with 1 worker (in_memory) and with 2 workers (multi_processing), and prints
frames/s and the ratios to the loop (targets >= 0.8 and >= 1.6). Times are the pipeline's own wall time
(imports and interpreter start excluded). All figures of one run come from the same machine state; on a
shared machine they are polluted by the other load, so read the ratios, not the absolute rates.

    python benchmarks/preprocess_memory.py [--long 2400] [--short 60] [--native 640x192] [--size 416x128]
        [--code DIR]   # also measure another source tree (e.g. `git archive` of an earlier commit)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from formats import kitti  # noqa: E402

DATE = "2011_09_26"


def synthetic_frame(index: int, size) -> np.ndarray:
    """A smooth BGR texture that slides 2 px per frame (neighbouring frames look alike)."""
    width, height = size
    x = (np.arange(width)[None, :] + 2.0 * index) * (4 * np.pi / width)
    y = np.linspace(0, 3 * np.pi, height)[:, None]
    base = (np.sin(x) * np.cos(y) + np.sin(0.37 * x + y) + 2.0) * 55 + 10
    return np.stack([base, 0.8 * base + 20, 250 - 0.9 * base], axis=-1).astype(np.uint8)


def write_drive(root: str, frames: int, size) -> str:
    """<root>/2011_09_26/<drive>/image_02/data/<10 digits>.png plus the date's calibration; returns root."""
    date = os.path.join(root, DATE)
    data = os.path.join(date, f"{DATE}_drive_0001_sync", "image_02", "data")
    os.makedirs(data, exist_ok=True)
    projection = np.zeros((3, 4))
    projection[:, :3] = [[0.6 * size[0], 0, (size[0] - 1) / 2], [0, 0.6 * size[0], (size[1] - 1) / 2], [0, 0, 1]]
    with open(os.path.join(date, "calib_cam_to_cam.txt"), "w") as handle:
        handle.write(kitti.format_calibration({"S_rect_02": np.array(size, float), "P_rect_02": projection}))
    for index in range(frames):
        cv2.imwrite(os.path.join(data, f"{index:010d}.png"), synthetic_frame(index, size))
    return root


_PIPELINE_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    code, data, output, width, height, mode, workers = sys.argv[1:8]
    sys.path.insert(0, code)
    from pipelines.config import PreprocessConfig
    from pipelines.preprocess import run
    config = PreprocessConfig.from_mapping({"source": "kitti_raw", "input": data, "output": output, "width": int(width),
                                 "height": int(height), "segmenter": "none",
                                 "kitti_raw": {"exclude_eigen_test_scenes": False}})
    def cpu():
        return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for field in ("ru_utime", "ru_stime"))
    start, start_cpu = time.perf_counter(), cpu()
    run(config, ["--direct_running_mode=" + mode, "--direct_num_workers=" + workers])
    seconds, cpu_seconds = time.perf_counter() - start, cpu() - start_cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                      "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
""")

_LOOP_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[1] + "/benchmarks")
    import preprocess_throughput
    preprocess_throughput.SIZE = (int(sys.argv[4]), int(sys.argv[5]))
    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    start, start_cpu = time.perf_counter(), cpu()
    frames = preprocess_throughput.opencv_loop(sys.argv[2], sys.argv[3])
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": cpu() - start_cpu, "frames": frames}))
""")


def _child(script: str, code: str, *args) -> dict:
    """Run ``script`` in a fresh interpreter whose imports (and those of Beam's worker processes, which
    start in the working directory) come from the source tree ``code``; returns its last JSON line."""
    environment = dict(os.environ, PYTHONPATH=code)
    result = subprocess.run(
        [sys.executable, "-c", script, code, *map(str, args)], capture_output=True, text=True, cwd=code, env=environment
    )
    if result.returncode:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def pipeline_run(code: str, data: str, output: str, size, mode: str = "in_memory", workers: int = 1) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    return _child(_PIPELINE_CHILD, code, data, output, size[0], size[1], mode, workers)


def _size(text: str):
    width, height = (int(value) for value in text.lower().split("x"))
    return width, height


def measure(
    code: str,
    label: str,
    long_root: str,
    short_root: str,
    frames: dict,
    size,
    scratch: str,
    loop: dict,
    throughput: bool,
) -> None:
    short = pipeline_run(code, short_root, os.path.join(scratch, "out_short"), size)
    long = pipeline_run(code, long_root, os.path.join(scratch, "out_long"), size)
    print(
        f"[{label}] peak RSS, in_memory runner (one process): short drive ({frames['short']} frames) "
        f"{short['self_kib'] / 1024:.0f} MiB, long drive ({frames['long']} frames) "
        f"{long['self_kib'] / 1024:.0f} MiB, "
        f"ratio long/short {long['self_kib'] / short['self_kib']:.2f} (target <= 1.2)"
    )
    if not throughput:
        return
    one = long  # the long in_memory run above is the 1-worker timing
    two = pipeline_run(code, long_root, os.path.join(scratch, "out_two"), size, "multi_processing", 2)
    count = frames["long"]
    print(
        f"[{label}] pipeline, 1 worker : {count / one['seconds']:7.1f} frames/s   ratio to loop "
        f"{loop['seconds'] / one['seconds']:.2f} (target >= 0.8); CPU seconds per frame vs loop "
        f"{loop['cpu_seconds'] / one['cpu_seconds']:.2f} (less sensitive to other load; excludes I/O waits)"
    )
    print(
        f"[{label}] pipeline, 2 workers: {count / two['seconds']:7.1f} frames/s   ratio to loop "
        f"{loop['seconds'] / two['seconds']:.2f} (target >= 1.6); peak RSS runner "
        f"{two['self_kib'] / 1024:.0f} MiB, largest worker {two['children_kib'] / 1024:.0f} MiB"
    )
    per_frame = {name: run["cpu_seconds"] / count * 1000 for name, run in (("loop", loop), ("1", one), ("2", two))}
    print(
        f"[{label}] CPU ms per frame (all processes): loop {per_frame['loop']:.1f}, 1 worker {per_frame['1']:.1f}, "
        f"2 workers {per_frame['2']:.1f}; two workers on two fully busy cores could reach at most "
        f"{2 * per_frame['loop'] / per_frame['2']:.2f} of the loop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", type=int, default=2400, help="frames of the long drive")
    parser.add_argument("--short", type=int, default=60, help="frames of the short drive")
    parser.add_argument("--native", type=_size, default=(640, 192), help="native frame size WxH")
    parser.add_argument("--size", type=_size, default=(416, 128), help="record frame size WxH")
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        help="another source tree to measure the same way (repeatable), e.g. an earlier commit",
    )
    parser.add_argument("--no_throughput", action="store_true", help="memory figures only")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="wilddepth-membench-")
    try:
        start = time.perf_counter()
        long_root = write_drive(os.path.join(scratch, "long"), args.long, args.native)
        short_root = write_drive(os.path.join(scratch, "short"), args.short, args.native)
        frames = {"long": args.long, "short": args.short}
        print(
            f"drives written in {time.perf_counter() - start:.0f} s: native {args.native[0]}x{args.native[1]}, "
            f"records {args.size[0]}x{args.size[1]}, {os.cpu_count()} CPUs "
            f"(load average {os.getloadavg()[0]:.1f}: on a shared machine every rate is polluted)"
        )
        loop = {}
        if not args.no_throughput:
            loop = _child(_LOOP_CHILD, REPO, long_root, os.path.join(scratch, "loop"), *args.size)
            print(
                f"opencv loop (1 process): {loop['frames'] / loop['seconds']:7.1f} frames/s "
                f"({loop['cpu_seconds'] / loop['frames'] * 1000:.1f} CPU ms per frame)"
            )
        for label, code in [("this tree", REPO)] + [(code, code) for code in args.code]:
            measure(code, label, long_root, short_root, frames, args.size, scratch, loop, not args.no_throughput)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
