"""Render whole synthetic data sets: scenes x frames, in parallel worker processes, into one layout.

Every file is written atomically; the same arguments give the same bytes (each scene is a pure function
of (seed, sequence index), rendering is deterministic and independent of the number of workers).

Two switches make the world "wild" (both off by default, which is the original world, byte for byte):
``camera="wild"`` gives every sequence its own camera (:mod:`synthetic.cameras`: field of view, principal
point, frame size and aspect ratio, frame rate), ``path="wild"`` gives every sequence a drive with a sharp
turn, stops or speed changes and lane changes (:mod:`synthetic.paths`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np

from formats import atomic, groundtruth
from synthetic import cameras, layouts
from synthetic.paths import PathRanges
from synthetic.render import render_frame
from synthetic.scene import Scene, build_scene

CAMERAS = ("kitti", "wild")  # kitti: the layout's one native camera for every sequence; wild: one per sequence
PATHS = ("straight", "wild")  # straight: along the gently curving road; wild: turns, stops, lane changes


@dataclasses.dataclass(frozen=True)
class Job:
    """One synthetic data set to render."""

    layout: str
    output: str
    split: str = "train"
    seed: int = 1
    num_sequences: int = 1
    frames_per_sequence: int = 60
    width: int = 0  # 0 = the layout's native size
    height: int = 0
    fps: float = 10.0
    supersampling: int = 2
    workers: int = 2
    camera: str = "kitti"
    path: str = "straight"
    wild_camera: cameras.CameraRanges = cameras.CameraRanges()
    wild_path: PathRanges = PathRanges()

    @property
    def camera_per_sequence(self) -> bool:
        return self.camera == "wild"

    def validate(self) -> "Job":
        layouts.check_layout(self.layout)
        if self.camera not in CAMERAS:
            raise ValueError(f"unknown camera {self.camera!r}; choose one of {', '.join(CAMERAS)}")
        if self.path not in PATHS:
            raise ValueError(f"unknown path {self.path!r}; choose one of {', '.join(PATHS)}")
        self.wild_camera.validate()
        self.wild_path.validate()
        for sequence in range(int(self.num_sequences)):  # every frame size and K is valid before anything is written
            sequence_camera(self, sequence)
        for name in ("num_sequences", "frames_per_sequence", "supersampling", "workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.layout == "video" and self.frames_per_sequence < 2:
            raise ValueError("a video needs at least 2 frames")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if int(self.width) < 0 or int(self.height) < 0:
            raise ValueError(f"width and height must be >= 0 (0 = native), got {self.width}x{self.height}")
        if not self.split or "/" in self.split:
            raise ValueError(f"bad split name {self.split!r}")
        return self


def sequence_camera(job: Job, sequence: int) -> cameras.Camera:
    """The camera of a sequence at its rendered size: the layout's native camera (scaled to width x height)
    and ``job.fps`` for ``camera="kitti"``; the sequence's drawn camera for ``camera="wild"``."""
    if job.camera == "wild":
        return cameras.sized(cameras.draw_camera(job.wild_camera, job.seed, sequence), job.width, job.height)
    width, height, intrinsics = layouts.camera(job.layout, job.width, job.height)
    hfov = float(np.degrees(2.0 * np.arctan2(width / 2.0, intrinsics[0, 0])))
    return cameras.Camera(width, height, intrinsics, float(job.fps), (width, height), hfov)


def scene_for(job: Job, sequence: int) -> Scene:
    camera = sequence_camera(job, sequence)
    path = job.wild_path if job.path == "wild" else None
    return build_scene(
        job.seed,
        sequence,
        camera.width,
        camera.height,
        camera.intrinsics,
        camera.fps,
        job.frames_per_sequence,
        path=path,
        tall_sky=job.camera == "wild" or job.path == "wild",
    )


@functools.lru_cache(maxsize=2)
def _cached_scene(job: Job, sequence: int) -> Scene:
    return scene_for(job, sequence)


_RAYS: Dict = {}


def _render_chunk(task: Tuple[Job, int, int, int]):
    """Worker: render frames [start, stop) of one sequence, write their files; return frames for videos."""
    job, sequence, start, stop = task
    scene = _cached_scene(job, sequence)
    gt_folder = layouts.groundtruth_dir(job.layout, job.output, job.split, sequence, job.camera_per_sequence)
    images = []
    for frame in range(start, stop):
        rendered = render_frame(scene, frame, job.supersampling, rays_cache=_RAYS)
        groundtruth.write_frame(gt_folder, frame, rendered.depth, rendered.mask)
        if job.layout == "video":
            images.append(rendered.image)
        else:
            layouts.write_image(
                layouts.image_path(job.layout, job.output, job.split, sequence, frame, job.camera_per_sequence),
                rendered.image,
            )
    return sequence, start, images


