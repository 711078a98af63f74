"""Stage ``train``: train depth, ego-motion and intrinsics on Struct2depth records (the release's ``train.py``).

    python -m stages.train --data_dir=data/struct2depth --checkpoint_dir=checkpoints/train
    python -m stages.train --data_dir=DIR --checkpoint_dir=CKPT --train_steps=1 --nolearn_intrinsics
    python -m stages.train --data_dir=DIR --checkpoint_dir=CKPT --init_checkpoint=checkpoints   # fine-tune
    python -m stages.train --data_dir=DIR --checkpoint_dir=CKPT --depth_network_width=1.0 \\
        --motion_network_width=1.0 --learning_rate=1e-4 --batch_size=16 --imagenet_ckpt=resnet18.npz  # the paper

Defaults come from the ``train:`` section of params.yaml; every key is a flag (``--flag=value``,
``--noflag``; ``--help`` lists them with their descriptions). The frame size is the records' own (their
``manifest.json``, else the images): ``--img_height`` and ``--img_width`` may be given and must then agree
with the records. Rerunning with the same
``--checkpoint_dir`` resumes from its newest checkpoint (and continues the input stream where it stopped).
Every ``val_freq`` steps the run logs ``val/loss`` on ``<val_data_dir>/<val_file>.txt`` (skipped when that list
is absent or empty) and, with ``--val_depth_dir``, ``val/abs_rel`` on a synthetic world.
Exit status (``stages.common.run_stage``): 0 done, 2 bad input or parameters (one line on stderr), 3 training
stopped on non-finite values (the last finite checkpoint is kept and named), 1 unexpected.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Optional, Sequence

from model.config import DataConfig, ModelConfig, TrainerConfig
from stages.common import parse_stage_args, run_stage

LOGGER = logging.getLogger("stages.train")
CONFIGS = (TrainerConfig, DataConfig, ModelConfig)


def _extra(parser) -> None:
    parser.add_argument("--data_dir", required=True, help="folder with <input_file>.txt and the records")
    parser.add_argument("--checkpoint_dir", required=True, help="checkpoints, model_config.json, tensorboard/")
    parser.add_argument(
        "--val_data_dir",
        default=None,
        help="folder with <val_file>.txt and its records for val/loss (default: --data_dir); validation is "
        "skipped when the list is absent or empty",
    )
    parser.add_argument(
        "--val_depth_dir",
        default=None,
        help="a synthetic world in the KITTI-raw layout with groundtruth/ (e.g. data/synthetic/val) for "
        "val/abs_rel (default: none)",
    )
    parser.add_argument(
        "--imagenet_ckpt",
        default=None,
        help="ResNet-18 weights for the depth encoder: dalgu90-named TF checkpoint prefix or "
        ".npz, or a torchvision resnet18 state dict .npz (see model/imagenet.py)",
    )
    parser.add_argument(
        "--init_checkpoint",
        default=None,
        help="start from this checkpoint and fine-tune: a wilddepth checkpoint folder or prefix, "
        "or a release TF1 checkpoint prefix (model-<step>); the network widths must match; "
        "the optimizer starts fresh; a checkpoint already in --checkpoint_dir is resumed "
        "instead",
    )
    parser.add_argument("--metrics_dir", default=None, help="dvclive output folder (default: no dvclive)")
    parser.add_argument(
        "--metrics_file",
        default=None,
        help="headline JSON for `dvc metrics show` (final total loss, steps, seconds per step, last val_loss "
        "and val_abs_rel), e.g. metrics/train.json; every logged term stays in --metrics_dir",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_configs(params: dict, args):
    """(TrainerConfig, DataConfig with the records' frame size, ModelConfig) from the flag-overridden section.

    The loop's and reader's parameters are checked first (ConfigError: exit 2, nothing written), then the
    records, which give the frame size the model is built for."""
    trainer_config = TrainerConfig.from_mapping(
        params,
        section="train",
        strict=False,
        checkpoint_dir=args.checkpoint_dir,
        val_data_dir=args.val_data_dir or args.data_dir,
        val_depth_dir=args.val_depth_dir,
        imagenet_ckpt=args.imagenet_ckpt,
        init_checkpoint=args.init_checkpoint,
        metrics_dir=args.metrics_dir,
        progress=not args.quiet,
    )
    data_config = DataConfig.from_mapping(params, section="train", strict=False, data_dir=args.data_dir)
    from model.data import resolve_frame_size  # TensorFlow starts here, after the parameters are checked

    data_config = resolve_frame_size(data_config)
    size = {"img_height": data_config.img_height, "img_width": data_config.img_width}
    model_config = ModelConfig.from_mapping(params, section="train", strict=False, **size)
    return trainer_config, data_config, model_config


def main(argv: Optional[Sequence[str]] = None) -> int:
    params, args, _ = parse_stage_args(
        "train", "Train depth, ego-motion and intrinsics.", argv, _extra, configs=CONFIGS
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer_config, data_config, model_config = build_configs(params, args)
    if trainer_config.weight_reg != 0.01:
        LOGGER.warning(
            "--weight_reg=%s has no effect: as in the release, no weight regulariser enters the loss",
            trainer_config.weight_reg,
        )
    from model.trainer import Trainer, configure_runtime

    configure_runtime(trainer_config)
    trainer = Trainer(model_config, data_config, trainer_config)
    scalars = trainer.train()
    if args.metrics_file and scalars:
        from formats import atomic

        atomic.write_text(args.metrics_file, json.dumps(training_headline(scalars, trainer.step), indent=2) + "\n")
    return 0


def training_headline(scalars: dict, step: int) -> dict:
    """The training figures `dvc metrics show` prints: the last logged total loss, the step reached, the
    median seconds per step and, when validation ran, the last ``val_loss`` and ``val_abs_rel`` (all terms and
    curves stay in dvclive)."""
    headline = {"loss": scalars.get("loss/total"), "steps": int(step), "step_s": scalars.get("time/step_s")}
    for key, name in (("val/loss", "val_loss"), ("val/abs_rel", "val_abs_rel")):
        if key in scalars:
            headline[name] = scalars[key]
    return headline


if __name__ == "__main__":
    sys.exit(run_stage(main))
