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
from typing import Iterator, Optional, Tuple

import apache_beam as beam
import cv2
import numpy as np

from formats.camera import check_intrinsics_for_image
from pipelines import fileio, records
from pipelines.beam_util import counter, reject
from pipelines.config import PreprocessConfig
from pipelines.records import DeadLetter, VideoInput, dead_letter, safe_sequence_name
from pipelines.sampling import make_sampler
from pipelines.sources import (
    backward_timestamp,
    calibration_letter,
    frame_from_bgr,
    grey_letter,
    is_grey,
    read_camera_file,
)

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
            yield reject(dead_letter("video", pattern, records.NO_INPUT, "no file matches"))
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

    def process(self, video: VideoInput):
        local, temporary = video.path, None
        try:
            if fileio.is_remote(video.path):
                temporary = _download_to_temp(video.path)
                local = temporary
            if not os.path.isfile(local) or os.path.getsize(local) == 0:
                yield reject(dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "missing or zero-byte file"))
                return
            sidecar = fileio.join(video.groundtruth_dir, "intrinsics.txt") if video.groundtruth_dir else None
            try:
                intrinsics, distortion = read_camera_file(self.config.intrinsics_file, sidecar)
            except (ValueError, OSError) as error:
                yield reject(calibration_letter(video.source, video.path, error))
                return
            yield from self._decode(video, local, intrinsics, distortion)
        finally:
            if temporary:
                os.unlink(temporary)

    def _decode(
        self, video: VideoInput, local: str, intrinsics: Optional[np.ndarray], distortion: Optional[np.ndarray] = None
    ):
        """Frames and dead letters of the local file ``local``, then the container's own dead letter
        (no decodable frame, truncated) unless the video was rejected as a whole."""
        capture = cv2.VideoCapture(local, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            yield reject(
                dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "OpenCV cannot open the container")
            )
            return
        try:
            announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            grabbed = yield from self._sampled_frames(capture, video, intrinsics, distortion)
            letter = None if grabbed is None else _container_letter(video, grabbed, announced)
            if letter is not None:
                yield reject(letter)
        finally:
            capture.release()

    def _sampled_frames(
        self, capture, video: VideoInput, intrinsics: Optional[np.ndarray], distortion: Optional[np.ndarray]
    ):
        """Frames of the sampled times and dead letters of the frames that break the rules; returns how many
        frames were grabbed, or None when K does not fit the first decoded frame (the whole video rejected).

        A rejected frame starts a new segment (no triplet spans it), as does a new burst of the sampler.
        """
        options = self.config.video
        sampler = make_sampler(options.sampling, options.fps, options.interval, options.burst)
        grabbed, sample, segment = 0, 0, 0
        previous_time = previous_burst = None
        check_intrinsics = intrinsics is not None
        for number, timestamp in _grabbed_times(capture):
            grabbed = number + 1
            frame_id = f"{video.path}@{number}"
            letter = backward_timestamp(video.source, frame_id, timestamp, previous_time)
            if letter is None:
                previous_time = timestamp
                burst = sampler.offer(timestamp)
                if burst is None:
                    continue
                if previous_burst is not None and burst != previous_burst:
                    segment += 1
                previous_burst = burst
                image, letter = _retrieve(capture, video.source, frame_id)
            if letter is None and check_intrinsics:
                # a frame of another size is dead-lettered by the planning step, which knows the video's
                # majority size (pipelines/planning.py), so a wrong-size first frame blames only itself
                try:
                    check_intrinsics_for_image(intrinsics, (image.shape[1], image.shape[0]), "K")
                except ValueError as error:
                    yield reject(dead_letter(video.source, video.path, records.BAD_CALIBRATION, str(error)))
                    return None
                check_intrinsics = False
            if letter is None and is_grey(image):
                letter = grey_letter(video.source, frame_id)
            if letter is not None:
                yield reject(letter)
                segment, sample = segment + 1, sample + 1
                continue
            counter("frames_read").inc()
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
        return grabbed


def _grabbed_times(capture) -> Iterator[Tuple[int, float]]:
    """(frame number, seconds since the first frame) of every frame ``capture`` grabs, from the container's
    presentation timestamps (``CAP_PROP_POS_MSEC``); nothing is decoded."""
    number, origin = 0, None
    while capture.grab():
        milliseconds = capture.get(cv2.CAP_PROP_POS_MSEC)
        if origin is None:
            origin = milliseconds
        yield number, (milliseconds - origin) / 1000.0
        number += 1


def _retrieve(capture, source: str, frame_id: str) -> Tuple[Optional[np.ndarray], Optional[DeadLetter]]:
    """(BGR image, None) of the grabbed frame, or (None, its dead letter) when it cannot be decoded."""
    ok, image = capture.retrieve()
    if not ok or image is None:
        return None, dead_letter(source, frame_id, records.UNREADABLE_FRAME, "frame cannot be decoded")
    return image, None


def _container_letter(video: VideoInput, grabbed: int, announced: int) -> Optional[DeadLetter]:
    """The dead letter of a container with no decodable frame, or with fewer frames than it announces."""
    if grabbed == 0:
        return dead_letter(video.source, video.path, records.CORRUPT_VIDEO, "no decodable frame")
    if announced > 0 and grabbed + TRUNCATION_SLACK < announced:
        detail = f"decoded {grabbed} of the {announced} frames the container announces"
        return dead_letter(video.source, video.path, records.TRUNCATED_VIDEO, detail)
    return None


def _download_to_temp(path: str) -> str:
    """Copy a remote video to a local temporary file (OpenCV reads local files only)."""
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1]
    handle, local = tempfile.mkstemp(prefix="wilddepth-video-", suffix=suffix)
    with os.fdopen(handle, "wb") as target, FileSystems.open(path) as source:
        shutil.copyfileobj(source, target, length=1 << 20)
    return local
