"""The "possibly mobile" object mask of docs/release.md §1.8, computed in TensorFlow from the ``-fseg`` ids.

Per frame: every id != 0 whose pixel count is > ``min_object_area`` (20) becomes a mask, optionally replaced by
its axis-aligned bounding box; the frame mask is the union over ids. The result gates the residual
translation field after a (2d+1) x (2d+1) max-pool dilation (``dilate``).
"""

from __future__ import annotations

import tensorflow as tf

MIN_OBJECT_AREA = 20
NUM_IDS = 256


def mobile_mask(segmentation: tf.Tensor, boxify: bool = True, min_object_area: int = MIN_OBJECT_AREA) -> tf.Tensor:
    """Object mask per frame.

    Args:
      segmentation: [B, H, W, F] integer ids in 0..255 (channel 0 of each of F frames; 0 = static background).
      boxify: replace each object by its bounding box (rows with any pixel x columns with any pixel).
      min_object_area: objects with at most this many pixels are dropped.
    Returns: float32 [B, H, W, F], 1 on (boxes of) objects.
    """
    ids = tf.cast(segmentation, tf.int32)
    shape = tf.shape(ids)
    batch, height, width, frames = shape[0], shape[1], shape[2], shape[3]
    # One "image" per (sample, frame): [N, H, W] with N = B * F.
    ids = tf.reshape(tf.transpose(ids, [0, 3, 1, 2]), [-1, height, width])
    images = batch * frames
    image_index = tf.range(images)[:, tf.newaxis, tf.newaxis]
    row_index = tf.range(height)[tf.newaxis, :, tf.newaxis]
    column_index = tf.range(width)[tf.newaxis, tf.newaxis, :]

    def per_line_counts(line_index, lines):
        """[N, lines, 256] pixel count of each id in each row (or column)."""
        flat = (image_index * lines + line_index) * NUM_IDS + ids
        counts = tf.math.bincount(
            tf.reshape(flat, [-1]),
            minlength=images * lines * NUM_IDS,
            maxlength=images * lines * NUM_IDS,
            dtype=tf.int32,
        )
        return tf.reshape(counts, [images, lines, NUM_IDS])

    rows = per_line_counts(row_index, height)  # [N, H, 256]
    area = tf.reduce_sum(rows, axis=1)  # [N, 256]
    keep = tf.logical_and(area > min_object_area, tf.range(NUM_IDS)[tf.newaxis, :] != 0)
    if boxify:
        columns = per_line_counts(column_index, width)  # [N, W, 256]
        kept = tf.cast(keep, tf.float32)[:, tf.newaxis, :]
        row_any = tf.cast(rows > 0, tf.float32) * kept
        column_any = tf.cast(columns > 0, tf.float32)
        mask = tf.cast(tf.einsum("nhk,nwk->nhw", row_any, column_any) > 0, tf.float32)
    else:
        mask = tf.cast(tf.gather(keep, ids, batch_dims=1), tf.float32)
    return tf.transpose(tf.reshape(mask, [batch, frames, height, width]), [0, 2, 3, 1])


def dilate(mask: tf.Tensor, foreground_dilation: int) -> tf.Tensor:
    """Max-pool dilation of a float mask [B, H, W, C] with a (2d+1)^2 window, stride 1, SAME padding."""
    if foreground_dilation <= 0:
        return mask
    window = 2 * foreground_dilation + 1
    return tf.nn.max_pool2d(mask, window, 1, "SAME")
