"""Sources with one image file per frame: KITTI raw, Cityscapes sequences, folders of ordered frames.

Each source is two DoFns: a *lister* that turns the ``--input`` root into one element per sequence, and a
*planner* that reads the sequence's calibration and timestamps and emits one ``FrameRef`` per sampled
frame (tagged outputs ``dead_letter`` and ``filtered`` carry rejected and deliberately skipped inputs).
``DecodeFrame`` then reads, decodes, crops and resizes each planned frame in parallel.
"""

from __future__ import annotations

import collections
import os
import re
from importlib import resources
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import cv2
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from formats import cityscapes as cityscapes_format
from formats import kitti
from formats.camera import check_intrinsics_for_image, validate_intrinsics
from formats.distortion import parse_camera_text, undistort_image
from formats.image_header import check_image_header
from pipelines import fileio, records
from pipelines.config import PreprocessConfig
from pipelines.geometry import default_intrinsics, transform_image
from pipelines.records import DeadLetter, Filtered, Frame, FrameRef, dead_letter, safe_sequence_name

DEAD_LETTER = "dead_letter"
FILTERED = "filtered"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
CITYSCAPES_FPS = 17.0  # Cityscapes sequences are recorded at 17 Hz
_KITTI_DRIVE = re.compile(r"^\d{4}_\d{2}_\d{2}_drive_\w+_sync$")


