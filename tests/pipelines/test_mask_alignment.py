"""Cross-frame alignment of id masks (docs/release.md §1.3), on hand-made masks."""

import numpy as np
import pytest

from pipelines.mask_alignment import align_triplet, iou_matrix, match_chains


def blank(height=4, width=12):
    return np.zeros((height, width), np.uint8)


def with_box(mask, object_id, columns, rows=slice(None)):
    mask = mask.copy()
    mask[rows, columns] = object_id
    return mask


def test_iou_matrix_hand_computed():
    a = with_box(blank(1, 10), 1, slice(0, 6))  # 6 pixels
    b = with_box(blank(1, 10), 2, slice(3, 10))  # 7 pixels, 3 shared -> union 10
    iou = iou_matrix(a, b)
    assert iou[1, 2] == pytest.approx(0.3)
    assert iou[0, 0] == pytest.approx(0.0)  # a's background (4 px) vs b's (3 px): no overlap
    assert iou[0, 2] == pytest.approx(4 / 7)  # a's background (cols 6..9) lies inside b's object
    assert iou[5, 5] == 0.0  # absent ids


def test_moving_object_is_relabelled_with_frame1_id():
    # A 4-column box moving one column per frame: consecutive IoU = 3 / 5 = 0.6.
    masks = [with_box(blank(), 3, slice(0, 4)), with_box(blank(), 7, slice(1, 5)), with_box(blank(), 9, slice(2, 6))]
    aligned = align_triplet(masks)
    for original, result in zip(masks, aligned):
        np.testing.assert_array_equal(result, np.where(original > 0, 3, 0).astype(np.uint8))
        assert result.dtype == np.uint8


def test_object_in_only_two_frames_is_erased():
    car = [with_box(blank(), 1, slice(0, 4))] * 3
    pedestrian = [with_box(car[0], 2, slice(8, 10)), with_box(car[1], 5, slice(8, 10)), car[2]]
    aligned = align_triplet(pedestrian)
    for result in aligned:
        np.testing.assert_array_equal(result, car[0])


def test_unmatched_objects_kept_with_fresh_non_conflicting_ids():
    first = with_box(blank(), 2, slice(0, 4))
    second = with_box(with_box(blank(), 6, slice(0, 4)), 2, slice(8, 10))  # id 2 also names an unmatched object
    third = with_box(with_box(blank(), 4, slice(0, 4)), 1, slice(10, 12))
    aligned = align_triplet([first, second, third], erase_unmatched=False)
    # Chain (2, 6, 4) keeps id 2; the two unmatched objects get the free ids 1 and 3, in frame order.
    np.testing.assert_array_equal(aligned[0], first)
    np.testing.assert_array_equal(aligned[1], with_box(with_box(blank(), 2, slice(0, 4)), 1, slice(8, 10)))
    np.testing.assert_array_equal(aligned[2], with_box(with_box(blank(), 2, slice(0, 4)), 3, slice(10, 12)))


def test_two_objects_swapping_id_order():
    # The detector numbers instances in a different order in every frame; alignment follows the pixels.
    left, right = slice(0, 4), slice(7, 11)
    first = with_box(with_box(blank(), 1, left), 2, right)
    second = with_box(with_box(blank(), 2, left), 1, right)
    third = with_box(with_box(blank(), 9, left), 4, right)
    aligned = align_triplet([first, second, third])
    for result in aligned:
        np.testing.assert_array_equal(result, first)
    assert match_chains([first, second, third]) == [(1, 2, 9), (2, 1, 4)]


def test_objects_crossing_each_other_keep_their_own_ids():
    # Two boxes approaching each other; the right one, drawn last, occludes the left one as they meet.
    first = with_box(with_box(blank(), 1, slice(0, 5)), 2, slice(6, 11))  # 1: cols 0-4, 2: cols 6-10
    second = with_box(with_box(blank(), 5, slice(1, 6)), 6, slice(5, 10))  # 5: cols 1-4, 6: cols 5-9
    third = with_box(with_box(blank(), 7, slice(2, 7)), 8, slice(4, 9))  # 7: cols 2-3, 8: cols 4-8
    # IoU(1,5) = 4/5, IoU(2,6) = 4/6, IoU(5,7) = 2/4, IoU(6,8) = 4/6.
    assert match_chains([first, second, third]) == [(1, 5, 7), (2, 6, 8)]
    aligned = align_triplet([first, second, third])
    np.testing.assert_array_equal(aligned[2], with_box(with_box(blank(), 1, slice(2, 4)), 2, slice(4, 9)))


