"""Triplets in bounded memory: frames are stored once, sequences are planned from metadata, and each
record is assembled from its own three frames.

Graph (see ``pipelines.preprocess.build``)::

    masked Frame --StoreFrames--> FrameMeta          (pixels -> <output>/.wilddepth-frames/<sequence>/<index>.npy)
    FrameMeta --GroupByKey(sequence)--> PlanTriplets  (pipelines.planning: sizes, cuts, gaps; no pixels)
    TripletPlans --Reshuffle--> AssembleTriplets      (runs of 8 triplets; each stored frame read once per run)
    Triplet --WriteRecords--> (sequence, record id) --> frame store removed --> Finalize

No element that crosses a shuffle holds pixels: an element holds at most the three frames of one
triplet, inside one fused step. Memory therefore grows with a sequence's length only by its metadata
(about 1 kB per frame for the plan of a sequence), also on Beam's local runner, which holds every
shuffle in memory.

Record id (documented choice): the raw index of the triplet's *middle* frame (KITTI file number, video
frame number, Cityscapes frame number, position in an image folder), zero-padded to 10 digits, as in
vid2depth's generator. Ids are therefore unique within a sequence folder and point back to the raw frame.
"""

from __future__ import annotations

import io
import os
import re
from typing import Dict, List, Sequence

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from pipelines import fileio, records
from pipelines.beam_util import reject, skip
from pipelines.config import PreprocessConfig
from pipelines.mask_alignment import align_triplet
from pipelines.planning import FrameMeta, TripletPlan, chunk_plans, grey_histogram, plan_sequence
from pipelines.records import Frame, Triplet, dead_letter
from pipelines.sampling import mean_abs_difference

SEQUENCES = "sequences"
FRAME_STORE = ".wilddepth-frames"  # per-run frame store inside the output folder, removed before Finalize
# Consecutive triplets assembled as one element: each stored frame is then read about (8 + 2) / 8 times
# instead of 3, and the shuffle before assembly carries an eighth of the elements (docs/preprocessing.md).
TRIPLETS_PER_ELEMENT = 8
_STORED_FRAME = re.compile(r"^(\d{10}\.npy|\.tmp-\d{10}\.npy\..+)$")


def stored_frame_path(output: str, sequence: str, index: int) -> str:
    """Where frame ``index`` (sample position) of ``sequence`` is stored during a run."""
    return fileio.join(output, FRAME_STORE, sequence, f"{index:010d}.npy")


def encode_stored_frame(image: np.ndarray, mask: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) and mask uint8 (H, W) -> one .npy of (H, W, 4) uint8 (lossless, no compression)."""
    buffer = io.BytesIO()
    np.save(buffer, np.concatenate([image, mask[:, :, None]], axis=2), allow_pickle=False)
    return buffer.getvalue()


def decode_stored_frame(data: bytes):
    """Inverse of ``encode_stored_frame``: (RGB (H, W, 3), mask (H, W)), both uint8."""
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.ndim != 3 or array.shape[2] != 4 or array.dtype != np.uint8:
        raise ValueError(f"a stored frame must be (H, W, 4) uint8, got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array[:, :, :3]), np.ascontiguousarray(array[:, :, 3])


def store_bytes(path: str, data: bytes) -> None:
    """Write a stored frame. Locally a plain write, without the fsync of ``formats.atomic``: the store is
    read only after every frame is stored (the planning step waits for all of them), a killed run's
    store is rewritten by the next run, and the store is removed before the output is complete."""
    if fileio.is_remote(path):
        fileio.write_bytes(path, data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


class StoreFrames(beam.DoFn):
    """Frame (with mask) -> FrameMeta: stores the working-resolution pixels and mask under the output's
    frame store and keeps only the metadata planning needs (``pipelines.planning.FrameMeta``)."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, frame: Frame):
        mask = frame.mask if frame.mask is not None else np.zeros(frame.image.shape[:2], np.uint8)
        path = stored_frame_path(self.config.output, frame.sequence, frame.index)
        store_bytes(path, encode_stored_frame(frame.image, mask))
        yield FrameMeta(
            source=frame.source,
            sequence=frame.sequence,
            index=int(frame.index),
            raw_index=int(frame.raw_index if frame.raw_index is not None else frame.index),
            frame_id=frame.frame_id,
            timestamp=float(frame.timestamp),
            segment=int(frame.segment),
            native_size=tuple(int(v) for v in (frame.native_size or (frame.image.shape[1], frame.image.shape[0]))),
            intrinsics=np.asarray(frame.intrinsics, np.float64),
            histogram=grey_histogram(frame.image),
        )


