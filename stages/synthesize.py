"""Stage ``synthesize``: render the synthetic driving world into a real dataset layout plus groundtruth/.

    python -m stages.synthesize --split train --output data/synthetic/train
    python -m stages.synthesize --layout video --output /tmp/v --num_sequences 1 --frames_per_sequence 20 --seed 5
    python -m stages.synthesize --split test --output /tmp/wild --world wild   # the wild world

Defaults come from the ``synthesize:`` section of params.yaml; ``--split`` picks the ``train``/``test``
sub-section's seed and number of sequences, which ``--seed`` and ``--num_sequences`` override.
``--world wild`` switches both: ``--camera wild`` gives every sequence its own camera (``wild_camera.*``),
``--path wild`` its own drive with a turn, stops and lane changes (``wild_path.*``); each may also be set
alone. The default (``--world original``: camera ``kitti``, path ``straight``) is the original world.

Exit codes (``stages.common.run_stage``): 0 done; 2 bad parameters (one line on stderr, nothing written).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from stages.common import StageError, parse_stage_args, run_stage
from synthetic.cameras import CameraRanges
from synthetic.generate import CAMERAS, PATHS, Job, run
from synthetic.layouts import LAYOUTS
from synthetic.paths import PathRanges

WORLDS = {"original": ("kitti", "straight"), "wild": ("wild", "wild")}  # world -> (camera, path)


def _extra(parser) -> None:
    parser.add_argument("--output", required=True, help="output folder (created)")
    parser.add_argument(
        "--split",
        default="train",
        help="params sub-section for seed/num_sequences; also the Cityscapes split folder (default: train)",
    )
    parser.add_argument("--seed", type=int, default=None, help="world seed (default: <split>.seed)")
    parser.add_argument("--num_sequences", type=int, default=None, help="default: <split>.num_sequences")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _unset_is_none(value):
    """``null`` in params.yaml, or ``--camera null`` / ``none`` / empty on the command line -> None."""
    return None if value is None or str(value).strip().lower() in ("", "null", "none") else str(value)


def job_from_params(params, args) -> Job:
    """The :class:`Job` of the parsed parameters; StageError (exit 2) on anything invalid."""
    if params["layout"] not in LAYOUTS:
        raise StageError(f"unknown --layout {params['layout']!r}; choose one of {', '.join(LAYOUTS)}")
    world = _unset_is_none(params.get("world")) or "original"
    if world not in WORLDS:
        raise StageError(f"unknown --world {world!r}; choose one of {', '.join(WORLDS)}")
    camera = _unset_is_none(params.get("camera")) or WORLDS[world][0]
    path = _unset_is_none(params.get("path")) or WORLDS[world][1]
    if camera not in CAMERAS:
        raise StageError(f"unknown --camera {camera!r}; choose one of {', '.join(CAMERAS)}")
    if path not in PATHS:
        raise StageError(f"unknown --path {path!r}; choose one of {', '.join(PATHS)}")
    split_defaults = params.get(args.split) or {}
    seed = args.seed if args.seed is not None else split_defaults.get("seed")
    count = args.num_sequences if args.num_sequences is not None else split_defaults.get("num_sequences")
    if seed is None or count is None:
        raise StageError(
            f"split {args.split!r} has no seed/num_sequences in params.yaml; pass --seed and --num_sequences"
        )
    try:
        job = Job(
            layout=params["layout"],
            output=args.output,
            split=args.split,
            seed=int(seed),
            num_sequences=int(count),
            frames_per_sequence=int(params["frames_per_sequence"]),
            width=int(params["width"]),
            height=int(params["height"]),
            fps=float(params["fps"]),
            supersampling=int(params["supersampling"]),
            workers=int(params["workers"]),
            camera=camera,
            path=path,
            wild_camera=CameraRanges.from_params(params.get("wild_camera")),
            wild_path=PathRanges.from_params(params.get("wild_path")),
        )
        return job.validate()
    except ValueError as error:
        raise StageError(str(error)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    params, args, _ = parse_stage_args("synthesize", "Render the synthetic driving world.", argv, _extra)
    run(job_from_params(params, args), progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
