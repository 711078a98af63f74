"""Stage ``predict``: your footage in, depth out (docs/predict.md).

    python -m stages.predict --checkpoint_path=CKPT --input=VIDEO|FOLDER|GLOB --output=DIR

Per input (a video, or a folder of ordered frames) it writes ``DIR/<name>/``:

- ``depth/NNNNNN.npy`` float32 depth (H, W) at the model's input size, in the model's (arbitrary) unit;
  ``depth_png/NNNNNN.png`` the same as 16-bit PNG, value = round(depth * 256) (KITTI's convention; 0 = none,
  clipped to 1..65535 — ``formats/depth_image.py``); ``depth_color/NNNNNN.png`` a colour-mapped preview;
  ``disparity/NNNNNN.npy`` (1 / depth) with ``--save_disparity``;
- ``frames.csv`` (output index, source frame, raw frame number, timestamp in s), ``poses_kitti.txt`` (3x4
  camera-to-first-frame rows), ``poses_tum.txt`` (TUM, time = the video's own presentation timestamps in
  seconds from the first frame), ``trajectory.png`` (top view), ``intrinsics.json`` (K used and where it came
  from: ``learned``, ``given``, ``calibration`` or ``guessed``), ``preview.mp4`` (frame | depth side by
  side) and ``pointcloud/NNNNNN.ply`` for ``--point_cloud_frames``;

and ``DIR/manifest.json`` (checkpoint, inputs, parameters, counts), ``DIR/dead_letters.jsonl`` (frames that
could not be used, with reasons) and ``DIR/outputs.txt`` (every file written). Frames are sampled and
resized by preprocessing's own code (``pipelines/footage.py``), batched through the networks
(``model/predict.py``) and written atomically by a writer thread while the next batch is decoded.
Exit status (``stages.common``): 0 done, 2 bad input or parameters (one line), 1 unexpected.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import datetime as _dt
import io
import json
import logging
import os
import queue
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np

from formats.params import Config, param
from stages import common

LOGGER = logging.getLogger("stages.predict")
MARKER = ".wilddepth-predict"
OUTPUTS_LIST = "outputs.txt"
ACCUMULATIONS = ("compose", "dfv")


class PredictError(common.StageError):
    """A user error of the predict stage (exit 2, one line)."""


# --- arguments -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VideoSampling(Config):
    """How a video is sampled (``predict.video``)."""

    fps: float = param(
        10.0, help="video frames sampled per second, by the container's timestamps (preprocessing's rule)", above=0.0
    )


@dataclasses.dataclass(frozen=True)
class FolderSampling(Config):
    """How a folder of frames is sampled (``predict.image_folder``)."""

    stride: int = param(1, help="every n-th image of a frame folder", minimum=1)
    fps: float = param(
        10.0, help="frame rate of a folder without timestamps.txt (its timestamps are index / fps)", above=0.0
    )


@dataclasses.dataclass(frozen=True)
class PredictConfig(Config):
    """The ``predict:`` section of params.yaml; ``checkpoint_path``, ``input`` and ``output`` must be given."""

    checkpoint_path: Optional[str] = param(
        None,
        help="checkpoint prefix (.../model-3000) or directory (its newest checkpoint); "
        "model_config.json must be beside it",
    )
    input: Optional[str] = param(
        None, help="a video file, a folder of ordered frames (or of videos), or a glob such as 'footage/*.mp4'"
    )
    output: Optional[str] = param(
        None, help="output folder: new, empty, or an earlier predict output (never a folder of other files)"
    )
    batch_size: int = param(8, help="frames per forward pass", minimum=1)
    flip_augment: bool = param(True, help="depth = min(depth(x), flip(depth(flip(x)))), as the release's graph")
    save_disparity: bool = param(False, help="also write disparity (1 / depth) as float32 .npy per frame")
    trajectory: bool = param(
        True,
        help="run the motion network on consecutive frames: poses (KITTI, TUM), trajectory.png and, for a "
        "checkpoint trained with learn_intrinsics, the learned K",
    )
    trajectory_flip_augment: bool = param(
        False, help="average each pair's motion with its mirrored pair's (2x motion-network cost)"
    )
    accumulation: str = param(
        "compose", help="pose accumulation order: compose (exact) or dfv (the release's order)", choices=ACCUMULATIONS
    )
    intrinsics: Optional[str] = param(
        None,
        help="file with 9 comma-separated floats, K at the footage's native size (used when the checkpoint has "
        "no learned intrinsics); null = the folder's intrinsics.txt / video sidecar, else the guess",
    )
    point_cloud_frames: Tuple[int, ...] = param(
        (), help="output frame indices written as coloured .ply point clouds, e.g. 0,10", minimum=0
    )
    preview_video: bool = param(True, help="write <name>/preview.mp4 (frame | depth side by side)")
    video: VideoSampling = param(default_factory=VideoSampling, help="sampling of videos")
    image_folder: FolderSampling = param(default_factory=FolderSampling, help="sampling of frame folders")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "point_cloud_frames", tuple(sorted(set(self.point_cloud_frames))))

    def check(self) -> Iterable[str]:
        for key in ("checkpoint_path", "input", "output"):
            if not getattr(self, key):
                yield f"{key}: --{key} is required"
        negative = [index for index in self.point_cloud_frames if index < 0]
        if negative:
            yield f"point_cloud_frames: must be >= 0, got {negative}"

    def parameters(self) -> Dict[str, Any]:
        """What the manifest records as the run's parameters (all but the checkpoint, input and output)."""
        mapping = self.to_mapping()
        return {key: value for key, value in mapping.items() if key not in ("checkpoint_path", "input", "output")}


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[PredictConfig, argparse.Namespace]:
    """(the ``predict`` section after flags, the full namespace); ConfigError (exit 2) names a bad key."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    params, args, _ = common.parse_stage_args("predict", __doc__.splitlines()[0], argv, extra, configs=(PredictConfig,))
    return PredictConfig.from_mapping(params, section="predict"), args


def preprocess_config(params: Dict[str, Any], image_size):
    """Preprocessing's config for the readers: the model's size, uniform sampling at ``video.fps``."""
    from pipelines.config import ImageFolderOptions, PreprocessConfig, VideoOptions

    height, width = image_size
    return PreprocessConfig(
        source="video",
        input=str(params["input"]),
        output=str(params["output"]),
        width=int(width),
        height=int(height),
        segmenter="none",
        video=VideoOptions(sampling="uniform", fps=params["video"]["fps"], intrinsics_file=params.get("intrinsics")),
        image_folder=ImageFolderOptions(stride=params["image_folder"]["stride"], fps=params["image_folder"]["fps"]),
    )


# --- the output folder ---------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_output(output: Path, input_paths: Sequence[str]) -> bool:
    """Refuse an output that would touch the input or a foreign folder; True if it is an earlier predict output.

    Refused (PredictError): the output is an input folder or lies inside one, an input lies inside the output,
    the output is a file, or it is a non-empty folder without predict's marker file.
    """
    output = output.resolve()
    for path in input_paths:
        source = Path(path).resolve()
        if output == source or (source.is_dir() and _inside(output, source)):
            raise PredictError(f"output {output} is inside the input {source}: choose a folder outside the input")
        if _inside(source, output):
            raise PredictError(f"input {source} lies inside the output folder {output}: choose another output")
    if output.exists() and not output.is_dir():
        raise PredictError(f"output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()):
        if not (output / MARKER).is_file():
            raise PredictError(
                f"output {output} is a non-empty folder that predict did not write (no {MARKER}); "
                "refusing to write into it"
            )
        return True
    return False


def claim_output(output: Path, checkpoint: str) -> Set[str]:
    """Create the folder and its marker; return the files an earlier run listed in ``outputs.txt``."""
    from formats import atomic

    output.mkdir(parents=True, exist_ok=True)
    previous: Set[str] = set()
    listing = output / OUTPUTS_LIST
    if listing.is_file():
        previous = {line.strip() for line in listing.read_text().splitlines() if line.strip()}
    atomic.write_text(
        output / MARKER, json.dumps({"tool": "wilddepth stages.predict", "checkpoint": checkpoint}) + "\n"
    )
    return previous


def remove_stale(output: Path, previous: Set[str], written: Set[str]) -> int:
    """Delete files an earlier run listed and this run did not write again (only regular files inside
    ``output``; nothing else is ever deleted)."""
    removed = 0
    root = output.resolve()
    for relative in sorted(previous - written):
        path = output / relative
        if relative.startswith("/") or ".." in Path(relative).parts or not _inside(path.resolve(), root):
            continue
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed += 1
    return removed


# --- writing -------------------------------------------------------------------------------------------


class Writer:
    """Atomic writes relative to the output folder, run in order on one background thread.

    ``submit`` queues a task (predict queues one per batch of frames); at most ``max_pending`` tasks wait, so
    the network can run the next batch while the writer encodes and writes this one, and memory stays bounded.
    """

    def __init__(self, output: Path, max_pending: int = 2):
        self.output = output
        self.written: Set[str] = set()
        self._local = threading.local()  # the open ``batch`` of the calling thread, if any
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict-writer")
        self._pending: "collections.deque[Future]" = collections.deque()
        self._max_pending = max_pending

    def submit(self, function, *args) -> None:
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(function, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop after an error elsewhere: wait for queued writes, dropping their errors."""
        for future in self._pending:
            future.exception()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def batch(self):
        """Files this thread writes inside the block are published together when it ends, after one flush to
        disk (``formats.atomic.Batch``; on an error none of them is)."""
        from formats import atomic

        with atomic.Batch() as batch:
            self._local.batch = batch
            try:
                yield
            finally:
                self._local.batch = None

    def bytes(self, relative: str, data: bytes) -> None:
        from formats import atomic

        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.write_bytes(self.output / relative, data)
        else:
            atomic.write_bytes(self.output / relative, data)
        self.written.add(relative)

    def text(self, relative: str, text: str) -> None:
        self.bytes(relative, text.encode("utf-8"))

    def npy(self, relative: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self.bytes(relative, buffer.getvalue())

    def png(self, relative: str, image: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise ValueError(f"OpenCV could not encode {relative}")
        self.bytes(relative, data.tobytes())


class PreviewVideo:
    """``preview.mp4`` written to a ``.tmp-`` name and renamed into place when complete."""

    def __init__(self, path: Path, fps: float, size):
        self.path = path
        self.temporary = path.with_name(f".tmp-{path.stem}-{os.getpid()}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = cv2.VideoWriter(str(self.temporary), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not self.writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {self.temporary} (mp4v)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def finish(self) -> None:
        self.writer.release()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        self.writer.release()
        if self.temporary.exists():
            self.temporary.unlink()


def colour_depth(depth: np.ndarray) -> np.ndarray:
    """BGR preview of one depth map: inverse depth on MAGMA (near bright), range = this frame's 2nd..98th
    depth percentiles (``evaluation.images.colorize_depth``)."""
    from evaluation.images import colorize_depth

    near, far = np.percentile(depth, [2.0, 98.0])
    near = max(float(near), 1e-6)
    return colorize_depth(depth, near, max(float(far), near * 1.01))


# --- one input -----------------------------------------------------------------------------------------

_END = object()


def _produce(frames, sink: "queue.Queue") -> None:
    try:
        for element in frames:
            sink.put(element)
        sink.put(_END)
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
        sink.put(error)


def _native_fps(path: str) -> Optional[float]:
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


def _estimated_frames(item, config: PredictConfig) -> Optional[int]:
    if item.kind == "image_folder":
        return -(-len(item.files) // config.image_folder.stride)
    capture = cv2.VideoCapture(item.path, cv2.CAP_FFMPEG)
    try:
        count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if count > 0 and fps > 0:
        return int(np.ceil(count / fps * min(config.video.fps, fps)))
    return None


def _preview_fps(item, config: PredictConfig) -> float:
    """Frames per second of the output: the sampling rate, at most a video's own rate."""
    if item.kind == "video":
        fps = config.video.fps
        return min(fps, _native_fps(item.path) or fps)
    return config.image_folder.fps / config.image_folder.stride


class _InputRun:
    """What predicting one input gathers: frames.csv rows, timestamps, the readers' K, kept point-cloud frames,
    counts; and the per-frame writes (on the writer thread)."""

    def __init__(self, name: str, config: PredictConfig, writer: Writer, preview: Optional[PreviewVideo]):
        self.name, self.config, self.writer, self.preview = name, config, writer, preview
        self.rows: List[list] = [["index", "frame", "raw_index", "timestamp_s"]]
        self.timestamps: List[float] = []
        self.kept_for_clouds: Dict[int, tuple] = {}
        self.clipped = 0
        self.letters = 0
        self.reader_K = None
        self.native_size = None
        self.index = 0

    def write_frame(self, index: int, frame, depth: np.ndarray) -> None:
        """depth .npy, 16-bit PNG, colour preview (and disparity, preview video frame) of one frame."""
        from formats.depth_image import encode_depth_png

        name, writer, stem = self.name, self.writer, f"{index:06d}"
        writer.npy(f"{name}/depth/{stem}.npy", depth)
        data, clipped = encode_depth_png(depth)
        self.clipped += clipped
        writer.bytes(f"{name}/depth_png/{stem}.png", data)
        colour = colour_depth(depth)
        writer.png(f"{name}/depth_color/{stem}.png", colour)
        if self.config.save_disparity:
            writer.npy(f"{name}/disparity/{stem}.npy", (1.0 / depth).astype(np.float32))
        if self.preview is not None:
            self.preview.write(np.concatenate([cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), colour], axis=1))

    def write_batch(self, first: int, frames: List, depths: np.ndarray) -> None:
        """``write_frame`` for each frame of one batch, output indices from ``first`` (on the writer thread); the
        batch's files are published together."""
        with self.writer.batch():
            for offset, (frame, depth) in enumerate(zip(frames, depths)):
                self.write_frame(first + offset, frame, depth)

    def add_batch(self, batch: List, depths) -> None:
        """Record a predicted batch and queue its writes (one writer task per batch)."""
        first = self.index
        for frame, depth in zip(batch, depths):
            self.rows.append([self.index, frame.frame_id, frame.raw_index, f"{frame.timestamp:.6f}"])
            self.timestamps.append(float(frame.timestamp))
            if self.index in self.config.point_cloud_frames:
                self.kept_for_clouds[self.index] = (depth.copy(), frame.image.copy())
            self.index += 1
        self.writer.submit(self.write_batch, first, list(batch), depths)

    def abort_preview(self) -> None:
        """After an error: let queued frames reach the preview, then drop it (the first error is reported)."""
        if self.preview is None:
            return
        try:
            self.writer.drain()  # the writer thread may still be adding frames to the preview
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        self.preview.abort()


def _stream(item, preprocess, predictor, run: _InputRun, dead_letters: List, progress: bool) -> None:
    """Read ``item``'s frames on a reader thread, predict them in batches and queue their writes."""
    from tqdm import tqdm

    from pipelines import footage

    batch_size = run.config.batch_size
    frames_queue: "queue.Queue" = queue.Queue(maxsize=2 * batch_size)
    reader = threading.Thread(
        target=_produce,
        args=(footage.stream_frames(item, preprocess), frames_queue),
        name="predict-reader",
        daemon=True,
    )
    reader.start()
    total = _estimated_frames(item, run.config)
    bar = tqdm(total=total, desc=run.name, unit="frame", disable=not progress or None, leave=False)
    batch: List = []

    def run_batch() -> None:
        images = np.stack([frame.image for frame in batch]).astype(np.float32) / 255.0
        run.add_batch(batch, predictor.predict(images).depth)
        bar.update(len(batch))
        batch.clear()

    try:
        while True:
            element = frames_queue.get()
            if element is _END:
                break
            if isinstance(element, BaseException):
                raise element
            if footage.is_dead_letter(element):
                dead_letters.append(element)
                run.letters += 1
                continue
            if not hasattr(element, "image"):
                continue  # a Filtered element: nothing to predict
            if run.reader_K is None:
                run.reader_K, run.native_size = element.intrinsics, element.native_size
            batch.append(element)
            if len(batch) == batch_size:
                run_batch()
        if batch:
            run_batch()
        run.writer.drain()
    finally:
        bar.close()


def _intrinsics_info(run: _InputRun, predictor, model, provenance: str, provenance_file) -> tuple:
    """(K used for point clouds, its source, the ``intrinsics.json`` document): learned (a trained head), else the
    readers' K (given, calibration or guessed)."""
    from formats.camera import scale_intrinsics, tie_focal_aspect
    from pipelines import footage

    height, width = model.image_size
    native_w, native_h = run.native_size
    head = predictor.head_intrinsics()
    learned = model.intrinsics_source == "learned"  # model.inference.intrinsics_source: one decision
    reader_k = np.asarray(run.reader_K, dtype=np.float64)
    guess = scale_intrinsics(
        footage.guessed_intrinsics((native_w, native_h)), width / float(native_w), height / float(native_h)
    )
    if provenance == footage.GUESSED and not np.allclose(reader_k, guess):
        provenance = "unknown"  # the readers found a K this label did not expect: never call it a guess
    info: Dict[str, Any] = {
        "image_size": [height, width],
        "native_image_size": [native_h, native_w],
        "reader": {"source": provenance, "file": provenance_file, "K": reader_k.tolist()},
    }
    if learned and head is not None:
        head_k, head_std = head["K"], head["K_std"]
        tied = getattr(model, "focal_aspect", "free") == "records"
        if tied:  # fy as training tied it: learned fx * the reader K's pixel aspect
            aspect = reader_k[1, 1] / reader_k[0, 0]
            head_k, head_std = tie_focal_aspect(head_k, aspect), tie_focal_aspect(head_std, aspect)
        used, source = head_k, "learned"
        info["learned"] = {
            "K": head_k.tolist(),
            "K_std": head_std.tolist(),
            "num_pairs": head["num_pairs"],
            "statistic": "mean over the sequence's consecutive pairs",
        }
        if tied:
            info["learned"]["fy"] = "learned fx times the reader K's fy/fx (focal_aspect: records)"
    else:
        used, source = reader_k, provenance
        info["learned"] = None
        info["learned_note"] = (
            "the checkpoint was trained without learn_intrinsics: its intrinsics head is untrained and not reported"
            if not learned
            else "not computed: the trajectory (motion network) was disabled or had no pair"
        )
    try:
        native_k = scale_intrinsics(used, native_w / float(width), native_h / float(height)).tolist()
    except ValueError:
        native_k = None
    info.update(
        {
            "source": source,
            "K": np.asarray(used).tolist(),
            "K_native": native_k,
            "convention": "pixel centres at integer coordinates; K of the model-size image, K_native of "
            "the source frames (formats/camera.py)",
        }
    )
    return used, source, info


def _write_point_clouds(run: _InputRun, intrinsics) -> Dict[str, Any]:
    """``pointcloud/NNNNNN.ply`` of the kept frames; the manifest entry's point-cloud fields."""
    from formats import pointcloud

    for frame_index in sorted(run.kept_for_clouds):
        depth, rgb = run.kept_for_clouds[frame_index]
        points, colours = pointcloud.valid_points(pointcloud.backproject(depth, intrinsics), rgb, depth)
        run.writer.bytes(f"{run.name}/pointcloud/{frame_index:06d}.ply", pointcloud.encode_ply(points, colours))
    fields: Dict[str, Any] = {}
    missing = sorted(set(run.config.point_cloud_frames) - set(run.kept_for_clouds))
    if missing:
        fields["point_cloud_frames_missing"] = missing
    fields["point_clouds"] = len(run.kept_for_clouds)
    return fields


def _write_trajectory(run: _InputRun, predictor) -> Dict[str, Any]:
    """KITTI and TUM poses and the top view; the manifest entry's pose fields."""
    from evaluation import trajectory as trajectory_format
    from evaluation.trajectory_plot import top_view
    from formats import kitti

    poses = predictor.poses(run.config.accumulation)
    times = np.asarray(run.timestamps, dtype=np.float64)
    run.writer.text(f"{run.name}/poses_kitti.txt", kitti.format_poses(poses))
    run.writer.text(f"{run.name}/poses_tum.txt", trajectory_format.format_tum(times, poses))
    run.writer.png(f"{run.name}/trajectory.png", top_view(poses))
    return {"poses": int(poses.shape[0]), "first_timestamp_s": float(times[0]), "last_timestamp_s": float(times[-1])}


def predict_input(
    item, config: PredictConfig, preprocess, model, writer: Writer, dead_letters: List, progress: bool
) -> Dict[str, Any]:
    """Predict one input (``preprocess``: the readers' config); returns its manifest entry. Frames stream
    through a bounded queue."""
    from formats.depth_image import DEPTH_PNG_SCALE
    from model.predict import SequencePredictor
    from pipelines import footage

    provenance, provenance_file = footage.intrinsics_provenance(item, preprocess)
    predictor = SequencePredictor(model, config.trajectory, config.flip_augment, config.trajectory_flip_augment)
    height, width = model.image_size
    preview = (
        PreviewVideo(writer.output / item.name / "preview.mp4", _preview_fps(item, config), (2 * width, height))
        if config.preview_video
        else None
    )
    run = _InputRun(item.name, config, writer, preview)
    try:
        _stream(item, preprocess, predictor, run, dead_letters, progress)
    except BaseException:
        run.abort_preview()
        raise
    entry: Dict[str, Any] = {
        "name": item.name,
        "kind": item.kind,
        "path": item.path,
        "frames": run.index,
        "dead_letters": run.letters,
        "depth_png_clipped_pixels": run.clipped,
    }
    if run.index == 0:
        if preview is not None:
            preview.abort()
        entry["error"] = "no frame could be read (see dead_letters.jsonl)"
        return entry
    if preview is not None:
        preview.finish()
        writer.written.add(f"{item.name}/preview.mp4")
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(run.rows)
    writer.text(f"{item.name}/frames.csv", table.getvalue())
    used, source, info = _intrinsics_info(run, predictor, model, provenance, provenance_file)
    writer.text(f"{item.name}/intrinsics.json", json.dumps(info, indent=2) + "\n")
    entry["intrinsics_source"] = source
    entry.update(_write_point_clouds(run, used))
    if config.trajectory:
        entry.update(_write_trajectory(run, predictor))
    entry["depth_png_scale"] = DEPTH_PNG_SCALE
    return entry


# --- main ----------------------------------------------------------------------------------------------


def load_model(checkpoint_path: str):
    """The real model (TensorFlow is imported only here)."""
    from model.inference import InferenceModel

    return InferenceModel.from_checkpoint(checkpoint_path)


def main(argv: Optional[Sequence[str]] = None, model=None) -> Dict[str, Any]:
    config, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from pipelines import footage

    inputs, input_letters = footage.find_inputs(config.input)
    output = Path(config.output)
    check_inputs_and_output(config, inputs, output)
    if model is None:
        model = load_model(config.checkpoint_path)
    preprocess = preprocess_config(config.to_mapping(), model.image_size)
    for item in inputs:  # a named but missing or malformed calibration fails before anything is written
        footage.intrinsics_provenance(item, preprocess)
    checkpoint = str(getattr(model, "checkpoint_path", config.checkpoint_path))
    previous = claim_output(output, checkpoint)
    writer = Writer(output)
    writer.written.add(MARKER)
    dead_letters: List = list(input_letters)
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        entries = [
            predict_input(item, config, preprocess, model, writer, dead_letters, progress=not args.quiet)
            for item in inputs
        ]
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    writer.text("dead_letters.jsonl", "".join(letter.to_json() + "\n" for letter in dead_letters))
    manifest = run_manifest(config, model, checkpoint, started, entries, dead_letters)
    writer.text("manifest.json", json.dumps(manifest, indent=2) + "\n")
    finish_output(output, writer, previous)
    report(config, output, entries, dead_letters)
    return manifest


def check_inputs_and_output(config: PredictConfig, inputs, output: Path) -> None:
    """Refuse an output that touches the inputs or a foreign folder, and a named intrinsics file that is
    missing or malformed (never a silent fallback to the guess); PredictError."""
    named = [config.input] if os.path.isdir(config.input) else []  # a folder of videos too
    check_output(output, named + [item.path for item in inputs] + [path for item in inputs for path in item.files])
    if config.intrinsics:
        from formats.struct2depth import parse_intrinsics

        path = Path(config.intrinsics)
        if not path.is_file():
            raise PredictError(f"intrinsics file {path} not found")
        parse_intrinsics(path.read_text(), str(path))


def run_manifest(
    config: PredictConfig, model, checkpoint: str, started, entries: List[Dict], dead_letters: List
) -> Dict[str, Any]:
    """``manifest.json``: checkpoint, model, parameters, per-input entries and counts."""
    model_config = getattr(model, "config", None)
    return {
        "tool": "wilddepth stages.predict",
        "started_utc": started.isoformat(timespec="seconds"),
        "checkpoint": checkpoint,
        "model": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
        "image_size": list(model.image_size),
        "input": config.input,
        "parameters": config.parameters(),
        "depth": {
            "npy": "float32 (H, W), the model's unit (depth is known up to one scale per model)",
            "png": "uint16, value = round(depth * depth_png_scale), 0 = no depth, clipped to 1..65535",
            "depth_png_scale": 256.0,
        },
        "counts": {
            "inputs": len(entries),
            "frames": sum(entry["frames"] for entry in entries),
            "dead_letters": len(dead_letters),
            "inputs_without_frames": sum(1 for entry in entries if entry["frames"] == 0),
        },
        "dead_letter_reasons": dict(sorted(collections.Counter(letter.code for letter in dead_letters).items())),
        "inputs": entries,
    }


def finish_output(output: Path, writer: Writer, previous: Set[str]) -> None:
    """Write ``outputs.txt`` (every file of this run) and delete what only an earlier run wrote."""
    from formats import atomic

    writer.written.add(OUTPUTS_LIST)
    atomic.write_text(output / OUTPUTS_LIST, "".join(f"{path}\n" for path in sorted(writer.written)))
    removed = remove_stale(output, previous, writer.written)
    if removed:
        LOGGER.info("removed %d files of an earlier predict run that this run did not write again", removed)


def report(config: PredictConfig, output: Path, entries: List[Dict], dead_letters: List) -> None:
    """One line per input; PredictError when no frame at all was predicted."""
    for entry in entries:
        print(
            f"predict: {entry['name']}: {entry['frames']} frames, {entry['dead_letters']} dead letters "
            f"-> {output / entry['name']}"
        )
    if sum(entry["frames"] for entry in entries) == 0:
        raise PredictError(
            f"no frame could be predicted from {config.input} "
            f"({len(dead_letters)} dead letters in {output / 'dead_letters.jsonl'})"
        )


if __name__ == "__main__":
    sys.exit(common.run_stage(main))
