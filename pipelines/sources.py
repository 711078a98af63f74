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
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import cv2
import numpy as np

from formats import cityscapes as cityscapes_format
from formats import kitti
from formats.camera import check_intrinsics_for_image
from formats.distortion import parse_camera_text, undistort_image
from formats.image_header import check_image_header
from pipelines import fileio, records
from pipelines.beam_util import counter, reject, skip
from pipelines.config import PreprocessConfig
from pipelines.geometry import default_intrinsics, transform_image
from pipelines.records import DeadLetter, Frame, FrameRef, dead_letter, safe_sequence_name

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


def _grouped(paths: Iterable[str], key: Callable[[str], Hashable]) -> Dict[Hashable, List[str]]:
    """``paths`` grouped by ``key(path)``, each group in the order given."""
    groups: Dict[Hashable, List[str]] = collections.defaultdict(list)
    for path in paths:
        groups[key(path)].append(path)
    return groups


def _no_input(source: str, root: str, detail: str):
    return reject(dead_letter(source, root, records.NO_INPUT, detail))


def backward_timestamp(source: str, frame: str, timestamp: float, previous: Optional[float]) -> Optional[DeadLetter]:
    """The ``non_monotonic_timestamp`` dead letter of a frame at ``timestamp`` seconds that is not after the
    previous kept frame's, else None."""
    if previous is None or timestamp > previous:
        return None
    detail = f"{timestamp:.6f} s is not after the previous frame's {previous:.6f} s"
    return dead_letter(source, frame, records.NON_MONOTONIC_TIMESTAMP, detail)


def read_timestamps(
    source: str, path: str, parse: Callable[[str, str], np.ndarray]
) -> Tuple[Optional[np.ndarray], Optional[DeadLetter]]:
    """(seconds per frame, None) from the timestamps file ``path`` read by ``parse(text, path)``; (None, None)
    when there is no such file (timestamps then come from the fps); (None, a ``missing_timestamp`` dead letter)
    when ``parse`` refuses it."""
    if not fileio.exists(path):
        return None, None
    try:
        return parse(fileio.read_text(path), path), None
    except ValueError as error:
        return None, dead_letter(source, path, records.MISSING_TIMESTAMP, str(error))


def _seconds_per_line(text: str, path: str) -> np.ndarray:
    """A folder's ``timestamps.txt``: one time in seconds per line (per image, in name order)."""
    return np.array([float(value) for value in text.split()], np.float64)


def _groundtruth(folder: str) -> Optional[str]:
    return folder if fileio.exists(folder) else None


# --- KITTI raw ------------------------------------------------------------------------------------------


