"""tf.data input pipeline for Struct2depth training records (reference spec sections 1.1-1.4 and 1.7).

One example is one record ``<data_dir>/<folder>/<id>``: a triplet image (t0 | t1 | t2 side by side), its
``-fseg`` segmentation triplet and its ``_cam.txt`` intrinsics. The pipeline, per example:

1. shuffles record indices (seeded, re-shuffled every epoch; ``queue_size`` records of buffer);
2. decodes the three files in parallel (OpenCV inside ``tf.numpy_function``). A record that fails (missing
   file, undecodable image, frame size other than ``img_height x img_width``, bad ``_cam.txt``) is logged once
   with its path and reason, counted in ``RecordReport``, and skipped. It never stops the run;
3. colour augmentation on the whole triplet at once, so the three frames share the jitter (spec 1.7 step 3):
   brightness +U(-0.1, 0.1), contrast x U(0.85, 1.15), saturation x U(0.85, 1.15), hue +U(-0.1, 0.1), each
   applied with probability 0.5, then clipped to [0, 1];
4. stacks the frames on the channel axis, [H, W, 9] (t0 RGB, t1 RGB, t2 RGB);
5. a random horizontal flip (probability 0.5) of images, masks and intrinsics. The intrinsics rule is
   ``cx' = W - 1 - cx`` (``flip_rule="pixel_center"``, exact for wilddepth's pixel-centre convention, see
   ``formats/camera.py``) or the release's ``cx' = W - cx`` (``flip_rule="release"``);
6. ImageNet normalisation for the depth network's input only (``images_normalized``);
7. batches (dropping the last incomplete batch) and prefetches.

A batch is a dict: ``images`` [B, H, W, 9] float32 in [0, 1] (augmented, the motion net's and the losses'
input), ``images_normalized`` [B, H, W, 9] float32, ``segmentation`` [B, H, W, 3] uint8 (channel 0 of each
frame's ``-fseg``; 0 = static background), ``intrinsics`` [B, 3, 3] float32 in pixels of one frame.

Random draws come from ``tf.data.Dataset.random(seed)`` and stateless ops, so a seed fixes the whole
stream, whatever the parallelism.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf

from formats import struct2depth
from formats.struct2depth import RecordFormatError
from model.depth_motion_model import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalize  # noqa: F401 (re-exported)
from model.geometry import flip_intrinsics

LOGGER = logging.getLogger(__name__)

FLIP_RULES = ("pixel_center", "release")


class NoValidRecordsError(RuntimeError):
    """The list file names no record that can be read."""


@dataclasses.dataclass
class DataConfig:
    """Reader settings. Sizes in pixels of one frame; probabilities in [0, 1]."""

    data_dir: str
    input_file: str = "train"            # list file <data_dir>/<input_file>.txt
    file_extension: str = "png"          # png or jpg, for the triplet and the -fseg image
    img_height: int = 128
    img_width: int = 416
    batch_size: int = 4
    queue_size: int = 2000               # shuffle buffer in records (the release's min_after_dequeue)
    seed: int = 8964
    shuffle: bool = True
    repeat: bool = True                  # cycle forever (training); False: one pass
    color_probability: float = 0.5       # per colour op; 0 disables colour augmentation
    flip_probability: float = 0.5        # 0 disables the random flip
    flip_rule: str = "pixel_center"      # "pixel_center": cx' = W-1-cx; "release": cx' = W-cx

    @classmethod
    def from_params(cls, data_dir: str, params: dict) -> "DataConfig":
        """Build from the ``train:`` section of params.yaml; unrelated keys are ignored."""
        names = {field.name for field in dataclasses.fields(cls)} - {"data_dir"}
        return cls(data_dir=str(data_dir), **{key: value for key, value in params.items() if key in names})

    def __post_init__(self):
        if self.file_extension not in ("png", "jpg"):
            raise ValueError(f"file_extension must be png or jpg, got {self.file_extension!r}")
        if self.flip_rule not in FLIP_RULES:
            raise ValueError(f"flip_rule must be one of {FLIP_RULES}, got {self.flip_rule!r}")
        if self.img_height <= 0 or self.img_width <= 0 or self.batch_size <= 0:
            raise ValueError("img_height, img_width and batch_size must be positive")


class RecordReport:
    """Thread-safe tally of skipped records: each bad record is logged once, every skip is counted."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reasons: Dict[str, str] = {}   # record "<folder> <id>" -> reason of its first failure
        self.skips = 0                      # skipped examples, repeats over epochs included
        self.decoded = 0                    # successfully decoded examples

    def skip(self, record: str, reason: str) -> None:
        with self._lock:
            self.skips += 1
            first = record not in self.reasons
            self.reasons.setdefault(record, reason)
        if first:
            LOGGER.warning("skipping record %s: %s", record, reason)

    def ok(self) -> None:
        with self._lock:
            self.decoded += 1

    def summary(self) -> str:
        return f"{self.decoded} examples decoded, {self.skips} skipped ({len(self.reasons)} distinct bad records)"


