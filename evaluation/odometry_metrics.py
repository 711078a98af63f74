"""Odometry metrics: 5-frame snippet ATE, full-trajectory ATE, Sim(3)/SE(3)-aligned ATE, KITTI t_err/r_err.

Pure numpy. Trajectories are (N, 4, 4) (or (N, 3, 4)) camera-to-world poses ``G_k`` (KITTI odometry files:
camera-to-first-frame), camera axes x right, y down, z forward, translations in metres (ground truth) or up to
scale (predictions). The relative motion ``G_k^-1 G_j`` is ``T_k_from_j``: it maps points of camera j into
camera k. Ground truth and predictions go through the same functions, so one convention serves both.

- **ATE-5** (:func:`snippet_ate`, :func:`snippet_ates`; SfMLearner's ``kitti_eval/eval_pose.py`` and
  Monodepth2's ``evaluate_pose.py``): for every window of ``n`` consecutive frames, positions of frames
  s .. s+n-1 expressed in camera s (``translation(G_s^-1 G_k)``), for ground truth g_k and prediction q_k.
  Then q_k <- q_k + (g_1 - q_1); one least-squares scale s* = sum<g_k, q_k> / sum |q_k|^2;
  ATE = sqrt(sum_k |s* q_k - g_k|^2) / n (root of the *sum*, divided by n, not an RMSE). Reported as mean and
  std over snippets. No rotation alignment.
- **Full-trajectory ATE** (:func:`trajectory_ate`): the same alignment (first-frame offset, one LS scale) over
  all positions of the sequence in the first camera's frame, reported as an RMSE sqrt(mean |s* q_k - g_k|^2)
  (a public KITTI evaluation kit calls this its ``scale`` mode).
- **Sim(3) / SE(3)-aligned ATE** (:func:`aligned_ate`, :func:`umeyama_alignment`): the prediction's positions
  are mapped onto the ground truth's by the least-squares similarity (Sim(3): rotation, translation, scale) or
  rigid (SE(3)) transform of Umeyama (1991), then the RMSE of the position differences; what
  ``evo_ape --align --correct_scale`` (Sim(3)) and ``evo_ape --align`` (SE(3)) report for the translation part.
- **KITTI relative errors** (:func:`kitti_relative_errors`): the odometry devkit's t_err / r_err. First frames
  every ``step`` frames; for each segment length L (metres of ground-truth path), the first frame j whose path
  distance is >= dist(i) + L; error E = (P_i^-1 P_j)^-1 (G_i^-1 G_j); t_err = |translation(E)| / L,
  r_err = angle(E) / L; averaged over all (i, L). Predictions are first scaled by the full-trajectory LS
  scale (monocular predictions have no metric scale). Reported as percent and degrees per 100 m.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

KITTI_SEGMENT_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)


def as_homogeneous(poses: np.ndarray) -> np.ndarray:
    """(N, 3, 4) or (N, 4, 4) poses -> (N, 4, 4) float64; raises ValueError on other shapes or NaNs."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((3, 4), (4, 4)):
        raise ValueError(f"poses must be (N, 3, 4) or (N, 4, 4), got shape {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("poses contain non-finite values")
    result = np.tile(np.eye(4), (poses.shape[0], 1, 1))
    result[:, :3, :] = poses[:, :3, :]
    return result


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) [R | t] transforms, assuming R is a rotation: [R^T | -R^T t]."""
    transform = np.asarray(transform, dtype=np.float64)
    inverse = np.zeros_like(transform)
    rotation_t = np.swapaxes(transform[..., :3, :3], -1, -2)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -np.einsum("...ij,...j->...i", rotation_t, transform[..., :3, 3])
    inverse[..., 3, 3] = 1.0
    return inverse


def relative_positions(poses: np.ndarray, start: int, length: int) -> np.ndarray:
    """(length, 3) positions of frames start .. start+length-1 in camera ``start``: translation(G_s^-1 G_k)."""
    poses = as_homogeneous(poses)
    if start < 0 or length < 1 or start + length > poses.shape[0]:
        raise ValueError(f"window [{start}, {start + length}) outside a trajectory of {poses.shape[0]} poses")
    # Use the general inverse: predicted rotations need not be exactly orthonormal.
    reference = np.linalg.inv(poses[start])
    positions = np.einsum("ij,kjl->kil", reference, poses[start : start + length])[:, :3, 3]
    positions[0] = 0.0  # G_s^-1 G_s = I exactly; drop the ~1e-16 rounding residue
    return positions


STILL_THRESHOLD = 1e-20
"""A prediction with sum |q_k|^2 below this (positions within ~1e-10 units) counts as not moving: scale 0.
Without it, rounding noise of a frozen trajectory (~1e-16) would be blown up by the scale alignment."""


def least_squares_scale(gt_positions: np.ndarray, pred_positions: np.ndarray) -> float:
    """s* minimising sum |s q_k - g_k|^2: sum<g, q> / sum |q|^2 (0 for a prediction that does not move)."""
    gt_positions = np.asarray(gt_positions, dtype=np.float64)
    pred_positions = np.asarray(pred_positions, dtype=np.float64)
    denominator = float(np.sum(pred_positions**2))
    return float(np.sum(gt_positions * pred_positions)) / denominator if denominator > STILL_THRESHOLD else 0.0


def _check_positions(gt_positions: np.ndarray, pred_positions: np.ndarray):
    gt_positions = np.asarray(gt_positions, dtype=np.float64)
    pred_positions = np.asarray(pred_positions, dtype=np.float64)
    if gt_positions.ndim != 2 or gt_positions.shape[1] != 3 or gt_positions.shape != pred_positions.shape:
        raise ValueError(
            f"positions must be matching (n, 3) arrays, got {gt_positions.shape} and {pred_positions.shape}"
        )
    if gt_positions.shape[0] == 0:
        raise ValueError("no positions")
    return gt_positions, pred_positions


def snippet_ate(gt_positions: np.ndarray, pred_positions: np.ndarray) -> float:
    """ATE of one snippet: first-frame offset, one LS scale, sqrt(sum of squared errors) / n."""
    gt_positions, pred_positions = _check_positions(gt_positions, pred_positions)
    pred_positions = pred_positions + (gt_positions[0] - pred_positions[0])
    scale = least_squares_scale(gt_positions, pred_positions)
    return float(np.sqrt(np.sum((scale * pred_positions - gt_positions) ** 2)) / gt_positions.shape[0])


def consecutive_window_starts(frames: Sequence[int], length: int) -> np.ndarray:
    """Positions s such that ``frames[s : s + length]`` are consecutive frame numbers f, f+1, ..., f+length-1.

    ``frames`` must be strictly increasing (the ground-truth frame of every predicted pose). With every frame
    present this is 0 .. N - length; a gap removes the windows that would span it.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if frames.ndim != 1 or np.any(np.diff(frames) <= 0):
        raise ValueError("frame numbers must be a strictly increasing 1-D sequence")
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    count = frames.size - length + 1
    if count < 1:
        return np.zeros(0, dtype=np.int64)
    return np.nonzero(frames[length - 1 :] - frames[:count] == length - 1)[0]


