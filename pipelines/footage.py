"""Footage for ``stages.predict``: videos and frame folders streamed frame by frame, outside a Beam pipeline.

There is one implementation of reading footage: this module drives preprocessing's own DoFns directly
(``ListVideos``/``DecodeVideo`` of ``pipelines.video``; ``ListImageFolders``/``PlanImageFolder``/``DecodeFrame``
of ``pipelines.sources``), so prediction sees exactly the frames preprocessing would sample (the ``video.fps``
rule on the container's ``CAP_PROP_POS_MSEC`` timestamps, the image-folder stride and ``timestamps.txt``), the
same resize (``cv2.INTER_AREA``, K transformed exactly, ``pipelines.geometry``), the same intrinsics lookup
(``intrinsics_file``, ground-truth sidecar / folder ``intrinsics.txt``, else the documented guess) and the same
dead letters. ``DoFn.process`` is a generator, so a video is decoded one frame at a time and never held whole.

Never imports TensorFlow (like every module of ``pipelines``).
"""

from __future__ import annotations

import collections
import dataclasses
import glob as _glob
import os
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from pipelines import fileio
from pipelines.beam_util import is_tagged, untagged
from pipelines.config import PreprocessConfig
from pipelines.geometry import default_intrinsics
from pipelines.records import DeadLetter, Frame, FrameRef, VideoInput, safe_sequence_name
from pipelines.sources import IMAGE_EXTENSIONS, DecodeFrame, ListImageFolders, PlanImageFolder, natural_key
from pipelines.video import DecodeVideo, ListVideos

VIDEO = "video"
IMAGE_FOLDER = "image_folder"
# Where the intrinsics of an input come from (before a learned K may replace them):
GIVEN = "given"  # --intrinsics / intrinsics_file
CALIBRATION = "calibration"  # the folder's intrinsics.txt or the video's ground-truth sidecar
GUESSED = "guessed"  # pipelines.geometry.default_intrinsics (fx = fy = native width)


@dataclasses.dataclass(frozen=True)
class FootageInput:
    """One sequence to predict: a video file, or an ordered list of frame files of one folder."""

    kind: str  # VIDEO or IMAGE_FOLDER
    name: str  # output sub-folder, unique within a run
    path: str  # the video file or the frame folder
    files: Tuple[str, ...] = ()  # IMAGE_FOLDER: frame files in natural name order
    groundtruth_dir: Optional[str] = None


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _listed(elements, to_input) -> Tuple[List[FootageInput], List[DeadLetter]]:
    """A lister DoFn's output split into inputs (``to_input(element)``) and dead letters."""
    inputs, letters = [], []
    for element in elements:
        if is_tagged(element):
            letters.append(untagged(element))
        else:
            inputs.append(to_input(element))
    return inputs, letters


def _folder_inputs(root: str) -> Tuple[List[FootageInput], List[DeadLetter]]:
    def to_input(item):
        folder, paths = item
        return FootageInput(IMAGE_FOLDER, safe_sequence_name(fileio.basename(folder)), folder, tuple(paths))

    return _listed(ListImageFolders().process(root), to_input)


def _video_inputs(pattern: str) -> Tuple[List[FootageInput], List[DeadLetter]]:
    return _listed(
        ListVideos().process(pattern),
        lambda video: FootageInput(VIDEO, video.sequence, video.path, (), video.groundtruth_dir),
    )