def eigen_test_scenes() -> Tuple[str, ...]:
    """The 28 Eigen test scenes (``pipelines/data/eigen_test_scenes.txt``), e.g. '2011_09_26_drive_0002'."""
    text = resources.files("pipelines").joinpath("data/eigen_test_scenes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def natural_key(name: str):
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _counter(name: str):
    return Metrics.counter("preprocess", name)


def _reject(letter: DeadLetter):
    _counter("rejected_" + letter.code).inc()
    return pvalue.TaggedOutput(DEAD_LETTER, letter)


def _filter(reason: str, item: str):
    _counter("filtered_" + reason).inc()
    return pvalue.TaggedOutput(FILTERED, Filtered(reason, item))


def _flat(matrix: np.ndarray) -> Tuple[float, ...]:
    return tuple(float(value) for value in np.asarray(matrix, dtype=np.float64).reshape(-1))


def _groundtruth(folder: str) -> Optional[str]:
    return folder if fileio.exists(folder) else None


# --- KITTI raw ------------------------------------------------------------------------------------------


class ListKittiDrives(beam.DoFn):
    """root -> (drive folder, camera, sorted frame paths) for every ``<date>/<drive>/image_0X/data``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, root: str):
        found = False
        for camera in self.config.kitti_cameras:
            pattern = fileio.join(root, "*", "*_drive_*_sync", f"image_0{camera}", "data", "*.png")
            by_drive: Dict[str, List[str]] = collections.defaultdict(list)
            for path in fileio.glob(pattern):
                drive = fileio.dirname(fileio.dirname(fileio.dirname(path)))
                by_drive[drive].append(path)
            for drive in sorted(by_drive):
                found = True
                yield drive, camera, sorted(by_drive[drive])
        if not found:
            yield _reject(
                dead_letter(
                    "kitti_raw",
                    root,
                    records.NO_INPUT,
                    "no frames under <root>/<date>/<date>_drive_<NNNN>_sync/image_0X/data/",
                )
            )


class PlanKittiDrive(beam.DoFn):
    """(drive, camera, frame paths) -> FrameRefs of every frame, intrinsics from ``P_rect_0X``.

    Timestamps come from ``image_0X/timestamps.txt`` when present, else frame number / ``kitti_raw.fps``.
    A missing frame number or a rejected timestamp starts a new segment (no triplet spans it).
    """

    def __init__(self, config: PreprocessConfig):
        self.config = config
        self.excluded = eigen_test_scenes() if config.exclude_eigen_test_scenes else ()

    def process(self, element):
        drive, camera, paths = element
        drive_name = fileio.basename(drive)
        sequence = safe_sequence_name(f"{drive_name}_{camera:02d}")
        image_folder = fileio.join(drive, f"image_0{camera}")
        if any(drive_name.startswith(scene) for scene in self.excluded):
            yield _filter("eigen_test_scene", sequence)
            return
        calibration_path = fileio.join(fileio.dirname(drive), "calib_cam_to_cam.txt")
        try:
            if not fileio.exists(calibration_path):
                raise kitti.CalibrationError(f"{calibration_path} not found")
            calibration = kitti.parse_calibration(fileio.read_text(calibration_path), calibration_path)
            intrinsics = kitti.raw_camera_intrinsics(calibration, camera, calibration_path)
        except kitti.InvalidIntrinsicsError as error:  # the whole drive, never one crash per frame
            yield _reject(dead_letter("kitti_raw", image_folder, records.BAD_CALIBRATION, str(error)))
            return
        except (kitti.CalibrationError, ValueError, OSError) as error:
            yield _reject(dead_letter("kitti_raw", image_folder, records.MISSING_CALIBRATION, str(error)))
            return
        timestamps = None
        timestamps_path = fileio.join(image_folder, "timestamps.txt")
        if fileio.exists(timestamps_path):
            try:
                timestamps = kitti.parse_raw_timestamps(fileio.read_text(timestamps_path), timestamps_path)
            except ValueError as error:
                yield _reject(dead_letter("kitti_raw", timestamps_path, records.MISSING_TIMESTAMP, str(error)))
                return
        yield from plan_frames(
            source="kitti_raw",
            sequence=sequence,
            paths=paths,
            intrinsics=_flat(intrinsics),
            timestamps=timestamps,
            fps=self.config.kitti_fps,
            stride=1,
            groundtruth_dir=_groundtruth(fileio.join(drive, "groundtruth")),
            raw_indices=None,
        )


def plan_frames(
    source: str,
    sequence: str,
    paths: Sequence[str],
    intrinsics: Tuple[float, ...],
    timestamps: Optional[np.ndarray],
    fps: float,
    stride: int,
    groundtruth_dir: Optional[str],
    raw_indices: Optional[Sequence[int]],
    crop: str = "none",
    timestamp_origin: int = 0,
    distortion: Tuple[float, ...] = (),
) -> Iterable:
    """FrameRefs for frames ``paths`` (sorted), keeping every ``stride``-th raw index.

    ``raw_indices`` default to the integer file stems (KITTI, numbered frame folders). ``timestamps``
    (seconds, indexed by raw index - ``timestamp_origin``) default to (raw index - origin) / fps.
    """
    if raw_indices is None:
        parsed = []
        for path in paths:
            stem = os.path.splitext(fileio.basename(path))[0]
            if not stem.isdigit():
                yield _reject(dead_letter(source, path, records.UNREADABLE_FRAME, "file name is not a frame number"))
                continue
            parsed.append((int(stem), path))
    else:
        parsed = list(zip(raw_indices, paths))
    parsed.sort()
    if not parsed:
        return
    first = parsed[0][0]
    segment, sample, previous_raw, previous_time = 0, 0, None, None
    for raw_index, path in parsed:
        if (raw_index - first) % stride:
            continue
        if previous_raw is not None and raw_index != previous_raw + stride:
            segment += 1  # frames missing in between
            sample += 1
        previous_raw = raw_index
        position = raw_index - timestamp_origin
        if timestamps is None:
            timestamp = position / fps
        elif not 0 <= position < len(timestamps):
            yield _reject(dead_letter(source, path, records.MISSING_TIMESTAMP, f"no timestamp for frame {raw_index}"))
            segment, sample = segment + 1, sample + 1
            continue
        else:
            timestamp = float(timestamps[position])
        if previous_time is not None and timestamp <= previous_time:
            yield _reject(
                dead_letter(
                    source,
                    path,
                    records.NON_MONOTONIC_TIMESTAMP,
                    f"{timestamp:.6f} s is not after the previous frame's {previous_time:.6f} s",
                )
            )
            segment, sample = segment + 1, sample + 1
            continue
        previous_time = timestamp
        yield FrameRef(
            source=source,
            sequence=sequence,
            index=sample,
            raw_index=raw_index,
            path=path,
            timestamp=timestamp,
            intrinsics=intrinsics,
            segment=segment,
            groundtruth_dir=groundtruth_dir,
            crop=crop,
            distortion=distortion,
        )
        sample += 1


# --- Cityscapes -----------------------------------------------------------------------------------------


class ListCityscapesSequences(beam.DoFn):
    """root -> (split, city, sequence number, sorted frame paths) from ``leftImg8bit_sequence/<split>/<city>``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, root: str):
        found = False
        for split in self.config.cityscapes_splits:
            groups: Dict[Tuple[str, int], List[str]] = collections.defaultdict(list)
            for path in fileio.glob(fileio.join(root, "leftImg8bit_sequence", split, "*", "*_leftImg8bit.png")):
                try:
                    name = cityscapes_format.parse_frame_name(path)
                except ValueError as error:
                    yield _reject(dead_letter("cityscapes", path, records.UNREADABLE_FRAME, str(error)))
                    continue
                groups[(name.city, name.sequence)].append(path)
            for city, number in sorted(groups):
                found = True
                yield root, split, city, number, sorted(groups[(city, number)])
        if not found:
            yield _reject(
                dead_letter(
                    "cityscapes", root, records.NO_INPUT, "no frames under <root>/leftImg8bit_sequence/<split>/<city>/"
                )
            )