def snippet_ates(
    gt_poses: np.ndarray, pred_poses: np.ndarray, snippet_length: int = 5, starts: Optional[Sequence[int]] = None
) -> np.ndarray:
    """ATE of every window of ``snippet_length`` consecutive poses (starts 0 .. N - snippet_length).

    ``starts`` restricts the windows to those first positions (see :func:`consecutive_window_starts` for
    predictions with gaps in their frame numbers); it must not be empty.
    """
    gt_poses, pred_poses = as_homogeneous(gt_poses), as_homogeneous(pred_poses)
    if gt_poses.shape != pred_poses.shape:
        raise ValueError(f"trajectories differ in length: {gt_poses.shape[0]} vs {pred_poses.shape[0]} poses")
    if snippet_length < 2:
        raise ValueError(f"snippet_length must be >= 2, got {snippet_length}")
    count = gt_poses.shape[0] - snippet_length + 1
    if starts is None:
        starts = range(max(count, 0))
    starts = [int(start) for start in starts]
    if count < 1 or not starts:
        raise ValueError(
            f"a trajectory of {gt_poses.shape[0]} poses has no {snippet_length}-frame snippet"
            + (" of consecutive frames" if count >= 1 else "")
        )
    return np.array(
        [
            snippet_ate(
                relative_positions(gt_poses, s, snippet_length), relative_positions(pred_poses, s, snippet_length)
            )
            for s in starts
        ]
    )


