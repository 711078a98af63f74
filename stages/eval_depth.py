"""Depth evaluation stage: Abs Rel and friends for a checkpoint, with a constant-depth baseline.

    python -m stages.eval_depth --checkpoint_path=checkpoints [--dataset=kitti_eigen --data_dir=/data/kitti_raw]

Defaults come from the ``eval_depth`` section of params.yaml (``evaluation.depth_evaluation.DepthEvalConfig``).
Writes (atomically):
- ``--metrics_file`` (default ``metrics/depth.json``): ``model`` and ``constant_baseline`` blocks of the seven
  metrics, averaged over images, the protocol used, and (when the images have object masks) ``regions``: the
  same two blocks on the moving-object pixels and on the static pixels (synthetic ground truth; ``objects`` /
  ``background`` for masks given with ``--object_masks_dir``), each averaged over the images that have valid
  pixels in the region;
- ``--plots_dir`` (default ``plots/depth``): ``error_by_distance.csv``, ``per_image.csv`` and ``images/*.png``
  (input, predicted depth, ground truth).
The protocol is documented in ``evaluation/depth_metrics.py`` and ``docs/evaluation.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from evaluation import depth_evaluation, headline
from evaluation.depth_evaluation import DepthEvalConfig
from formats import atomic
from stages.common import StageError, parse_stage_args, run_stage, write_metrics

PROTOCOL_KEYS = ("min_depth", "max_depth", "crop", "scaling", "resize", "flip_augment")


def _extra_arguments(parser) -> None:
    parser.add_argument(
        "--checkpoint_path",
        default=None,
        help="checkpoint prefix or directory (latest checkpoint); required for a real model",
    )
    parser.add_argument("--metrics_file", default="metrics/depth.json", help="metrics JSON to write (atomically)")
    parser.add_argument(
        "--plots_dir", default="plots/depth", help="folder for error_by_distance.csv, per_image.csv and images/"
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def load_predictor(checkpoint_path: Optional[str]):
    """The real model (TensorFlow is imported only here)."""
    if not checkpoint_path:
        raise StageError("--checkpoint_path is required")
    from model.inference import InferenceModel

    return InferenceModel.from_checkpoint(checkpoint_path)


def run(config: DepthEvalConfig, predictor, metrics_file: Path, plots_dir: Path, progress: bool = False) -> dict:
    """Evaluate ``predictor`` as ``config`` says; write metrics and plot data; return the metrics document."""
    samples = depth_evaluation.build_samples(config)
    images_dir = Path(plots_dir) / "images"
    if images_dir.is_dir():
        for stale in images_dir.glob("*.png"):
            stale.unlink()
    result = depth_evaluation.evaluate(samples, predictor, config, images_dir=images_dir, progress=progress)
    baseline_abs_rel = result["constant_baseline"]["abs_rel"]
    names = config.regions
    document = {
        "dataset": config.dataset,
        "num_images": len(result["per_image"]),
        "model": result["model"],
        "constant_baseline": result["constant_baseline"],
        "abs_rel_over_constant": result["model"]["abs_rel"] / baseline_abs_rel if baseline_abs_rel > 0 else None,
        "protocol": {key: getattr(config, key) for key in PROTOCOL_KEYS} | {"image_size": list(predictor.image_size)},
    }
    if result["regions"] is not None:
        document["regions"] = region_document(result["regions"])
        objects, rest = (document["regions"][name]["model"] for name in names)
        document[f"{names[0]}_over_{names[1]}_abs_rel"] = (
            objects["abs_rel"] / rest["abs_rel"] if objects and rest and rest["abs_rel"] > 0 else None
        )
        document["protocol"]["regions"] = {
            "object_masks": (
                "synthetic ground truth: only objects moving in the world (parked cars are static)"
                if config.dataset == "synthetic"
                else str(config.object_masks_dir)
            ),
            "averaging": "per image, over the images with valid pixels in the region (others skipped, counted)",
            "scaling": "the whole image's median scale",
        }
    write_metrics(metrics_file, headline.depth(document), document)
    atomic.write_text(
        Path(plots_dir) / "error_by_distance.csv", depth_evaluation.by_distance_csv(result["by_distance"])
    )
    atomic.write_text(Path(plots_dir) / "per_image.csv", depth_evaluation.per_image_csv(result["per_image"]))
    return document


def region_document(regions: dict) -> dict:
    """The metrics file's ``regions`` block: per region model and baseline means, their Abs Rel ratio, counts."""
    document = {}
    for name, region in regions.items():
        model, baseline = region["model"], region["constant_baseline"]
        document[name] = {
            "model": model,
            "constant_baseline": baseline,
            "abs_rel_over_constant": (
                model["abs_rel"] / baseline["abs_rel"] if model and baseline and baseline["abs_rel"] > 0 else None
            ),
            "num_images": region["num_images"],
            "num_images_without_pixels": region["num_images_without_pixels"],
            "valid_pixels": region["valid_pixels"],
        }
    return document


def main(argv: Optional[Sequence[str]] = None, predictor=None) -> dict:
    params, args, _ = parse_stage_args(
        "eval_depth", __doc__.splitlines()[0], argv, _extra_arguments, configs=(DepthEvalConfig,)
    )
    config = DepthEvalConfig.from_mapping(params, section="eval_depth")
    if predictor is None:
        predictor = load_predictor(args.checkpoint_path)
    document = run(config, predictor, Path(args.metrics_file), Path(args.plots_dir), args.progress)
    model, baseline = document["model"], document["constant_baseline"]
    print(
        f"eval_depth: {document['num_images']} images ({document['dataset']}): "
        f"Abs Rel {model['abs_rel']:.4f} (constant baseline {baseline['abs_rel']:.4f}), "
        f"RMSE {model['rmse']:.3f} m, a1 {model['a1']:.3f} -> {args.metrics_file}"
    )
    for name, region in (document.get("regions") or {}).items():
        if region["model"] is None:
            print(f"eval_depth: {name}: no image has valid pixels in this region")
            continue
        print(
            f"eval_depth: {name}: Abs Rel {region['model']['abs_rel']:.4f} (constant baseline "
            f"{region['constant_baseline']['abs_rel']:.4f}) over {region['num_images']} images "
            f"({region['num_images_without_pixels']} without pixels in it)"
        )
    return document


if __name__ == "__main__":
    sys.exit(run_stage(main))
