"""The preprocessing parameters (``params.yaml`` section ``preprocess``) as one validated, picklable object."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

SOURCES = ("kitti_raw", "cityscapes", "video", "youtube8m", "image_folder")
SEGMENTERS = ("none", "ground_truth", "detectron2")


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    source: str
    input: str
    output: str
    width: int = 416
    height: int = 128
    segmenter: str = "none"
    iou_threshold: float = 0.3
    erase_unmatched: bool = True
    val_fraction: float = 0.1
    max_gap_factor: float = 1.5
    scene_cut_correlation: float = 0.5
    static_threshold: float = 0.0
    kitti_cameras: Tuple[int, ...] = (2,)
    exclude_eigen_test_scenes: bool = True
    kitti_fps: float = 10.0
    cityscapes_splits: Tuple[str, ...] = ("train",)
    cityscapes_stride: int = 2
    sampling: str = "uniform"
    fps: float = 2.0
    interval: float = 1.0
    burst: int = 3
    intrinsics_file: Optional[str] = None
    image_folder_stride: int = 1
    image_folder_fps: float = 10.0
    youtube8m_ids_file: Optional[str] = None
    youtube8m_lookup_url: str = "http://data.yt8m.org/2/j/i"
    youtube8m_video_url: str = "https://www.youtube.com/watch?v={youtube_id}"
    youtube8m_cache_dir: str = "data/youtube8m_cache"
    youtube8m_retries: int = 3
    youtube8m_timeout: float = 30.0
    youtube8m_format: str = "b[height<=?720]/b"
    youtube8m_backoff_seconds: float = 2.0
    segmenter_options: Tuple[Tuple[str, Any], ...] = ()

    @property
    def size(self) -> Tuple[int, int]:
        return (self.width, self.height)

    def validate(self) -> "PreprocessConfig":
        problems = []
        if self.source not in SOURCES:
            problems.append(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.segmenter not in SEGMENTERS:
            problems.append(f"segmenter must be one of {SEGMENTERS}, got {self.segmenter!r}")
        if self.width <= 0 or self.height <= 0:
            problems.append(f"width and height must be > 0, got {self.width}x{self.height}")
        if not 0.0 <= self.iou_threshold < 1.0:
            problems.append(f"iou_threshold must lie in [0, 1), got {self.iou_threshold}")
        if not 0.0 <= self.val_fraction <= 1.0:
            problems.append(f"val_fraction must lie in [0, 1], got {self.val_fraction}")
        if self.max_gap_factor < 1.0:
            problems.append(f"max_gap_factor must be >= 1, got {self.max_gap_factor}")
        if self.sampling not in ("uniform", "burst"):
            problems.append(f"video.sampling must be 'uniform' or 'burst', got {self.sampling!r}")
        if self.fps <= 0 or self.interval <= 0 or self.kitti_fps <= 0 or self.image_folder_fps <= 0:
            problems.append("fps and interval values must be > 0")
        if self.sampling == "burst" and self.burst < 3:
            problems.append(f"video.burst must be >= 3 (a burst must hold a triplet), got {self.burst}")
        if self.cityscapes_stride < 1 or self.image_folder_stride < 1:
            problems.append("strides must be >= 1")
        if any(camera not in (2, 3) for camera in self.kitti_cameras) or not self.kitti_cameras:
            problems.append(f"kitti_raw.cameras must be a non-empty subset of {{2, 3}}, got {self.kitti_cameras}")
        if problems:
            raise ValueError("invalid preprocess parameters:\n  " + "\n  ".join(problems))
        return self

    def manifest_parameters(self) -> Dict[str, Any]:
        """The parameters that determine the output's content (recorded in manifest.json)."""
        values = dataclasses.asdict(self)
        values.pop("output")
        values["segmenter_options"] = dict(self.segmenter_options)
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in sorted(values.items())}


def _tuple(value, cast):
    if value is None:
        return ()
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    return tuple(cast(item) for item in value)


def config_from_params(params: Mapping[str, Any]) -> PreprocessConfig:
    """Build the config from the (flag-overridden) ``preprocess`` section of params.yaml."""
    kitti = params.get("kitti_raw") or {}
    city = params.get("cityscapes") or {}
    video = params.get("video") or {}
    folder = params.get("image_folder") or {}
    youtube = params.get("youtube8m") or {}
    segmenter = params.get("segmenter", "none")
    options = params.get(segmenter) if segmenter == "detectron2" else None
    defaults = PreprocessConfig(source="", input="", output="")

    def get(mapping, key, default):
        value = mapping.get(key)
        return default if value is None else value

    config = PreprocessConfig(
        source=str(params.get("source", "")),
        input=str(params.get("input") or ""),
        output=str(params.get("output") or ""),
        width=int(get(params, "width", defaults.width)),
        height=int(get(params, "height", defaults.height)),
        segmenter=str(segmenter),
        iou_threshold=float(get(params, "iou_threshold", defaults.iou_threshold)),
        erase_unmatched=bool(get(params, "erase_unmatched", defaults.erase_unmatched)),
        val_fraction=float(get(params, "val_fraction", defaults.val_fraction)),
        max_gap_factor=float(get(params, "max_gap_factor", defaults.max_gap_factor)),
        scene_cut_correlation=float(get(params, "scene_cut_correlation", defaults.scene_cut_correlation)),
        static_threshold=float(get(params, "static_threshold", defaults.static_threshold)),
        kitti_cameras=_tuple(get(kitti, "cameras", defaults.kitti_cameras), int),
        exclude_eigen_test_scenes=bool(get(kitti, "exclude_eigen_test_scenes", defaults.exclude_eigen_test_scenes)),
        kitti_fps=float(get(kitti, "fps", defaults.kitti_fps)),
        cityscapes_splits=_tuple(get(city, "splits", defaults.cityscapes_splits), str),
        cityscapes_stride=int(get(city, "stride", defaults.cityscapes_stride)),
        sampling=str(get(video, "sampling", defaults.sampling)),
        fps=float(get(video, "fps", defaults.fps)),
        interval=float(get(video, "interval", defaults.interval)),
        burst=int(get(video, "burst", defaults.burst)),
        intrinsics_file=video.get("intrinsics_file") or folder.get("intrinsics_file") or None,
        image_folder_stride=int(get(folder, "stride", defaults.image_folder_stride)),
        image_folder_fps=float(get(folder, "fps", defaults.image_folder_fps)),
        youtube8m_ids_file=youtube.get("ids_file") or None,
        youtube8m_lookup_url=str(get(youtube, "lookup_url", defaults.youtube8m_lookup_url)),
        youtube8m_video_url=str(get(youtube, "video_url", defaults.youtube8m_video_url)),
        youtube8m_cache_dir=str(get(youtube, "cache_dir", defaults.youtube8m_cache_dir)),
        youtube8m_retries=int(get(youtube, "retries", defaults.youtube8m_retries)),
        youtube8m_timeout=float(get(youtube, "timeout", defaults.youtube8m_timeout)),
        youtube8m_format=str(get(youtube, "format", defaults.youtube8m_format)),
        youtube8m_backoff_seconds=float(get(youtube, "backoff_seconds", defaults.youtube8m_backoff_seconds)),
        segmenter_options=tuple(sorted((options or {}).items())),
    )
    return config.validate()