class ListKittiDrives(beam.DoFn):
    """root -> (drive folder, camera, sorted frame paths) for every ``<date>/<drive>/image_0X/data``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, root: str):
        found = False
        for camera in self.config.kitti_raw.cameras:
            pattern = fileio.join(root, "*", "*_drive_*_sync", f"image_0{camera}", "data", "*.png")
            by_drive = _grouped(fileio.glob(pattern), lambda path: fileio.dirname(fileio.dirname(fileio.dirname(path))))
            for drive in sorted(by_drive):
                found = True
                yield drive, camera, sorted(by_drive[drive])
        if not found:
            yield _no_input("kitti_raw", root, "no frames under <root>/<date>/<date>_drive_<NNNN>_sync/image_0X/data/")


class PlanKittiDrive(beam.DoFn):
    """(drive, camera, frame paths) -> FrameRefs of every frame, intrinsics from ``P_rect_0X``.

    Timestamps come from ``image_0X/timestamps.txt`` when present, else frame number / ``kitti_raw.fps``.
    A missing frame number or a rejected timestamp starts a new segment (no triplet spans it).
    """

    def __init__(self, config: PreprocessConfig):
        self.config = config
        self.excluded = eigen_test_scenes() if config.kitti_raw.exclude_eigen_test_scenes else ()

    def process(self, element):
        drive, camera, paths = element
        drive_name = fileio.basename(drive)
        sequence = safe_sequence_name(f"{drive_name}_{camera:02d}")
        image_folder = fileio.join(drive, f"image_0{camera}")
        if any(drive_name.startswith(scene) for scene in self.excluded):
            yield skip("eigen_test_scene", sequence)
            return
        calibration_path = fileio.join(fileio.dirname(drive), "calib_cam_to_cam.txt")
        try:
            if not fileio.exists(calibration_path):
                raise kitti.CalibrationError(f"{calibration_path} not found")
            calibration = kitti.parse_calibration(fileio.read_text(calibration_path), calibration_path)
            intrinsics = kitti.raw_camera_intrinsics(calibration, camera, calibration_path)
        except kitti.InvalidIntrinsicsError as error:  # the whole drive, never one crash per frame
            yield reject(dead_letter("kitti_raw", image_folder, records.BAD_CALIBRATION, str(error)))
            return
        except (kitti.CalibrationError, ValueError, OSError) as error:
            yield reject(dead_letter("kitti_raw", image_folder, records.MISSING_CALIBRATION, str(error)))
            return
        path = fileio.join(image_folder, "timestamps.txt")
        timestamps, letter = read_timestamps("kitti_raw", path, kitti.parse_raw_timestamps)
        if letter is not None:
            yield reject(letter)
            return
        yield from plan_frames(
            source="kitti_raw",
            sequence=sequence,
            paths=paths,
            intrinsics=intrinsics,
            timestamps=timestamps,
            fps=self.config.kitti_raw.fps,
            stride=1,
            groundtruth_dir=_groundtruth(fileio.join(drive, "groundtruth")),
            raw_indices=None,
        )


def plan_frames(
    source: str,
    sequence: str,
    paths: Sequence[str],
    intrinsics: Optional[np.ndarray],
    timestamps: Optional[np.ndarray],
    fps: float,
    stride: int,
    groundtruth_dir: Optional[str],
    raw_indices: Optional[Sequence[int]],
    crop: str = "none",
    timestamp_origin: int = 0,
    distortion: Optional[np.ndarray] = None,
) -> Iterable:
    """FrameRefs for frames ``paths`` (sorted), keeping every ``stride``-th raw index.

    ``intrinsics`` is K (3x3, native pixels) of every frame, None for the default guess. ``raw_indices``
    default to the integer file stems (KITTI, numbered frame folders). ``timestamps`` (seconds, indexed by
    raw index - ``timestamp_origin``) default to (raw index - origin) / fps. A skipped raw index or a
    rejected frame starts a new segment.
    """
    if raw_indices is None:
        numbered, letters = _frame_numbers(source, paths)
        for letter in letters:
            yield reject(letter)
    else:
        numbered = sorted(zip(raw_indices, paths))
    if not numbered:
        return
    first = numbered[0][0]
    segment, sample, previous_raw, previous_time = 0, 0, None, None
    for raw_index, path in numbered:
        if (raw_index - first) % stride:
            continue
        if previous_raw is not None and raw_index != previous_raw + stride:
            segment, sample = segment + 1, sample + 1  # frames missing in between
        previous_raw = raw_index
        timestamp, letter = _frame_time(source, path, raw_index, raw_index - timestamp_origin, timestamps, fps)
        letter = letter or backward_timestamp(source, path, timestamp, previous_time)
        if letter is not None:
            yield reject(letter)
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


def _frame_numbers(source: str, paths: Sequence[str]) -> Tuple[List[Tuple[int, str]], List[DeadLetter]]:
    """(raw index from the file stem, path) sorted, and dead letters for stems that are not numbers."""
    numbered, letters = [], []
    for path in paths:
        stem = os.path.splitext(fileio.basename(path))[0]
        if stem.isdigit():
            numbered.append((int(stem), path))
        else:
            letters.append(dead_letter(source, path, records.UNREADABLE_FRAME, "file name is not a frame number"))
    return sorted(numbered), letters


def _frame_time(
    source: str, path: str, raw_index: int, position: int, timestamps: Optional[np.ndarray], fps: float
) -> Tuple[float, Optional[DeadLetter]]:
    """(seconds, None) of the frame at ``position`` of the sequence's clock, or (nan, a dead letter) when
    ``timestamps`` has no entry for it; without ``timestamps``, position / ``fps``."""
    if timestamps is None:
        return position / fps, None
    if not 0 <= position < len(timestamps):
        return float("nan"), dead_letter(source, path, records.MISSING_TIMESTAMP, f"no timestamp for frame {raw_index}")
    return float(timestamps[position]), None


# --- Cityscapes -----------------------------------------------------------------------------------------


class ListCityscapesSequences(beam.DoFn):
    """root -> (split, city, sequence number, sorted frame paths) from ``leftImg8bit_sequence/<split>/<city>``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, root: str):
        found = False
        for split in self.config.cityscapes.splits:
            by_sequence: Dict[Tuple[str, int], List[str]] = collections.defaultdict(list)
            for path in fileio.glob(fileio.join(root, "leftImg8bit_sequence", split, "*", "*_leftImg8bit.png")):
                try:
                    name = cityscapes_format.parse_frame_name(path)
                except ValueError as error:
                    yield reject(dead_letter("cityscapes", path, records.UNREADABLE_FRAME, str(error)))
                    continue
                by_sequence[(name.city, name.sequence)].append(path)
            for city, number in sorted(by_sequence):
                found = True
                yield root, split, city, number, sorted(by_sequence[(city, number)])
        if not found:
            yield _no_input("cityscapes", root, "no frames under <root>/leftImg8bit_sequence/<split>/<city>/")


