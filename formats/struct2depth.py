"""The Struct2depth training-record format (docs/release.md §1).

A record ``<folder>/<id>`` consists of three files:
- ``<id>.png``: three RGB frames side by side, t0 | t1 | t2, each ``height x width``;
- ``<id>-fseg.png``: the same geometry, object ids (0 = static background) in all three channels;
- ``<id>_cam.txt``: one line, 9 comma-separated floats, row-major K in pixels of one frame.
A list file (``train.txt``, ``val.txt``) holds ``<folder> <id>`` per line.

Images in memory are RGB uint8 arrays; OpenCV (BGR on disk order) is used for encoding so files are
ordinary RGB PNGs. Encoding is deterministic: re-running a writer gives identical bytes.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from formats import atomic
from formats.camera import validate_intrinsics

SAMPLE_ID_DIGITS = 10
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


class RecordFormatError(ValueError):
    """A Struct2depth file is missing, unreadable, or has the wrong size or content."""


def sample_id(index: int) -> str:
    """Zero-padded 10-digit id, e.g. 2 -> '0000000002'."""
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    return f"{index:0{SAMPLE_ID_DIGITS}d}"


def record_paths(root: os.PathLike, folder: str, record_id: str, extension: str = "png") -> Tuple[Path, Path, Path]:
    """(triplet image, segmentation image, intrinsics) paths of one record."""
    base = Path(root) / folder
    return base / f"{record_id}.{extension}", base / f"{record_id}-fseg.{extension}", base / f"{record_id}_cam.txt"


# --- encoding -------------------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB (H, W, 3) or grey (H, W) uint8 array as PNG bytes. An all-zero image (the ``-fseg`` of a
    record without objects) is encoded once per shape: the same bytes, without a PNG encode per record."""
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {array.dtype}")
    if not array.any():
        return _blank_png(array.shape)
    return _encode(array)


@functools.lru_cache(maxsize=16)
def _blank_png(shape: Tuple[int, ...]) -> bytes:
    return _encode(np.zeros(shape, np.uint8))


def _encode(array: np.ndarray) -> bytes:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array, PNG_PARAMS)
    if not ok:
        raise RecordFormatError("OpenCV failed to encode PNG")
    return buffer.tobytes()


