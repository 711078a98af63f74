"""Stage ``train``: train depth, ego-motion and intrinsics on Struct2depth records (reference spec 3.5, 3.7).

    python -m stages.train --data_dir=data/struct2depth --checkpoint_dir=checkpoints/train
    python -m stages.train --data_dir=DIR --checkpoint_dir=CKPT --train_steps=1 --nolearn_intrinsics
    python -m stages.train --data_dir=DIR --checkpoint_dir=CKPT --img_height=128 --img_width=416 \\
        --learning_rate=1e-4 --batch_size=16 --imagenet_ckpt=resnet18.npz        # the paper's setting

Defaults come from the ``train:`` section of params.yaml; every key is a flag (``--flag=value``,
``--noflag``). Rerunning with the same ``--checkpoint_dir`` resumes from its newest checkpoint.
Exit status: 0 on success, 1 when training stopped on a non-finite loss, 2 on unusable input.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from stages.common import parse_stage_args

LOGGER = logging.getLogger("stages.train")


def _extra(parser) -> None:
    parser.add_argument("--data_dir", required=True, help="folder with <input_file>.txt and the records")
    parser.add_argument("--checkpoint_dir", required=True, help="checkpoints, model_config.json, tensorboard/")
    parser.add_argument("--imagenet_ckpt", default=None,
                        help="ResNet-18 weights for the depth encoder: dalgu90-named TF checkpoint prefix or "
                             ".npz, or a torchvision resnet18 state dict .npz (see model/imagenet.py)")
    parser.add_argument("--metrics_dir", default=None, help="dvclive output folder (default: no dvclive)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Optional[Sequence[str]] = None) -> int:
    params, args, _ = parse_stage_args("train", "Train depth, ego-motion and intrinsics.", argv, _extra)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Imported here so that --help stays fast and flag errors appear before TensorFlow starts.
    from formats.struct2depth import RecordFormatError
    from model.data import DataConfig, NoValidRecordsError
    from model.depth_motion_model import ModelConfig
    from model.imagenet import ImagenetWeightsError
    from model.trainer import NonFiniteLossError, Trainer, TrainerConfig

    if params.get("weight_reg") not in (None, 0.01):
        LOGGER.warning("--weight_reg=%s has no effect: as in the release, no weight regulariser enters the loss",
                       params["weight_reg"])
    try:
        model_config = ModelConfig.from_params(params)
        data_config = DataConfig.from_params(args.data_dir, params)
        trainer_config = TrainerConfig.from_params(
            args.checkpoint_dir, params, imagenet_ckpt=args.imagenet_ckpt, metrics_dir=args.metrics_dir,
            progress=not args.quiet)
    except (TypeError, ValueError) as error:
        LOGGER.error("train: bad parameters: %s", error)
        return 2
    try:
        trainer = Trainer(model_config, data_config, trainer_config)
        trainer.train()
    except NonFiniteLossError as error:
        LOGGER.error("training stopped: %s", error)
        return 1
    except (NoValidRecordsError, RecordFormatError, ImagenetWeightsError) as error:
        LOGGER.error("train: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
