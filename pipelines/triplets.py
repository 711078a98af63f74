"""Per-sequence assembly: order a sequence's masked frames and cut them into triplets.

Record id (documented choice): the raw index of the triplet's *middle* frame (KITTI file number, video
frame number, Cityscapes frame number, position in an image folder), zero-padded to 10 digits, as in
vid2depth's generator. Ids are therefore unique within a sequence folder and point back to the raw frame.
"""
from __future__ import annotations

import numpy as np
import apache_beam as beam
from apache_beam import pvalue

from formats.struct2depth import sample_id
from pipelines import records
from pipelines.config import PreprocessConfig
from pipelines.mask_alignment import align_triplet
from pipelines.records import Triplet, dead_letter
from pipelines.sampling import histogram_correlation, mean_abs_difference, triplet_windows
from pipelines.sources import DEAD_LETTER, _counter, _filter, _reject

SEQUENCES = "sequences"


class AssembleTriplets(beam.DoFn):
    """(sequence, frames) -> Triplets with aligned masks.

    Frames whose native size differs from the sequence's first frame are dead-lettered (``size_change``).
    Triplets never span a missing sample, a segment boundary, a timestamp gap above ``max_gap_factor`` x
    the nominal period, or a scene cut (grey-histogram correlation of neighbours below
    ``scene_cut_correlation``). Triplets whose first and last frames differ by less than
    ``static_threshold`` grey levels on average are left out as static (0 disables the rule).
    Also emits one summary dict per sequence on the ``sequences`` output.
    """

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        sequence, frames = element
        frames = sorted(frames, key=lambda frame: frame.index)
        kept = []
        for frame in frames:
            if kept and tuple(frame.native_size) != tuple(kept[0].native_size):
                yield _reject(dead_letter(frame.source, frame.frame_id, records.SIZE_CHANGE,
                                          f"{frame.native_size[0]}x{frame.native_size[1]} in a sequence of "
                                          f"{kept[0].native_size[0]}x{kept[0].native_size[1]} frames"))
                continue
            kept.append(frame)
        threshold = self.config.scene_cut_correlation
        breaks = [False] + [
            threshold > 0 and histogram_correlation(a.image, b.image) < threshold for a, b in zip(kept, kept[1:])]
        windows = triplet_windows([f.index for f in kept], [f.timestamp for f in kept], [f.segment for f in kept],
                                  self.config.max_gap_factor, breaks)
        written = 0
        for window in windows:
            triplet = tuple(kept[p] for p in window)
            record_id = sample_id(triplet[1].raw_index)
            if self.config.static_threshold > 0 and \
                    mean_abs_difference(triplet[0].image, triplet[2].image) < self.config.static_threshold:
                yield _filter("static", f"{sequence}/{record_id}")
                continue
            masks = [f.mask if f.mask is not None else np.zeros(f.image.shape[:2], np.uint8) for f in triplet]
            if any(mask.any() for mask in masks):
                masks = align_triplet(masks, self.config.iou_threshold, self.config.erase_unmatched)
            written += 1
            yield Triplet(sequence=sequence, record_id=record_id, frames=triplet, masks=tuple(masks))
        yield pvalue.TaggedOutput(SEQUENCES, {
            "sequence": sequence,
            "source": kept[0].source if kept else frames[0].source,
            "first_frame": frames[0].frame_id,
            "last_frame": frames[-1].frame_id,
            "frames": len(kept),
            "records": written,
        })
