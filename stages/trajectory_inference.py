"""Trajectory inference: poses of every test sequence from a checkpoint (the release's script, spec 5.1).

    python -m stages.trajectory_inference --checkpoint_path=CKPT --odometry_test_set_dir=DIR --output_dir=OUT

``DIR`` may hold the release's triplet folders (``09-image_2``, ``10-image_2``), KITTI odometry sequences
(``sequences/NN/image_2``), KITTI raw drives (``<drive>/image_02/data``, e.g. the synthetic test world) or any
folder of ordered images (rules in ``evaluation/odometry_inference.py``). Per sequence ``<name>`` it writes:

- ``odometry_<name>.txt``: the release's format, ``x y z`` per pose, first line ``0.0 0.0 0.0``;
- ``<name>_poses.txt``: full camera-to-first-frame poses, KITTI 3x4 rows;
- ``<name>_tum.txt``: the same as TUM ``time tx ty tz qx qy qz qw`` (time: the sequence's timestamps in
  seconds when found, else the pose index);
- ``<name>_intrinsics.json``: the learned intrinsics, mean (and std) over the sequence's pairs, in pixels of the
  model's input size and rescaled to the source frames;
and ``manifest.json`` listing the sequences and their ground truth, which ``stages.eval_odometry`` reads.
Translations are in the model's (arbitrary) scale. Options come from the ``eval_odometry`` section of
params.yaml (``accumulation``, ``orthonormalize``, ``flip_augment``, ``batch_size``, ``input_format``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from evaluation import odometry_inference, trajectory
from formats import atomic, kitti
from stages import common

OPTION_KEYS = ("accumulation", "orthonormalize", "flip_augment", "batch_size", "input_format")


def parse_args(argv: Optional[Sequence[str]] = None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    section = common.load_params("eval_odometry", known.params)
    defaults = {key: section[key] for key in OPTION_KEYS}
    parser = argparse.ArgumentParser(prog="python -m stages.trajectory_inference", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None)
    parser.add_argument("--checkpoint_path", default=None, help="checkpoint prefix or directory (latest)")
    parser.add_argument("--odometry_test_set_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--img_height", type=int, default=None, help="accepted for the release's CLI; must match "
                        "the checkpoint's image size if given")
    parser.add_argument("--img_width", type=int, default=None)
    common.add_param_flags(parser, defaults)
    args = parser.parse_args(argv)
    return common.collect_params(args, defaults), args


def load_predictor(checkpoint_path: Optional[str]):
    """The real model (TensorFlow is imported only here)."""
    if not checkpoint_path:
        raise SystemExit("trajectory_inference: --checkpoint_path is required")
    from model.inference import InferenceModel
    return InferenceModel.from_checkpoint(checkpoint_path)


def run(test_set_dir: Path, output_dir: Path, predictor, options: dict) -> dict:
    """Infer and write every sequence below ``test_set_dir``; returns the manifest."""
    sequences = odometry_inference.find_sequences(test_set_dir, options["input_format"])
    output_dir = Path(output_dir)
    entries = []
    for sequence in sequences:
        result = odometry_inference.infer_sequence(sequence, predictor, int(options["batch_size"]),
                                                   options["accumulation"], bool(options["orthonormalize"]),
                                                   bool(options["flip_augment"]))
        poses = result["poses"]
        times = result["timestamps"]
        if times is None:
            times = np.arange(poses.shape[0], dtype=np.float64)
        atomic.write_text(output_dir / f"odometry_{sequence.name}.txt", trajectory.format_xyz(poses))
        kitti.write_poses(output_dir / f"{sequence.name}_poses.txt", poses)
        atomic.write_text(output_dir / f"{sequence.name}_tum.txt", trajectory.format_tum(times, poses))
        atomic.write_text(output_dir / f"{sequence.name}_intrinsics.json",
                          json.dumps(result["intrinsics"], indent=2) + "\n")
        entries.append({
            "name": sequence.name, "kind": sequence.kind, "num_poses": int(poses.shape[0]),
            "first_image": str(sequence.files[0]), "last_image": str(sequence.files[-1]),
            "gt_poses": str(sequence.gt_poses) if sequence.gt_poses else None,
            "poses": f"{sequence.name}_poses.txt", "tum": f"{sequence.name}_tum.txt",
            "xyz": f"odometry_{sequence.name}.txt", "intrinsics": f"{sequence.name}_intrinsics.json",
        })
    manifest = {"accumulation": options["accumulation"], "orthonormalize": bool(options["orthonormalize"]),
                "flip_augment": bool(options["flip_augment"]),
                "image_size": list(predictor.image_size), "sequences": entries}
    atomic.write_text(output_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Optional[Sequence[str]] = None, predictor=None) -> dict:
    options, args = parse_args(argv)
    if predictor is None:
        predictor = load_predictor(args.checkpoint_path)
    for flag, value, index in (("--img_height", args.img_height, 0), ("--img_width", args.img_width, 1)):
        if value is not None and value != predictor.image_size[index]:
            raise SystemExit(f"trajectory_inference: {flag}={value} but the checkpoint works at "
                             f"{tuple(predictor.image_size)} (H, W)")
    manifest = run(Path(args.odometry_test_set_dir), Path(args.output_dir), predictor, options)
    for entry in manifest["sequences"]:
        print(f"trajectory_inference: {entry['name']}: {entry['num_poses']} poses -> {args.output_dir}")
    return manifest


if __name__ == "__main__":
    main()
