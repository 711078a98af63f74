"""Depth error per moving object of the synthetic test world: which objects make the moving-object region bad.

For every frame of the rendered test world (``synthesize`` output with ``synthetic.json``) the checkpoint's depth
is scored under ``eval_depth``'s protocol (``evaluation.depth_metrics.align_prediction``: Garg crop, per-image
median scaling over the whole image, clamping), then split by the renderer's instance ids. Each instance is
labelled by rebuilding its drive's scene (``synthetic.generate.scene_for``): ``lead car`` (drives ahead in the
camera's lane, with it), ``oncoming car``, ``pedestrian``. Printed per drive and per kind: frames seen, share of
the moving-object pixels, median ground-truth depth (m), median predicted / true depth, and the pixel-weighted
Abs Rel. A ratio well above 1 on the lead car is the release's known failure: an object that moves with the
camera looks static, and the cheapest explanation under the object-motion sparsity loss is a far depth.

    python benchmarks/object_depth.py --checkpoint_path checkpoints --data_dir data/synthetic/test [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from evaluation import depth_evaluation, depth_metrics, images  # noqa: E402
from synthetic.generate import Job, scene_for  # noqa: E402
from synthetic.layouts import kitti_raw_drive  # noqa: E402


def mover_kinds(data_dir: Path) -> dict:
    """{drive folder name: {instance id: kind}} from the world's ``synthetic.json`` (its job, re-planned)."""
    description = json.loads((data_dir / "synthetic.json").read_text())
    fixed = {"output": str(data_dir), "split": description.get("split") or "test"}
    fields = {name: description[name] for name in Job.__dataclass_fields__ if name in description and name not in fixed}
    job = Job.from_mapping(fields, **fixed)
    kinds = {}
    for sequence in range(job.num_sequences):
        drive = kitti_raw_drive(data_dir, sequence, job.camera_per_sequence).name
        movers = scene_for(job, sequence).movers
        kinds[drive] = {
            mover.instance: "lead car" if mover.follow else ("oncoming car" if mover.kind == "car" else "pedestrian")
            for mover in movers
        }
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint_path", required=True, help="checkpoint prefix or directory")
    parser.add_argument("--data_dir", default="data/synthetic/test", help="rendered test world (KITTI raw layout)")
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()
    from model.inference import InferenceModel

    data_dir = Path(args.data_dir)
    kinds = mover_kinds(data_dir)
    config = depth_evaluation.DepthEvalConfig(dataset="synthetic", data_dir=str(data_dir))
    samples = depth_evaluation.build_samples(config)
    model = InferenceModel.from_checkpoint(args.checkpoint_path)
    table = collections.defaultdict(lambda: collections.defaultdict(list))
    for start in range(0, len(samples), config.batch_size):
        batch = samples[start : start + config.batch_size]
        _, predictions = depth_evaluation._predict_batch(batch, model, model.image_size, config.flip_augment)
        for sample, prediction in zip(batch, predictions):
            ground_truth = sample.load_ground_truth()
            resized = images.resize_prediction(prediction, ground_truth.shape, config.resize)
            gt, pred, valid, _ = depth_metrics.align_prediction(
                ground_truth, resized, config.min_depth, config.max_depth, config.crop, config.scaling
            )
            ids = sample.load_object_mask()[valid]
            drive = sample.name.split("/")[0]
            for instance in np.unique(ids):
                selected = ids == instance
                kind = "static" if instance == 0 else kinds[drive].get(int(instance), "unknown")
                row = table[(drive, kind)]
                row["pixels"].append(int(selected.sum()))
                row["gt"].append(float(np.median(gt[selected])))
                row["ratio"].append(float(np.median(pred[selected] / gt[selected])))
                row["abs_rel_sum"].append(float(np.sum(np.abs(pred[selected] - gt[selected]) / gt[selected])))
    moving = collections.Counter()  # moving-object pixels per drive
    for (drive, kind), row in table.items():
        if kind != "static":
            moving[drive] += sum(row["pixels"])
    results = []
    for (drive, kind), row in sorted(table.items()):
        pixels = sum(row["pixels"])
        results.append(
            {
                "drive": drive,
                "kind": kind,
                "frames_x_instances": len(row["pixels"]),
                "share_of_moving_pixels": None if kind == "static" else round(pixels / max(moving[drive], 1), 3),
                "median_gt_m": round(float(np.median(row["gt"])), 1),
                "median_pred_over_gt": round(float(np.median(row["ratio"])), 2),
                "abs_rel": round(sum(row["abs_rel_sum"]) / pixels, 3),
            }
        )
        print(json.dumps(results[-1]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
