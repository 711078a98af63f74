"""Stage ``synthesize``: render the synthetic driving world into a real dataset layout plus groundtruth/.

    python -m stages.synthesize --split train --output data/synthetic/train
    python -m stages.synthesize --layout video --output /tmp/v --num_sequences 1 --frames_per_sequence 20 --seed 5
    python -m stages.synthesize --split test --output /tmp/orig --world original   # the original world

Defaults come from the ``synthesize:`` section of params.yaml (:class:`SynthesizeConfig`); ``--split`` picks
one of its split sub-sections (``train``, ``val``, ``test``: seed and number of sequences), which ``--seed``
and ``--num_sequences`` override. ``--world wild`` (the default) switches both: ``--camera wild`` gives every
sequence its own camera (``wild_camera.*``), ``--path wild`` its own drive with a turn, stops and lane changes
(``wild_path.*``); each may also be set alone. ``--world original`` (camera ``kitti``, path ``straight``) is
the original world: one KITTI-like camera on a gently curving road.

Exit codes (``stages.common.run_stage``): 0 done; 2 bad parameters (one line on stderr, nothing written).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Iterable, Optional, Sequence, Tuple

from formats.params import Config, ConfigError, param
from stages.common import parse_stage_args, run_stage
from synthetic.cameras import CameraRanges
from synthetic.generate import CAMERAS, PATHS, Job, run
from synthetic.layouts import LAYOUTS
from synthetic.paths import PathRanges

WORLDS = {"original": ("kitti", "straight"), "wild": ("wild", "wild")}  # world -> (camera, path)


@dataclasses.dataclass(frozen=True)
class SplitConfig(Config):
    """The world of one split: its seed and number of drives (null = give ``--seed`` / ``--num_sequences``)."""

    seed: Optional[int] = param(None, help="world seed of the split's drives", minimum=0)
    num_sequences: Optional[int] = param(None, help="drives rendered for the split", minimum=1)


@dataclasses.dataclass(frozen=True)
class SynthesizeConfig(Config):
    """The ``synthesize:`` section of params.yaml. Every field of type :class:`SplitConfig` is a split."""

    layout: str = param("kitti_raw", help="dataset layout written", choices=LAYOUTS)
    world: str = param(
        "wild",
        help="wild = camera wild + path wild; original = one KITTI-like camera on a gently curving road "
        "(camera kitti, path straight)",
        choices=tuple(WORLDS),
    )
    camera: Optional[str] = param(
        None,
        help="null = as world; kitti = the layout's native camera; wild = a camera per sequence (wild_camera)",
        choices=CAMERAS,
    )
    path: Optional[str] = param(
        None,
        help="null = as world; straight = the gently curving road at a smooth speed; wild = a turn, stops or "
        "speed changes, a lane change (wild_path)",
        choices=PATHS,
    )
    width: int = param(
        448,
        help="frame width in pixels (448: twice the records' default 224); 0 = native (with height 0 as well) "
        "or, with height set, the native aspect ratio's width",
        minimum=0,
    )
    height: int = param(
        0,
        help="frame height in pixels; 0 = the native aspect ratio's height for the width (native when width is 0); "
        "other sizes scale K exactly",
        minimum=0,
    )
    fps: float = param(10.0, help="frame rate of camera kitti (and of its mp4); camera wild draws its own", above=0.0)
    frames_per_sequence: int = param(60, help="frames rendered per sequence (drive)", minimum=1)
    supersampling: int = param(
        2, help="n x n rays per pixel for the colour image (depth/mask: the centre ray)", minimum=1
    )
    workers: int = param(2, help="rendering processes", minimum=1)
    train: SplitConfig = param(
        default_factory=lambda: SplitConfig(seed=1, num_sequences=8), help="--split train: the training drives"
    )
    val: SplitConfig = param(
        default_factory=lambda: SplitConfig(seed=501, num_sequences=1), help="--split val: the validation drives"
    )
    test: SplitConfig = param(
        default_factory=lambda: SplitConfig(seed=1001, num_sequences=2),
        help="--split test: the test drives (never seen in training)",
    )
    wild_camera: CameraRanges = param(default_factory=CameraRanges, help="camera wild: the ranges it is drawn from")
    wild_path: PathRanges = param(default_factory=PathRanges, help="path wild: the ranges it is drawn from")

    @classmethod
    def split_names(cls) -> Tuple[str, ...]:
        """The splits: the names of the :class:`SplitConfig` fields."""
        hints = typing.get_type_hints(cls)
        return tuple(field.name for field in dataclasses.fields(cls) if hints[field.name] is SplitConfig)

    def check(self) -> Iterable[str]:
        seen = {}
        for name in self.split_names():
            seed = getattr(self, name).seed
            if seed is not None and seed in seen:
                yield f"{name}.seed: {seed} is also {seen[seed]}.seed; every split needs its own world"
            seen.setdefault(seed, name)

    def job(self, split: str, output: str, seed: Optional[int] = None, num_sequences: Optional[int] = None) -> Job:
        """The :class:`Job` rendering ``split`` into ``output``; ``seed``/``num_sequences`` override the split's."""
        if split not in self.split_names():
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(self.split_names())}")
        chosen: SplitConfig = getattr(self, split)
        seed = chosen.seed if seed is None else seed
        count = chosen.num_sequences if num_sequences is None else num_sequences
        if seed is None or count is None:
            raise ConfigError(
                f"split {split!r} has no seed/num_sequences in params.yaml; pass --seed and --num_sequences"
            )
        world_camera, world_path = WORLDS[self.world]
        return Job(
            layout=self.layout,
            output=output,
            split=split,
            seed=seed,
            num_sequences=count,
            frames_per_sequence=self.frames_per_sequence,
            width=self.width,
            height=self.height,
            fps=self.fps,
            supersampling=self.supersampling,
            workers=self.workers,
            camera=self.camera or world_camera,
            path=self.path or world_path,
            wild_camera=self.wild_camera,
            wild_path=self.wild_path,
        )


def _extra(parser) -> None:
    parser.add_argument("--output", required=True, help="output folder (created)")
    parser.add_argument(
        "--split",
        default="train",
        help=f"the split whose seed/num_sequences are used, one of {', '.join(SynthesizeConfig.split_names())}; "
        "also the Cityscapes split folder (default: train)",
    )
    parser.add_argument("--seed", type=int, default=None, help="world seed (default: <split>.seed)")
    parser.add_argument(
        "--num_sequences", type=int, default=None, help="drives rendered (default: <split>.num_sequences)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Optional[Sequence[str]] = None) -> int:
    params, args, _ = parse_stage_args(
        "synthesize", "Render the synthetic driving world.", argv, _extra, configs=(SynthesizeConfig,)
    )
    config = SynthesizeConfig.from_mapping(params, section="synthesize")
    run(config.job(args.split, args.output, args.seed, args.num_sequences), progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
