"""Odometry evaluation stage: ATE-5, full-trajectory ATE and KITTI t_err / r_err, with a constant-velocity baseline.

    python -m stages.eval_odometry --trajectory_dir=results/trajectories [--gt_poses_dir=.../poses]

Reads the output folder of ``stages.trajectory_inference`` (its ``manifest.json``); defaults come from the
``eval_odometry`` section of params.yaml. Writes (atomically):
- ``--metrics_file`` (default ``metrics/odometry.json``): ``model`` and ``constant_velocity`` blocks pooled over
  sequences (snippet ATE mean/std over all snippets, mean full-trajectory ATE, segment-weighted t_err/r_err),
  and the same per sequence;
- ``--plots_dir`` (default ``plots/odometry``): ``trajectory_{ground_truth,model,constant_velocity}.csv``
  (x-z positions in the first camera, predictions scaled by their least-squares scale) and ``ate_snippets.csv``.
Definitions: ``evaluation/odometry_metrics.py`` and ``docs/evaluation.md``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from evaluation import odometry_evaluation
from formats import atomic
from stages.common import parse_stage_args



def _extra_arguments(parser) -> None:
    parser.add_argument("--trajectory_dir", required=True, help="output folder of stages.trajectory_inference")
    parser.add_argument("--metrics_file", default="metrics/odometry.json")
    parser.add_argument("--plots_dir", default="plots/odometry")


def run(params: dict, trajectory_dir: Path, metrics_file: Path, plots_dir: Path) -> dict:
    snippet_length = int(params["snippet_length"])
    result = odometry_evaluation.evaluate_run(
        trajectory_dir, params.get("gt_poses_dir"), snippet_length,
        [float(length) for length in params["segment_lengths"]], int(params["segment_step"]))
    atomic.write_text(metrics_file, json.dumps(result["document"], indent=2) + "\n")
    for name, rows in result["trajectory_rows"].items():
        atomic.write_text(Path(plots_dir) / f"trajectory_{name}.csv", odometry_evaluation.trajectory_csv(rows))
    atomic.write_text(Path(plots_dir) / "ate_snippets.csv",
                      odometry_evaluation.snippet_csv(result["snippet_rows"], snippet_length))
    return result["document"]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    params, args, _ = parse_stage_args("eval_odometry", __doc__.splitlines()[0], argv, _extra_arguments)
    document = run(params, Path(args.trajectory_dir), Path(args.metrics_file), Path(args.plots_dir))
    n = document["snippet_length"]
    model, baseline = document["model"], document["constant_velocity"]
    print(f"eval_odometry: {len(document['sequences'])} sequences, ATE-{n} {model[f'ate{n}_mean']:.4f} "
          f"± {model[f'ate{n}_std']:.4f} (constant velocity {baseline[f'ate{n}_mean']:.4f}), full ATE "
          f"{model['ate_full_rmse']:.3f} -> {args.metrics_file}")
    return document


if __name__ == "__main__":
    main()