def read_entries(config: DataConfig) -> List[Tuple[str, str]]:
    """The ``(folder, id)`` lines of ``<data_dir>/<input_file>.txt``; raises if it is missing or empty."""
    list_path = Path(config.data_dir) / f"{config.input_file}.txt"
    entries = struct2depth.read_list(list_path)
    if not entries:
        raise NoValidRecordsError(f"{list_path} lists no records")
    return entries


def decode_record(config: DataConfig, folder: str, record_id: str):
    """Read one record with OpenCV -> (triplet [H, 3W, 3] uint8, seg [H, 3W, 3] uint8, K [3, 3] float32).

    Raises RecordFormatError with the reason if any file is missing, unreadable or of the wrong size.
    """
    image_path, seg_path, cam_path = struct2depth.record_paths(
        config.data_dir, folder, record_id, config.file_extension)
    triplet = struct2depth.read_rgb(image_path)
    expected = (config.img_height, 3 * config.img_width)
    if triplet.shape[:2] != expected:
        raise RecordFormatError(
            f"{image_path}: image is {triplet.shape[1]}x{triplet.shape[0]} (WxH), expected 3 frames of "
            f"{config.img_width}x{config.img_height} = {expected[1]}x{expected[0]}")
    segmentation = struct2depth.read_rgb(seg_path)
    if segmentation.shape != triplet.shape:
        raise RecordFormatError(f"{seg_path}: size {segmentation.shape} differs from image {triplet.shape}")
    intrinsics = struct2depth.read_intrinsics(cam_path).astype(np.float32)
    return triplet, segmentation, intrinsics


def _color_augment(triplet: tf.Tensor, seed: tf.Tensor, probability: float) -> tf.Tensor:
    """Release colour jitter on the whole [H, 3W, 3] float triplet (one draw shared by the 3 frames)."""
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    apply = tf.random.stateless_uniform([4], seeds[0]) < probability

    def maybe(index, function, image):
        return tf.cond(apply[index], lambda: function(image), lambda: image)

    image = maybe(0, lambda x: tf.image.stateless_random_brightness(x, 0.1, seeds[1]), triplet)
    image = maybe(1, lambda x: tf.image.stateless_random_contrast(x, 0.85, 1.15, seeds[2]), image)
    image = maybe(2, lambda x: tf.image.stateless_random_saturation(x, 0.85, 1.15, seeds[3]), image)
    image = maybe(3, lambda x: tf.image.stateless_random_hue(x, 0.1, seeds[4]), image)
    return tf.clip_by_value(image, 0.0, 1.0)


def _stack_frames(triplet: tf.Tensor, width: int) -> tf.Tensor:
    """[H, 3W, C] -> [H, W, 3C] with the frames in temporal order on the channel axis."""
    return tf.concat([triplet[:, k * width:(k + 1) * width] for k in range(3)], axis=-1)


