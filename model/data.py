"""tf.data input pipeline for Struct2depth training records (the release's ``reader.py``; the paper, section 4).

One example is one record ``<data_dir>/<folder>/<id>``: a triplet image (t0 | t1 | t2 side by side), its
``-fseg`` segmentation triplet and its ``_cam.txt`` intrinsics. The pipeline, per example:

1. a stream of record indices: every epoch a seeded permutation of **all** records (as the release permuted
   its whole file list every epoch), then a ``queue_size`` shuffle buffer inside that epoch, so every record
   appears exactly once per epoch and the first batches already span the whole list. Each element carries
   its stream position (epoch * records + rank in the epoch), which is what a resumed run skips to;
2. decodes the three files in parallel (OpenCV inside ``tf.numpy_function``), after checking each image's
   header (``formats/image_header.py``: size limit, colour). A record that fails (missing file, undecodable
   image, a header over ``MAX_IMAGE_PIXELS``, a grey triplet, frame size other than
   ``img_height x img_width``, bad ``_cam.txt``) is logged once with its path and reason, counted in
   ``RecordReport``, and skipped. It never stops the run;
3. colour augmentation on the whole triplet at once, so the three frames share the jitter (the release's
   ``reader.py``): brightness +U(-0.1, 0.1), contrast x U(0.85, 1.15), saturation x U(0.85, 1.15),
   hue +U(-0.1, 0.1), each applied with probability 0.5, then clipped to [0, 1];
4. stacks the frames on the channel axis, [H, W, 9] (t0 RGB, t1 RGB, t2 RGB);
5. a random horizontal flip (probability 0.5) of images, masks and intrinsics. The intrinsics rule is
   ``cx' = W - 1 - cx`` (``flip_rule="pixel_center"``, exact for wilddepth's pixel-centre convention, see
   ``formats/camera.py``) or the release's ``cx' = W - cx`` (``flip_rule="release"``);
6. no ImageNet normalisation: the model applies it to the depth network's input (one place);
7. batches (dropping the last incomplete batch) and prefetches.

A batch is a dict: ``images`` [B, H, W, 9] float32 in [0, 1] (augmented, the motion net's and the losses'
input), ``segmentation`` [B, H, W, 3] uint8 (channel 0 of each frame's ``-fseg``; 0 = static background),
``intrinsics`` [B, 3, 3] float32 in pixels of one frame, ``position`` [B] int64 (stream positions; the trainer
saves the next one with each checkpoint).

Random draws are stateless functions of ``seed`` and the stream position (the permutation of epoch e uses
(seed, e); the augmentation of the element at position p uses (seed, p)), so a seed fixes the whole stream
whatever the parallelism, and ``build(start_position=p)`` yields exactly the elements an uninterrupted
stream yields from position p on.

The list file is read line by line: a line that is not ``<folder> <id>``, or whose path would leave
``data_dir`` (absolute, ``..``), is reported with its line number and reason and left out; the other lines
are used. The frame size is the records' own (``manifest.json`` ``parameters``, else the images' headers)
unless given; a given size that disagrees with the records is an error naming both.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import threading
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from formats import struct2depth
from formats.image_header import check_image_header
from formats.struct2depth import RecordFormatError
from model.config import DataConfig
from model.geometry import flip_intrinsics

LOGGER = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIZE_SAMPLE = 16  # record headers read to find the frame size when there is no manifest
MAX_LOGGED_BAD_LINES = 20  # list-file lines logged one by one; the rest are counted


class NoValidRecordsError(RuntimeError):
    """The list file names no record that can be read (bad input: exit status 2)."""

    exit_code = 2


class FrameSizeError(ValueError):
    """The frame size cannot be found from the records, or a given size disagrees with theirs."""


class RecordReport:
    """Thread-safe tally of skipped records: each bad record is logged once, every skip is counted.
    ``bad_lines`` holds the list-file lines that were left out ("<file>:<line>: <reason>")."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reasons: Dict[str, str] = {}  # record "<folder> <id>" -> reason of its first failure
        self.skips = 0  # skipped examples, repeats over epochs included
        self.decoded = 0  # successfully decoded examples
        self.bad_lines: List[str] = []

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
        text = f"{self.decoded} examples decoded, {self.skips} skipped ({len(self.reasons)} distinct bad records)"
        return text + (f"; {len(self.bad_lines)} list lines left out" if self.bad_lines else "")


