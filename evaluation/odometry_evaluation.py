"""Odometry evaluation of predicted trajectories against ground truth, with a constant-velocity baseline.

Two kinds of input, one scoring (:func:`evaluate`):

- a ``stages.trajectory_inference`` output folder (:func:`manifest_trajectories`): ``manifest.json`` lists the
  sequences; each prediction (``<name>_poses.txt``, N poses) is compared with the first N ground-truth poses
  (the release's triplet folders start at frame 0 and may stop before the sequence's end). Ground truth is the
  manifest's ``gt_poses`` or, for KITTI odometry names (``09``, ``09-image_2``), ``<gt_poses_dir>/09.txt``.
- prediction files of any origin (:func:`file_trajectories`), KITTI or TUM (rules in ``evaluation/trajectory.py``),
  matched to the ground truth (:func:`match_frames`):

  * KITTI with a frame-number column (13 values a line): each pose is compared with that ground-truth frame
    (a prediction starting at frame 2 with ground-truth frames 2, 3, ...);
  * TUM, when the ground truth has timestamps (a TUM ground-truth file, or ``gt_times``, e.g. KITTI's
    ``times.txt``): each pose is compared with the ground-truth pose nearest in time, which must lie within
    ``max_time_diff`` seconds, and no two poses may match the same one;
  * otherwise (KITTI with 12 values, TUM against ground truth without times) by line order: pose k with
    ground-truth pose k, and the counts must be equal (a length mismatch is an error, never a truncation).

Every metric is also computed for the **constant-velocity baseline** (``odometry_metrics.constant_velocity_poses``:
no rotation, the same forward step every frame; its speed is the one free parameter and is set by the same
alignment each ATE applies to the model, so it uses no other ground truth). With gaps in the matched frame
numbers the baseline is placed at the frame numbers (camera at (0, 0, f - f_0)), and ATE-n counts only windows of
n consecutive frame numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from evaluation import odometry_inference, odometry_metrics, trajectory
from formats.params import Config, param

TRAJECTORIES = ("model", "constant_velocity")
DEFAULT_MAX_TIME_DIFF = 0.01


@dataclass(frozen=True)
class OdometryEvalConfig(Config):
    """The odometry evaluation protocol: the ``eval_odometry:`` section of params.yaml (lengths in metres of
    path, times in seconds)."""

    snippet_length: int = param(5, help="poses per ATE-n snippet (SfMLearner / Monodepth2: 5)", minimum=2)
    segment_lengths: Tuple[float, ...] = param(
        (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0),
        help="KITTI t_err / r_err segment lengths, metres of path",
    )
    segment_step: int = param(10, help="first frames of the relative-error segments, every n frames", minimum=1)
    gt_poses_dir: Optional[str] = param(
        None,
        help="KITTI odometry poses/ folder for release triplet folders (09-image_2 -> 09.txt) or for a "
        "--prediction folder (results/09.txt -> <gt_poses_dir>/09.txt)",
    )
    gt_poses: Optional[str] = param(
        None, help="ground-truth trajectory file (KITTI 3x4 rows or TUM) for one --prediction file"
    )
    gt_times: Optional[str] = param(
        None, help="seconds per ground-truth pose (KITTI times.txt): match TUM predictions by time"
    )
    format: str = param(
        "auto",
        help="--prediction files: auto (12/13 values a line = KITTI, 8 = TUM), kitti or tum",
        choices=trajectory.TRAJECTORY_FORMATS,
    )
    max_time_diff: float = param(
        DEFAULT_MAX_TIME_DIFF,
        help="seconds: a TUM pose matches the nearest ground-truth time within this (evo's default)",
        above=0.0,
    )
    rotation_tolerance: float = param(
        1e-3, help="reject a pose whose max|R R^T - I| (TUM: | |q| - 1 |) exceeds this", above=0.0
    )

    def check(self) -> Iterable[str]:
        if not self.segment_lengths or not all(length > 0 for length in self.segment_lengths):
            yield f"segment_lengths: must be positive lengths, got {list(self.segment_lengths)}"


"""Seconds: the largest prediction-to-ground-truth timestamp difference accepted (``evo``'s ``t_max_diff``)."""


@dataclass
class MatchedTrajectory:
    """One predicted trajectory with the ground-truth poses it is compared with.

    ``frames`` are the ground-truth frame numbers (0-based pose indices in the ground-truth file) of the
    predicted poses, strictly increasing; ``info`` goes into the metrics file's per-sequence block.
    """

    name: str
    prediction: np.ndarray  # (N, 4, 4)
    ground_truth: np.ndarray  # (N, 4, 4): the matched ground-truth poses
    frames: np.ndarray  # (N,) int64
    gt_total: int
    info: Dict = field(default_factory=dict)


def resolve_ground_truth(entry: Dict, gt_poses_dir: Optional[Path]) -> Path:
    """Ground-truth pose file of a manifest entry (raises FileNotFoundError with both places tried)."""
    tried = []
    if entry.get("gt_poses"):
        tried.append(Path(entry["gt_poses"]))
    if gt_poses_dir:
        match = odometry_inference.TRIPLET_FOLDER.match(entry["name"])
        tried.append(Path(gt_poses_dir) / f"{match['sequence'] if match else entry['name']}.txt")
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"sequence {entry['name']}: no ground-truth poses (tried {[str(p) for p in tried]}); "
        "set eval_odometry.gt_poses_dir for KITTI odometry test sets"
    )


