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
from typing import Any, Dict, List, Optional, Sequence, Set

import cv2
import numpy as np

from stages import common

LOGGER = logging.getLogger("stages.predict")
MARKER = ".wilddepth-predict"
OUTPUTS_LIST = "outputs.txt"
ACCUMULATIONS = ("compose", "dfv")
HELP = {
    "checkpoint_path": "checkpoint prefix (.../model-3000) or directory (its newest checkpoint); "
    "model_config.json must be beside it",
    "input": "a video file, a folder of ordered frames (or of videos), or a glob such as 'footage/*.mp4'",
    "output": "output folder: new, empty, or an earlier predict output (never a folder of other files)",
    "batch_size": "frames per forward pass",
    "flip_augment": "depth = min(depth(x), flip(depth(flip(x)))), as the release's inference graph",
    "save_disparity": "also write disparity (1 / depth) as float32 .npy per frame",
    "trajectory": "run the motion network on consecutive frames: poses (KITTI, TUM), trajectory.png and, "
    "for a checkpoint trained with learn_intrinsics, the learned K",
    "trajectory_flip_augment": "average each pair's motion with its mirrored pair's (2x motion-network cost)",
    "accumulation": "pose accumulation order: compose (exact) or dfv (the release's order)",
    "intrinsics": "file with 9 comma-separated floats, K at the footage's native size (used when the "
    "checkpoint has no learned intrinsics); a named file that is missing is an error",
    "point_cloud_frames": "output frame indices written as coloured .ply point clouds, e.g. 0,10",
    "preview_video": "write <name>/preview.mp4 (frame | depth side by side)",
    "video.fps": "video frames sampled per second, by the container's timestamps (preprocessing's rule)",
    "image_folder.stride": "every n-th image of a frame folder",
    "image_folder.fps": "frame rate of a folder without timestamps.txt (its timestamps are index / fps)",
}


class PredictError(common.StageError):
    """A user error of the predict stage (exit 2, one line)."""


# --- arguments -----------------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults = common.load_params("predict", known.params)
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml of the repository)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_param_flags(parser, defaults)
    for action in parser._actions:
        name = action.option_strings[0][2:] if action.option_strings else ""
        if name in HELP:
            action.help = f"{HELP[name]} {action.help or ''}".strip()
    args = parser.parse_args(argv)
    return common.collect_params(args, defaults), args


def validate(params: Dict[str, Any]) -> Dict[str, Any]:
    """Checked copy of the parameters (point_cloud_frames as ints); raises PredictError."""
    for key in ("checkpoint_path", "input", "output"):
        if not params.get(key):
            raise PredictError(f"--{key} is required")
    problems = []
    if int(params["batch_size"]) < 1:
        problems.append(f"batch_size must be >= 1, got {params['batch_size']}")
    if params["accumulation"] not in ACCUMULATIONS:
        problems.append(f"accumulation must be one of {ACCUMULATIONS}, got {params['accumulation']!r}")
    try:
        frames = sorted({int(value) for value in (params.get("point_cloud_frames") or [])})
    except (TypeError, ValueError):
        frames = []
        problems.append(f"point_cloud_frames must be frame indices, got {params.get('point_cloud_frames')!r}")
    if any(value < 0 for value in frames):
        problems.append(f"point_cloud_frames must be >= 0, got {frames}")
    video_fps = float(params["video"]["fps"])
    if not np.isfinite(video_fps) or video_fps <= 0:
        problems.append(f"video.fps must be > 0, got {params['video']['fps']}")
    if problems:
        raise PredictError("; ".join(problems))
    return {**params, "point_cloud_frames": frames}


