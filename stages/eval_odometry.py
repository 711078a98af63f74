"""Odometry evaluation stage: ATE-5, full-trajectory and Sim(3)/SE(3)-aligned ATE, KITTI t_err / r_err.

    python -m stages.eval_odometry --trajectory_dir=results/trajectories [--gt_poses_dir=.../poses]
    python -m stages.eval_odometry --prediction=09.txt --gt_poses=poses/09.txt [--format=kitti|tum|auto]
    python -m stages.eval_odometry --prediction=09_tum.txt --gt_poses=poses/09.txt --gt_times=sequences/09/times.txt
    python -m stages.eval_odometry --prediction=results/ --gt_poses_dir=poses/     # results/09.txt vs poses/09.txt

Input: the output folder of ``stages.trajectory_inference`` (``--trajectory_dir``, or ``--prediction`` naming a
folder with a ``manifest.json``), or prediction files of any origin, KITTI (12 values a line, or 13 with a
leading ground-truth frame number) or TUM (``time tx ty tz qx qy qz qw``); matching rules in
``evaluation/odometry_evaluation.py``. Every metric is computed for the model and a constant-velocity baseline.
Defaults come from the ``eval_odometry`` section of params.yaml (``odometry_evaluation.OdometryEvalConfig``).
Writes (atomically):
- ``--metrics_file`` (default ``metrics/odometry.json``): ``model`` and ``constant_velocity`` blocks pooled over
  sequences (snippet ATE mean/std over all snippets, mean full-trajectory, Sim(3) and SE(3) ATE,
  segment-weighted t_err/r_err), and the same per sequence;
- ``--plots_dir`` (default ``plots/odometry``): ``trajectory_{ground_truth,model,constant_velocity}.csv``
  (x-z positions in the first camera, predictions scaled by their least-squares scale) and ``ate_snippets.csv``.
A malformed file (column count, a non-number, NaN, a rotation that is not orthonormal, a frame number beyond the
ground truth, a length mismatch) ends the stage with exit code 2 and one line naming the file and line.
Definitions: ``evaluation/odometry_metrics.py`` and ``docs/evaluation.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from evaluation import headline, odometry_evaluation
from evaluation.odometry_evaluation import OdometryEvalConfig
from formats import atomic
from stages.common import StageError, parse_stage_args, run_stage, write_metrics


def _extra_arguments(parser) -> None:
    parser.add_argument(
        "--trajectory_dir",
        default=None,
        help="output folder of stages.trajectory_inference "
        "(its manifest.json lists the sequences and their ground truth)",
    )
    parser.add_argument(
        "--prediction",
        default=None,
        help="a KITTI or TUM prediction file, a folder of them "
        "(ground truth from gt_poses_dir), or a trajectory_inference output folder",
    )
    parser.add_argument("--metrics_file", default="metrics/odometry.json", help="metrics JSON written here")
    parser.add_argument("--plots_dir", default="plots/odometry", help="plot CSV files written here")


def run(
    config: OdometryEvalConfig,
    trajectory_dir: Optional[Path],
    metrics_file: Path,
    plots_dir: Path,
    prediction: Optional[Path] = None,
) -> dict:
    """Evaluate a manifest folder (``trajectory_dir``) or prediction file(s) and write metrics and plot data."""
    snippet_length, segment_lengths = config.snippet_length, list(config.segment_lengths)
    if (trajectory_dir is None) == (prediction is None):
        raise StageError(
            "give exactly one of --trajectory_dir (a trajectory_inference output folder) and "
            "--prediction (a prediction file or folder)"
        )
    if prediction is not None and Path(prediction).is_dir() and (Path(prediction) / "manifest.json").is_file():
        trajectory_dir, prediction = Path(prediction), None
    if trajectory_dir is not None:
        for key in ("gt_poses", "gt_times"):
            if getattr(config, key):
                raise StageError(
                    f"eval_odometry.{key} applies to --prediction files; a trajectory_inference "
                    "folder names its ground truth in manifest.json (or use gt_poses_dir)"
                )
        result = odometry_evaluation.evaluate_run(
            trajectory_dir,
            config.gt_poses_dir,
            snippet_length,
            segment_lengths,
            config.segment_step,
            config.rotation_tolerance,
        )
    else:
        matched = odometry_evaluation.file_trajectories(
            Path(prediction),
            config.gt_poses,
            config.gt_poses_dir,
            config.gt_times,
            config.format,
            config.max_time_diff,
            config.rotation_tolerance,
        )
        result = odometry_evaluation.evaluate(matched, snippet_length, segment_lengths, config.segment_step)
    write_metrics(metrics_file, headline.odometry(result["document"]), result["document"])
    for name, rows in result["trajectory_rows"].items():
        atomic.write_text(Path(plots_dir) / f"trajectory_{name}.csv", odometry_evaluation.trajectory_csv(rows))
    atomic.write_text(
        Path(plots_dir) / "ate_snippets.csv", odometry_evaluation.snippet_csv(result["snippet_rows"], snippet_length)
    )
    return result["document"]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    params, args, _ = parse_stage_args(
        "eval_odometry", __doc__.splitlines()[0], argv, _extra_arguments, configs=(OdometryEvalConfig,)
    )
    document = run(
        OdometryEvalConfig.from_mapping(params, section="eval_odometry"),
        Path(args.trajectory_dir) if args.trajectory_dir else None,
        Path(args.metrics_file),
        Path(args.plots_dir),
        Path(args.prediction) if args.prediction else None,
    )
    n = document["snippet_length"]
    model, baseline = document["model"], document["constant_velocity"]
    print(
        f"eval_odometry: {len(document['sequences'])} sequences, ATE-{n} {model[f'ate{n}_mean']:.4f} "
        f"± {model[f'ate{n}_std']:.4f} (constant velocity {baseline[f'ate{n}_mean']:.4f}), full ATE "
        f"{model['ate_full_rmse']:.3f}, Sim(3) ATE {model['ate_sim3_rmse']:.3f}, SE(3) ATE "
        f"{model['ate_se3_rmse']:.3f} -> {args.metrics_file}"
    )
    return document


if __name__ == "__main__":
    sys.exit(run_stage(main))
