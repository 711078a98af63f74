"""Trajectory inference: ordered images -> relative motions -> full poses, per sequence (the release's
``trajectory_inference.py``).

The predictor is any object with ``image_size`` (H, W) and ``predict_egomotion(image_a, image_b) -> (R [B,3,3],
t [B,3], K [B,3,3])`` with (R, t) = T_a_from_b (maps points of camera b into camera a, the averaged estimate of
the release's bidirectional average), images [B, H, W, 3] float32 in [0, 1]. No TensorFlow here.

Input discovery (:func:`find_sequences`), from the folder given to ``--odometry_test_set_dir``, searched
recursively; the first rule that matches a folder makes it one sequence:

1. a folder named ``<name>-image_<n>`` (the release's ``09-image_2``, ``10-image_2``), or any image folder with
   ``input_format=triplets``: Struct2depth triplets (t0 | t1 | t2), one file per step, files sorted by name,
   names containing ``seg`` skipped. Each file gives the pair (t0, t1), as in the release.
2. a KITTI odometry sequence folder (holds ``image_2/``): frames ``image_2/*.png``; ground truth
   ``../../poses/<NN>.txt`` or ``groundtruth/poses.txt``; timestamps ``times.txt``.
3. a KITTI raw drive folder (holds ``image_02/data/``): ground truth ``groundtruth/poses.txt`` and
   ``groundtruth/timestamps.txt`` (the synthetic world) when present.
4. any folder holding images directly (``.png``/``.jpg``, sorted by name; ``image_02/data`` and ``image_2``
   themselves are recognised and named after their drive / sequence).

Calibration (the sequence's true K, :func:`read_calibration`), first found of: ``groundtruth/intrinsics.txt``
(the synthetic world, any layout), ``calib.txt`` ``P<n>`` (KITTI odometry), ``../calib_cam_to_cam.txt``
``P_rect_0<n>`` (KITTI raw), with n the camera of the image folder; none for triplet folders.

Frames are resized to the model's size with bilinear interpolation (``evaluation.images.model_input``). For
frame folders the pairs are (frame k, frame k+1), k = 0 .. N-2, giving N poses; for triplet folders N files give
N + 1 poses.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from evaluation import images, trajectory
from formats import kitti
from formats.camera import resized_pixel_aspect, scale_intrinsics, tie_focal_aspect
from formats.params import Config, param
from formats.struct2depth import read_intrinsics, read_rgb, unpack_triplet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TRIPLET_FOLDER = re.compile(r"^(?P<sequence>.+)-image_\d$")
INPUT_FORMATS = ("auto", "triplets", "frames")


@dataclasses.dataclass(frozen=True)
class TrajectoryInferenceConfig(Config):
    """How poses are inferred and accumulated: the ``trajectory_inference:`` section of params.yaml."""

    accumulation: str = param(
        "compose",
        help="pose accumulation: compose (exact) or dfv (the release's trajectory_inference.py order)",
        choices=trajectory.ACCUMULATIONS,
    )
    orthonormalize: bool = param(True, help="project each averaged rotation onto SO(3) before accumulating")
    flip_augment: bool = param(
        True, help="also predict each mirrored pair and average the two (removes the left/right bias)"
    )
    batch_size: int = param(8, help="pairs per predictor call", minimum=1)
    input_format: str = param(
        "auto",
        help="auto, triplets (release *-image_2 folders) or frames (one image per frame)",
        choices=INPUT_FORMATS,
    )


class OdometrySequence(NamedTuple):
    """One ordered image sequence to run; ``gt_poses`` / ``timestamps`` are files when they were found."""

    name: str
    kind: str  # "frames" or "triplets"
    files: List[Path]
    gt_poses: Optional[Path] = None
    timestamps: Optional[Path] = None
    calibration: Optional[Path] = None
    camera: int = 2  # KITTI camera number of the image folder (image_02 / image_2 -> 2)


def _image_files(folder: Path) -> List[Path]:
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and "seg" not in path.name
    )


def _existing(*paths: Path) -> Optional[Path]:
    return next((path for path in paths if path.is_file()), None)


def _camera_number(frame_dir: Path) -> int:
    folder = frame_dir.parent.name if frame_dir.name == "data" else frame_dir.name
    match = re.fullmatch(r"image_0?(\d)", folder)
    return int(match.group(1)) if match else 2


def _frames_sequence(name: str, frame_dir: Path, sequence_dir: Path) -> OdometrySequence:
    return OdometrySequence(
        name=name,
        kind="frames",
        files=_image_files(frame_dir),
        gt_poses=_existing(
            sequence_dir.parent.parent / "poses" / f"{sequence_dir.name}.txt",
            sequence_dir / "groundtruth" / "poses.txt",
        ),
        timestamps=_existing(sequence_dir / "times.txt", sequence_dir / "groundtruth" / "timestamps.txt"),
        calibration=_existing(
            sequence_dir / "groundtruth" / "intrinsics.txt",
            sequence_dir / "calib.txt",
            sequence_dir.parent / "calib_cam_to_cam.txt",
        ),
        camera=_camera_number(frame_dir),
    )


def pixel_aspect(sequence: OdometrySequence, frame_hw, size_hw) -> float:
    """fy / fx of the sequence's frames resized to ``size_hw``: from its calibration's fy / fx when it has one
    (only the ratio: the records' pixel aspect, as training used it), else square source pixels."""
    resize = resized_pixel_aspect((frame_hw[1], frame_hw[0]), (size_hw[1], size_hw[0]))
    calibration = read_calibration(sequence)
    return resize if calibration is None else resize * calibration[1, 1] / calibration[0, 0]


def read_calibration(sequence: OdometrySequence) -> Optional[np.ndarray]:
    """The sequence's true K (3x3, pixels of its frames) from ``sequence.calibration``, or None without one.

    A calibration file that exists but cannot be read is an error (kitti.CalibrationError / RecordFormatError,
    both ValueError), never a silent ``None``."""
    path = sequence.calibration
    if path is None:
        return None
    if path.name == "intrinsics.txt":
        return read_intrinsics(path)
    calibration = kitti.read_calibration(path)
    if path.name == "calib.txt":
        return kitti.intrinsics_from_projection(
            kitti.calibration_matrix(calibration, f"P{sequence.camera}", (3, 4), str(path))
        )
    return kitti.raw_camera_intrinsics(calibration, sequence.camera, str(path))


def _classify(folder: Path, input_format: str) -> Optional[OdometrySequence]:
    if input_format == "triplets" or (input_format == "auto" and TRIPLET_FOLDER.match(folder.name)):
        files = _image_files(folder)
        return OdometrySequence(folder.name, "triplets", files) if files else None
    if (folder / "image_2").is_dir():
        return _frames_sequence(folder.name, folder / "image_2", folder)
    if (folder / "image_02" / "data").is_dir():
        return _frames_sequence(folder.name, folder / "image_02" / "data", folder)
    if _image_files(folder):
        if folder.name == "data" and folder.parent.name.startswith("image_0"):
            return _frames_sequence(folder.parent.parent.name, folder, folder.parent.parent)
        if folder.name.startswith("image_") and re.fullmatch(r"image_\d", folder.name):
            return _frames_sequence(folder.parent.name, folder, folder.parent)
        return OdometrySequence(folder.name, "frames", _image_files(folder))
    return None


def find_sequences(root: Path, input_format: str = "auto") -> List[OdometrySequence]:
    """All sequences below ``root`` (see the module docstring), sorted by path; raises if there is none."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: odometry test set folder not found")
    found: List[OdometrySequence] = []
    pending = [root]
    while pending:
        folder = pending.pop(0)
        sequence = _classify(folder, input_format)
        if sequence is not None:
            found.append(sequence)
            continue
        pending.extend(
            sorted(
                child
                for child in folder.iterdir()
                if child.is_dir() and not child.name.startswith(".") and child.name != "groundtruth"
            )
        )
    found = [sequence for sequence in found if len(sequence.files) >= (1 if sequence.kind == "triplets" else 2)]
    if not found:
        raise FileNotFoundError(f"{root}: no image sequence found (frames, KITTI layouts or *-image_2 triplets)")
    names = [sequence.name for sequence in found]
    if len(set(names)) != len(names):
        raise ValueError(f"{root}: sequence names are not unique: {names}")
    return found


def read_timestamps(path: Optional[Path], count: int) -> Optional[np.ndarray]:
    """Seconds from ``times.txt`` (odometry), ``timestamps.txt`` (seconds or KITTI raw dates); None if unusable."""
    if path is None:
        return None
    text = path.read_text()
    try:
        values = np.array([float(token) for token in text.split()])
    except ValueError:
        values = kitti.parse_raw_timestamps(text, str(path))
    return values[:count] if values.size >= count else None


def _pairs(sequence: OdometrySequence, size_hw, start: int, stop: int):
    """Model inputs (a, b) for pairs start .. stop-1, plus the source frame size."""
    if sequence.kind == "triplets":
        firsts, seconds = [], []
        for path in sequence.files[start:stop]:
            t0, t1, _ = unpack_triplet(read_rgb(path))
            firsts.append(images.model_input(np.ascontiguousarray(t0), size_hw))
            seconds.append(images.model_input(np.ascontiguousarray(t1), size_hw))
            frame_shape = t0.shape[:2]
        return np.stack(firsts), np.stack(seconds), frame_shape
    frames = [read_rgb(path) for path in sequence.files[start : stop + 1]]
    inputs = np.stack([images.model_input(frame, size_hw) for frame in frames])
    return inputs[:-1], inputs[1:], frames[0].shape[:2]


def infer_sequence(
    sequence: OdometrySequence,
    predictor,
    batch_size: int = 8,
    accumulation: str = "compose",
    orthonormalize: bool = True,
    flip_augment: bool = False,
) -> Dict:
    """Run the predictor over a sequence: relative motions, accumulated poses and the head's K of every pair.

    ``flip_augment`` asks the predictor to average each pair with its mirror image
    (``predict_egomotion(first, second, flip_augment=True)``). ``pair_intrinsics`` (N, 3, 3) is whatever the
    predictor's intrinsics head returned, in model-input pixels: a result only for a predictor whose
    ``intrinsics_source`` is ``"learned"`` (``evaluation.intrinsics_evaluation``); ``intrinsics`` summarises
    it (median over the pairs) and rescales it to the source frames. A predictor with ``focal_aspect ==
    "records"`` gets fy = fx * ``pixel_aspect`` of the sequence, as in its training.
    """
    size_hw = tuple(int(v) for v in predictor.image_size)
    num_pairs = len(sequence.files) if sequence.kind == "triplets" else len(sequence.files) - 1
    if num_pairs < 1:
        raise ValueError(f"{sequence.name}: needs at least one image pair")
    rotations, translations, intrinsics = [], [], []
    frame_shape = None
    for start in range(0, num_pairs, batch_size):
        stop = min(start + batch_size, num_pairs)
        first, second, frame_shape = _pairs(sequence, size_hw, start, stop)
        motion = (
            predictor.predict_egomotion(first, second, flip_augment=True)
            if flip_augment
            else predictor.predict_egomotion(first, second)
        )
        r, t, k = (np.asarray(array, dtype=np.float64) for array in motion)
        if r.shape != (stop - start, 3, 3) or t.shape != (stop - start, 3) or k.shape != (stop - start, 3, 3):
            raise ValueError(f"predictor returned shapes {r.shape}, {t.shape}, {k.shape} for {stop - start} pairs")
        rotations.append(r)
        translations.append(t)
        intrinsics.append(k)
    rotations, translations = np.concatenate(rotations), np.concatenate(translations)
    intrinsics = np.concatenate(intrinsics)
    if not (np.all(np.isfinite(rotations)) and np.all(np.isfinite(translations))):
        raise ValueError(f"{sequence.name}: the predictor returned non-finite motions")
    if orthonormalize:
        rotations = np.stack([trajectory.nearest_rotation(rotation) for rotation in rotations])
    poses = trajectory.accumulate(rotations, translations, accumulation)
    height, width = size_hw
    if getattr(predictor, "focal_aspect", "free") == "records":  # fy as training tied it: fx * pixel aspect
        intrinsics = tie_focal_aspect(intrinsics, pixel_aspect(sequence, frame_shape, size_hw))
    median_k = np.median(intrinsics, axis=0)
    try:
        source_k = scale_intrinsics(median_k, frame_shape[1] / width, frame_shape[0] / height).tolist()
    except ValueError:  # e.g. a non-positive learned focal length: report the raw K only
        source_k = None
    return {
        "poses": poses,
        "relative_rotations": rotations,
        "relative_translations": translations,
        "pair_intrinsics": intrinsics,
        "frame_size": (int(frame_shape[0]), int(frame_shape[1])),
        "intrinsics": {
            "image_size": [height, width],
            "K": median_k.tolist(),
            "K_std": intrinsics.std(axis=0).tolist(),
            "source_image_size": [int(frame_shape[0]), int(frame_shape[1])],
            "K_source": source_k,
            "num_pairs": int(num_pairs),
        },
        "timestamps": read_timestamps(sequence.timestamps, poses.shape[0]),
    }
