"""Trajectory inference: poses of every test sequence from a checkpoint (the release's trajectory_inference.py).

    python -m stages.trajectory_inference --checkpoint_path=CKPT --odometry_test_set_dir=DIR --output_dir=OUT

``DIR`` may hold the release's triplet folders (``09-image_2``, ``10-image_2``), KITTI odometry sequences
(``sequences/NN/image_2``), KITTI raw drives (``<drive>/image_02/data``, e.g. the synthetic test world) or any
folder of ordered images (rules in ``evaluation/odometry_inference.py``). Per sequence ``<name>`` it writes:

- ``odometry_<name>.txt``: the release's format, ``x y z`` per pose, first line ``0.0 0.0 0.0``;
- ``<name>_poses.txt``: full camera-to-first-frame poses, KITTI 3x4 rows;
- ``<name>_tum.txt``: the same as TUM ``time tx ty tz qx qy qz qw`` (time: the sequence's timestamps in
  seconds when found, else the pose index);
- ``<name>_intrinsics.json``: where the intrinsics come from (``source``) and K in pixels of the model's input
  (``image_size``) and of the source frames (``K_source``). ``"source": "learned"``: the intrinsics head's
  median over the sequence's pairs (and ``K_mean``, ``K_std``, ``per_pair``), with the true K (``K_true``) and
  errors when the sequence has a calibration. ``"source": "records"``: the checkpoint was trained with
  ``learn_intrinsics: false``, its head is untrained and nothing of it is written; ``K`` is the sequence's
  calibration (null without one);
and ``manifest.json`` listing the sequences, their ground truth and ``intrinsics_source``, which
``stages.eval_odometry`` reads. With ``--intrinsics_metrics_file`` (the DVC chain: ``metrics/intrinsics.json``)
it also writes learned vs true fx, fy, cx, cy per sequence and their summary (``evaluation/intrinsics_evaluation.py``).
Translations are in the model's (arbitrary) scale. Options come from the ``trajectory_inference`` section of
params.yaml only (``odometry_inference.TrajectoryInferenceConfig``: ``accumulation``, ``orthonormalize``,
``flip_augment``, ``batch_size``, ``input_format``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from evaluation import headline, intrinsics_evaluation, odometry_inference, trajectory
from evaluation.odometry_inference import TrajectoryInferenceConfig
from formats import atomic, kitti
from stages import common


def _extra_arguments(parser) -> None:
    parser.add_argument("--checkpoint_path", default=None, help="checkpoint prefix or directory (latest)")
    parser.add_argument(
        "--odometry_test_set_dir",
        required=True,
        help="folder searched for sequences (frames, KITTI layouts, *-image_2 triplet folders)",
    )
    parser.add_argument("--output_dir", required=True, help="folder for the poses, intrinsics and manifest.json")
    parser.add_argument(
        "--intrinsics_metrics_file",
        default=None,
        help="also write learned vs true intrinsics per sequence and their summary to this JSON "
        "(e.g. metrics/intrinsics.json); not written when omitted",
    )
    parser.add_argument(
        "--img_height",
        type=int,
        default=None,
        help="accepted for the release's CLI; must match the checkpoint's image size if given",
    )
    parser.add_argument("--img_width", type=int, default=None, help="as --img_height")


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[TrajectoryInferenceConfig, argparse.Namespace]:
    """(the ``trajectory_inference`` section after flags, the full namespace). Reads only its own section."""
    params, args, _ = common.parse_stage_args(
        "trajectory_inference", __doc__.splitlines()[0], argv, _extra_arguments, configs=(TrajectoryInferenceConfig,)
    )
    return TrajectoryInferenceConfig.from_mapping(params, section="trajectory_inference"), args


def load_predictor(checkpoint_path: Optional[str]):
    """The real model (TensorFlow is imported only here)."""
    if not checkpoint_path:
        raise common.StageError("--checkpoint_path is required")
    from model.inference import InferenceModel

    return InferenceModel.from_checkpoint(checkpoint_path)


def predictor_intrinsics_source(predictor) -> str:
    """``predictor.intrinsics_source`` ("learned" or "given"); a predictor that does not declare it is treated as
    untrained ("given"), so an unknown head's output is never reported as a result."""
    return intrinsics_evaluation.check_source(getattr(predictor, "intrinsics_source", "given"))