def trajectory_ate(gt_poses: np.ndarray, pred_poses: np.ndarray) -> Dict[str, float]:
    """Scale-aligned ATE over the whole trajectory (positions in the first camera): RMSE and the scale."""
    gt_poses, pred_poses = as_homogeneous(gt_poses), as_homogeneous(pred_poses)
    if gt_poses.shape != pred_poses.shape:
        raise ValueError(f"trajectories differ in length: {gt_poses.shape[0]} vs {pred_poses.shape[0]} poses")
    gt_positions = relative_positions(gt_poses, 0, gt_poses.shape[0])
    pred_positions = relative_positions(pred_poses, 0, pred_poses.shape[0])
    pred_positions = pred_positions + (gt_positions[0] - pred_positions[0])
    scale = least_squares_scale(gt_positions, pred_positions)
    errors = np.linalg.norm(scale * pred_positions - gt_positions, axis=1)
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "scale": scale}


def umeyama_alignment(
    source: np.ndarray, target: np.ndarray, with_scale: bool = True
) -> Tuple[np.ndarray, np.ndarray, float]:
    """Least-squares ``(R, t, c)`` with ``target_k ~ c R source_k + t`` (Umeyama 1991, eqs. 40-42).

    ``source``, ``target``: (n, 3) points. With mu, sigma^2 the means and the source's mean squared distance
    to its mean, Sigma = mean (target_k - mu_t)(source_k - mu_s)^T = U D V^T; S = diag(1, 1, -1) when
    det(U) det(V) < 0, else I; R = U S V^T, c = tr(D S) / sigma_s^2 (1 for a rigid fit), t = mu_t - c R mu_s.
    A source that does not move (sum of squared distances below ``STILL_THRESHOLD``) gets c = 0 in a Sim(3)
    fit: every point lands on mu_t. Collinear points (a straight trajectory) leave R free about their line;
    any of the minimisers returned gives the same aligned points.
    """
    target, source = _check_positions(target, source)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / source.shape[0]
    u, d, vt = np.linalg.svd(covariance)
    correction = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        correction[2] = -1.0
    rotation = u @ np.diag(correction) @ vt
    scale = 1.0
    if with_scale:
        spread = float(np.sum(source_centred**2))
        scale = float(np.sum(d * correction)) * source.shape[0] / spread if spread > STILL_THRESHOLD else 0.0
    translation = target_mean - scale * rotation @ source_mean
    return rotation, translation, scale


def aligned_ate(gt_poses: np.ndarray, pred_poses: np.ndarray, with_scale: bool = True) -> Dict[str, object]:
    """Sim(3)- (``with_scale``) or SE(3)-aligned ATE: RMSE of |c R q_k + t - g_k| over the camera positions.

    The positions are the poses' translations (any world frame: the fit absorbs it), as ``evo_ape --align
    [--correct_scale]`` uses them. Returns ``rmse`` (units of the ground truth), the fitted ``scale`` (1 for
    SE(3)), ``rotation`` (3x3) and ``translation`` (3,).
    """
    gt_poses, pred_poses = as_homogeneous(gt_poses), as_homogeneous(pred_poses)
    if gt_poses.shape != pred_poses.shape:
        raise ValueError(f"trajectories differ in length: {gt_poses.shape[0]} vs {pred_poses.shape[0]} poses")
    gt_positions, pred_positions = gt_poses[:, :3, 3], pred_poses[:, :3, 3]
    rotation, translation, scale = umeyama_alignment(pred_positions, gt_positions, with_scale)
    aligned = scale * pred_positions @ rotation.T + translation
    errors = np.linalg.norm(aligned - gt_positions, axis=1)
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "scale": scale,
        "rotation": rotation,
        "translation": translation,
    }