def preprocess_config(params: Dict[str, Any], image_size):
    """Preprocessing's config for the readers: the model's size, uniform sampling at ``video.fps``."""
    from pipelines.config import config_from_params

    height, width = image_size
    return config_from_params(
        {
            "source": "video",
            "input": str(params["input"]),
            "output": str(params["output"]),
            "width": int(width),
            "height": int(height),
            "segmenter": "none",
            "video": {
                "sampling": "uniform",
                "fps": float(params["video"]["fps"]),
                "intrinsics_file": params.get("intrinsics"),
            },
            "image_folder": {
                "stride": int(params["image_folder"]["stride"]),
                "fps": float(params["image_folder"]["fps"]),
            },
        }
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
    """Atomic writes relative to the output folder, run in order on one background thread."""

    def __init__(self, output: Path, max_pending: int = 4):
        self.output = output
        self.written: Set[str] = set()
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

    def bytes(self, relative: str, data: bytes) -> None:
        from formats import atomic

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


def _estimated_frames(item, params) -> Optional[int]:
    if item.kind == "image_folder":
        return -(-len(item.files) // int(params["image_folder"]["stride"]))
    capture = cv2.VideoCapture(item.path, cv2.CAP_FFMPEG)
    try:
        count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if count > 0 and fps > 0:
        return int(np.ceil(count / fps * min(float(params["video"]["fps"]), fps)))
    return None


def predict_input(
    item, params: Dict[str, Any], config, model, writer: Writer, dead_letters: List, progress: bool
) -> Dict[str, Any]:
    """Predict one input; returns its manifest entry. Frames stream through a bounded queue."""
    from tqdm import tqdm

    from evaluation import trajectory as trajectory_format
    from evaluation.trajectory_plot import top_view
    from formats import kitti, pointcloud
    from formats.camera import scale_intrinsics
    from formats.depth_image import DEPTH_PNG_SCALE, encode_depth_png
    from model.predict import SequencePredictor
    from pipelines import footage

    provenance, provenance_file = footage.intrinsics_provenance(item, config)
    predictor = SequencePredictor(
        model, bool(params["trajectory"]), bool(params["flip_augment"]), bool(params["trajectory_flip_augment"])
    )
    height, width = model.image_size
    name = item.name
    fps = float(params["video"]["fps"])
    if item.kind == "video":
        fps = min(fps, _native_fps(item.path) or fps)
    else:
        fps = float(params["image_folder"]["fps"]) / int(params["image_folder"]["stride"])
    preview = (
        PreviewVideo(writer.output / name / "preview.mp4", fps, (2 * width, height))
        if params["preview_video"]
        else None
    )
    cloud_frames = set(params["point_cloud_frames"])
    kept_for_clouds: Dict[int, tuple] = {}
    rows = [["index", "frame", "raw_index", "timestamp_s"]]
    timestamps: List[float] = []
    state = {"clipped": 0, "reader_K": None, "native_size": None, "letters": 0}

    def write_frame(index: int, frame, depth: np.ndarray) -> None:
        stem = f"{index:06d}"
        writer.npy(f"{name}/depth/{stem}.npy", depth)
        data, clipped = encode_depth_png(depth)
        state["clipped"] += clipped
        writer.bytes(f"{name}/depth_png/{stem}.png", data)
        colour = colour_depth(depth)
        writer.png(f"{name}/depth_color/{stem}.png", colour)
        if params["save_disparity"]:
            writer.npy(f"{name}/disparity/{stem}.npy", (1.0 / depth).astype(np.float32))
        if preview is not None:
            preview.write(np.concatenate([cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), colour], axis=1))

    frames_queue: "queue.Queue" = queue.Queue(maxsize=2 * int(params["batch_size"]))
    reader = threading.Thread(
        target=_produce, args=(footage.stream_frames(item, config), frames_queue), name="predict-reader", daemon=True
    )
    reader.start()
    bar = tqdm(
        total=_estimated_frames(item, params), desc=name, unit="frame", disable=not progress or None, leave=False
    )
    batch: List = []
    index = 0

    def run_batch() -> None:
        nonlocal index, batch
        images = np.stack([frame.image for frame in batch]).astype(np.float32) / 255.0
        result = predictor.predict(images)
        for frame, depth in zip(batch, result.depth):
            rows.append([index, frame.frame_id, frame.raw_index, f"{frame.timestamp:.6f}"])
            timestamps.append(float(frame.timestamp))
            if index in cloud_frames:
                kept_for_clouds[index] = (depth.copy(), frame.image.copy())
            writer.submit(write_frame, index, frame, depth)
            index += 1
        bar.update(len(batch))
        batch = []

    try:
        while True:
            element = frames_queue.get()
            if element is _END:
                break
            if isinstance(element, BaseException):
                raise element
            if footage.is_dead_letter(element):
                dead_letters.append(element)
                state["letters"] += 1
                continue
            if not hasattr(element, "image"):
                continue  # a Filtered element: nothing to predict
            if state["reader_K"] is None:
                state["reader_K"], state["native_size"] = element.intrinsics, element.native_size
            batch.append(element)
            if len(batch) == int(params["batch_size"]):
                run_batch()
        if batch:
            run_batch()
        writer.drain()
    except BaseException:
        if preview is not None:
            try:
                writer.drain()  # the writer thread may still be adding frames to the preview
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            preview.abort()
        raise
    finally:
        bar.close()
    entry: Dict[str, Any] = {
        "name": name,
        "kind": item.kind,
        "path": item.path,
        "frames": index,
        "dead_letters": state["letters"],
        "depth_png_clipped_pixels": state["clipped"],
    }
    if index == 0:
        if preview is not None:
            preview.abort()
        entry["error"] = "no frame could be read (see dead_letters.jsonl)"
        return entry
    if preview is not None:
        preview.finish()
        writer.written.add(f"{name}/preview.mp4")
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(rows)
    writer.text(f"{name}/frames.csv", table.getvalue())

    # intrinsics: learned (a trained head), else the readers' K (given, calibration or guessed)
    native_w, native_h = state["native_size"]
    head = predictor.head_intrinsics()
    learned = model.intrinsics_source == "learned"  # model.inference.intrinsics_source: one decision
    reader_k = np.asarray(state["reader_K"], dtype=np.float64)
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
        used, source = head["K"], "learned"
        info["learned"] = {
            "K": head["K"].tolist(),
            "K_std": head["K_std"].tolist(),
            "num_pairs": head["num_pairs"],
            "statistic": "mean over the sequence's consecutive pairs",
        }
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
    writer.text(f"{name}/intrinsics.json", json.dumps(info, indent=2) + "\n")
    entry["intrinsics_source"] = source

    for frame_index in sorted(kept_for_clouds):
        depth, rgb = kept_for_clouds[frame_index]
        points, colours = pointcloud.valid_points(pointcloud.backproject(depth, used), rgb, depth)
        writer.bytes(f"{name}/pointcloud/{frame_index:06d}.ply", pointcloud.encode_ply(points, colours))
    missing = sorted(cloud_frames - set(kept_for_clouds))
    if missing:
        entry["point_cloud_frames_missing"] = missing
    entry["point_clouds"] = len(kept_for_clouds)

    if params["trajectory"]:
        poses = predictor.poses(params["accumulation"])
        times = np.asarray(timestamps, dtype=np.float64)
        writer.text(f"{name}/poses_kitti.txt", kitti.format_poses(poses))
        writer.text(f"{name}/poses_tum.txt", trajectory_format.format_tum(times, poses))
        writer.png(f"{name}/trajectory.png", top_view(poses))
        entry.update(
            {"poses": int(poses.shape[0]), "first_timestamp_s": float(times[0]), "last_timestamp_s": float(times[-1])}
        )
    entry["depth_png_scale"] = DEPTH_PNG_SCALE
    return entry


# --- main ----------------------------------------------------------------------------------------------


def load_model(checkpoint_path: str):
    """The real model (TensorFlow is imported only here)."""
    from model.inference import InferenceModel

    return InferenceModel.from_checkpoint(checkpoint_path)


def main(argv: Optional[Sequence[str]] = None, model=None) -> Dict[str, Any]:
    params, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = validate(params)
    from formats import atomic
    from pipelines import footage

    inputs, input_letters = footage.find_inputs(str(params["input"]))
    output = Path(params["output"])
    named = [str(params["input"])] if os.path.isdir(str(params["input"])) else []  # a folder of videos too
    check_output(output, named + [item.path for item in inputs] + [path for item in inputs for path in item.files])
    if params.get("intrinsics"):  # named: must exist and parse, never a silent fallback to the guess
        from formats.struct2depth import parse_intrinsics

        path = Path(params["intrinsics"])
        if not path.is_file():
            raise PredictError(f"intrinsics file {path} not found")
        parse_intrinsics(path.read_text(), str(path))
    if model is None:
        model = load_model(str(params["checkpoint_path"]))
    config = preprocess_config(params, model.image_size)
    for item in inputs:  # a named but missing or malformed calibration fails before anything is written
        footage.intrinsics_provenance(item, config)
    previous = claim_output(output, str(getattr(model, "checkpoint_path", params["checkpoint_path"])))
    writer = Writer(output)
    writer.written.add(MARKER)
    dead_letters: List = list(input_letters)
    entries = []
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        for item in inputs:
            entries.append(predict_input(item, params, config, model, writer, dead_letters, progress=not args.quiet))
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    total = sum(entry["frames"] for entry in entries)
    writer.text("dead_letters.jsonl", "".join(letter.to_json() + "\n" for letter in dead_letters))
    model_config = getattr(model, "config", None)
    manifest = {
        "tool": "wilddepth stages.predict",
        "started_utc": started.isoformat(timespec="seconds"),
        "checkpoint": str(getattr(model, "checkpoint_path", params["checkpoint_path"])),
        "model": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
        "image_size": list(model.image_size),
        "input": str(params["input"]),
        "parameters": {
            key: value for key, value in params.items() if key not in ("checkpoint_path", "input", "output")
        },
        "depth": {
            "npy": "float32 (H, W), the model's unit (depth is known up to one scale per model)",
            "png": "uint16, value = round(depth * depth_png_scale), 0 = no depth, clipped to 1..65535",
            "depth_png_scale": 256.0,
        },
        "counts": {
            "inputs": len(entries),
            "frames": total,
            "dead_letters": len(dead_letters),
            "inputs_without_frames": sum(1 for entry in entries if entry["frames"] == 0),
        },
        "dead_letter_reasons": dict(sorted(collections.Counter(letter.code for letter in dead_letters).items())),
        "inputs": entries,
    }
    writer.text("manifest.json", json.dumps(manifest, indent=2) + "\n")
    writer.written.add(OUTPUTS_LIST)
    atomic.write_text(output / OUTPUTS_LIST, "".join(f"{path}\n" for path in sorted(writer.written)))
    removed = remove_stale(output, previous, writer.written)
    if removed:
        LOGGER.info("removed %d files of an earlier predict run that this run did not write again", removed)
    for entry in entries:
        print(
            f"predict: {entry['name']}: {entry['frames']} frames, {entry['dead_letters']} dead letters "
            f"-> {output / entry['name']}"
        )
    if total == 0:
        raise PredictError(
            f"no frame could be predicted from {params['input']} "
            f"({len(dead_letters)} dead letters in {output / 'dead_letters.jsonl'})"
        )
    return manifest


if __name__ == "__main__":
    sys.exit(common.run_stage(main))