class RecordDataset:
    """Builds the training ``tf.data.Dataset`` and keeps the report of skipped records."""

    def __init__(self, config: DataConfig):
        self.config = config
        self.entries = read_entries(config)
        self.report = RecordReport()

    def __len__(self) -> int:
        return len(self.entries)

    def check_readable(self) -> None:
        """Decode records eagerly until one is valid; raise NoValidRecordsError if none is.

        Called before training so a wrongly sized or empty data set fails at once with the reasons
        instead of stalling the input pipeline.
        """
        reasons = []
        for folder, record_id in self.entries:
            try:
                decode_record(self.config, folder, record_id)
                return
            except RecordFormatError as error:
                reasons.append(f"{folder} {record_id}: {error}")
        list_path = Path(self.config.data_dir) / f"{self.config.input_file}.txt"
        shown = "\n  ".join(reasons[:5])
        raise NoValidRecordsError(
            f"none of the {len(reasons)} records of {list_path} can be read "
            f"(img_height={self.config.img_height}, img_width={self.config.img_width}, "
            f"file_extension={self.config.file_extension}):\n  {shown}")

    def _decode_numpy(self, index):
        folder, record_id = self.entries[int(index)]
        height, width = self.config.img_height, 3 * self.config.img_width
        try:
            triplet, segmentation, intrinsics = decode_record(self.config, folder, record_id)
        except (RecordFormatError, OSError, ValueError) as error:
            self.report.skip(f"{folder} {record_id}", str(error))
            blank = np.zeros((height, width, 3), np.uint8)
            return blank, blank, np.eye(3, dtype=np.float32), False
        self.report.ok()
        return triplet, segmentation, intrinsics, True

    def _decode(self, index):
        triplet, segmentation, intrinsics, valid = tf.numpy_function(
            self._decode_numpy, [index], [tf.uint8, tf.uint8, tf.float32, tf.bool], stateful=False)
        height, width = self.config.img_height, 3 * self.config.img_width
        triplet.set_shape([height, width, 3])
        segmentation.set_shape([height, width, 3])
        intrinsics.set_shape([3, 3])
        valid.set_shape([])
        return {"triplet": triplet, "segmentation": segmentation, "intrinsics": intrinsics, "valid": valid}

    def _augment(self, example, seed):
        config = self.config
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        triplet = tf.image.convert_image_dtype(example["triplet"], tf.float32)  # / 255
        if config.color_probability > 0:
            triplet = _color_augment(triplet, seeds[0], config.color_probability)
        images = _stack_frames(triplet, config.img_width)
        segmentation = _stack_frames(example["segmentation"], config.img_width)[:, :, 0::3]
        intrinsics = example["intrinsics"]
        if config.flip_probability > 0:
            flip = tf.random.stateless_uniform([], seeds[1]) < config.flip_probability
            images, segmentation, intrinsics = tf.cond(
                flip,
                lambda: (tf.reverse(images, [1]), tf.reverse(segmentation, [1]),
                         flip_intrinsics(intrinsics, config.img_width, config.flip_rule)),
                lambda: (images, segmentation, intrinsics))
        return {
            "images": images,
            "images_normalized": imagenet_normalize(images),
            "segmentation": segmentation,
            "intrinsics": intrinsics,
        }

    def build(self) -> tf.data.Dataset:
        """The batched, prefetched dataset of training examples (see the module docstring)."""
        config = self.config
        dataset = tf.data.Dataset.range(len(self.entries))
        if config.shuffle:
            buffer = max(1, min(config.queue_size, len(self.entries)))
            dataset = dataset.shuffle(buffer, seed=config.seed, reshuffle_each_iteration=True)
        if config.repeat:
            dataset = dataset.repeat()
        dataset = dataset.map(self._decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.filter(lambda example: example["valid"])
        randoms = tf.data.Dataset.random(seed=config.seed)
        dataset = tf.data.Dataset.zip((dataset, randoms))
        dataset = dataset.map(lambda example, seed: self._augment(example, tf.stack([seed, tf.constant(0, tf.int64)])),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(config.batch_size, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(config: DataConfig) -> Tuple[tf.data.Dataset, RecordDataset]:
    """Validate that records are readable, then return (dataset, reader); ``reader.report`` tallies skips."""
    reader = RecordDataset(config)
    reader.check_readable()
    return reader.build(), reader