def path_distances(poses: np.ndarray) -> np.ndarray:
    """Cumulative travelled distance at every frame (0 at frame 0), from the camera positions."""
    positions = as_homogeneous(poses)[:, :3, 3]
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def rotation_angle(rotation: np.ndarray) -> float:
    """Angle (radians) of a rotation matrix: arccos(clip((trace - 1) / 2, -1, 1))."""
    rotation = np.asarray(rotation, dtype=np.float64)[:3, :3]
    return float(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)))


def kitti_relative_errors(
    gt_poses: np.ndarray,
    pred_poses: np.ndarray,
    segment_lengths: Sequence[float] = KITTI_SEGMENT_LENGTHS,
    step: int = 10,
    align_scale: bool = True,
) -> Dict[str, object]:
    """KITTI devkit t_err (percent) and r_err (degrees per 100 m); ``None`` values when no segment fits.

    Also returns ``num_segments``, the ``scale`` applied to the prediction and per-length results.
    """
    gt_poses, pred_poses = as_homogeneous(gt_poses), as_homogeneous(pred_poses)
    if gt_poses.shape != pred_poses.shape:
        raise ValueError(f"trajectories differ in length: {gt_poses.shape[0]} vs {pred_poses.shape[0]} poses")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    lengths = [float(length) for length in segment_lengths]
    if not lengths or min(lengths) <= 0:
        raise ValueError(f"segment lengths must be positive, got {segment_lengths}")
    scale = trajectory_ate(gt_poses, pred_poses)["scale"] if align_scale else 1.0
    pred_poses = pred_poses.copy()
    pred_poses[:, :3, 3] *= scale
    distances = path_distances(gt_poses)
    per_length = {length: [] for length in lengths}
    for first in range(0, gt_poses.shape[0], step):
        for length in lengths:
            beyond = np.nonzero(distances >= distances[first] + length)[0]
            if beyond.size == 0:
                continue
            last = int(beyond[0])
            gt_delta = np.linalg.inv(gt_poses[first]) @ gt_poses[last]
            pred_delta = np.linalg.inv(pred_poses[first]) @ pred_poses[last]
            error = np.linalg.inv(pred_delta) @ gt_delta
            per_length[length].append((np.linalg.norm(error[:3, 3]) / length, rotation_angle(error) / length))
    all_errors = [pair for pairs in per_length.values() for pair in pairs]

    def summary(pairs):
        if not pairs:
            return {"t_err_percent": None, "r_err_deg_per_100m": None, "num_segments": 0}
        values = np.array(pairs)
        return {
            "t_err_percent": float(100.0 * values[:, 0].mean()),
            "r_err_deg_per_100m": float(np.degrees(values[:, 1].mean()) * 100.0),
            "num_segments": int(values.shape[0]),
        }

    result = summary(all_errors)
    result["scale"] = scale
    result["per_length"] = {f"{length:g}": summary(pairs) for length, pairs in per_length.items()}
    return result


def constant_velocity_poses(num_frames: int) -> np.ndarray:
    """The constant-velocity baseline trajectory: identity rotation, camera k at (0, 0, k) (straight ahead).

    Scored with the same ATE as the model, its one free parameter (the speed) is set by ATE's least-squares
    scale alignment; it uses no other ground-truth information.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    poses[:, 2, 3] = np.arange(num_frames, dtype=np.float64)
    return poses


def summarize_snippets(ates: np.ndarray, snippet_length: int = 5) -> Dict[str, float]:
    """``ate<n>_mean`` and ``ate<n>_std`` (population std) of snippet ATEs, with their count."""
    ates = np.asarray(ates, dtype=np.float64)
    if ates.size == 0:
        raise ValueError("no snippets")
    return {
        f"ate{snippet_length}_mean": float(ates.mean()),
        f"ate{snippet_length}_std": float(ates.std()),
        "num_snippets": int(ates.size),
    }
