"""How good a guess constant velocity is on the synthetic drives: original world vs wild world.

    .venv/bin/python benchmarks/path_difficulty.py [--seed 1001] [--sequences 2] [--more 40]

For the test world's drives (seed and number of sequences of params.yaml's ``synthesize.test``) and for
``--more`` further drives of the same seed, prints ATE-5 (mean over snippets) and the full-trajectory ATE
(RMSE) of the constant-velocity trajectory against ground truth, computed with
``evaluation.odometry_metrics`` exactly as ``eval_odometry`` scores its constant-velocity baseline. Only the
poses are built (no rendering), so this takes seconds. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import odometry_metrics  # noqa: E402
from stages.common import load_params  # noqa: E402
from synthetic.cameras import CameraRanges, draw_camera  # noqa: E402
from synthetic.paths import PathRanges  # noqa: E402
from synthetic.scene import camera_drive  # noqa: E402


def constant_velocity_errors(poses: np.ndarray, snippet_length: int = 5):
    """(ATE-5 mean, full-trajectory ATE RMSE) of the constant-velocity guess against ``poses`` (metres)."""
    guess = odometry_metrics.constant_velocity_poses(len(poses))
    snippets = odometry_metrics.snippet_ates(poses, guess, snippet_length)
    return float(snippets.mean()), odometry_metrics.trajectory_ate(poses, guess)["rmse"]


def main() -> None:
    params = load_params("synthesize")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(params["test"]["seed"]), help="world seed")
    parser.add_argument(
        "--sequences", type=int, default=int(params["test"]["num_sequences"]), help="test drives printed one by one"
    )
    parser.add_argument("--more", type=int, default=40, help="further drives in the summary")
    parser.add_argument("--frames", type=int, default=int(params["frames_per_sequence"]), help="frames per drive")
    args = parser.parse_args()
    cameras = CameraRanges.from_mapping(params.get("wild_camera"), section="synthesize.wild_camera")
    ranges = PathRanges.from_mapping(params.get("wild_path"), section="synthesize.wild_path")
    worlds = {"original": [], "wild": []}
    for index in range(args.sequences + args.more):
        original = camera_drive(args.seed, index, float(params["fps"]), args.frames).poses
        fps = draw_camera(cameras, args.seed, index).fps
        drive = camera_drive(args.seed, index, fps, args.frames, path=ranges)
        for name, poses in (("original", original), ("wild", drive.poses)):
            worlds[name].append(constant_velocity_errors(poses))
        if index < args.sequences:
            plan = drive.plan
            manoeuvres = (
                f"{fps:g} fps, turn {np.degrees(plan.turn_angle):+.1f} deg, "
                f"{'stop' if plan.stops else 'speed changes'}, "
                f"{'lane change' if plan.lane_from != plan.lane_to else 'no lane change'}"
            )
            print(
                f"test drive {index}: original ATE-5 {worlds['original'][-1][0]:.4f} m, full ATE "
                f"{worlds['original'][-1][1]:.3f} m | wild ({manoeuvres}) "
                f"ATE-5 {worlds['wild'][-1][0]:.4f} m, full ATE {worlds['wild'][-1][1]:.3f} m"
            )
    for name, values in worlds.items():
        values = np.array(values)
        print(
            f"{name:8s} over {len(values)} drives (seed {args.seed}): constant-velocity ATE-5 mean "
            f"{values[:, 0].mean():.4f} m (median {np.median(values[:, 0]):.4f}), full-trajectory ATE mean "
            f"{values[:, 1].mean():.3f} m"
        )


if __name__ == "__main__":
    main()
