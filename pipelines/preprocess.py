"""The preprocessing pipeline: raw footage -> Struct2depth records (see docs/preprocessing.md).

Graph (every source ends in a PCollection of ``Frame``)::

    input --list--> sequences --plan--> FrameRefs --Reshuffle--> DecodeFrame --+
    video/youtube8m --list/fetch--> VideoInput --Reshuffle--> DecodeVideo -----+--> Frames
    Frames --segmenter--> masked Frames --StoreFrames--> FrameMeta (pixels go to the output's frame store)
    FrameMeta --GroupByKey(sequence)--> PlanTriplets --> runs of TripletPlans --Reshuffle--> AssembleTriplets
        --> WriteTriplet
    written record keys, dead letters, filtered inputs, sequence summaries --> Finalize (lists, manifest)

Only metadata and record keys cross a shuffle: no element holds more than the three frames of one
triplet, so memory does not grow with the length of a sequence (pipelines/triplets.py).

Runs on the DirectRunner and unchanged on Dataflow: inputs are listed inside DoFns (through Beam's
filesystems), so building the graph touches no data.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import fileio, ownership
from pipelines.beam_util import DEAD_LETTER, FILTERED
from pipelines.config import PreprocessConfig
from pipelines.masking import make_segmenter, needs_native_image
from pipelines.records import DeadLetter, Frame
from pipelines.sources import (
    DecodeFrame,
    ListCityscapesSequences,
    ListImageFolders,
    ListKittiDrives,
    PlanCityscapesSequence,
    PlanImageFolder,
    PlanKittiDrive,
)
from pipelines.triplets import (
    SEQUENCES,
    AssembleTriplets,
    PlanTriplets,
    RemoveFrameStore,
    StoreFrames,
    complete_summary,
)
from pipelines.video import DecodeVideo, ListVideos
from pipelines.writers import MANIFEST, Finalize, WriteTriplet
from pipelines.youtube8m import FetchYouTube8M, input_ids

LOGGER = logging.getLogger(__name__)


class ReadFrames(beam.PTransform):
    """The ``config.source`` source: pipeline root -> (frames, dead letters, filtered inputs)."""

    def __init__(self, config: PreprocessConfig, keep_native: bool = False):
        super().__init__()
        self.config = config
        self.keep_native = keep_native

    def expand(self, root):
        config = self.config
        letters: List = []
        filtered: List = []
        if config.source in ("kitti_raw", "cityscapes", "image_folder"):
            lister, planner = {
                "kitti_raw": (ListKittiDrives(config), PlanKittiDrive(config)),
                "cityscapes": (ListCityscapesSequences(config), PlanCityscapesSequence(config)),
                "image_folder": (ListImageFolders(), PlanImageFolder(config)),
            }[config.source]
            listed = (
                root
                | "Input" >> beam.Create([config.input])
                | "ListSequences" >> beam.ParDo(lister).with_outputs(DEAD_LETTER, main="sequences")
            )
            planned = (
                listed.sequences
                | "SpreadSequences" >> beam.Reshuffle()
                | "PlanFrames" >> beam.ParDo(planner).with_outputs(DEAD_LETTER, FILTERED, main="refs")
            )
            decoded = (
                planned.refs
                | "SpreadFrames" >> beam.Reshuffle()
                | "DecodeFrames"
                >> beam.ParDo(DecodeFrame(config, self.keep_native)).with_outputs(DEAD_LETTER, main="frames")
            )
            letters += [listed[DEAD_LETTER], planned[DEAD_LETTER], decoded[DEAD_LETTER]]
            filtered.append(planned[FILTERED])
        elif config.source in ("video", "youtube8m"):
            if config.source == "video":
                listed = (
                    root
                    | "Input" >> beam.Create([config.input])
                    | "ListVideos" >> beam.ParDo(ListVideos()).with_outputs(DEAD_LETTER, main="videos")
                )
            else:
                listed = (
                    root
                    | "Ids" >> beam.Create(input_ids(config))
                    | "SpreadIds" >> beam.Reshuffle()
                    | "Fetch" >> beam.ParDo(FetchYouTube8M(config)).with_outputs(DEAD_LETTER, main="videos")
                )
            decoded = (
                listed.videos
                | "SpreadVideos" >> beam.Reshuffle()
                | "DecodeVideos"
                >> beam.ParDo(DecodeVideo(config, self.keep_native)).with_outputs(DEAD_LETTER, main="frames")
            )
            letters += [listed[DEAD_LETTER], decoded[DEAD_LETTER]]
        else:
            raise ValueError(f"unknown source {config.source!r}")
        return decoded.frames, letters, filtered


class _SplitSegmenterOutput(beam.DoFn):
    def process(self, element):
        if isinstance(element, DeadLetter):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, element)
        elif isinstance(element, Frame):
            yield element
        else:
            raise TypeError(f"a segmenter emitted {type(element).__name__}; expected Frame or DeadLetter")


def build(pipeline: beam.Pipeline, config: PreprocessConfig, segmenter: Optional[beam.PTransform] = None) -> Dict:
    """Add the whole preprocessing graph to ``pipeline``; returns its main PCollections by name."""
    segmenter = segmenter or make_segmenter(config.segmenter, config.detectron2)
    frames, letters, filtered = pipeline | "Read" >> ReadFrames(config, needs_native_image(segmenter))
    masked = (
        frames
        | "Mask" >> segmenter
        | "SplitMaskErrors" >> beam.ParDo(_SplitSegmenterOutput()).with_outputs(DEAD_LETTER, main="frames")
    )
    letters.append(masked[DEAD_LETTER])
    planned, triplets = _plan_and_assemble(masked.frames, config, letters, filtered)
    written = triplets | "WriteRecords" >> beam.ParDo(WriteTriplet(config))
    all_letters, manifest = _finalize(config, frames, written, _sequence_summaries(planned, written), letters, filtered)
    return {
        "frames": frames,
        "triplets": triplets,
        "written": written,
        "dead_letters": all_letters,
        "manifest": manifest,
    }


def _plan_and_assemble(frames, config: PreprocessConfig, letters: List, filtered: List):
    """Masked frames -> (the planning step's outputs, Triplets); appends their dead letters and filtered
    triplets to ``letters`` and ``filtered``."""
    planned = (
        frames
        | "StoreFrames" >> beam.ParDo(StoreFrames(config))
        | "KeyBySequence" >> beam.Map(lambda meta: (meta.sequence, meta))
        | "GroupSequences" >> beam.GroupByKey()
        | "PlanTriplets" >> beam.ParDo(PlanTriplets(config)).with_outputs(DEAD_LETTER, SEQUENCES, main="plans")
    )
    letters.append(planned[DEAD_LETTER])
    assembled = (
        planned.plans
        | "SpreadTriplets" >> beam.Reshuffle()
        | "AssembleTriplets" >> beam.ParDo(AssembleTriplets(config)).with_outputs(FILTERED, main="triplets")
    )
    filtered.append(assembled[FILTERED])
    return planned, assembled.triplets


def _sequence_summaries(planned, written):
    """One summary dict per sequence with its count of written records."""
    records_per_sequence = (
        written | "KeyRecordBySequence" >> beam.Map(lambda key: (key[0], 1)) | "CountRecords" >> beam.CombinePerKey(sum)
    )
    return (
        {
            "summary": planned[SEQUENCES] | "KeySummary" >> beam.Map(lambda summary: (summary["sequence"], summary)),
            "records": records_per_sequence,
        }
        | "JoinSummaries" >> beam.CoGroupByKey()
        | "CompleteSummaries" >> beam.Map(complete_summary)
    )


def _finalize(config: PreprocessConfig, frames, written, summaries, letters: List, filtered: List):
    """After every record is written: the frame store removed, then lists, dead letters and the manifest.
    Returns (all dead letters, the manifest step's output)."""
    all_letters = letters | "AllDeadLetters" >> beam.Flatten()
    all_filtered = filtered | "AllFiltered" >> beam.Flatten()
    frames_read = frames | "CountFrames" >> beam.combiners.Count.Globally()
    manifest = (
        written
        | "CollectRecords" >> beam.combiners.ToList()
        | "RemoveFrameStore" >> beam.ParDo(RemoveFrameStore(config))
        | "Finalize"
        >> beam.ParDo(
            Finalize(config),
            beam.pvalue.AsList(all_letters),
            beam.pvalue.AsList(all_filtered),
            beam.pvalue.AsList(summaries),
            beam.pvalue.AsSingleton(frames_read),
        )
    )
    return all_letters, manifest


def prepare_output(output: str, source: str = "", input_path: str = ""):
    """Before any work (``pipelines/ownership.py``): the input exists, the output neither is, holds nor lies
    inside the input, and is new, empty or a wilddepth output, and writable (the marker is (re)written);
    then the complete output's manifest is parked (an output without a manifest is incomplete) and the
    temporaries of wilddepth's own writes that a killed run left are removed. Raises OutputFolderError /
    NoInputError (exit 2) without touching anything otherwise. Returns (created the folder, created the
    marker), for :func:`ownership.release_output` after a run that wrote nothing."""
    return ownership.prepare(source, input_path, output)


def local_runner(options: PipelineOptions):
    """For ``--runner=DirectRunner`` (or none): Beam's local batch engine, the FnApiRunner, directly.

    Beam 2.77's DirectRunner first tries the Prism runner, whose binary it downloads at run time; the
    FnApiRunner is what it falls back to, and it honours ``--direct_num_workers`` and
    ``--direct_running_mode``. Any other runner name is left to Beam (returns None).
    """
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner not in (None, "DirectRunner"):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def run(config: PreprocessConfig, beam_args: Sequence[str] = (), wait: bool = True):
    """Build and run the pipeline with Beam options ``beam_args``; returns the PipelineResult.

    Everything that can be checked before the work is (input, named intrinsics file, output folder);
    with ``wait``, a run that wrote no record restores the earlier output's manifest and raises
    ``ownership.NoRecordsError`` naming the reasons (dead-letter counts)."""
    if not config.input and config.source != "youtube8m":
        raise ValueError("--input is required for source " + config.source)
    if not config.output:
        raise ValueError("--output is required")
    if config.intrinsics_file and not fileio.exists(config.intrinsics_file):
        raise FileNotFoundError(
            f"intrinsics file {config.intrinsics_file!r} not found (named by "
            "video.intrinsics_file / image_folder.intrinsics_file)"
        )
    options = PipelineOptions(list(beam_args))
    created = prepare_output(config.output, config.source, config.input)
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    build(pipeline, config)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
        _check_records_written(config, result, created)
    return result


def _counters(result) -> Dict[str, int]:
    """The ``preprocess`` Beam counters of a finished run (empty when the runner reports none)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("preprocess"))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics only loses the detail of the message
        return {}
    values: Dict[str, int] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + int(value or 0)
    return values


def _check_records_written(config: PreprocessConfig, result, created=(False, False)) -> None:
    """After a local run: no manifest means no record was written (Finalize writes nothing then)."""
    if fileio.is_remote(config.output):
        return
    if os.path.exists(os.path.join(config.output, MANIFEST)):
        ownership.drop_parked_manifest(config.output)
        return
    restored = ownership.restore_manifest(config.output)
    ownership.release_output(config.output, *created)
    counters = _counters(result)
    reasons = ", ".join(
        f"{name[len('rejected_') :]} {count}"
        for name, count in sorted(counters.items())
        if name.startswith("rejected_") and count
    )
    detail = f"{counters.get('frames_read', 0)} frames read" + (f"; rejected: {reasons}" if reasons else "")
    kept = "the earlier output was left as it was" if restored else "nothing was written"
    raise ownership.NoRecordsError(f"no record written from --input {config.input!r} ({detail}); {kept}")


def read_manifest(output: str) -> dict:
    return json.loads(fileio.read_text(fileio.join(output, MANIFEST)))
