"""Rendering speed of the synthetic world on one core: frames per second at KITTI's 1242 x 375.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/render_speed.py [--frames 20] [--supersampling 1 2]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/render_speed.py --world wild --sequences 0 1 2 3 4

Prints, per supersampling factor, frames/s of ``render_frame`` (scene construction excluded, reported
separately), megapixels/s, and the share of time spent in ray casting vs shading/texturing. ``--world wild``
renders the wild world's sequences (each its own camera at its drawn native size, params.yaml's
``synthesize.wild_camera``/``wild_path``), so its cost per frame can be compared with the original world's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

cv2.setNumThreads(1)

from stages.common import load_params  # noqa: E402
from synthetic import layouts, render  # noqa: E402
from synthetic.cameras import CameraRanges, draw_camera  # noqa: E402
from synthetic.paths import PathRanges  # noqa: E402
from synthetic.scene import build_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--supersampling", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--world",
        choices=("original", "wild"),
        default="original",
        help="original: KITTI camera, straight drive; wild: each sequence its own camera and drive",
    )
    parser.add_argument("--sequences", type=int, nargs="+", default=[0], help="sequence indices to render")
    args = parser.parse_args()
    for sequence in args.sequences:
        measure(args, sequence)


def measure(args, sequence: int) -> None:
    if args.world == "wild":
        params = load_params("synthesize")
        ranges = CameraRanges.from_mapping(params.get("wild_camera"), section="synthesize.wild_camera")
        camera = draw_camera(ranges, args.seed, sequence)
        width, height, intrinsics, fps = camera.width, camera.height, camera.intrinsics, camera.fps
        path = PathRanges.from_mapping(params.get("wild_path"), section="synthesize.wild_path")
    else:
        width, height, intrinsics = layouts.camera("kitti_raw")
        fps, path = 10.0, None
    start = time.perf_counter()
    scene = build_scene(args.seed, sequence, width, height, intrinsics, fps, args.frames, path=path)
    print(
        f"{args.world} sequence {sequence}: scene construction {time.perf_counter() - start:.2f} s "
        f"({len(scene.static)} static boxes, {len(scene.movers)} movers)"
    )
    render.render_frame(scene, 0, 1)  # builds the texture atlas once
    timers = {"cast": 0.0, "shade": 0.0}
    original_cast, original_shade = render.cast, render.shade

    def timed(name, function):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                timers[name] += time.perf_counter() - t0

        return wrapper

    render.cast, render.shade = timed("cast", original_cast), timed("shade", original_shade)
    for n in args.supersampling:
        cache: dict = {}
        render.render_frame(scene, 0, n, rays_cache=cache)
        timers.update(cast=0.0, shade=0.0)
        start = time.perf_counter()
        for frame in range(args.frames):
            render.render_frame(scene, frame, n, rays_cache=cache)
        elapsed = time.perf_counter() - start
        print(
            f"{width}x{height}, supersampling {n}x{n}: {args.frames / elapsed:.2f} frames/s, "
            f"{width * height * args.frames / elapsed / 1e6:.2f} Mpixel/s "
            f"({1000 * elapsed / args.frames:.0f} ms/frame; ray casting {100 * timers['cast'] / elapsed:.0f} %, "
            f"shading+texturing {100 * timers['shade'] / elapsed:.0f} %)"
        )
    render.cast, render.shade = original_cast, original_shade


if __name__ == "__main__":
    main()
