"""Seconds per frame of the Detectron2 masker (Mask R-CNN R50-FPN, random weights) on CPU.

Run in the Detectron2 environment:  .venv-detectron2/bin/python benchmarks/masker_speed.py
Measures the RunInference handler's forward pass (load excluded) on the real KITTI frames in
../shared/data/real/kitti_raw_mini, at the working resolution (params.yaml preprocess width x height)
and at native resolution (1242x375), with batch sizes 1 and 4. Weights are random: detection count,
hence mask pasting time, differs from a trained model; the backbone and heads cost the same.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch

from formats import struct2depth
from pipelines import detectron2_masker as masker
from stages.common import load_params

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "kitti_raw_mini"
CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the frames")
    parser.add_argument("--score_threshold", type=float, default=0.5)
    args = parser.parse_args()
    params = load_params("preprocess")
    width, height = int(params["width"]), int(params["height"])
    natives = [struct2depth.read_rgb(p) for p in sorted(REAL.glob("2011_09_26/*/image_02/data/*.png"))][:4]
    working = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in natives]
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "random.pth"
        from detectron2.modeling import build_model

        torch.manual_seed(0)
        torch.save({"model": build_model(masker.build_config(masker.Detectron2Options())).state_dict()}, weights)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(natives)} frames, "
            f"score_threshold {args.score_threshold}"
        )
        for batch_size in (1, 4):
            handler = masker.Detectron2ModelHandler(
                masker.Detectron2Options(
                    weights=str(weights), batch_size=batch_size, score_threshold=args.score_threshold
                )
            )
            model = handler.load_model()
            for name, images in (("working", working), ("native", natives)):
                batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
                handler.run_inference(batches[0], model)  # warm-up
                start = time.perf_counter()
                for _ in range(args.repeats):
                    for batch in batches:
                        handler.run_inference(batch, model)
                seconds = (time.perf_counter() - start) / (args.repeats * len(images))
                size = f"{images[0].shape[1]}x{images[0].shape[0]}"
                print(f"resolution {name:8s} {size:>9s}  batch {batch_size}:  {seconds:.2f} s/frame")


if __name__ == "__main__":
    main()