class PlanCityscapesSequence(beam.DoFn):
    """Every ``stride``-th frame (default 2) of a sequence; K from the sequence's ``camera/*.json``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        root, split, city, number, paths = element
        sequence = safe_sequence_name(f"{city}_{number:06d}")
        camera_files = fileio.glob(fileio.join(root, "camera", split, city, f"{city}_{number:06d}_*_camera.json"))
        intrinsics, problem = None, None
        for camera_file in camera_files:  # the camera is fixed within a sequence: the first readable file
            try:
                intrinsics = _read_cityscapes_camera(camera_file)
                break
            except ValueError as error:
                problem = error
                continue
        if intrinsics is None:
            code, detail = (
                (records.BAD_CALIBRATION, str(problem))
                if problem is not None
                else (records.MISSING_CALIBRATION, "no camera json for the sequence")
            )
            yield _reject(dead_letter("cityscapes", fileio.join(root, "camera", split, city, sequence), code, detail))
            return
        frames = [cityscapes_format.parse_frame_name(path).frame for path in paths]
        yield from plan_frames(
            source="cityscapes",
            sequence=sequence,
            paths=paths,
            intrinsics=_flat(intrinsics),
            timestamps=None,
            fps=CITYSCAPES_FPS,
            stride=self.config.cityscapes_stride,
            groundtruth_dir=_groundtruth(fileio.join(root, "groundtruth", split, sequence)),
            raw_indices=frames,
            crop="cityscapes",
            timestamp_origin=frames[0] if frames else 0,
        )


def _read_cityscapes_camera(path: str) -> np.ndarray:
    import json

    try:
        intrinsic = json.loads(fileio.read_text(path))["intrinsic"]
        matrix = np.array(
            [
                [float(intrinsic["fx"]), 0.0, float(intrinsic["u0"])],
                [0.0, float(intrinsic["fy"]), float(intrinsic["v0"])],
                [0.0, 0.0, 1.0],
            ]
        )
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a Cityscapes camera file ({error})") from error
    try:
        return validate_intrinsics(matrix)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def cityscapes_crop_box(native_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """The Struct2depth crop (rows 256:768, columns 192:1856 of 2048x1024) scaled to ``native_size``."""
    width, height = native_size
    top, bottom, left, right = cityscapes_format.CROP_BOX
    full_width, full_height = cityscapes_format.IMAGE_SIZE
    return (
        round(top * height / full_height),
        round(bottom * height / full_height),
        round(left * width / full_width),
        round(right * width / full_width),
    )


# --- folders of ordered frames --------------------------------------------------------------------------


class ListImageFolders(beam.DoFn):
    """root -> (sequence folder, sorted frame paths): the root itself if it holds images, and each
    immediate subfolder that holds images."""

    def process(self, root: str):
        found = False
        for folder_pattern in (root, fileio.join(root, "*")):
            groups: Dict[str, List[str]] = collections.defaultdict(list)
            for extension in IMAGE_EXTENSIONS:
                for path in fileio.glob(fileio.join(folder_pattern, "*" + extension)):
                    groups[fileio.dirname(path)].append(path)
            for folder in sorted(groups):
                found = True
                yield folder, sorted(groups[folder], key=lambda p: natural_key(fileio.basename(p)))
        if not found:
            yield _reject(
                dead_letter("image_folder", root, records.NO_INPUT, "no image files in the folder or its subfolders")
            )


class PlanImageFolder(beam.DoFn):
    """Every ``stride``-th image in name order. Optional ``timestamps.txt`` (seconds per line, one per image)
    and ``intrinsics.txt`` (9 comma-separated floats at native resolution) in the folder; otherwise
    timestamps are position / fps and K is the documented default guess."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        folder, paths = element
        sequence = safe_sequence_name(fileio.basename(folder))
        intrinsics: Tuple[float, ...] = ()
        distortion: Tuple[float, ...] = ()
        given = self.config.intrinsics_file
        candidates = [given] if given else [fileio.join(folder, "intrinsics.txt")]
        for candidate in candidates:  # a named file must exist (checked before the run; here again per worker)
            if candidate == given or fileio.exists(candidate):
                try:
                    matrix, coefficients = parse_camera_text(fileio.read_text(candidate), candidate)
                    intrinsics = _flat(matrix)
                    distortion = _flat(coefficients) if coefficients is not None else ()
                except (ValueError, OSError) as error:
                    code = records.MISSING_CALIBRATION if isinstance(error, OSError) else records.BAD_CALIBRATION
                    yield _reject(dead_letter("image_folder", candidate, code, str(error)))
                    return
                break
        timestamps = None
        timestamps_path = fileio.join(folder, "timestamps.txt")
        if fileio.exists(timestamps_path):
            try:
                timestamps = np.array([float(v) for v in fileio.read_text(timestamps_path).split()], np.float64)
            except ValueError as error:
                yield _reject(dead_letter("image_folder", timestamps_path, records.MISSING_TIMESTAMP, str(error)))
                return
        yield from plan_frames(
            source="image_folder",
            sequence=sequence,
            paths=paths,
            intrinsics=intrinsics,
            timestamps=timestamps,
            fps=self.config.image_folder_fps,
            stride=self.config.image_folder_stride,
            groundtruth_dir=_groundtruth(fileio.join(folder, "groundtruth")),
            raw_indices=list(range(len(paths))),
            distortion=distortion,
        )


def _sanitize(name: str) -> str:
    """A folder name safe for list files and paths (``records.safe_sequence_name``)."""
    return safe_sequence_name(name)


# --- decoding -------------------------------------------------------------------------------------------


class DecodeFrame(beam.DoFn):
    """FrameRef -> Frame at working resolution (crop, resize, K transformed together), or a dead letter
    for a zero-byte, unreadable or undecodable file, a header claiming more than
    ``formats.image_header.MAX_IMAGE_PIXELS`` (checked before decoding), a grey frame, or a K that does not
    fit the frame. ``keep_native`` keeps the full-resolution RGB image for segmenters that need it."""

    def __init__(self, config: PreprocessConfig, keep_native: bool = False):
        self.config = config
        self.keep_native = keep_native

    def process(self, ref: FrameRef):
        try:
            data = fileio.read_bytes(ref.path)
        except OSError as error:
            yield _reject(dead_letter(ref.source, ref.path, records.UNREADABLE_FRAME, str(error)))
            return
        if not data:
            yield _reject(dead_letter(ref.source, ref.path, records.UNREADABLE_FRAME, "zero-byte file"))
            return
        try:
            header = check_image_header(data, "image")
        except ValueError as error:
            code = records.IMAGE_TOO_LARGE if "more than the limit" in str(error) else records.UNREADABLE_FRAME
            yield _reject(dead_letter(ref.source, ref.path, code, str(error)))
            return
        if header.grey:
            yield _reject(
                dead_letter(
                    ref.source,
                    ref.path,
                    records.GREY_FRAME,
                    f"the file stores grey levels ({header.format}, {header.channels} channel(s))",
                )
            )
            return
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            yield _reject(dead_letter(ref.source, ref.path, records.UNREADABLE_FRAME, "not a decodable image"))
            return
        if is_grey(image):
            yield _reject(dead_letter(ref.source, ref.path, records.GREY_FRAME, "all three colour channels are equal"))
            return
        native_size = (int(image.shape[1]), int(image.shape[0]))
        intrinsics = np.array(ref.intrinsics).reshape(3, 3) if ref.intrinsics else None
        if intrinsics is not None:
            try:
                check_intrinsics_for_image(intrinsics, native_size, "K")
            except ValueError as error:
                yield _reject(dead_letter(ref.source, ref.path, records.BAD_CALIBRATION, str(error)))
                return
        _counter("frames_read").inc()
        yield frame_from_bgr(
            image,
            ref.source,
            ref.sequence,
            ref.index,
            ref.path,
            ref.timestamp,
            intrinsics,
            self.config.size,
            ref.crop,
            self.keep_native,
            ref.groundtruth_dir,
            ref.raw_index,
            ref.segment,
            ref.distortion,
        )