# --- the list file --------------------------------------------------------------------------------------


def check_entry(tokens: List[str]) -> Tuple[str, str]:
    """``(folder, id)`` of one list line's tokens; RecordFormatError with the reason if the line is not two
    fields or its record path would leave ``data_dir`` (absolute path, drive, ``..``, separator in the id)."""
    if len(tokens) != 2:
        raise RecordFormatError(f"expected '<folder> <id>', got {len(tokens)} fields {' '.join(tokens)!r}")
    folder, record_id = tokens
    if PurePosixPath(folder).is_absolute() or PureWindowsPath(folder).is_absolute() or PureWindowsPath(folder).drive:
        raise RecordFormatError(f"folder {folder!r} is an absolute path; record paths must stay inside data_dir")
    if ".." in PurePosixPath(folder.replace("\\", "/")).parts:
        raise RecordFormatError(f"folder {folder!r} contains '..'; record paths must stay inside data_dir")
    if record_id in (".", "..") or "/" in record_id or "\\" in record_id:
        raise RecordFormatError(f"id {record_id!r} is not a plain file name; record paths must stay inside data_dir")
    return folder, record_id


def read_entries(config: DataConfig, report: Optional[RecordReport] = None) -> List[Tuple[str, str]]:
    """The usable ``(folder, id)`` lines of ``<data_dir>/<input_file>.txt``.

    A bad line is logged with its line number and reason, added to ``report.bad_lines`` and left out; the
    others are used. Raises RecordFormatError if the file is missing, NoValidRecordsError if no line is usable.
    """
    list_path = config.list_path
    if not list_path.is_file():
        raise RecordFormatError(f"{list_path}: list file not found")
    entries, problems = [], []
    for number, line in enumerate(list_path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(check_entry(line.split()))
        except RecordFormatError as error:
            problems.append(f"{list_path}:{number}: {error}")
    for problem in problems[:MAX_LOGGED_BAD_LINES]:
        LOGGER.warning("list line left out: %s", problem)
    if len(problems) > MAX_LOGGED_BAD_LINES:
        LOGGER.warning("... and %d more bad lines in %s", len(problems) - MAX_LOGGED_BAD_LINES, list_path)
    if report is not None:
        report.bad_lines.extend(problems)
    if not entries:
        detail = (":\n  " + "\n  ".join(problems[:5])) if problems else ""
        raise NoValidRecordsError(f"{list_path} lists no usable records{detail}")
    return entries


# --- the frame size -------------------------------------------------------------------------------------


def _manifest_size(data_dir: Path) -> Optional[Tuple[int, int, str]]:
    """(height, width, source) from ``manifest.json`` ``parameters``, or None without a usable manifest."""
    path = data_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        parameters = json.loads(path.read_text()).get("parameters") or {}
        height, width = int(parameters["height"]), int(parameters["width"])
        if height <= 0 or width <= 0:
            raise ValueError(f"size {width}x{height} is not positive")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        LOGGER.warning("%s gives no frame size (%s); reading the images instead", path, error)
        return None
    return height, width, f"{path} parameters"


def _image_size(config: DataConfig, entries) -> Tuple[int, int, str]:
    """(height, width, source): the most common frame size among the headers of up to SIZE_SAMPLE records
    spread over the list (a triplet image is 3 frames wide)."""
    step = max(1, len(entries) // SIZE_SAMPLE)
    sizes, reasons = collections.Counter(), []
    for folder, record_id in entries[::step][:SIZE_SAMPLE]:
        image_path = struct2depth.record_paths(config.data_dir, folder, record_id, config.file_extension)[0]
        try:
            with open(image_path, "rb") as handle:
                header = check_image_header(handle.read(65536), str(image_path))
            sizes[struct2depth.check_triplet_size(image_path, header.height, header.width)] += 1
        except (OSError, ValueError) as error:  # RecordFormatError is a ValueError
            reasons.append(str(error))
    if not sizes:
        raise NoValidRecordsError(
            f"cannot find the frame size of the records of {config.list_path}: no readable image header among "
            f"{len(reasons)} tried:\n  " + "\n  ".join(reasons[:5])
        )
    (height, width), count = sizes.most_common(1)[0]
    return height, width, f"the image headers ({count} of {sum(sizes.values())} sampled records)"


def resolve_frame_size(config: DataConfig, entries=None) -> DataConfig:
    """``config`` with ``img_height``/``img_width`` set to the records' frame size (``manifest.json``
    ``parameters`` width/height, else the image headers). A given size must agree: FrameSizeError otherwise."""
    entries = entries if entries is not None else read_entries(config)
    found = _manifest_size(Path(config.data_dir)) or _image_size(config, entries)
    height, width, source = found
    given = (config.img_height, config.img_width)
    if any(value is not None and value != record for value, record in zip(given, (height, width))):
        shown = "x".join("?" if value is None else str(value) for value in (config.img_width, config.img_height))
        raise FrameSizeError(
            f"--img_width/--img_height give {shown} (WxH) but the records of {config.data_dir} are {width}x{height} "
            f"(from {source}); omit the flags to use the records' size"
        )
    if given != (height, width):
        LOGGER.info("frame size %dx%d (WxH) from %s", width, height, source)
    return dataclasses.replace(config, img_height=height, img_width=width)


# --- one record -----------------------------------------------------------------------------------------


def _read_image(path: Path, frame_size: Tuple[int, int], colour: bool) -> np.ndarray:
    """Check the header (size limit, three frames of ``frame_size`` (height, width) side by side as
    ``struct2depth.check_triplet_size`` rules, colour), then decode to RGB uint8."""
    if not path.is_file():
        raise RecordFormatError(f"{path}: file not found")
    encoded = path.read_bytes()
    try:
        header = check_image_header(encoded, str(path))
    except ValueError as error:
        raise RecordFormatError(str(error)) from None
    struct2depth.check_triplet_size(path, header.height, header.width, *frame_size)
    if colour and header.grey:
        raise RecordFormatError(f"{path}: grey image ({header.channels} channel(s)); training needs RGB frames")
    return struct2depth.decode_rgb(encoded, str(path))


def decode_record(config: DataConfig, folder: str, record_id: str):
    """Read one record with OpenCV -> (triplet [H, 3W, 3] uint8, seg [H, 3W, 3] uint8, K [3, 3] float32).

    Raises RecordFormatError with the reason if any file is missing, unreadable, grey (the triplet), too
    large by its header, or of the wrong size. ``config`` must have its frame size (resolve_frame_size).
    """
    image_path, seg_path, cam_path = struct2depth.record_paths(
        config.data_dir, folder, record_id, config.file_extension
    )
    frame_size = (config.img_height, config.img_width)
    triplet = _read_image(image_path, frame_size, colour=True)
    segmentation = _read_image(seg_path, frame_size, colour=False)  # ids are read from channel 0; grey is fine
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
    return tf.concat([triplet[:, k * width : (k + 1) * width] for k in range(3)], axis=-1)


def epoch_order(count: int, seed: int, epoch, shuffle: bool = True) -> tf.Tensor:
    """Record indices of one epoch [count] int64: a permutation seeded by (seed, epoch), or 0..count-1."""
    order = tf.range(count, dtype=tf.int64)
    if not shuffle:
        return order
    return tf.random.experimental.stateless_shuffle(
        order, seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    )


class RecordDataset:
    """Builds the training ``tf.data.Dataset`` and keeps the report of skipped records and list lines.

    ``self.config`` is the given config with the frame size resolved from the records."""

    def __init__(self, config: DataConfig):
        self.report = RecordReport()
        self.entries = read_entries(config, self.report)
        self.config = resolve_frame_size(config, self.entries)

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
        shown = "\n  ".join(reasons[:5])
        raise NoValidRecordsError(
            f"none of the {len(reasons)} records of {self.config.list_path} can be read "
            f"(img_height={self.config.img_height}, img_width={self.config.img_width}, "
            f"file_extension={self.config.file_extension}):\n  {shown}"
        )

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

    def _decode(self, position, index):
        triplet, segmentation, intrinsics, valid = tf.numpy_function(
            self._decode_numpy, [index], [tf.uint8, tf.uint8, tf.float32, tf.bool], stateful=False
        )
        height, width = self.config.img_height, 3 * self.config.img_width
        triplet.set_shape([height, width, 3])
        segmentation.set_shape([height, width, 3])
        intrinsics.set_shape([3, 3])
        valid.set_shape([])
        return {
            "triplet": triplet,
            "segmentation": segmentation,
            "intrinsics": intrinsics,
            "valid": valid,
            "position": position,
        }

    def _augment(self, example):
        config = self.config
        seed = tf.stack([tf.constant(config.seed, tf.int64), example["position"]])
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
                lambda: (
                    tf.reverse(images, [1]),
                    tf.reverse(segmentation, [1]),
                    flip_intrinsics(intrinsics, config.img_width, config.flip_rule),
                ),
                lambda: (images, segmentation, intrinsics),
            )
        return {
            "images": images,
            "segmentation": segmentation,
            "intrinsics": intrinsics,
            "position": example["position"],
        }

    def index_stream(self, start_position: int = 0) -> tf.data.Dataset:
        """(position, record index) pairs from stream position ``start_position`` on (see the module docstring).

        Epoch e holds positions e*N .. e*N+N-1 (N records): the permutation of (seed, e), passed through a
        ``queue_size`` shuffle buffer (fixed seed, inside the epoch). Starting at position p builds epoch
        p // N directly and skips p % N elements of it, so resuming costs at most one epoch of indices.
        """
        config, count = self.config, len(self.entries)
        start_position = int(start_position)
        if start_position < 0:
            raise ValueError(f"start_position must be >= 0, got {start_position}")
        first_epoch = start_position // count
        last_epoch = np.iinfo(np.int64).max if config.repeat else 1
        buffer = min(config.queue_size, count)

        def one_epoch(epoch):
            order = tf.data.Dataset.from_tensor_slices(epoch_order(count, config.seed, epoch, config.shuffle))
            if config.shuffle and buffer > 1:
                order = order.shuffle(buffer, seed=config.seed, reshuffle_each_iteration=False)
            positions = tf.data.Dataset.range(epoch * count, (epoch + 1) * count)
            return tf.data.Dataset.zip((positions, order))

        epochs = tf.data.Dataset.range(first_epoch, last_epoch)
        return epochs.flat_map(one_epoch).skip(start_position - first_epoch * count)

    def build(self, start_position: int = 0) -> tf.data.Dataset:
        """The batched, prefetched dataset of training examples from stream position ``start_position``."""
        config = self.config
        dataset = self.index_stream(start_position)
        dataset = dataset.map(self._decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.filter(lambda example: example["valid"])
        dataset = dataset.map(self._augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(config.batch_size, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(config: DataConfig, start_position: int = 0) -> Tuple[tf.data.Dataset, RecordDataset]:
    """Validate that records are readable, then return (dataset, reader); ``reader.report`` tallies skips."""
    reader = RecordDataset(config)
    reader.check_readable()
    return reader.build(start_position), reader
