"""Cross-frame alignment of instance-id masks within a triplet (the release's Struct2depth ``alignment.py``).

Struct2depth's rule (S2D/alignment.py ``align``), re-implemented on id histograms:

- Masks are uint8 (H, W) id images, 0 = static background; every non-zero id is one object.
- For each id of frame 1, in ascending order, take the frame-2 candidate with the highest IoU, then for
  that frame-2 id the frame-3 candidate with the highest IoU. The chain is accepted only if both IoUs
  are strictly greater than ``iou_threshold``. Ties are broken by the smaller id, so the result is
  deterministic.
- An accepted chain relabels the matched pixels of all three frames with the frame-1 id, and removes
  the frame-2 and frame-3 ids from the candidates of later frame-1 ids. A rejected chain removes
  nothing.
- Objects that are not part of an accepted chain are erased (set to 0) when ``erase_unmatched`` is
  true, as in Struct2depth. With ``erase_unmatched=False`` each of them is kept and given a fresh id:
  the smallest ids in 1..255 not used by any chain, handed out in (frame, original id) order, one per
  unmatched object, so an unmatched object never shares an id with another object of the triplet.
  A :class:`ValueError` is raised if more than 255 objects would need ids.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

NUM_IDS = 256
DEFAULT_IOU_THRESHOLD = 0.3


def _validate(masks: Sequence[np.ndarray]) -> List[np.ndarray]:
    if len(masks) != 3:
        raise ValueError(f"align_triplet needs 3 masks, got {len(masks)}")
    arrays = [np.asarray(mask) for mask in masks]
    for position, mask in enumerate(arrays):
        if mask.ndim != 2:
            raise ValueError(f"mask {position} must be (H, W), got shape {mask.shape}")
        if mask.dtype != np.uint8:
            raise ValueError(f"mask {position} must be uint8 object ids, got {mask.dtype}")
    shapes = {mask.shape for mask in arrays}
    if len(shapes) != 1:
        raise ValueError(f"masks of a triplet differ in shape: {sorted(shapes)}")
    return arrays


def iou_matrix(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """(256, 256) float64 IoU between every id of ``mask_a`` (rows) and of ``mask_b`` (columns).

    Entries for ids absent from either mask are 0. Computed from one joint histogram of id pairs.
    """
    joint = (
        np.bincount(
            mask_a.astype(np.int64).ravel() * NUM_IDS + mask_b.astype(np.int64).ravel(),
            minlength=NUM_IDS * NUM_IDS,
        )
        .reshape(NUM_IDS, NUM_IDS)
        .astype(np.float64)
    )
    area_a = joint.sum(axis=1)
    area_b = joint.sum(axis=0)
    union = area_a[:, None] + area_b[None, :] - joint
    iou = np.zeros_like(joint)
    np.divide(joint, union, out=iou, where=union > 0)
    return iou


def _best(iou_row: np.ndarray, candidates: List[int]) -> Tuple[int, float]:
    """The candidate id with the highest IoU (smallest id on ties); (-1, -inf) without candidates."""
    best_id, best_iou = -1, float("-inf")
    for candidate in candidates:  # ascending, strict '>' keeps the smallest id on ties
        if iou_row[candidate] > best_iou:
            best_id, best_iou = candidate, float(iou_row[candidate])
    return best_id, best_iou


def match_chains(
    masks: Sequence[np.ndarray], iou_threshold: float = DEFAULT_IOU_THRESHOLD
) -> List[Tuple[int, int, int]]:
    """Accepted chains ``(id1, id2, id3)`` of frame-1, frame-2 and frame-3 ids, in frame-1 id order."""
    first, second, third = _validate(masks)
    iou_12 = iou_matrix(first, second)
    iou_23 = iou_matrix(second, third)
    remaining_2 = [int(i) for i in np.unique(second) if i != 0]
    remaining_3 = [int(i) for i in np.unique(third) if i != 0]
    chains = []
    for id1 in (int(i) for i in np.unique(first) if i != 0):
        id2, overlap_12 = _best(iou_12[id1], remaining_2)
        if overlap_12 <= iou_threshold:
            continue
        id3, overlap_23 = _best(iou_23[id2], remaining_3)
        if overlap_23 <= iou_threshold:
            continue
        chains.append((id1, id2, id3))
        remaining_2.remove(id2)
        remaining_3.remove(id3)
    return chains


def align_triplet(
    masks: Sequence[np.ndarray],
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    erase_unmatched: bool = True,
) -> List[np.ndarray]:
    """Three uint8 (H, W) id masks -> three aligned masks (new arrays; see the module docstring)."""
    arrays = _validate(masks)
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1), got {iou_threshold}")
    chains = match_chains(arrays, iou_threshold)

    # One lookup table per frame: original id -> aligned id (0 = erased).
    tables = [np.zeros(NUM_IDS, np.uint8) for _ in range(3)]
    for id1, id2, id3 in chains:
        for table, original in zip(tables, (id1, id2, id3)):
            table[original] = id1

    if not erase_unmatched:
        matched: List[set] = [{chain[k] for chain in chains} for k in range(3)]
        used = {chain[0] for chain in chains}
        free = (i for i in range(1, NUM_IDS) if i not in used)
        fresh: Dict[Tuple[int, int], int] = {}
        for frame, mask in enumerate(arrays):
            for original in (int(i) for i in np.unique(mask) if i != 0):
                if original in matched[frame]:
                    continue
                try:
                    fresh[(frame, original)] = next(free)
                except StopIteration:
                    raise ValueError(
                        "more than 255 objects in the triplet: cannot keep unmatched objects with fresh ids"
                    ) from None
        for (frame, original), new_id in fresh.items():
            tables[frame][original] = new_id

    return [table[mask] for table, mask in zip(tables, arrays)]
