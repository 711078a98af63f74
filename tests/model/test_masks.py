"""Mobile-object mask of docs/release.md §1.8: ids != 0, area > 20 px, bounding boxes, union per frame, dilation."""

import numpy as np
import tensorflow as tf

from model.masks import dilate, mobile_mask


def _segmentation(height=12, width=16):
    seg = np.zeros((1, height, width, 3), np.uint8)
    # Frame 0: an L-shaped object (id 7, 21 px) and a tiny one (id 9, 20 px -> dropped).
    seg[0, 1:8, 1, 0] = 7  # 7 px column
    seg[0, 7, 2:16, 0] = 7  # + 14 px row = 21 px
    seg[0, 9:11, 0:10, 0] = 9  # 20 px
    # Frame 1: two objects, union; frame 2: background only (id 0 everywhere).
    seg[0, 0:5, 0:5, 1] = 3  # 25 px
    seg[0, 6:12, 10:14, 1] = 200  # 24 px
    return seg


def test_boxes_drop_small_objects_and_take_union():
    mask = mobile_mask(tf.constant(_segmentation()), boxify=True).numpy()[0]
    expected_0 = np.zeros((12, 16))
    expected_0[1:8, 1:16] = 1  # bounding box of the L shape; the 20 px object is gone
    np.testing.assert_array_equal(mask[..., 0], expected_0)
    expected_1 = np.zeros((12, 16))
    expected_1[0:5, 0:5] = 1
    expected_1[6:12, 10:14] = 1
    np.testing.assert_array_equal(mask[..., 1], expected_1)
    np.testing.assert_array_equal(mask[..., 2], 0)


def test_without_boxes_the_mask_is_the_object_pixels():
    seg = _segmentation()
    mask = mobile_mask(tf.constant(seg), boxify=False).numpy()[0]
    np.testing.assert_array_equal(mask[..., 0], seg[0, :, :, 0] == 7)
    np.testing.assert_array_equal(mask[..., 1], seg[0, :, :, 1] > 0)


def test_batch_elements_are_independent():
    seg = np.concatenate([_segmentation(), np.zeros_like(_segmentation())], axis=0)
    mask = mobile_mask(tf.constant(seg)).numpy()
    np.testing.assert_array_equal(mask[1], 0)
    np.testing.assert_array_equal(mask[0], mobile_mask(tf.constant(seg[:1])).numpy()[0])


def test_dilation_is_a_square_max_pool():
    mask = np.zeros((1, 20, 20, 1), np.float32)
    mask[0, 10, 10, 0] = 1
    dilated = dilate(tf.constant(mask), 2).numpy()[0, :, :, 0]
    expected = np.zeros((20, 20))
    expected[8:13, 8:13] = 1  # (2 * 2 + 1)^2 window
    np.testing.assert_array_equal(dilated, expected)
    np.testing.assert_array_equal(dilate(tf.constant(mask), 0).numpy(), mask)
    corner = np.zeros((1, 20, 20, 1), np.float32)
    corner[0, 0, 0, 0] = 1
    assert dilate(tf.constant(corner), 8).numpy()[0, :, :, 0].sum() == 9 * 9  # clipped at the border (SAME)