def find_inputs(pattern: str) -> Tuple[List[FootageInput], List[DeadLetter]]:
    """Inputs named by ``pattern`` and dead letters of what could not be used.

    - a folder: its frame sequences (the folder itself and each immediate sub-folder that holds images, as
      the ``image_folder`` source); a folder without images but with files (videos) is taken as ``FOLDER/*``;
    - a video file, or a glob of video files (every non-image file it matches is tried as a video);
    - a glob of image files: one sequence per folder, in natural name order (a subset of a folder that has a
      ``timestamps.txt``, one line per image of the folder, is refused: its lines would not match);
    - a glob of folders: each folder as above.
    Raises ValueError for a glob that matches both images and other files, FileNotFoundError if nothing matches.
    Names are made unique (``_2``, ``_3`` ... appended in order).
    """
    if os.path.isdir(pattern):
        inputs, letters = _folder_inputs(pattern)
        if not inputs:
            others = [path for path in fileio.glob(os.path.join(pattern, "*")) if not _is_image(path)]
            if others:
                inputs, letters = _video_inputs(os.path.join(pattern, "*"))
    else:
        folders = sorted(path for path in _glob.glob(pattern) if os.path.isdir(path))
        files = fileio.glob(pattern)
        images = [path for path in files if _is_image(path)]
        if images and len(images) != len(files):
            raise ValueError(f"{pattern} matches both image files and other files; give one kind of input")
        inputs, letters = [], []
        if images:
            groups: Dict[str, List[str]] = collections.defaultdict(list)
            for path in images:
                groups[fileio.dirname(path)].append(path)
            for folder in sorted(groups):
                paths = sorted(groups[folder], key=lambda p: natural_key(fileio.basename(p)))
                everything = [path for path in fileio.glob(fileio.join(folder, "*")) if _is_image(path)]
                if len(paths) < len(everything) and fileio.exists(fileio.join(folder, "timestamps.txt")):
                    raise ValueError(
                        f"{pattern} selects {len(paths)} of the {len(everything)} images of {folder}, "
                        "whose timestamps.txt has one line per image: give the folder instead"
                    )
                inputs.append(
                    FootageInput(IMAGE_FOLDER, safe_sequence_name(fileio.basename(folder)), folder, tuple(paths))
                )
        elif files:
            inputs, letters = _video_inputs(pattern)
        for folder in folders:
            found, rejected = _folder_inputs(folder)
            inputs.extend(found)
            letters.extend(rejected)
    if not inputs:
        reasons = "; ".join(letter.reason for letter in letters)
        raise FileNotFoundError(f"{pattern}: no video or image frames found" + (f" ({reasons})" if reasons else ""))
    return _unique_names(inputs), letters


def _unique_names(inputs: List[FootageInput]) -> List[FootageInput]:
    seen: Dict[str, int] = {}
    unique = []
    for item in inputs:
        count = seen.get(item.name, 0) + 1
        seen[item.name] = count
        unique.append(item if count == 1 else dataclasses.replace(item, name=f"{item.name}_{count}"))
    return unique


def intrinsics_provenance(item: FootageInput, config: PreprocessConfig) -> Tuple[str, Optional[str]]:
    """(GIVEN | CALIBRATION | GUESSED, the file) for the K the readers attach to ``item``'s frames.

    A named ``config.intrinsics_file`` that does not exist is an error here (FileNotFoundError), never a
    silent fallback to the guess.
    """
    if config.intrinsics_file:
        if not fileio.exists(config.intrinsics_file):
            raise FileNotFoundError(f"intrinsics file {config.intrinsics_file} not found")
        return GIVEN, config.intrinsics_file
    candidate = None
    if item.kind == IMAGE_FOLDER:
        candidate = fileio.join(item.path, "intrinsics.txt")
    elif item.groundtruth_dir:
        candidate = fileio.join(item.groundtruth_dir, "intrinsics.txt")
    if candidate and fileio.exists(candidate):
        return CALIBRATION, candidate
    return GUESSED, None


def guessed_intrinsics(native_size: Tuple[int, int]) -> np.ndarray:
    """The guess preprocessing uses for an unknown camera, at native size (width, height)."""
    return default_intrinsics(native_size)


def stream_frames(item: FootageInput, config: PreprocessConfig) -> Iterator[Union[Frame, DeadLetter]]:
    """Frames of ``item`` at ``config.size`` (RGB uint8, K of the resized image, timestamp in seconds from the
    first frame) and dead letters, in order, one at a time."""
    if item.kind == VIDEO:
        video = VideoInput(VIDEO, item.name, item.path, item.groundtruth_dir)
        yield from map(untagged, DecodeVideo(config).process(video))
        return
    decoder = DecodeFrame(config)
    for planned in PlanImageFolder(config).process((item.path, list(item.files))):
        if is_tagged(planned):
            yield untagged(planned)
            continue
        ref: FrameRef = dataclasses.replace(planned, sequence=item.name)
        yield from map(untagged, decoder.process(ref))


def is_dead_letter(element) -> bool:
    return isinstance(element, DeadLetter)