class PlanCityscapesSequence(beam.DoFn):
    """Every ``stride``-th frame (default 2) of a sequence; K from the sequence's ``camera/*.json``
    (``formats.cityscapes.read_camera_intrinsics``): none = ``missing_calibration``, none readable =
    ``bad_calibration``."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        root, split, city, number, paths = element
        sequence = safe_sequence_name(f"{city}_{number:06d}")
        camera_files = fileio.glob(fileio.join(root, "camera", split, city, f"{city}_{number:06d}_*_camera.json"))
        intrinsics, problem = None, None
        for camera_file in camera_files:  # the camera is fixed within a sequence: the first readable file
            try:
                intrinsics = cityscapes_format.read_camera_intrinsics(camera_file, fileio.read_text)
                break
            except (ValueError, OSError) as error:
                problem = error
        if intrinsics is None:
            code, detail = (
                (records.BAD_CALIBRATION, str(problem))
                if problem is not None
                else (records.MISSING_CALIBRATION, "no camera json for the sequence")
            )
            yield reject(dead_letter("cityscapes", fileio.join(root, "camera", split, city, sequence), code, detail))
            return
        frames = [cityscapes_format.parse_frame_name(path).frame for path in paths]
        yield from plan_frames(
            source="cityscapes",
            sequence=sequence,
            paths=paths,
            intrinsics=intrinsics,
            timestamps=None,
            fps=CITYSCAPES_FPS,
            stride=self.config.cityscapes.stride,
            groundtruth_dir=_groundtruth(fileio.join(root, "groundtruth", split, sequence)),
            raw_indices=frames,
            crop="cityscapes",
            timestamp_origin=frames[0] if frames else 0,
        )


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
            images = [
                path
                for extension in IMAGE_EXTENSIONS
                for path in fileio.glob(fileio.join(folder_pattern, "*" + extension))
            ]
            by_folder = _grouped(images, fileio.dirname)
            for folder in sorted(by_folder):
                found = True
                yield folder, sorted(by_folder[folder], key=lambda p: natural_key(fileio.basename(p)))
        if not found:
            yield _no_input("image_folder", root, "no image files in the folder or its subfolders")


def read_camera_file(given: Optional[str], sidecar: Optional[str]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(K 3x3, OpenCV distortion or None) at native resolution from the named camera file ``given``, else
    from ``sidecar`` when it exists; (None, None) for the default guess (``formats.distortion`` format).

    A named file must exist (never a silent guess): FileNotFoundError, or OSError when it cannot be read;
    ValueError naming the file for a malformed one.
    """
    if given:
        if not fileio.exists(given):
            raise FileNotFoundError(f"{given}: intrinsics file not found")
        return parse_camera_text(fileio.read_text(given), given)
    if sidecar and fileio.exists(sidecar):
        return parse_camera_text(fileio.read_text(sidecar), sidecar)
    return None, None


def calibration_letter(source: str, item: str, error: Exception) -> DeadLetter:
    """The dead letter of a camera file that cannot be used: ``missing_calibration`` when it cannot be read
    (OSError), ``bad_calibration`` when its content is wrong."""
    code = records.MISSING_CALIBRATION if isinstance(error, OSError) else records.BAD_CALIBRATION
    return dead_letter(source, item, code, str(error))


