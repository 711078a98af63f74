"""Odometry evaluation of a trajectory-inference output folder against ground truth, with a baseline.

Reads ``manifest.json`` written by ``stages.trajectory_inference``. For each sequence, the predicted poses
(``<name>_poses.txt``, N poses) are compared with the first N ground-truth poses (the release's triplet folders
start at frame 0 and may stop before the sequence's end). Ground truth is the manifest's ``gt_poses`` or, for
KITTI odometry names (``09``, ``09-image_2``), ``<gt_poses_dir>/09.txt``.

Every metric is also computed for the **constant-velocity baseline** (``odometry_metrics.constant_velocity_poses``:
no rotation, the same forward step every frame; its speed is the one free parameter and is set by the same
least-squares scale alignment ATE applies to the model, so it uses no other ground truth).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from evaluation import odometry_inference, odometry_metrics
from formats import kitti

TRAJECTORIES = ("model", "constant_velocity")


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
    raise FileNotFoundError(f"sequence {entry['name']}: no ground-truth poses (tried {[str(p) for p in tried]}); "
                            "set eval_odometry.gt_poses_dir for KITTI odometry test sets")


def score(gt_poses: np.ndarray, pred_poses: np.ndarray, snippet_length: int, segment_lengths: Sequence[float],
          segment_step: int) -> Dict:
    """All odometry metrics of one predicted trajectory; ``snippet_ates`` is the per-snippet array."""
    ates = odometry_metrics.snippet_ates(gt_poses, pred_poses, snippet_length)
    full = odometry_metrics.trajectory_ate(gt_poses, pred_poses)
    relative = odometry_metrics.kitti_relative_errors(gt_poses, pred_poses, segment_lengths, segment_step)
    metrics = odometry_metrics.summarize_snippets(ates, snippet_length)
    metrics.update({"ate_full_rmse": full["rmse"], "full_scale": full["scale"],
                    "t_err_percent": relative["t_err_percent"],
                    "r_err_deg_per_100m": relative["r_err_deg_per_100m"],
                    "num_segments": relative["num_segments"]})
    return {"metrics": metrics, "snippet_ates": ates, "scale": full["scale"]}


def _pool(blocks: List[Dict], all_ates: np.ndarray, snippet_length: int) -> Dict:
    pooled = odometry_metrics.summarize_snippets(all_ates, snippet_length)
    pooled["ate_full_rmse"] = float(np.mean([block["ate_full_rmse"] for block in blocks]))
    segments = sum(block["num_segments"] for block in blocks)
    for key in ("t_err_percent", "r_err_deg_per_100m"):
        pooled[key] = (float(sum(block[key] * block["num_segments"] for block in blocks if block["num_segments"]))
                       / segments) if segments else None
    pooled["num_segments"] = segments
    return pooled


def first_frame_positions(poses: np.ndarray) -> np.ndarray:
    """(N, 3) positions in the first camera's frame."""
    return odometry_metrics.relative_positions(poses, 0, odometry_metrics.as_homogeneous(poses).shape[0])


def evaluate_run(trajectory_dir: Path, gt_poses_dir: Optional[Path] = None, snippet_length: int = 5,
                 segment_lengths: Sequence[float] = odometry_metrics.KITTI_SEGMENT_LENGTHS,
                 segment_step: int = 10) -> Dict:
    """Metrics document and plot rows for every sequence of a trajectory-inference output folder."""
    trajectory_dir = Path(trajectory_dir)
    manifest_path = trajectory_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found; run stages.trajectory_inference first")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("sequences"):
        raise ValueError(f"{manifest_path}: no sequences")
    sequences, pooled_ates = {}, {name: [] for name in TRAJECTORIES}
    trajectory_rows = {name: [] for name in ("ground_truth",) + TRAJECTORIES}
    snippet_rows = []
    for entry in manifest["sequences"]:
        name = entry["name"]
        pred = kitti.read_poses(trajectory_dir / entry["poses"])
        gt_all = kitti.read_poses(resolve_ground_truth(entry, gt_poses_dir))
        if gt_all.shape[0] < pred.shape[0]:
            raise ValueError(f"sequence {name}: {pred.shape[0]} predicted poses but only {gt_all.shape[0]} "
                             "ground-truth poses")
        gt = gt_all[:pred.shape[0]]
        candidates = {"model": pred, "constant_velocity": odometry_metrics.constant_velocity_poses(pred.shape[0])}
        scored = {key: score(gt, poses, snippet_length, segment_lengths, segment_step)
                  for key, poses in candidates.items()}
        sequences[name] = {"num_poses": int(pred.shape[0]), "gt_poses_total": int(gt_all.shape[0])}
        sequences[name].update({key: value["metrics"] for key, value in scored.items()})
        for key in TRAJECTORIES:
            pooled_ates[key].append(scored[key]["snippet_ates"])
        gt_positions = first_frame_positions(gt)
        for frame, (x, _, z) in enumerate(gt_positions):
            trajectory_rows["ground_truth"].append((name, frame, x, z))
        for key, poses in candidates.items():
            positions = scored[key]["scale"] * first_frame_positions(poses)
            trajectory_rows[key].extend((name, frame, x, z) for frame, (x, _, z) in enumerate(positions))
        for start, (model_ate, baseline_ate) in enumerate(zip(scored["model"]["snippet_ates"],
                                                              scored["constant_velocity"]["snippet_ates"])):
            snippet_rows.append((name, start, model_ate, baseline_ate))
    document = {"snippet_length": snippet_length}
    for key in TRAJECTORIES:
        document[key] = _pool([sequences[name][key] for name in sequences], np.concatenate(pooled_ates[key]),
                              snippet_length)
    ate_key = f"ate{snippet_length}_mean"
    document[f"{ate_key}_over_constant_velocity"] = (
        document["model"][ate_key] / document["constant_velocity"][ate_key]
        if document["constant_velocity"][ate_key] > 0 else None)
    document["accumulation"] = manifest.get("accumulation")
    document["sequences"] = sequences
    return {"document": document, "trajectory_rows": trajectory_rows, "snippet_rows": snippet_rows}


def trajectory_csv(rows) -> str:
    """``sequence,frame,x,z`` (metres; predictions scaled by their full-trajectory least-squares scale)."""
    return "sequence,frame,x,z\n" + "".join(f"{name},{frame},{x:.6f},{z:.6f}\n" for name, frame, x, z in rows)


def snippet_csv(rows, snippet_length: int = 5) -> str:
    """Per-snippet ATE of the model and the constant-velocity baseline, by first frame."""
    header = f"sequence,start,ate{snippet_length}_model,ate{snippet_length}_constant_velocity\n"
    return header + "".join(f"{name},{start},{a:.6g},{b:.6g}\n" for name, start, a, b in rows)