def intrinsics_record(sequence, result: dict, source: str, size_hw) -> dict:
    """``<name>_intrinsics.json`` of one inferred sequence (see the module docstring)."""
    true_frames = odometry_inference.read_calibration(sequence)
    true_model = (
        None
        if true_frames is None
        else intrinsics_evaluation.true_intrinsics_in_model_frame(true_frames, result["frame_size"], size_hw)
    )
    record = intrinsics_evaluation.sequence_record(
        result["pair_intrinsics"],
        source,
        size_hw,
        true_model,
        str(sequence.calibration) if sequence.calibration is not None else None,
    )
    record["source_image_size"] = list(result["frame_size"])
    record["K_source"] = (
        result["intrinsics"]["K_source"]
        if source == "learned"
        else None
        if true_frames is None
        else true_frames.tolist()
    )
    record["num_pairs"] = result["intrinsics"]["num_pairs"]
    return record


def run(
    test_set_dir: Path,
    output_dir: Path,
    predictor,
    options: TrajectoryInferenceConfig,
    intrinsics_metrics_file: Optional[Path] = None,
) -> dict:
    """Infer and write every sequence below ``test_set_dir`` (and the intrinsics report when a file is given);
    returns the manifest."""
    sequences = odometry_inference.find_sequences(test_set_dir, options.input_format)
    source = predictor_intrinsics_source(predictor)
    size_hw = tuple(int(v) for v in predictor.image_size)
    output_dir = Path(output_dir)
    entries, records = [], {}
    for sequence in sequences:
        result = odometry_inference.infer_sequence(
            sequence,
            predictor,
            options.batch_size,
            options.accumulation,
            options.orthonormalize,
            options.flip_augment,
        )
        poses = result["poses"]
        times = result["timestamps"]
        if times is None:
            times = np.arange(poses.shape[0], dtype=np.float64)
        atomic.write_text(output_dir / f"odometry_{sequence.name}.txt", trajectory.format_xyz(poses))
        kitti.write_poses(output_dir / f"{sequence.name}_poses.txt", poses)
        atomic.write_text(output_dir / f"{sequence.name}_tum.txt", trajectory.format_tum(times, poses))
        records[sequence.name] = intrinsics_record(sequence, result, source, size_hw)
        atomic.write_text(
            output_dir / f"{sequence.name}_intrinsics.json", json.dumps(records[sequence.name], indent=2) + "\n"
        )
        entries.append(
            {
                "name": sequence.name,
                "kind": sequence.kind,
                "num_poses": int(poses.shape[0]),
                "first_image": str(sequence.files[0]),
                "last_image": str(sequence.files[-1]),
                "gt_poses": str(sequence.gt_poses) if sequence.gt_poses else None,
                "poses": f"{sequence.name}_poses.txt",
                "tum": f"{sequence.name}_tum.txt",
                "xyz": f"odometry_{sequence.name}.txt",
                "intrinsics": f"{sequence.name}_intrinsics.json",
            }
        )
    manifest = {
        "accumulation": options.accumulation,
        "orthonormalize": options.orthonormalize,
        "flip_augment": options.flip_augment,
        "image_size": list(predictor.image_size),
        "intrinsics_source": source,
        "sequences": entries,
    }
    atomic.write_text(output_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    if intrinsics_metrics_file is not None:
        report = intrinsics_evaluation.report(records, source)
        common.write_metrics(intrinsics_metrics_file, headline.intrinsics(report), report)
    return manifest


def main(argv: Optional[Sequence[str]] = None, predictor=None) -> dict:
    options, args = parse_args(argv)
    if predictor is None:
        predictor = load_predictor(args.checkpoint_path)
    for flag, value, index in (("--img_height", args.img_height, 0), ("--img_width", args.img_width, 1)):
        if value is not None and value != predictor.image_size[index]:
            raise common.StageError(f"{flag}={value} but the checkpoint works at {tuple(predictor.image_size)} (H, W)")
    manifest = run(
        Path(args.odometry_test_set_dir),
        Path(args.output_dir),
        predictor,
        options,
        Path(args.intrinsics_metrics_file) if args.intrinsics_metrics_file else None,
    )
    for entry in manifest["sequences"]:
        print(f"trajectory_inference: {entry['name']}: {entry['num_poses']} poses -> {args.output_dir}")
    if manifest["intrinsics_source"] == "given":
        print(
            "trajectory_inference: intrinsics head untrained (learn_intrinsics false): reporting the "
            'sequences\' calibration K, source "records"'
        )
    return manifest


if __name__ == "__main__":
    sys.exit(common.run_stage(main))
