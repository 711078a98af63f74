"""The ``video`` source: any container OpenCV's FFmpeg backend reads, from local paths, globs or ``gs://``.

One video is one sequence, decoded front to back by one worker (no seeking). Sample times come from the
container's presentation timestamps (``CAP_PROP_POS_MSEC`` after each grab), not from frame counts, so
variable-frame-rate footage is sampled at the right times. Only sampled frames are converted
(``retrieve``); the others are only grabbed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Optional

import apache_beam as beam
import cv2
import numpy as np

from formats.camera import check_intrinsics_for_image
from formats.distortion import parse_camera_text
from pipelines import fileio, records
from pipelines.config import PreprocessConfig
from pipelines.records import VideoInput, dead_letter, safe_sequence_name
from pipelines.sampling import make_sampler
from pipelines.sources import _counter, _reject, frame_from_bgr, is_grey

TRUNCATION_SLACK = 1  # containers may announce one frame more than they hold


def video_name(path: str) -> str:
    """Sequence folder for a video: its file stem made safe by ``records.safe_sequence_name`` (a stem with
    characters other than [A-Za-z0-9_.-] gets '_' for them and a short hash of the stem)."""
    stem = os.path.splitext(fileio.basename(path))[0]
    return safe_sequence_name(stem) if stem else "video"


class ListVideos(beam.DoFn):
    """A path or glob -> one VideoInput per file. A ground-truth sidecar ``<dir>/groundtruth/<name>/``
    (the synthetic world's video layout) is attached when it exists."""

    def process(self, pattern: str):
        paths = fileio.glob(pattern)
        if not paths:
            yield _reject(dead_letter("video", pattern, records.NO_INPUT, "no file matches"))
            return
        names = [video_name(path) for path in paths]
        for path, name in zip(paths, names):
            if names.count(name) > 1:  # same stem in two folders: disambiguate deterministically
                name = f"{name}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
            groundtruth = fileio.join(fileio.dirname(path), "groundtruth", name)
            yield VideoInput("video", name, path, groundtruth if fileio.exists(groundtruth) else None)


class DecodeVideo(beam.DoFn):
    """VideoInput -> sampled Frames (``uniform`` or ``burst`` sampling) plus dead letters for a corrupt or
    truncated container, unreadable frames and non-monotonic timestamps (size changes are judged by the
    planning step against the video's majority size).

    Intrinsics: ``video.intrinsics_file`` (9 comma-separated floats at native resolution; named but missing
    or malformed = a dead letter, never a guess), else the ground-truth sidecar's ``intrinsics.txt``, else
    ``geometry.default_intrinsics``. K must fit the first decoded frame (``check_intrinsics_for_image``),
    else the video is a ``bad_calibration`` dead letter. Grey frames are ``grey_frame`` dead letters.
    """

    def __init__(self, config: PreprocessConfig, keep_native: bool = False):
        self.config = config
        self.keep_native = keep_native

    def _intrinsics(self, video: VideoInput):
        """(K, distortion or None) at native resolution, or (None, None) for the default guess."""
        given = self.config.intrinsics_file
        if given:
            if not fileio.exists(given):
                raise FileNotFoundError(f"{given}: intrinsics file not found")
            return parse_camera_text(fileio.read_text(given), given)
        if video.groundtruth_dir:
            candidate = fileio.join(video.groundtruth_dir, "intrinsics.txt")
            if fileio.exists(candidate):
                return parse_camera_text(fileio.read_text(candidate), candidate)
        return None, None

    def process(self, video: VideoInput):
        local, temporary = video.path, None
        try:
            if fileio.is_remote(video.path):
                temporary = _download_to_temp(video.path)
                local = temporary
            if not os.path.isfile(local) or os.path.getsize(local) == 0:
                yield _reject(dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "missing or zero-byte file"))
                return
            try:
                intrinsics, distortion = self._intrinsics(video)
            except (ValueError, OSError) as error:
                code = records.BAD_CALIBRATION if isinstance(error, ValueError) else records.MISSING_CALIBRATION
                yield _reject(dead_letter(video.source, video.path, code, str(error)))
                return
            yield from self._decode(video, local, intrinsics, distortion)
        finally:
            if temporary:
                os.unlink(temporary)

    def _decode(
        self, video: VideoInput, local: str, intrinsics: Optional[np.ndarray], distortion: Optional[np.ndarray] = None
    ):
        capture = cv2.VideoCapture(local, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            yield _reject(
                dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "OpenCV cannot open the container")
            )
            return
        try:
            announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            sampler = make_sampler(self.config.sampling, self.config.fps, self.config.interval, self.config.burst)
            grabbed, sample, segment = 0, 0, 0
            origin = previous_time = None
            previous_sampler_segment = None
            intrinsics_checked = False
            while capture.grab():
                number = grabbed
                grabbed += 1
                frame_id = f"{video.path}@{number}"
                milliseconds = capture.get(cv2.CAP_PROP_POS_MSEC)
                if origin is None:
                    origin = milliseconds
                timestamp = (milliseconds - origin) / 1000.0
                if previous_time is not None and timestamp <= previous_time:
                    yield _reject(
                        dead_letter(
                            video.source,
                            frame_id,
                            records.NON_MONOTONIC_TIMESTAMP,
                            f"{timestamp:.6f} s is not after {previous_time:.6f} s",
                        )
                    )
                    segment, sample = segment + 1, sample + 1
                    continue
                previous_time = timestamp
                sampler_segment = sampler.offer(timestamp)
                if sampler_segment is None:
                    continue
                if previous_sampler_segment is not None and sampler_segment != previous_sampler_segment:
                    segment += 1
                previous_sampler_segment = sampler_segment
                ok, image = capture.retrieve()
                if not ok or image is None:
                    yield _reject(
                        dead_letter(video.source, frame_id, records.UNREADABLE_FRAME, "frame cannot be decoded")
                    )
                    segment, sample = segment + 1, sample + 1
                    continue
                # a frame of another size is dead-lettered by the planning step, which knows the video's
                # majority size (pipelines/planning.py), so a wrong-size first frame blames only itself
                if intrinsics is not None and not intrinsics_checked:
                    try:
                        check_intrinsics_for_image(intrinsics, (image.shape[1], image.shape[0]), "K")
                    except ValueError as error:
                        yield _reject(dead_letter(video.source, video.path, records.BAD_CALIBRATION, str(error)))
                        return
                    intrinsics_checked = True
                if is_grey(image):
                    yield _reject(
                        dead_letter(video.source, frame_id, records.GREY_FRAME, "all three colour channels are equal")
                    )
                    segment, sample = segment + 1, sample + 1
                    continue
                _counter("frames_read").inc()
                yield frame_from_bgr(
                    image,
                    video.source,
                    video.sequence,
                    sample,
                    frame_id,
                    timestamp,
                    intrinsics,
                    self.config.size,
                    "none",
                    self.keep_native,
                    video.groundtruth_dir,
                    number,
                    segment,
                    distortion,
                )
                sample += 1
            if grabbed == 0:
                yield _reject(dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "no decodable frame"))
            elif announced > 0 and grabbed + TRUNCATION_SLACK < announced:
                yield _reject(
                    dead_letter(
                        video.source,
                        video.path,
                        records.TRUNCATED_VIDEO,
                        f"decoded {grabbed} of the {announced} frames the container announces",
                    )
                )
        finally:
            capture.release()


def _download_to_temp(path: str) -> str:
    """Copy a remote video to a local temporary file (OpenCV reads local files only)."""
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1]
    handle, local = tempfile.mkstemp(prefix="wilddepth-video-", suffix=suffix)
    with os.fdopen(handle, "wb") as target, FileSystems.open(path) as source:
        shutil.copyfileobj(source, target, length=1 << 20)
    return local
