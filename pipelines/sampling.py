"""Pure rules: which raw frames are sampled, which samples form triplets, which split a sequence is in.

Times are seconds. Samplers are streaming (one decision per raw frame, in order) so that video decoding
never needs to hold a whole clip.
"""

from __future__ import annotations

import hashlib
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

TIME_TOLERANCE = 1e-3  # a frame within 1 ms before a target time counts as on time


class UniformSampler:
    """Take one frame per ``1 / fps`` seconds: for the targets t0 + k / fps (t0 = first frame's time), the
    first frame whose timestamp is >= target - 1 ms. A gap in the footage skips the targets it covers."""

    def __init__(self, fps: float):
        if not fps > 0:
            raise ValueError(f"sampling fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self._origin: Optional[float] = None
        self._next = 0

    def offer(self, timestamp: float) -> Optional[int]:
        """Segment number (always 0) if the frame at ``timestamp`` is sampled, else None."""
        if self._origin is None:
            self._origin = timestamp
        if timestamp < self._origin + self._next * self.period - TIME_TOLERANCE:
            return None
        self._next = int(math.floor((timestamp - self._origin + TIME_TOLERANCE) / self.period)) + 1
        return 0


class BurstSampler:
    """Every ``interval`` seconds take ``burst`` consecutive native frames (the release's YouTube8M rule,
    "two consecutive frames every second", with bursts of >= 3 so that a burst holds a triplet).
    Each burst is its own segment: triplets are formed inside a burst only."""

    def __init__(self, interval: float, burst: int):
        if not interval > 0:
            raise ValueError(f"burst interval must be > 0 s, got {interval}")
        if burst < 3:
            raise ValueError(f"a burst needs >= 3 frames to hold a triplet, got {burst}")
        self.interval, self.burst = interval, burst
        self._origin: Optional[float] = None
        self._next = 0
        self._left = 0
        self._segment = -1

    def offer(self, timestamp: float) -> Optional[int]:
        if self._origin is None:
            self._origin = timestamp
        if self._left > 0:
            self._left -= 1
            return self._segment
        if timestamp < self._origin + self._next * self.interval - TIME_TOLERANCE:
            return None
        self._next = int(math.floor((timestamp - self._origin + TIME_TOLERANCE) / self.interval)) + 1
        self._segment += 1
        self._left = self.burst - 1
        return self._segment


def make_sampler(sampling: str, fps: float, interval: float, burst: int):
    if sampling == "uniform":
        return UniformSampler(fps)
    if sampling == "burst":
        return BurstSampler(interval, burst)
    raise ValueError(f"unknown sampling {sampling!r}: expected 'uniform' or 'burst'")


def nominal_period(timestamps: Sequence[float], segments: Sequence[int]) -> Optional[float]:
    """Median time between consecutive samples of the same segment, or None if there are none."""
    gaps = [b - a for a, b, sa, sb in zip(timestamps, timestamps[1:], segments, segments[1:]) if sa == sb]
    return float(np.median(gaps)) if gaps else None


def triplet_windows(
    indices: Sequence[int],
    timestamps: Sequence[float],
    segments: Sequence[int],
    max_gap_factor: float,
    breaks: Sequence[bool] = (),
) -> List[Tuple[int, int, int]]:
    """Positions (p, p+1, p+2) into the given, index-sorted samples that may form a triplet.

    A window is valid only if its sample indices are consecutive (no sample missing, e.g. an unreadable
    frame), all three are in one segment, timestamps strictly increase, each gap is at most
    ``max_gap_factor`` x the nominal period, and no ``breaks[p]`` (a cut between samples p-1 and p) lies
    inside it.
    """
    count = len(indices)
    if not (len(timestamps) == len(segments) == count):
        raise ValueError("indices, timestamps and segments must have the same length")
    period = nominal_period(timestamps, segments)
    limit = None if period is None else max_gap_factor * period + 1e-9
    windows = []
    for p in range(count - 2):
        positions = (p, p + 1, p + 2)
        if indices[p + 1] != indices[p] + 1 or indices[p + 2] != indices[p] + 2:
            continue
        if not segments[p] == segments[p + 1] == segments[p + 2]:
            continue
        gaps = (timestamps[p + 1] - timestamps[p], timestamps[p + 2] - timestamps[p + 1])
        if min(gaps) <= 0 or (limit is not None and max(gaps) > limit):
            continue
        if breaks and (breaks[p + 1] or breaks[p + 2]):
            continue
        windows.append(positions)
    return windows


def split_rank(sequence: str) -> bytes:
    """A sequence's position in the deterministic split order: SHA-256 of its folder name."""
    return hashlib.sha256(sequence.encode("utf-8")).digest()


def assign_splits(sequences: Sequence[str], val_fraction: float) -> dict:
    """{sequence: 'train' | 'val'}: the round(val_fraction x N) sequences that come first in SHA-256 order
    of their names go to val. Whole sequences only, so no triplet of a val sequence is seen in training;
    reproducible, and independent of the order in which sequences arrive."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    names = sorted(set(sequences), key=lambda name: (split_rank(name), name))
    count = int(math.floor(val_fraction * len(names) + 0.5))
    return {name: ("val" if position < count else "train") for position, name in enumerate(names)}


def histogram_correlation(image_a: np.ndarray, image_b: np.ndarray, bins: int = 32) -> float:
    """Correlation in [-1, 1] of the grey-level histograms of two RGB uint8 frames (scene-cut test)."""
    import cv2

    histograms = []
    for image in (image_a, image_b):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        histogram = cv2.calcHist([grey], [0], None, [bins], [0, 256])
        histograms.append(histogram)
    return float(cv2.compareHist(histograms[0], histograms[1], cv2.HISTCMP_CORREL))


def mean_abs_difference(image_a: np.ndarray, image_b: np.ndarray) -> float:
    """Mean absolute difference in grey levels (0..255) of two RGB uint8 frames (static-triplet test)."""
    return float(np.mean(np.abs(image_a.astype(np.int16) - image_b.astype(np.int16))))
