"""Which part of the predicted ego-motion makes the ATE-5: rotation, translation direction or speed.

    .venv/bin/python benchmarks/motion_errors.py [--trajectory_dir results/trajectories]

For each sequence of a ``stages.trajectory_inference`` output (ground truth from its manifest, as
``eval_odometry`` reads it) the frame-to-frame motions T_k_from_k+1 = G_k^-1 G_k+1 of the prediction and of the
ground truth are split into rotation, translation direction and translation length. It prints:

- ATE-5 (``evaluation.odometry_metrics.snippet_ates``, mean over snippets) of the prediction, of the
  constant-velocity baseline, and of hybrids that take one or two of the three parts from the ground truth
  (e.g. ``true rotation``: the predicted translations chained with the true rotations). The part whose
  replacement lowers ATE-5 most is the one that limits it;
- per axis, the mean (bias) and spread of the rotation error (rotation vectors in degrees: x pitch, y yaw,
  z roll) and the correlation of each predicted axis with the true yaw: a model that turns with the road has
  a predicted yaw correlated with the true one;
- the mean predicted yaw against the mean true yaw in bins of the true yaw per frame (signed so that positive
  means turning the right way): how much of a turn the model measures, gentle and sharp;
- the median angle between predicted and true translation directions (frames that move more than 5 cm).

Printed, never asserted; pure NumPy and SciPy on the files, so it takes a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import odometry_metrics  # noqa: E402
from evaluation.odometry_evaluation import manifest_trajectories  # noqa: E402
from evaluation.trajectory import accumulate, nearest_rotation  # noqa: E402

MOVING_M = 0.05  # frames whose true translation is shorter than this have no translation direction
YAW_BINS_DEG = ((0.0, 0.5), (0.5, 1.5), (1.5, 3.0), (3.0, 180.0))  # bins of the true yaw per frame


def frame_motions(poses: np.ndarray) -> np.ndarray:
    """(N-1, 4, 4) motions T_k_from_k+1 = G_k^-1 G_k+1 of camera-to-world poses (N, 4, 4); rotations made exact."""
    poses = odometry_metrics.as_homogeneous(poses)
    motions = np.einsum("kij,kjl->kil", odometry_metrics.invert_rigid(poses[:-1]), poses[1:])
    motions[:, :3, :3] = [nearest_rotation(rotation) for rotation in motions[:, :3, :3]]
    return motions


def hybrid(rotation_from: np.ndarray, direction_from: np.ndarray, length_from: np.ndarray) -> np.ndarray:
    """Poses (N, 4, 4), the first the identity, accumulated (``evaluation.trajectory.accumulate``) from motions
    whose rotation, translation direction and translation length come from three (N-1, 4, 4) motion arrays."""
    direction = direction_from[:, :3, 3] / np.maximum(np.linalg.norm(direction_from[:, :3, 3], axis=1), 1e-12)[:, None]
    translations = direction * np.linalg.norm(length_from[:, :3, 3], axis=1)[:, None]
    return accumulate(rotation_from[:, :3, :3], translations, "compose")


def ate5(gt_poses: np.ndarray, poses: np.ndarray) -> float:
    return float(odometry_metrics.snippet_ates(gt_poses, poses, 5).mean())


def report(name: str, gt_poses: np.ndarray, pred_poses: np.ndarray) -> None:
    gt, pred = frame_motions(gt_poses), frame_motions(pred_poses)
    constant = odometry_metrics.constant_velocity_poses(len(gt_poses))
    rows = {
        "model": pred_poses,
        "constant velocity": constant,
        "true rotation": hybrid(gt, pred, pred),
        "true direction": hybrid(pred, gt, pred),
        "true length": hybrid(pred, pred, gt),
        "true rotation + direction": hybrid(gt, gt, pred),
        "true rotation + length": hybrid(gt, pred, gt),
        "true direction + length": hybrid(pred, gt, gt),
    }
    print(f"{name}: ATE-5 (m) " + ", ".join(f"{key} {ate5(gt_poses, poses):.4f}" for key, poses in rows.items()))
    true_vector = Rotation.from_matrix(gt[:, :3, :3]).as_rotvec(degrees=True)
    pred_vector = Rotation.from_matrix(pred[:, :3, :3]).as_rotvec(degrees=True)
    error = pred_vector - true_vector
    correlation = [np.corrcoef(pred_vector[:, axis], true_vector[:, 1])[0, 1] for axis in range(3)]
    print(
        "  rotation (deg per frame; x pitch, y yaw, z roll): true mean "
        f"{np.round(true_vector.mean(0), 3)} std {np.round(true_vector.std(0), 3)}; error mean "
        f"{np.round(error.mean(0), 3)} std {np.round(error.std(0), 3)}; correlation of predicted x, y, z with the "
        f"true yaw {correlation[0]:+.2f} {correlation[1]:+.2f} {correlation[2]:+.2f}"
    )
    bins = []
    for low, high in YAW_BINS_DEG:
        chosen = (np.abs(true_vector[:, 1]) >= low) & (np.abs(true_vector[:, 1]) < high)
        if chosen.any():
            sign = np.sign(true_vector[chosen, 1])
            predicted, true = np.mean(pred_vector[chosen, 1] * sign), np.mean(np.abs(true_vector[chosen, 1]))
            bins.append(f"{low}-{high} deg: {predicted:.2f} / {true:.2f} ({int(chosen.sum())} frames)")
    print("  yaw per frame, predicted / true, by true yaw: " + "; ".join(bins))
    moving = np.linalg.norm(gt[:, :3, 3], axis=1) > MOVING_M
    cosine = np.einsum("ki,ki->k", gt[moving, :3, 3], pred[moving, :3, 3]) / (
        np.linalg.norm(gt[moving, :3, 3], axis=1) * np.maximum(np.linalg.norm(pred[moving, :3, 3], axis=1), 1e-12)
    )
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    print(
        f"  translation direction error (deg, {int(moving.sum())} moving frames): median {np.median(angles):.2f}, "
        f"90th percentile {np.percentile(angles, 90):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trajectory_dir", default="results/trajectories", help="a stages.trajectory_inference output folder"
    )
    args = parser.parse_args()
    for matched in manifest_trajectories(Path(args.trajectory_dir)):
        report(matched.name, matched.ground_truth, matched.prediction)


if __name__ == "__main__":
    main()
