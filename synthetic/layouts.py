"""Where the synthetic world's files go, laid out exactly like the real datasets, plus the groundtruth sidecar.

Layouts (``root`` = the output folder; ``seq`` = sequence index from 0; ``frame`` = index in the sequence):

- ``kitti_raw``: ``<date>/calib_cam_to_cam.txt``, ``<date>/<date>_drive_<seq+1:04d>_sync/image_02/data/
  <frame:010d>.png`` and ``image_02/timestamps.txt``; groundtruth in ``<drive>/groundtruth/``.
- ``kitti_odometry``: ``sequences/<seq:02d>/image_2/<frame:06d>.png``, ``calib.txt`` (P0..P3), ``times.txt``,
  ``poses/<seq:02d>.txt`` (camera-to-first-frame); groundtruth in ``sequences/<seq:02d>/groundtruth/``.
- ``cityscapes``: ``leftImg8bit_sequence/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png`` and
  ``camera/<split>/<city>/<city>_<seq:06d>_<frame:06d>_camera.json``; groundtruth in
  ``groundtruth/<split>/<city>_<seq:06d>/``.
- ``video``: ``<name>.mp4`` (mp4v) with groundtruth in ``groundtruth/<name>/``, name ``synthetic_<seq:04d>``.

Groundtruth frames are always named by the frame index (10 digits), see :mod:`formats.groundtruth`.

When every sequence has its own camera (``camera_per_sequence=True``, the wild world), KITTI raw's one
calibration per date folder is kept by giving each sequence its own date folder: sequence ``seq`` lives in
``<2011-09-26 + seq days>/`` (``2011_09_26``, ``2011_09_27``, ...), with its own ``calib_cam_to_cam.txt``.
The other layouts already carry a calibration per sequence (odometry ``calib.txt``, Cityscapes camera json per
frame, the video's ``groundtruth/<name>/intrinsics.txt``).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from evaluation import odometry_metrics
from formats import atomic, cityscapes, kitti
from formats.camera import intrinsics_matrix, scale_intrinsics
from synthetic.cameras import rendered_size

LAYOUTS = ("kitti_raw", "kitti_odometry", "cityscapes", "video")
KITTI_DATE = "2011_09_26"
KITTI_START = dt.datetime(2011, 9, 26, 13, 2, 25)
CITY = "synthcity"
# native frame sizes and intrinsics of the real cameras (KITTI 2011_09_26 P_rect_02, Cityscapes, a dash cam)
NATIVE = {
    "kitti_raw": (1242, 375, intrinsics_matrix(721.5377, 721.5377, 609.5593, 172.854)),
    "kitti_odometry": (1241, 376, intrinsics_matrix(718.856, 718.856, 607.1928, 185.2157)),
    "cityscapes": (2048, 1024, intrinsics_matrix(2262.52, 2265.3017905988554, 1096.98, 513.137)),
    "video": (960, 540, intrinsics_matrix(700.0, 700.0, 479.5, 269.5)),
}
STEREO_BASELINE = 0.5371  # metres between KITTI cameras 0 and 1 (and roughly 2 and 3)


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


def camera(layout: str, width: int = 0, height: int = 0) -> Tuple[int, int, np.ndarray]:
    """(width, height, K) of a layout's camera rendered at ``synthetic.cameras.rendered_size`` (both 0 = the
    layout's native size; one 0 = that side follows the native aspect ratio); K is the native K scaled exactly
    (pixel-centre convention of :func:`formats.camera.scale_intrinsics`)."""
    native_width, native_height, native_k = NATIVE[check_layout(layout)]
    width, height = rendered_size((native_width, native_height), width, height)
    return width, height, scale_intrinsics(native_k, width / native_width, height / native_height)


def image_path(
    layout: str, root: os.PathLike, split: str, sequence: int, frame: int, camera_per_sequence: bool = False
) -> Path:
    """The image file of a frame (not used for ``video``)."""
    root = Path(root)
    if layout == "kitti_raw":
        return kitti_raw_drive(root, sequence, camera_per_sequence) / "image_02" / "data" / f"{frame:010d}.png"
    if layout == "kitti_odometry":
        return root / "sequences" / f"{sequence:02d}" / "image_2" / f"{frame:06d}.png"
    if layout == "cityscapes":
        stem = cityscapes.frame_stem(CITY, sequence, frame)
        return root / "leftImg8bit_sequence" / split / CITY / f"{stem}_leftImg8bit.png"
    raise ValueError(f"layout {layout!r} has no per-frame image files")


def kitti_raw_date(sequence: int, camera_per_sequence: bool = False) -> str:
    """The date folder of a sequence: ``2011_09_26`` for all, or one date per sequence (its own calibration)."""
    if not camera_per_sequence:
        return KITTI_DATE
    return (KITTI_START + dt.timedelta(days=int(sequence))).strftime("%Y_%m_%d")


def kitti_raw_drive(root: os.PathLike, sequence: int, camera_per_sequence: bool = False) -> Path:
    date = kitti_raw_date(sequence, camera_per_sequence)
    return Path(root) / date / f"{date}_drive_{sequence + 1:04d}_sync"


def video_name(sequence: int) -> str:
    return f"synthetic_{sequence:04d}"


def groundtruth_dir(
    layout: str, root: os.PathLike, split: str, sequence: int, camera_per_sequence: bool = False
) -> Path:
    root = Path(root)
    if layout == "kitti_raw":
        return kitti_raw_drive(root, sequence, camera_per_sequence) / "groundtruth"
    if layout == "kitti_odometry":
        return root / "sequences" / f"{sequence:02d}" / "groundtruth"
    if layout == "cityscapes":
        return root / "groundtruth" / split / f"{CITY}_{sequence:06d}"
    if layout == "video":
        return root / "groundtruth" / video_name(sequence)
    raise ValueError(f"unknown layout {layout!r}")


def kitti_raw_calibration(intrinsics: np.ndarray, width: int, height: int) -> str:
    """``calib_cam_to_cam.txt`` text: every camera rectified to K, the colour camera 2 being the one rendered.

    P_rect_0X = K [I | (fx * b_X, 0, 0)] with KITTI's camera offsets b_X along x (metres)."""
    fx = intrinsics[0, 0]
    offsets = {0: 0.0, 1: -STEREO_BASELINE, 2: 0.06, 3: 0.06 - STEREO_BASELINE}
    entries = {}
    for cam, offset in offsets.items():
        entries[f"S_0{cam}"] = np.array([width, height], float)
        entries[f"K_0{cam}"] = intrinsics
        entries[f"D_0{cam}"] = np.zeros(5)
        entries[f"R_0{cam}"] = np.eye(3)
        entries[f"T_0{cam}"] = np.array([offset, 0.0, 0.0])
        entries[f"S_rect_0{cam}"] = np.array([width, height], float)
        entries[f"R_rect_0{cam}"] = np.eye(3)
        projection = np.zeros((3, 4))
        projection[:, :3] = intrinsics
        projection[0, 3] = fx * offset
        entries[f"P_rect_0{cam}"] = projection
    header = "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
    return header + kitti.format_calibration(entries)