class PlanImageFolder(beam.DoFn):
    """Every ``stride``-th image in name order. Optional ``timestamps.txt`` (seconds per line, one per image)
    and ``intrinsics.txt`` (9 comma-separated floats at native resolution) in the folder; otherwise
    timestamps are position / fps and K is the documented default guess."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, element):
        folder, paths = element
        sequence = safe_sequence_name(fileio.basename(folder))
        given, sidecar = self.config.intrinsics_file, fileio.join(folder, "intrinsics.txt")
        try:  # a named file must exist (checked before the run; here again per worker)
            intrinsics, distortion = read_camera_file(given, sidecar)
        except (ValueError, OSError) as error:
            yield reject(calibration_letter("image_folder", given or sidecar, error))
            return
        timestamps, letter = read_timestamps("image_folder", fileio.join(folder, "timestamps.txt"), _seconds_per_line)
        if letter is not None:
            yield reject(letter)
            return
        yield from plan_frames(
            source="image_folder",
            sequence=sequence,
            paths=paths,
            intrinsics=intrinsics,
            timestamps=timestamps,
            fps=self.config.image_folder.fps,
            stride=self.config.image_folder.stride,
            groundtruth_dir=_groundtruth(fileio.join(folder, "groundtruth")),
            raw_indices=list(range(len(paths))),
            distortion=distortion,
        )


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
        image, letter = decode_image_file(ref.source, ref.path)
        if letter is None and ref.intrinsics is not None:
            try:
                check_intrinsics_for_image(ref.intrinsics, (int(image.shape[1]), int(image.shape[0])), "K")
            except ValueError as error:
                letter = dead_letter(ref.source, ref.path, records.BAD_CALIBRATION, str(error))
        if letter is not None:
            yield reject(letter)
            return
        counter("frames_read").inc()
        yield frame_from_bgr(
            image,
            ref.source,
            ref.sequence,
            ref.index,
            ref.path,
            ref.timestamp,
            ref.intrinsics,
            self.config.size,
            ref.crop,
            self.keep_native,
            ref.groundtruth_dir,
            ref.raw_index,
            ref.segment,
            ref.distortion,
        )


def decode_image_file(source: str, path: str) -> Tuple[Optional[np.ndarray], Optional[DeadLetter]]:
    """(BGR uint8 image, None) for a colour image file, else (None, its dead letter): unreadable, zero-byte,
    a header over the pixel limit (checked before decoding), grey, or not decodable."""
    try:
        data = fileio.read_bytes(path)
    except OSError as error:
        return None, dead_letter(source, path, records.UNREADABLE_FRAME, str(error))
    if not data:
        return None, dead_letter(source, path, records.UNREADABLE_FRAME, "zero-byte file")
    try:
        header = check_image_header(data, "image")
    except ValueError as error:
        code = records.IMAGE_TOO_LARGE if "more than the limit" in str(error) else records.UNREADABLE_FRAME
        return None, dead_letter(source, path, code, str(error))
    if header.grey:
        detail = f"the file stores grey levels ({header.format}, {header.channels} channel(s))"
        return None, dead_letter(source, path, records.GREY_FRAME, detail)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, dead_letter(source, path, records.UNREADABLE_FRAME, "not a decodable image")
    if is_grey(image):
        return None, grey_letter(source, path)
    return image, None


def grey_letter(source: str, frame: str) -> DeadLetter:
    """The ``grey_frame`` dead letter of a decoded frame whose three colour channels are equal."""
    return dead_letter(source, frame, records.GREY_FRAME, "all three colour channels are equal")


def is_grey(image: np.ndarray) -> bool:
    """True for a grey frame in colour clothing: (H, W) or (H, W, 3) with three identical channels and some
    contrast (a uniform frame, e.g. all black, has no colour to lose and is not called grey)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    # Exact either way: one pixel with differing channels decides, so a sample of rows (a colour frame almost
    # always differs there) spares the whole-frame comparison for all but grey frames.
    if not _channels_equal(image[:: max(1, image.shape[0] // 8)]):
        return False
    first = image[:, :, 0]
    return bool(_channels_equal(image) and first.min() != first.max())


def _channels_equal(image: np.ndarray) -> bool:
    first = image[:, :, 0]
    return bool(np.array_equal(first, image[:, :, 1]) and np.array_equal(first, image[:, :, 2]))


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
    distortion: Optional[np.ndarray] = None,
) -> Frame:
    """Build a Frame from a decoded native BGR image: undistort (when ``distortion`` is given, onto the same
    K: ``formats.distortion``), then crop/resize and K in one step, then RGB. ``intrinsics`` is K (3x3) of
    the native image, None for the default guess. ``native_image`` stays the raw frame; masks computed on it
    follow the same undistortion (``pipelines.geometry.mask_to_frame``)."""
    native_size = (int(image.shape[1]), int(image.shape[0]))
    distortion = np.asarray(distortion, np.float64).reshape(-1) if distortion is not None else None
    if distortion is not None and not distortion.size:
        distortion = None
    if distortion is not None and intrinsics is None:
        raise ValueError("distortion coefficients need the camera's intrinsics")
    intrinsics = default_intrinsics(native_size) if intrinsics is None else np.asarray(intrinsics, np.float64)
    working = undistort_image(image, intrinsics, distortion) if distortion is not None else image
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
        native_intrinsics=intrinsics if distortion is not None else None,
    )
