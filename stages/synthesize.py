"""Stage ``synthesize``: render the synthetic driving world into a real dataset layout plus groundtruth/.

    python -m stages.synthesize --split train --output data/synthetic/train
    python -m stages.synthesize --layout video --output /tmp/v --num_sequences 1 --frames_per_sequence 20 --seed 5

Defaults come from the ``synthesize:`` section of params.yaml; ``--split`` picks the ``train``/``test``
sub-section's seed and number of sequences, which ``--seed`` and ``--num_sequences`` override.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from stages.common import StageError, parse_stage_args, run_stage
from synthetic.generate import Job, run
from synthetic.layouts import LAYOUTS


def _extra(parser) -> None:
    parser.add_argument("--output", required=True, help="output folder (created)")
    parser.add_argument("--split", default="train", help="params sub-section for seed/num_sequences; also the "
                        "Cityscapes split folder (default: train)")
    parser.add_argument("--seed", type=int, default=None, help="world seed (default: <split>.seed)")
    parser.add_argument("--num_sequences", type=int, default=None, help="default: <split>.num_sequences")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Optional[Sequence[str]] = None) -> int:
    params, args, _ = parse_stage_args("synthesize", "Render the synthetic driving world.", argv, _extra)
    if params["layout"] not in LAYOUTS:
        raise StageError(f"unknown --layout {params['layout']!r}; choose one of {', '.join(LAYOUTS)}")
    split_defaults = params.get(args.split) or {}
    seed = args.seed if args.seed is not None else split_defaults.get("seed")
    count = args.num_sequences if args.num_sequences is not None else split_defaults.get("num_sequences")
    if seed is None or count is None:
        raise StageError(f"split {args.split!r} has no seed/num_sequences in params.yaml; "
                         "pass --seed and --num_sequences")
    job = Job(layout=params["layout"], output=args.output, split=args.split, seed=int(seed),
              num_sequences=int(count), frames_per_sequence=int(params["frames_per_sequence"]),
              width=int(params["width"]), height=int(params["height"]), fps=float(params["fps"]),
              supersampling=int(params["supersampling"]), workers=int(params["workers"]))
    job.validate()
    run(job, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