def test_matched_candidates_are_removed():
    # Two frame-1 objects both overlap frame-2 object 3 best; the second cannot reuse it and is erased.
    first = with_box(blank(), 1, slice(0, 4), rows=slice(0, 2))
    first = with_box(first, 2, slice(0, 4), rows=slice(2, 4))
    whole = with_box(blank(), 3, slice(0, 4))  # IoU 0.5 with each frame-1 object
    chains = match_chains([first, whole, whole])
    assert chains == [(1, 3, 3)]
    aligned = align_triplet([first, whole, whole])
    np.testing.assert_array_equal(aligned[0], np.where(first == 1, 1, 0).astype(np.uint8))
    np.testing.assert_array_equal(aligned[1], np.where(whole == 3, 1, 0).astype(np.uint8))


def test_threshold_is_strict():
    a = with_box(blank(1, 10), 1, slice(0, 6))
    b = with_box(blank(1, 10), 2, slice(3, 10))  # IoU exactly 0.3 with a
    assert match_chains([a, b, b], iou_threshold=0.3) == []
    assert match_chains([a, b, b], iou_threshold=0.29) == [(1, 2, 2)]
    assert not align_triplet([a, b, b]).__getitem__(0).any()


def test_ties_are_broken_by_smaller_id_and_output_is_deterministic():
    first = with_box(blank(), 4, slice(0, 4))
    second = with_box(with_box(blank(), 8, slice(0, 2)), 5, slice(2, 4))  # IoU 0.5 with both 5 and 8
    third = second.copy()
    assert match_chains([first, second, third]) == [(4, 5, 5)]
    runs = [align_triplet([first, second, third], erase_unmatched=False) for _ in range(3)]
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][1], with_box(with_box(blank(), 1, slice(0, 2)), 4, slice(2, 4)))


def test_empty_frames():
    empty = [blank(), blank(), blank()]
    for result in align_triplet(empty):
        assert result.shape == (4, 12) and not result.any()
    # An object missing from the last frame only cannot be chained.
    box = with_box(blank(), 1, slice(0, 4))
    for result in align_triplet([box, box, blank()]):
        assert not result.any()
    kept = align_triplet([box, box, blank()], erase_unmatched=False)
    assert kept[0][0, 0] != kept[1][0, 0] and kept[0][0, 0] and kept[1][0, 0] and not kept[2].any()


def test_inputs_are_not_modified():
    masks = [with_box(blank(), 3, slice(0, 4)), with_box(blank(), 7, slice(1, 5)), with_box(blank(), 1, slice(9, 12))]
    copies = [mask.copy() for mask in masks]
    align_triplet(masks)
    for mask, copy in zip(masks, copies):
        np.testing.assert_array_equal(mask, copy)


def test_too_many_unmatched_objects_raise():
    first = np.arange(256, dtype=np.uint8).reshape(16, 16)  # 255 objects, all chained
    third = np.zeros((16, 16), np.uint8)
    third[0, 0] = 1  # nothing chains into frame 3
    assert len(match_chains([first, first, first])) == 255
    with pytest.raises(ValueError, match="255"):
        align_triplet([first, first, third], erase_unmatched=False)


@pytest.mark.parametrize(
    "masks, message",
    [
        ([np.zeros((2, 2), np.uint8)] * 2, "3 masks"),
        ([np.zeros((2, 2, 3), np.uint8)] * 3, r"\(H, W\)"),
        ([np.zeros((2, 2), np.int32)] * 3, "uint8"),
        ([np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), np.zeros((2, 2), np.uint8)], "differ"),
    ],
)
def test_bad_input_raises(masks, message):
    with pytest.raises(ValueError, match=message):
        align_triplet(masks)