def odometry_calibration(intrinsics: np.ndarray) -> str:
    """Odometry ``calib.txt``: P0..P3 (rectified), camera 2 being the rendered one."""
    entries = {}
    for cam, offset in enumerate((0.0, -STEREO_BASELINE, 0.06, 0.06 - STEREO_BASELINE)):
        projection = np.zeros((3, 4))
        projection[:, :3] = intrinsics
        projection[0, 3] = intrinsics[0, 0] * offset
        entries[f"P{cam}"] = projection
    return kitti.format_calibration(entries)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def write_image(path: os.PathLike, rgb: np.ndarray) -> None:
    atomic.write_bytes(path, encode_png(rgb))


def write_sequence_files(
    layout: str,
    root: os.PathLike,
    split: str,
    sequence: int,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    timestamps: np.ndarray,
    poses: np.ndarray,
    camera_per_sequence: bool = False,
) -> None:
    """The per-sequence files of the layout (calibration, timestamps, poses); not the frames.

    KITTI raw: with ``camera_per_sequence`` the sequence's own date folder gets its calibration (otherwise
    all sequences share ``2011_09_26/calib_cam_to_cam.txt``, so they must share one camera)."""
    root = Path(root)
    if layout == "kitti_raw":
        date = kitti_raw_date(sequence, camera_per_sequence)
        atomic.write_text(root / date / "calib_cam_to_cam.txt", kitti_raw_calibration(intrinsics, width, height))
        if camera_per_sequence:
            start = KITTI_START + dt.timedelta(days=sequence)
        else:
            start = KITTI_START + dt.timedelta(minutes=5 * sequence)
        atomic.write_text(
            kitti_raw_drive(root, sequence, camera_per_sequence) / "image_02" / "timestamps.txt",
            kitti.format_raw_timestamps(timestamps, start),
        )
    elif layout == "kitti_odometry":
        folder = root / "sequences" / f"{sequence:02d}"
        atomic.write_text(folder / "calib.txt", odometry_calibration(intrinsics))
        atomic.write_text(folder / "times.txt", "".join(f"{t:.6e}\n" for t in timestamps))
        # Rigid inverse and einsum, not np.linalg.inv and @: BLAS/LAPACK pick kernels by CPU, whose rounding
        # differs (~1e-16), and %.9e prints that residue where a value is 0, so the file was CPU-dependent. The
        # first pose is the identity exactly (G_0^-1 G_0), not a product carrying the drive's own rounding.
        first_from_world = odometry_metrics.invert_rigid(poses[0])
        relative = np.einsum("ij,njk->nik", first_from_world, poses)
        relative[0] = np.eye(4)
        kitti.write_poses(root / "poses" / f"{sequence:02d}.txt", relative)
    elif layout == "cityscapes":
        text = cityscapes.camera_json(intrinsics)
        for frame in range(len(timestamps)):
            stem = cityscapes.frame_stem(CITY, sequence, frame)
            atomic.write_text(root / "camera" / split / CITY / f"{stem}_camera.json", text)
    elif layout != "video":
        raise ValueError(f"unknown layout {layout!r}")


def write_video(path: os.PathLike, frames, fps: float, width: int, height: int) -> None:
    """Encode RGB frames into an mp4 (mp4v) atomically: a hidden temporary file renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{atomic.TEMP_PREFIX}{path.stem}.{os.getpid()}.mp4")
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot open an mp4v writer for {temporary}")
    try:
        for rgb in frames:
            writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    finally:
        writer.release()
    try:
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise
