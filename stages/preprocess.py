"""Stage ``preprocess``: raw footage -> Struct2depth records with the Beam pipeline of ``pipelines/``.

    python -m stages.preprocess --source S --input PATH --output DIR [pipeline params] [Beam options]

Pipeline parameters default to ``params.yaml`` section ``preprocess`` (read into
``pipelines.config.PreprocessConfig``; nested keys as dotted flags, e.g. ``--video.fps=2``; an unknown key of
the section is refused). Unknown flags are Beam pipeline options (``--runner``, ``--direct_num_workers``,
``--project``, ``--region``, ``--temp_location``, ``--setup_file`` ...); ``preprocess.beam`` in params.yaml
(or ``--beam.runner`` ...) supplies defaults for those not given.

Exit codes (``stages.common.run_stage``): 0 done; 2 bad input or parameters, with one line on stderr
(a missing input, an input that matches nothing, no record written, an output folder that is not
wilddepth's, overlaps the input or is not writable, a named intrinsics file that does not exist);
1 unexpected.
"""

from __future__ import annotations

import logging
import sys
from typing import List, Mapping, Optional, Sequence

from stages.common import StageError, parse_stage_args, run_stage


def beam_arguments(defaults: Mapping, unknown: Sequence[str]) -> List[str]:
    """``unknown`` plus ``--key=value`` for every default in ``preprocess.beam`` not given on the command line."""
    given = {argument.split("=", 1)[0].lstrip("-") for argument in unknown if argument.startswith("--")}
    runner = next((a.split("=", 1)[1] for a in unknown if a.startswith("--runner=")), None)
    if runner is None and "runner" in given:
        runner = unknown[list(unknown).index("--runner") + 1]
    arguments = list(unknown)
    for key, value in (defaults or {}).items():
        if key in given or value is None:
            continue
        if key.startswith("direct_") and runner not in (None, "DirectRunner"):
            continue  # DirectRunner defaults mean nothing to other runners
        arguments.append(f"--{key}={value}")
    return arguments


def main(argv: Optional[Sequence[str]] = None) -> int:
    from pipelines.config import PreprocessConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    params, _, unknown = parse_stage_args(
        "preprocess",
        "Turn raw footage into Struct2depth training records (Apache Beam).",
        argv,
        allow_unknown=True,
        configs=(PreprocessConfig,),
    )
    config = PreprocessConfig.from_mapping(params, section="preprocess")
    from pipelines.preprocess import read_manifest, run

    if config.segmenter == "detectron2":  # a missing optional install is the user's to fix: exit 2, one line
        from pipelines.masking import make_segmenter

        try:
            make_segmenter(config.segmenter, config.detectron2)
        except RuntimeError as error:
            raise StageError(str(error)) from None
    arguments = beam_arguments(config.beam.to_mapping(), unknown)
    logging.info("preprocess %s %s -> %s with Beam options %s", config.source, config.input, config.output, arguments)
    result = run(config, arguments)
    if config.output and not config.output.startswith(("gs://", "s3://")) and str(result.state) == "DONE":
        counts = read_manifest(config.output)["counts"]
        logging.info("done: %s", counts)
    return 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