def read_ground_truth(path: Path, rotation_tolerance: Optional[float]) -> trajectory.TrajectoryFile:
    """A ground-truth trajectory: KITTI (12 values a line) or TUM; frame numbers are not allowed in it."""
    ground_truth = trajectory.read_trajectory(path, "auto", rotation_tolerance)
    if ground_truth.frames is not None:
        raise trajectory.TrajectoryFileError(
            f"{path}:{ground_truth.line_numbers[0]}: ground truth with a frame-number column (13 values); "
            "ground-truth pose k is frame k, give 12 values a line"
        )
    return ground_truth


def match_frames(
    prediction: trajectory.TrajectoryFile,
    ground_truth: trajectory.TrajectoryFile,
    gt_times: Optional[np.ndarray] = None,
    max_time_diff: float = DEFAULT_MAX_TIME_DIFF,
):
    """Ground-truth frame numbers of the predicted poses and how they were found (rules: module docstring).

    ``gt_times`` (seconds, one per ground-truth pose) stands in for a KITTI ground truth's missing timestamps.
    Returns ``(frames (N,) int64, matching)`` with ``matching`` one of ``frame_number``, ``timestamp``,
    ``line_order`` and a dict of details; raises :class:`trajectory.TrajectoryFileError` naming file and line.
    """
    total = ground_truth.num_poses
    source = prediction.source
    if gt_times is not None and ground_truth.timestamps is not None:
        raise ValueError(f"{ground_truth.source} has its own timestamps (TUM); do not also give gt_times")
    times = ground_truth.timestamps if ground_truth.timestamps is not None else gt_times
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != (total,):
            raise ValueError(f"{ground_truth.source}: {total} poses but {times.size} ground-truth timestamps")
        if np.any(np.diff(times) <= 0):
            raise ValueError(f"{ground_truth.source}: ground-truth timestamps do not increase strictly")
    if prediction.frames is not None:
        frames = prediction.frames
        beyond = np.nonzero(frames >= total)[0]
        if beyond.size:
            line = prediction.line_numbers[beyond[0]]
            raise trajectory.TrajectoryFileError(
                f"{source}:{line}: frame number {frames[beyond[0]]} is beyond the ground truth's {total} poses "
                f"(frames 0..{total - 1} of {ground_truth.source})"
            )
        return frames.astype(np.int64), "frame_number", {}
    if prediction.timestamps is not None and times is not None:
        if not max_time_diff > 0:
            raise ValueError(f"max_time_diff must be positive, got {max_time_diff}")
        stamps = prediction.timestamps
        right = np.clip(np.searchsorted(times, stamps), 0, total - 1)
        left = np.clip(right - 1, 0, total - 1)
        nearest = np.where(np.abs(times[left] - stamps) <= np.abs(times[right] - stamps), left, right)
        differences = np.abs(times[nearest] - stamps)
        unmatched = np.nonzero(differences > max_time_diff)[0]
        if unmatched.size:
            k = unmatched[0]
            raise trajectory.TrajectoryFileError(
                f"{source}:{prediction.line_numbers[k]}: timestamp {float(stamps[k])!r} has no ground-truth pose "
                f"within {max_time_diff:g} s (nearest: frame {nearest[k]} at {float(times[nearest[k]])!r}); "
                f"{unmatched.size} of {stamps.size} poses unmatched"
            )
        repeated = np.nonzero(np.diff(nearest) == 0)[0]
        if repeated.size:
            k = repeated[0]
            raise trajectory.TrajectoryFileError(
                f"{source}:{prediction.line_numbers[k + 1]}: matches ground-truth frame {nearest[k]} (time "
                f"{float(times[nearest[k]])!r}) like line {prediction.line_numbers[k]}; lower max_time_diff"
            )
        return (
            nearest.astype(np.int64),
            "timestamp",
            {"max_time_diff_s": float(max_time_diff), "largest_time_diff_s": float(differences.max())},
        )
    if prediction.num_poses != total:
        how = (
            "number the poses (13 values a line, frame number first)"
            if prediction.format == "kitti"
            else "give the ground truth's timestamps (a TUM ground truth, or gt_times)"
        )
        raise trajectory.TrajectoryFileError(
            f"{source}: {prediction.num_poses} poses but the ground truth {ground_truth.source} has {total}; "
            f"to compare part of a sequence, {how}"
        )
    return np.arange(total, dtype=np.int64), "line_order", {}


