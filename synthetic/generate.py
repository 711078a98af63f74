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
from typing import Dict, Iterable, Iterator, List, Tuple

import numpy as np

from formats import atomic, groundtruth
from formats.params import Config, param
from synthetic import cameras, layouts
from synthetic.paths import PathRanges
from synthetic.render import render_frame
from synthetic.scene import Scene, build_scene

CAMERAS = ("kitti", "wild")  # kitti: the layout's one native camera for every sequence; wild: one per sequence
PATHS = ("straight", "wild")  # straight: along the gently curving road; wild: turns, stops, lane changes


@dataclasses.dataclass(frozen=True)
class Job(Config):
    """One synthetic data set to render: sizes in pixels (0 = native), fps in frames/s. Checked on construction
    (every sequence's frame size and K too, so nothing is written for a job that cannot be rendered)."""

    layout: str = param(help="dataset layout written", choices=layouts.LAYOUTS)
    output: str = param(help="output folder (created)", flag=False)
    split: str = param("train", help="split name; also the Cityscapes split folder", flag=False)
    seed: int = param(1, help="world seed", minimum=0)
    num_sequences: int = param(1, help="sequences (drives) rendered", minimum=1)
    frames_per_sequence: int = param(60, help="frames rendered per sequence (drive)", minimum=1)
    width: int = param(0, help="frame width; 0 = native (see synthetic/cameras.sized)", minimum=0)
    height: int = param(0, help="frame height; 0 = native", minimum=0)
    fps: float = param(10.0, help="frame rate of camera kitti (and of its mp4)", above=0.0)
    supersampling: int = param(2, help="n x n rays per pixel for the colour image", minimum=1)
    workers: int = param(2, help="rendering processes", minimum=1)
    camera: str = param("kitti", help="kitti: the layout's camera; wild: one drawn per sequence", choices=CAMERAS)
    path: str = param("straight", help="straight: the gently curving road; wild: turns, stops", choices=PATHS)
    wild_camera: cameras.CameraRanges = param(
        default_factory=cameras.CameraRanges, help="ranges of camera wild's draws"
    )
    wild_path: PathRanges = param(default_factory=PathRanges, help="ranges of path wild's draws")

    @property
    def camera_per_sequence(self) -> bool:
        return self.camera == "wild"

    def check(self) -> Iterable[str]:
        if not self.output:
            yield "output: an output folder is required"
        if not self.split or "/" in self.split:
            yield f"split: bad split name {self.split!r}"
        if self.layout == "video" and self.frames_per_sequence < 2:
            yield "frames_per_sequence: a video needs at least 2 frames"
        for sequence in range(self.num_sequences):  # every frame size and K is valid before anything is written
            try:
                sequence_camera(self, sequence)
            except ValueError as error:
                yield f"width: sequence {sequence}: {error}"
                break


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
        description["wild_camera"]["sizes"] = list(job.wild_camera.sizes)  # WxH strings
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
