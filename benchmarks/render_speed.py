"""Rendering speed of the synthetic world on one core: frames per second at KITTI's 1242 x 375.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/render_speed.py [--frames 20] [--supersampling 1 2]

Prints, per supersampling factor, frames/s of ``render_frame`` (scene construction excluded, reported
separately) and the share of time spent in ray casting vs shading/texturing.
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

from synthetic import layouts, render  # noqa: E402
from synthetic.scene import build_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--supersampling", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    width, height, intrinsics = layouts.camera("kitti_raw")
    start = time.perf_counter()
    scene = build_scene(args.seed, 0, width, height, intrinsics, 10.0, args.frames)
    print(f"scene construction: {time.perf_counter() - start:.2f} s ({len(scene.static)} static boxes, "
          f"{len(scene.movers)} movers)")
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
        print(f"{width}x{height}, supersampling {n}x{n}: {args.frames / elapsed:.2f} frames/s "
              f"({1000 * elapsed / args.frames:.0f} ms/frame; ray casting {100 * timers['cast'] / elapsed:.0f} %, "
              f"shading+texturing {100 * timers['shade'] / elapsed:.0f} %)")


if __name__ == "__main__":
    main()