class PlanTriplets(beam.DoFn):
    """(sequence, FrameMetas) -> runs of up to ``TRIPLETS_PER_ELEMENT`` consecutive TripletPlans;
    ``size_change`` dead letters for frames whose native size is not the sequence's majority size; one
    summary dict per sequence on the ``sequences`` output (its ``records`` count is added from the
    written records)."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        _, metas = element
        plan = plan_sequence(list(metas), self.config.max_gap_factor, self.config.scene_cut_correlation)
        for rejection in plan.rejected:
            yield reject(
                dead_letter(rejection.frame.source, rejection.frame.frame_id, records.SIZE_CHANGE, rejection.detail)
            )
        yield from chunk_plans(plan.triplets, TRIPLETS_PER_ELEMENT)
        yield pvalue.TaggedOutput(SEQUENCES, plan.summary)


class AssembleTriplets(beam.DoFn):
    """A run of consecutive TripletPlans -> Triplets with aligned masks, one at a time, reading each stored
    frame of the run once (a frame shared with the previous triplet is kept; no more than three frames are
    held at once).

    Triplets whose first and last frames differ by less than ``static_threshold`` grey levels on average
    are left out as static (0 disables the rule).
    """

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, plans: Sequence[TripletPlan]):
        held: Dict[int, Frame] = {}
        for plan in plans:
            held = {meta.index: held.get(meta.index) or self._read(meta) for meta in plan.frames}
            yield from self._assemble(plan, [held[meta.index] for meta in plan.frames])

    def _read(self, meta: FrameMeta) -> Frame:
        path = stored_frame_path(self.config.output, meta.sequence, meta.index)
        image, mask = decode_stored_frame(fileio.read_bytes(path))
        return Frame(
            source=meta.source,
            sequence=meta.sequence,
            index=meta.index,
            frame_id=meta.frame_id,
            timestamp=meta.timestamp,
            image=image,
            intrinsics=meta.intrinsics,
            mask=mask,
            raw_index=meta.raw_index,
            segment=meta.segment,
            native_size=meta.native_size,
        )

    def _assemble(self, plan: TripletPlan, frames: List[Frame]):
        if (
            self.config.static_threshold > 0
            and mean_abs_difference(frames[0].image, frames[2].image) < self.config.static_threshold
        ):
            yield skip("static", f"{plan.sequence}/{plan.record_id}")
            return
        masks = [frame.mask for frame in frames]
        if any(mask.any() for mask in masks):
            masks = align_triplet(masks, self.config.iou_threshold, self.config.erase_unmatched)
        yield Triplet(sequence=plan.sequence, record_id=plan.record_id, frames=tuple(frames), masks=tuple(masks))


def complete_summary(element) -> dict:
    """(sequence, {"summary": [dict], "records": [count...]}) -> the summary with its ``records`` count."""
    _, grouped = element
    (summary,) = grouped["summary"]
    return dict(summary, records=int(sum(grouped["records"])))


def remove_frame_store(output: str) -> int:
    """Delete the frames this pipeline stored under ``<output>/.wilddepth-frames`` (and the atomic
    temporaries of a killed store), then the folders left empty. Files of any other name are never
    touched. Returns the number of files removed."""
    store = fileio.join(output, FRAME_STORE)
    if fileio.is_remote(output):
        from apache_beam.io.filesystems import FileSystems

        paths = [
            path for path in fileio.glob(fileio.join(store, "*", "*.npy")) if _STORED_FRAME.match(fileio.basename(path))
        ]
        if paths:
            FileSystems.delete(paths)
        return len(paths)
    if not os.path.isdir(store):
        return 0
    removed = 0
    for sequence in sorted(os.listdir(store)):
        folder = os.path.join(store, sequence)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if _STORED_FRAME.match(name) and os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed += 1
        if not os.listdir(folder):
            os.rmdir(folder)
    if not os.listdir(store):
        os.rmdir(store)
    return removed


class RemoveFrameStore(beam.DoFn):
    """Runs once, on the list of all written record keys (so after every record is written): removes the
    frame store and passes the list on unchanged."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, written: List):
        remove_frame_store(self.config.output)
        yield written