def read_times(path: Path) -> np.ndarray:
    """A timestamp file (KITTI ``times.txt``): one number of seconds per line; errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: timestamp file not found")
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        try:
            value = float(tokens[0]) if len(tokens) == 1 else None
        except ValueError:
            value = None
        if value is None or not np.isfinite(value):
            raise trajectory.TrajectoryFileError(
                f"{path}:{number}: expected one finite number of seconds, got {line.strip()[:40]!r}"
            )
        values.append(value)
    return np.array(values, dtype=np.float64)


def file_trajectories(
    prediction: Path,
    gt_poses: Optional[Path] = None,
    gt_poses_dir: Optional[Path] = None,
    gt_times: Optional[Path] = None,
    fmt: str = "auto",
    max_time_diff: float = DEFAULT_MAX_TIME_DIFF,
    rotation_tolerance: Optional[float] = trajectory.DEFAULT_ROTATION_TOLERANCE,
) -> List[MatchedTrajectory]:
    """Prediction files matched to their ground truth.

    ``prediction`` is one file (ground truth ``gt_poses``, optional ``gt_times``) or a folder of ``*.txt``
    files, each compared with ``<gt_poses_dir>/<same name>`` (KITTI's ``results/09.txt`` vs ``poses/09.txt``).
    """
    prediction = Path(prediction)
    if prediction.is_dir():
        if gt_poses:
            raise ValueError(
                f"{prediction} is a folder: gt_poses names one file; set gt_poses_dir (a folder with "
                "one ground-truth file of the same name per prediction) instead"
            )
        if gt_times:
            raise ValueError("gt_times applies to a single prediction file, not a folder")
        if not gt_poses_dir:
            raise ValueError(
                f"{prediction} is a folder of predictions: give --gt_poses_dir (ground truth "
                "<gt_poses_dir>/<same name>)"
            )
        files = sorted(path for path in prediction.glob("*.txt") if not path.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"{prediction}: no *.txt prediction files (and no manifest.json)")
        pairs = []
        for path in files:
            gt_path = Path(gt_poses_dir) / path.name
            if not gt_path.is_file():
                raise FileNotFoundError(f"{path}: no ground truth {gt_path}")
            pairs.append((path, gt_path))
    else:
        if not prediction.is_file():
            raise FileNotFoundError(f"{prediction}: prediction file not found")
        if not gt_poses:
            raise ValueError(f"{prediction}: give its ground-truth trajectory file (--gt_poses) to evaluate it")
        pairs = [(prediction, Path(gt_poses))]
    times = read_times(gt_times) if gt_times else None
    matched = []
    for path, gt_path in pairs:
        predicted = trajectory.read_trajectory(path, fmt, rotation_tolerance)
        ground_truth = read_ground_truth(gt_path, rotation_tolerance)
        frames, matching, details = match_frames(predicted, ground_truth, times, max_time_diff)
        info = {
            "prediction": str(path),
            "format": predicted.format,
            "gt_poses": str(gt_path),
            "matching": matching,
            "first_gt_frame": int(frames[0]),
            "last_gt_frame": int(frames[-1]),
        }
        info.update(details)
        matched.append(
            MatchedTrajectory(
                path.stem, predicted.poses, ground_truth.poses[frames], frames, ground_truth.num_poses, info
            )
        )
    return matched


def manifest_trajectories(
    trajectory_dir: Path,
    gt_poses_dir: Optional[Path] = None,
    rotation_tolerance: Optional[float] = trajectory.DEFAULT_ROTATION_TOLERANCE,
) -> List[MatchedTrajectory]:
    """The sequences of a trajectory-inference output folder, each with the first N ground-truth poses.

    The predictions are read without the orthonormality check (``orthonormalize: false`` is a valid option of
    that stage); the ground truth is checked with ``rotation_tolerance``.
    """
    trajectory_dir = Path(trajectory_dir)
    manifest_path = trajectory_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found; run stages.trajectory_inference first")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("sequences"):
        raise ValueError(f"{manifest_path}: no sequences")
    matched = []
    for entry in manifest["sequences"]:
        name = entry["name"]
        pred = trajectory.read_trajectory(trajectory_dir / entry["poses"], "kitti", None).poses
        gt_all = read_ground_truth(resolve_ground_truth(entry, gt_poses_dir), rotation_tolerance).poses
        if gt_all.shape[0] < pred.shape[0]:
            raise ValueError(
                f"sequence {name}: {pred.shape[0]} predicted poses but only {gt_all.shape[0]} ground-truth poses"
            )
        matched.append(
            MatchedTrajectory(
                name,
                pred,
                gt_all[: pred.shape[0]],
                np.arange(pred.shape[0]),
                gt_all.shape[0],
                {"matching": "first_poses"},
            )
        )
    return matched


def score(
    gt_poses: np.ndarray,
    pred_poses: np.ndarray,
    snippet_length: int,
    segment_lengths: Sequence[float],
    segment_step: int,
    starts: Optional[Sequence[int]] = None,
) -> Dict:
    """All odometry metrics of one predicted trajectory; ``snippet_ates`` is the per-snippet array.

    ``starts``: the first positions of the ATE-n windows (default: every window).
    """
    ates = odometry_metrics.snippet_ates(gt_poses, pred_poses, snippet_length, starts)
    full = odometry_metrics.trajectory_ate(gt_poses, pred_poses)
    sim3 = odometry_metrics.aligned_ate(gt_poses, pred_poses, with_scale=True)
    se3 = odometry_metrics.aligned_ate(gt_poses, pred_poses, with_scale=False)
    relative = odometry_metrics.kitti_relative_errors(gt_poses, pred_poses, segment_lengths, segment_step)
    metrics = odometry_metrics.summarize_snippets(ates, snippet_length)
    metrics.update(
        {
            "ate_full_rmse": full["rmse"],
            "full_scale": full["scale"],
            "ate_sim3_rmse": sim3["rmse"],
            "sim3_scale": sim3["scale"],
            "ate_se3_rmse": se3["rmse"],
            "t_err_percent": relative["t_err_percent"],
            "r_err_deg_per_100m": relative["r_err_deg_per_100m"],
            "num_segments": relative["num_segments"],
        }
    )
    return {"metrics": metrics, "snippet_ates": ates, "scale": full["scale"]}


def _pool(blocks: List[Dict], all_ates: np.ndarray, snippet_length: int) -> Dict:
    pooled = odometry_metrics.summarize_snippets(all_ates, snippet_length)
    for key in ("ate_full_rmse", "ate_sim3_rmse", "ate_se3_rmse"):
        pooled[key] = float(np.mean([block[key] for block in blocks]))
    segments = sum(block["num_segments"] for block in blocks)
    for key in ("t_err_percent", "r_err_deg_per_100m"):
        pooled[key] = (
            (float(sum(block[key] * block["num_segments"] for block in blocks if block["num_segments"])) / segments)
            if segments
            else None
        )
    pooled["num_segments"] = segments
    return pooled


def first_frame_positions(poses: np.ndarray) -> np.ndarray:
    """(N, 3) positions in the first camera's frame."""
    return odometry_metrics.relative_positions(poses, 0, odometry_metrics.as_homogeneous(poses).shape[0])


def constant_velocity_at(frames: np.ndarray) -> np.ndarray:
    """The constant-velocity baseline at the given frame numbers: camera at (0, 0, f - f_0), no rotation."""
    frames = np.asarray(frames, dtype=np.int64)
    return odometry_metrics.constant_velocity_poses(int(frames[-1] - frames[0]) + 1)[frames - frames[0]]


def evaluate(
    trajectories: Sequence[MatchedTrajectory],
    snippet_length: int = 5,
    segment_lengths: Sequence[float] = odometry_metrics.KITTI_SEGMENT_LENGTHS,
    segment_step: int = 10,
) -> Dict:
    """Metrics document and plot rows for matched trajectories (model and constant-velocity baseline)."""
    if not trajectories:
        raise ValueError("no trajectories to evaluate")
    sequences, pooled_ates = {}, {name: [] for name in TRAJECTORIES}
    trajectory_rows = {name: [] for name in ("ground_truth",) + TRAJECTORIES}
    snippet_rows = []
    for item in trajectories:
        name = item.name
        if name in sequences:
            raise ValueError(f"two trajectories named {name!r}")
        starts = odometry_metrics.consecutive_window_starts(item.frames, snippet_length)
        if starts.size == 0:
            raise ValueError(
                f"sequence {name}: no {snippet_length} consecutive frames among its "
                f"{item.frames.size} matched poses, so no ATE-{snippet_length} snippet"
            )
        candidates = {"model": item.prediction, "constant_velocity": constant_velocity_at(item.frames)}
        scored = {
            key: score(item.ground_truth, poses, snippet_length, segment_lengths, segment_step, starts)
            for key, poses in candidates.items()
        }
        sequences[name] = {"num_poses": int(item.prediction.shape[0]), "gt_poses_total": int(item.gt_total)}
        sequences[name].update(item.info)
        sequences[name].update({key: value["metrics"] for key, value in scored.items()})
        for key in TRAJECTORIES:
            pooled_ates[key].append(scored[key]["snippet_ates"])
        for frame, (x, _, z) in zip(item.frames, first_frame_positions(item.ground_truth)):
            trajectory_rows["ground_truth"].append((name, int(frame), x, z))
        for key, poses in candidates.items():
            positions = scored[key]["scale"] * first_frame_positions(poses)
            trajectory_rows[key].extend((name, int(frame), x, z) for frame, (x, _, z) in zip(item.frames, positions))
        for start, model_ate, baseline_ate in zip(
            starts, scored["model"]["snippet_ates"], scored["constant_velocity"]["snippet_ates"]
        ):
            snippet_rows.append((name, int(item.frames[start]), model_ate, baseline_ate))
    document = {"snippet_length": snippet_length}
    for key in TRAJECTORIES:
        document[key] = _pool(
            [sequences[name][key] for name in sequences], np.concatenate(pooled_ates[key]), snippet_length
        )
    ate_key = f"ate{snippet_length}_mean"
    document[f"{ate_key}_over_constant_velocity"] = (
        document["model"][ate_key] / document["constant_velocity"][ate_key]
        if document["constant_velocity"][ate_key] > 0
        else None
    )
    document["sequences"] = sequences
    return {"document": document, "trajectory_rows": trajectory_rows, "snippet_rows": snippet_rows}


def evaluate_run(
    trajectory_dir: Path,
    gt_poses_dir: Optional[Path] = None,
    snippet_length: int = 5,
    segment_lengths: Sequence[float] = odometry_metrics.KITTI_SEGMENT_LENGTHS,
    segment_step: int = 10,
    rotation_tolerance: Optional[float] = trajectory.DEFAULT_ROTATION_TOLERANCE,
) -> Dict:
    """:func:`evaluate` of every sequence of a trajectory-inference output folder (records its accumulation)."""
    result = evaluate(
        manifest_trajectories(trajectory_dir, gt_poses_dir, rotation_tolerance),
        snippet_length,
        segment_lengths,
        segment_step,
    )
    manifest = json.loads((Path(trajectory_dir) / "manifest.json").read_text())
    sequences = result["document"].pop("sequences")
    result["document"]["accumulation"] = manifest.get("accumulation")
    result["document"]["sequences"] = sequences
    return result


def trajectory_csv(rows) -> str:
    """``sequence,frame,x,z`` (metres; predictions scaled by their full-trajectory least-squares scale)."""
    return "sequence,frame,x,z\n" + "".join(f"{name},{frame},{x:.6f},{z:.6f}\n" for name, frame, x, z in rows)


def snippet_csv(rows, snippet_length: int = 5) -> str:
    """Per-snippet ATE of the model and the constant-velocity baseline, by first (ground-truth) frame."""
    header = f"sequence,start,ate{snippet_length}_model,ate{snippet_length}_constant_velocity\n"
    return header + "".join(f"{name},{start},{a:.6g},{b:.6g}\n" for name, start, a, b in rows)