def decode_rgb(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode PNG/JPEG bytes to an RGB uint8 (H, W, 3) array; raises RecordFormatError if unreadable."""
    if not data:
        raise RecordFormatError(f"{source}: empty file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RecordFormatError(f"{source}: not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise RecordFormatError(f"{path}: file not found")
    return decode_rgb(path.read_bytes(), str(path))


# --- triplets -------------------------------------------------------------------------------------------


def pack_triplet(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Place three equally sized (H, W, 3) frames side by side -> (H, 3W, 3)."""
    if len(frames) != 3:
        raise ValueError(f"a triplet needs 3 frames, got {len(frames)}")
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames of a triplet differ in shape: {sorted(shapes)}")
    return np.concatenate(list(frames), axis=1)


def unpack_triplet(image: np.ndarray, width: int | None = None) -> List[np.ndarray]:
    """Split an (H, 3W, C) triplet into its three (H, W, C) frames (t0, t1, t2)."""
    total_width = image.shape[1]
    if width is None:
        if total_width % 3:
            raise RecordFormatError(f"triplet width {total_width} is not divisible by 3")
        width = total_width // 3
    if total_width != 3 * width:
        raise RecordFormatError(f"triplet width {total_width} != 3 x frame width {width}")
    return [image[:, k * width : (k + 1) * width] for k in range(3)]


def segmentation_triplet(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Three (H, W) instance-id masks -> the (H, 3W, 3) uint8 ``-fseg`` image (ids in all channels)."""
    packed = []
    for mask in masks:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"masks must be (H, W), got shape {mask.shape}")
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError("object ids must lie in 0..255 to fit the -fseg format")
        packed.append(np.repeat(mask.astype(np.uint8)[:, :, None], 3, axis=2))
    return pack_triplet(packed)


# --- intrinsics -----------------------------------------------------------------------------------------


def format_intrinsics(intrinsics: np.ndarray) -> str:
    """One line of 9 comma-separated floats (row-major K), using Python's shortest round-trip repr."""
    matrix = validate_intrinsics(intrinsics)
    return ",".join(repr(float(value)) for value in matrix.reshape(-1)) + "\n"


def parse_intrinsics(text: str, source: str = "<text>") -> np.ndarray:
    """Parse the first line of a ``_cam.txt`` into a 3x3 float64 K."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    try:
        values = [float(token) for token in line.split(",")]
    except ValueError as error:
        raise RecordFormatError(f"{source}: intrinsics are not 9 comma-separated floats: {line!r}") from error
    if len(values) != 9:
        raise RecordFormatError(f"{source}: expected 9 comma-separated floats, got {len(values)}")
    try:
        return validate_intrinsics(np.array(values).reshape(3, 3))
    except ValueError as error:
        raise RecordFormatError(f"{source}: {error}") from error


def read_intrinsics(path: os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise RecordFormatError(f"{path}: file not found")
    return parse_intrinsics(path.read_text(), str(path))


# --- whole records --------------------------------------------------------------------------------------


def write_record(
    root: os.PathLike,
    folder: str,
    record_id: str,
    frames: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    intrinsics: np.ndarray,
    batch: Optional[atomic.Batch] = None,
) -> None:
    """Atomically write one record's three files. The image is renamed into place last, so a record whose
    image exists is complete (segmentation and intrinsics are already in place). With ``batch`` the files
    join it and appear when the caller commits it (many records, one flush); without, they appear now."""
    image_path, seg_path, cam_path = record_paths(root, folder, record_id)
    triplet = pack_triplet(frames)
    segmentation = segmentation_triplet(masks)
    if segmentation.shape[:2] != triplet.shape[:2]:
        raise ValueError(f"segmentation {segmentation.shape[:2]} and image {triplet.shape[:2]} differ in size")
    with contextlib.nullcontext(batch) if batch is not None else atomic.Batch() as files:
        files.write_bytes(seg_path, encode_png(segmentation))
        files.write_text(cam_path, format_intrinsics(intrinsics))
        files.write_bytes(image_path, encode_png(triplet))


def check_triplet_size(
    source, height: int, width: int, frame_height: int | None = None, frame_width: int | None = None
) -> Tuple[int, int]:
    """The one size rule of a record's images (the triplet and its ``-fseg``): three frames of
    ``frame_height x frame_width`` side by side, i.e. ``height == frame_height`` and ``width == 3 * frame_width``.
    A frame size not given is the image's own (its width must then divide by 3). Returns (frame_height,
    frame_width); RecordFormatError naming ``source`` otherwise. Used by ``read_record`` and the training reader."""
    if frame_width is None:
        if width % 3:
            raise RecordFormatError(f"{source}: image width {width} is not 3 frames wide (not divisible by 3)")
        frame_width = width // 3
    frame_height = height if frame_height is None else frame_height
    if (height, width) != (frame_height, 3 * frame_width):
        raise RecordFormatError(
            f"{source}: image is {width}x{height} (WxH), expected 3 frames of "
            f"{frame_width}x{frame_height} = {3 * frame_width}x{frame_height}"
        )
    return frame_height, frame_width


def read_record(root: os.PathLike, folder: str, record_id: str, width: int | None = None, extension: str = "png"):
    """Read one record -> (frames [3 x (H, W, 3) uint8], masks [3 x (H, W) uint8 from channel 0], K).

    ``width``: the frame width the images must have (None: a third of the triplet's); sizes follow
    :func:`check_triplet_size`."""
    image_path, seg_path, cam_path = record_paths(root, folder, record_id, extension)
    triplet = read_rgb(image_path)
    frame_height, frame_width = check_triplet_size(image_path, *triplet.shape[:2], frame_width=width)
    segmentation = read_rgb(seg_path)
    check_triplet_size(seg_path, *segmentation.shape[:2], frame_height, frame_width)
    frames = unpack_triplet(triplet, frame_width)
    masks = [frame[:, :, 0] for frame in unpack_triplet(segmentation, frame_width)]
    return frames, masks, read_intrinsics(cam_path)


def parse_list(text: str, source: str = "<text>") -> List[Tuple[str, str]]:
    """Parse ``train.txt``-style lines ``<folder> <id>`` (blank lines ignored)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 2:
            raise RecordFormatError(f"{source}:{number}: expected '<folder> <id>', got {line!r}")
        entries.append((tokens[0], tokens[1]))
    return entries


def read_list(path: os.PathLike) -> List[Tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise RecordFormatError(f"{path}: list file not found")
    return parse_list(path.read_text(), str(path))


def write_list(path: os.PathLike, entries: Iterable[Tuple[str, str]]) -> None:
    """Atomically write a list file, one ``<folder> <id>`` per line, in the given order."""
    atomic.write_text(path, "".join(f"{folder} {record_id}\n" for folder, record_id in entries))