def _tasks(job: Job, chunk: int) -> List[Tuple[Job, int, int, int]]:
    return [
        (job, sequence, start, min(start + chunk, job.frames_per_sequence))
        for sequence in range(job.num_sequences)
        for start in range(0, job.frames_per_sequence, chunk)
    ]


def run(job: Job, progress: bool = True) -> Path:
    """Render ``job``; returns the output folder. Writes ``synthetic.json`` (the job) at its root."""
    job.validate()
    output = Path(job.output)
    output.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temporaries(output)
    summaries = []
    for sequence in range(job.num_sequences):
        scene = _cached_scene(job, sequence)  # also reused by the frames of a 1-worker (or forked) render
        truth = groundtruth.GroundTruth(scene.poses, scene.intrinsics, scene.timestamps)
        groundtruth.write_sequence(
            layouts.groundtruth_dir(job.layout, output, job.split, sequence, job.camera_per_sequence), truth
        )
        layouts.write_sequence_files(
            job.layout,
            output,
            job.split,
            sequence,
            scene.intrinsics,
            scene.width,
            scene.height,
            scene.timestamps,
            scene.poses,
            job.camera_per_sequence,
        )
        summaries.append(sequence_summary(job, sequence, scene))
    chunk = max(1, min(10, -(-job.frames_per_sequence // max(1, 2 * job.workers))))
    tasks = _tasks(job, chunk)
    video_frames: Dict[int, Dict[int, List[np.ndarray]]] = {}
    bar = _progress(job, progress)
    for sequence, start, images in _map(job.workers, tasks):
        bar.update(len(images) if images else _chunk_length(tasks, sequence, start))
        if job.layout == "video":
            video_frames.setdefault(sequence, {})[start] = images
            if sum(len(v) for v in video_frames[sequence].values()) == job.frames_per_sequence:
                chunks = video_frames.pop(sequence)
                frames = [image for key in sorted(chunks) for image in chunks[key]]
                camera = sequence_camera(job, sequence)
                layouts.write_video(
                    output / f"{layouts.video_name(sequence)}.mp4", frames, camera.fps, camera.width, camera.height
                )
    bar.close()
    description = describe(job, summaries)
    atomic.write_text(output / "synthetic.json", json.dumps(description, indent=2, sort_keys=True) + "\n")
    return output


def describe(job: Job, summaries: List[dict]) -> dict:
    """The job as recorded in ``synthetic.json``. The original world (camera kitti, path straight) is recorded
    exactly as before the switches existed; a wild world adds its switches, ranges and per-sequence cameras
    and drives."""
    description = dataclasses.asdict(job)
    description.pop("workers")
    description["output"] = None  # keep the file independent of where it was written
    for name in ("camera", "path", "wild_camera", "wild_path"):
        description.pop(name)
    if job.camera == "wild":
        description["camera"] = job.camera
        description["wild_camera"] = dataclasses.asdict(job.wild_camera)
        description["wild_camera"]["sizes"] = [f"{w}x{h}" for w, h in job.wild_camera.sizes]
    if job.path == "wild":
        description["path"] = job.path
        description["wild_path"] = dataclasses.asdict(job.wild_path)
    if job.camera == "wild" or job.path == "wild":
        description["sequences"] = summaries
    return description


def sequence_summary(job: Job, sequence: int, scene: Scene) -> dict:
    """What was drawn for one sequence (recorded in a wild world's ``synthetic.json``)."""
    camera = sequence_camera(job, sequence)
    K = scene.intrinsics
    summary = {
        "sequence": sequence,
        "width": scene.width,
        "height": scene.height,
        "fps": camera.fps,
        "fx": float(K[0, 0]),
        "fy": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "hfov_deg": round(camera.hfov_deg, 6),
        "native_size": f"{camera.native_size[0]}x{camera.native_size[1]}",
    }
    if scene.plan is not None:
        plan = scene.plan
        summary.update(
            turn_deg=round(float(np.degrees(plan.turn_angle)), 6),
            stops=plan.stops,
            lane_change=plan.lane_from != plan.lane_to,
            distance_m=round(float(scene.camera_s[-1] - scene.camera_s[0]), 6),
        )
    return summary


def _chunk_length(tasks, sequence, start) -> int:
    for _, seq, first, stop in tasks:
        if seq == sequence and first == start:
            return stop - first
    return 0


def _map(workers: int, tasks) -> Iterator:
    if workers == 1 or len(tasks) == 1:
        yield from map(_render_chunk, tasks)
        return
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap_unordered(_render_chunk, tasks)


class _NoBar:
    def update(self, _count):
        pass

    def close(self):
        pass


def _progress(job: Job, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=job.num_sequences * job.frames_per_sequence, unit="frame", desc=f"synthesize {job.split} ({job.layout})"
    )
