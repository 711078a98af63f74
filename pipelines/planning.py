"""Pure triplet planning from per-frame metadata (no pixels): which frames of a sequence are kept and
which triplets they form.

A sequence is planned from one small ``FrameMeta`` per decoded frame (index, raw index, timestamp,
segment, native size, a 32-bin grey histogram of the working-resolution frame), so planning a
7,200-frame video costs a few hundred bytes per frame, never the frames themselves. The rules are those
of docs/preprocessing.md:

- **Size.** The sequence's size is its *majority* native size (most frames; on a tie, the size of the
  earliest of the tied frames). Frames of any other size are dead-lettered ``size_change``; only they are
  blamed, so a wrong-size first frame no longer rejects every good frame after it.
- **Triplets.** Three consecutive kept samples (``sampling.triplet_windows``): no missing sample, one
  segment, no timestamp gap above ``max_gap_factor`` x the median sample period, and no scene cut
  (grey-histogram correlation of neighbouring kept samples below ``scene_cut_correlation``; 0 = off).
- **Record id** = the raw index of the middle frame, 10 digits.

The static-triplet rule (mean |difference| of a triplet's first and last frame) needs pixels and is
applied where the triplet's frames are brought together (``pipelines.triplets.AssembleTriplets``).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from formats.struct2depth import sample_id
from pipelines.sampling import triplet_windows

HISTOGRAM_BINS = 32


@dataclasses.dataclass(frozen=True)
class FrameMeta:
    """What planning needs to know about one decoded (and masked) frame; its pixels are stored apart.

    ``intrinsics`` is K (3x3) at working resolution (pixels; carried, not compared); ``native_size`` is
    (width, height) of the raw frame; ``histogram`` the ``HISTOGRAM_BINS`` grey-level counts of the
    working-resolution frame (``grey_histogram``). The frame's RGB + mask are stored apart, under
    (sequence, index) (``pipelines.triplets.stored_frame_path``).
    """

    source: str
    sequence: str
    index: int
    raw_index: int
    frame_id: str
    timestamp: float
    segment: int
    native_size: Tuple[int, int]
    intrinsics: np.ndarray = dataclasses.field(compare=False)
    histogram: Tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class SizeRejection:
    """A frame left out because its native size is not the sequence's (both (width, height))."""

    frame: FrameMeta
    size: Tuple[int, int]
    sequence_size: Tuple[int, int]

    @property
    def detail(self) -> str:
        return f"{self.size[0]}x{self.size[1]} in a sequence of {self.sequence_size[0]}x{self.sequence_size[1]} frames"


@dataclasses.dataclass(frozen=True)
class TripletPlan:
    """One planned record: three consecutive kept frames of ``sequence``, written as ``record_id``. The
    frames' histograms are dropped (``()``): they serve planning only, and a plan should stay small."""

    sequence: str
    record_id: str
    frames: Tuple[FrameMeta, FrameMeta, FrameMeta]


def chunk_plans(triplets: Sequence[TripletPlan], size: int) -> List[Tuple[TripletPlan, ...]]:
    """Consecutive runs of at most ``size`` triplets (in the given order, which ``plan_sequence`` makes the
    sequence's). One run is assembled as one element, so a frame shared by neighbouring triplets is read
    once per run rather than once per triplet, while an element still holds metadata only."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [tuple(triplets[start : start + size]) for start in range(0, len(triplets), size)]


@dataclasses.dataclass(frozen=True)
class SequencePlan:
    triplets: List[TripletPlan]
    rejected: List[SizeRejection]
    summary: Dict  # sequence, source, first_frame, last_frame, frames (kept); records are counted later


def grey_histogram(image_rgb: np.ndarray, bins: int = HISTOGRAM_BINS) -> Tuple[float, ...]:
    """Counts of grey levels (OpenCV's RGB->grey) of an RGB uint8 frame in ``bins`` equal bins over 0..255,
    as computed by ``sampling.histogram_correlation``."""
    import cv2

    grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    return tuple(float(value) for value in cv2.calcHist([grey], [0], None, [bins], [0, 256]).reshape(-1))


def histogram_correlation(histogram_a: Sequence[float], histogram_b: Sequence[float]) -> float:
    """Correlation in [-1, 1] of two grey histograms (OpenCV ``HISTCMP_CORREL``, as the scene-cut test)."""
    import cv2

    a = np.asarray(histogram_a, np.float32).reshape(-1, 1)
    b = np.asarray(histogram_b, np.float32).reshape(-1, 1)
    return float(cv2.compareHist(a, b, cv2.HISTCMP_CORREL))


def majority_size(sizes: Sequence[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """The most frequent (width, height) of ``sizes`` (given in frame order); a tie goes to the size seen
    first. None for no frames."""
    if not sizes:
        return None
    counts = collections.Counter(tuple(size) for size in sizes)
    first_seen: Dict[Tuple[int, int], int] = {}
    for position, size in enumerate(sizes):
        first_seen.setdefault(tuple(size), position)
    return max(counts, key=lambda size: (counts[size], -first_seen[size]))


def plan_sequence(frames: Sequence[FrameMeta], max_gap_factor: float, scene_cut_correlation: float) -> SequencePlan:
    """Plan one sequence from the metadata of its decoded frames (any order; sorted by index here)."""
    frames = sorted(frames, key=lambda frame: frame.index)
    if not frames:
        raise ValueError("plan_sequence needs at least one frame")
    size = majority_size([frame.native_size for frame in frames])
    kept = [frame for frame in frames if tuple(frame.native_size) == size]
    rejected = [
        SizeRejection(frame, tuple(frame.native_size), size) for frame in frames if tuple(frame.native_size) != size
    ]
    threshold = scene_cut_correlation
    breaks = [False] + [
        threshold > 0 and histogram_correlation(a.histogram, b.histogram) < threshold for a, b in zip(kept, kept[1:])
    ]
    windows = triplet_windows(
        [f.index for f in kept], [f.timestamp for f in kept], [f.segment for f in kept], max_gap_factor, breaks
    )
    triplets = []
    for window in windows:
        triplet = tuple(dataclasses.replace(kept[p], histogram=()) for p in window)
        triplets.append(TripletPlan(frames[0].sequence, sample_id(triplet[1].raw_index), triplet))
    summary = {
        "sequence": frames[0].sequence,
        "source": kept[0].source,
        "first_frame": frames[0].frame_id,
        "last_frame": frames[-1].frame_id,
        "frames": len(kept),
    }
    return SequencePlan(triplets=triplets, rejected=rejected, summary=summary)