def is_grey(image: np.ndarray) -> bool:
    """True for a grey frame in colour clothing: (H, W) or (H, W, 3) with three identical channels and some
    contrast (a uniform frame, e.g. all black, has no colour to lose and is not called grey)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    first = image[:, :, 0]
    return bool(
        np.array_equal(first, image[:, :, 1]) and np.array_equal(first, image[:, :, 2]) and first.min() != first.max()
    )


def frame_from_bgr(
    image: np.ndarray,
    source: str,
    sequence: str,
    index: int,
    frame_id: str,
    timestamp: float,
    intrinsics: Optional[np.ndarray],
    size: Tuple[int, int],
    crop: str,
    keep_native: bool,
    groundtruth_dir: Optional[str],
    raw_index: int,
    segment: int,
    distortion: Optional[Sequence[float]] = None,
) -> Frame:
    """Build a Frame from a decoded native BGR image: undistort (when ``distortion`` is given, onto the same
    K: ``formats.distortion``), then crop/resize and K in one step, then RGB. ``native_image`` stays the raw
    frame; masks computed on it follow the same undistortion (``pipelines.geometry.mask_to_frame``)."""
    native_size = (int(image.shape[1]), int(image.shape[0]))
    distortion = tuple(float(value) for value in distortion) if distortion is not None and len(distortion) else ()
    if distortion and intrinsics is None:
        raise ValueError("distortion coefficients need the camera's intrinsics")
    if intrinsics is None:
        intrinsics = default_intrinsics(native_size)
    working = undistort_image(image, intrinsics, np.array(distortion)) if distortion else image
    crop_box = cityscapes_crop_box(native_size) if crop == "cityscapes" else None
    small, matrix = transform_image(working, intrinsics, size, crop_box)
    return Frame(
        source=source,
        sequence=sequence,
        index=index,
        frame_id=frame_id,
        timestamp=timestamp,
        image=cv2.cvtColor(small, cv2.COLOR_BGR2RGB),
        intrinsics=matrix,
        native_image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if keep_native else None,
        groundtruth_dir=groundtruth_dir,
        raw_index=raw_index,
        segment=segment,
        native_size=native_size,
        crop_box=crop_box,
        distortion=distortion,
        native_intrinsics=_flat(intrinsics) if distortion else (),
    )
