"""The preprocessing parameters (``params.yaml`` section ``preprocess``) as typed, checked, picklable configs.

The shape of :class:`PreprocessConfig` is the section's: top-level keys are its fields, and each subsection
(``kitti_raw``, ``cityscapes``, ``video``, ``image_folder``, ``youtube8m``, ``beam``, ``detectron2``) is a
nested config. Reading, coercion and checks are ``formats.params``'s; Beam ships the config to its workers.
Pure Python: importing this module imports neither Beam nor Detectron2.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Optional, Tuple

from formats.params import Config, param

SOURCES = ("kitti_raw", "cityscapes", "video", "youtube8m", "image_folder")
SEGMENTERS = ("none", "ground_truth", "detectron2")
SAMPLINGS = ("uniform", "burst")
DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
DETECTRON2_RESOLUTIONS = ("working", "native")
DETECTRON2_DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class KittiRawOptions(Config):
    """``preprocess.kitti_raw``: which cameras of a KITTI raw drive, and its timing."""

    cameras: Tuple[int, ...] = param((2,), help="cameras to read: 2 and/or 3 (image_02, image_03)", choices=(2, 3))
    exclude_eigen_test_scenes: bool = param(
        True, help="skip the 28 Eigen test scenes (evaluation/eigen_test_files.txt)"
    )
    fps: float = param(10.0, help="frames per second for the timestamps of a drive without timestamps.txt", above=0)

    def check(self) -> Iterable[str]:
        if not self.cameras:
            yield "cameras: name at least one camera (2 and/or 3)"


@dataclasses.dataclass(frozen=True)
class CityscapesOptions(Config):
    """``preprocess.cityscapes``: which ``leftImg8bit_sequence`` splits, and the frame stride."""

    splits: Tuple[str, ...] = param(("train",), help="leftImg8bit_sequence splits to read")
    stride: int = param(2, help="keep every n-th frame (2 as gen_data_city.py)", minimum=1)


@dataclasses.dataclass(frozen=True)
class VideoOptions(Config):
    """``preprocess.video`` (also used by ``youtube8m``): frame sampling in seconds of the container's clock."""

    sampling: str = param(
        "uniform", help="uniform (fps) | burst (every interval s, burst consecutive frames)", choices=SAMPLINGS
    )
    fps: float = param(2.0, help="uniform: frames sampled per second of video (the paper: 2)", above=0)
    interval: float = param(1.0, help="burst: seconds between the starts of bursts", above=0)
    burst: int = param(3, help="burst: consecutive frames per burst (>= 3)", minimum=1)
    intrinsics_file: Optional[str] = param(
        None,
        help="K as 9 comma-separated floats at native size (line 2: optional OpenCV distortion); "
        "null = a sidecar intrinsics.txt, else a guessed K",
    )

    def check(self) -> Iterable[str]:
        if self.sampling == "burst" and self.burst < 3:
            yield f"burst: must be >= 3 with burst sampling (a burst must hold a triplet), got {self.burst}"


@dataclasses.dataclass(frozen=True)
class ImageFolderOptions(Config):
    """``preprocess.image_folder``: folders of ordered frames."""

    stride: int = param(1, help="keep every n-th frame of the folder", minimum=1)
    fps: float = param(10.0, help="frames per second for the timestamps of a folder without timestamps.txt", above=0)
    intrinsics_file: Optional[str] = param(
        None, help="camera file as video.intrinsics_file; null = the folder's intrinsics.txt, else a guessed K"
    )


@dataclasses.dataclass(frozen=True)
class YouTube8MOptions(Config):
    """``preprocess.youtube8m``: which ids, where they are looked up and downloaded, and the retries."""

    ids_file: Optional[str] = param(None, help="YouTube8M ids, one a line; null = the paper's 69 ids")
    lookup_url: str = param("http://data.yt8m.org/2/j/i", help="YouTube8M id -> YouTube id lookup service")
    video_url: str = param(
        "https://www.youtube.com/watch?v={youtube_id}", help="what yt-dlp downloads ({youtube_id}, {yt8m_id})"
    )
    cache_dir: str = param("data/youtube8m_cache", help="folder where downloaded videos are kept")
    format: str = param("b[height<=?720]/b", help="yt-dlp format selector")
    retries: int = param(3, help="retries after a failed lookup or download", minimum=0)
    backoff_seconds: float = param(2.0, help="seconds before the first retry, doubled each time", minimum=0)
    timeout: float = param(30.0, help="seconds per network request", above=0)


@dataclasses.dataclass(frozen=True)
class BeamOptions(Config):
    """``preprocess.beam``: defaults for the Beam options not given on the command line (``--runner`` ...).

    Other Beam options (``--project``, ``--region``, ``--temp_location`` ...) go on the command line.
    """

    runner: str = param(
        "DirectRunner", help="Beam runner: DirectRunner (local) | DataflowRunner (with --project, --region ...)"
    )
    direct_running_mode: str = param(
        "multi_processing", help="DirectRunner: how workers run", choices=DIRECT_RUNNING_MODES
    )
    direct_num_workers: int = param(2, help="DirectRunner: parallel workers (0 = one per CPU)", minimum=0)


@dataclasses.dataclass(frozen=True)
class Detectron2Options(Config):
    """``preprocess.detectron2``: the Mask R-CNN of ``--segmenter detectron2`` (docs/masking.md)."""

    config: str = param(
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", help="Detectron2 model-zoo name or a .yaml file"
    )
    weights: Optional[str] = param(None, help="your .pkl/.pth weights (never downloaded), e.g. model_final_f10217.pkl")
    score_threshold: float = param(0.5, help="instances below this detection score are ignored", minimum=0, maximum=1)
    device: str = param("cpu", help="torch device", choices=DETECTRON2_DEVICES)
    batch_size: int = param(4, help="frames per Detectron2 forward pass (RunInference batch)", minimum=1)
    classes: Optional[Tuple[str, ...]] = param(
        None, help="comma-separated class names to mask; null = the model's movable classes"
    )
    resolution: str = param(
        "native",
        help="native (segment the raw frame, ids resized nearest-neighbour) | working (the record frame)",
        choices=DETECTRON2_RESOLUTIONS,
    )

    def check(self) -> Iterable[str]:
        if self.classes is not None and not self.classes:
            yield "classes: name at least one class (or null for the default)"


@dataclasses.dataclass(frozen=True)
class PreprocessConfig(Config):
    """``params.yaml`` ``preprocess``: one source read into Struct2depth records (docs/preprocessing.md).

    Sizes are pixels; thresholds are as documented per key. ``input``/``output`` may be local paths or
    Beam filesystem URLs (``gs://``).
    """

    source: str = param("kitti_raw", help="the input's kind", choices=SOURCES)
    input: str = param("", help="input folder, video, glob or gs:// path (source-specific; docs/preprocessing.md)")
    output: str = param("", help="output folder (new, empty or an earlier wilddepth output; never the input)")
    width: int = param(224, help="record frame width in pixels (the paper: 416)", minimum=1)
    height: int = param(64, help="record frame height in pixels (the paper: 128)", minimum=1)
    segmenter: str = param("none", help="moving-object masks", choices=SEGMENTERS)
    iou_threshold: float = param(
        0.3, help="mask alignment across a triplet: IoU a chained object must exceed, in [0, 1)", minimum=0
    )
    erase_unmatched: bool = param(True, help="erase objects not chained through all 3 frames, as Struct2depth")
    val_fraction: float = param(
        0.0, help="share of sequences (by SHA-256 of the folder name) listed in val.txt", minimum=0, maximum=1
    )
    max_gap_factor: float = param(
        1.5, help="no triplet across a gap > this x the sequence's median sample period", minimum=1
    )
    scene_cut_correlation: float = param(
        0.5, help="grey-histogram correlation below this between neighbours = a cut; 0 = off"
    )
    static_threshold: float = param(
        0.0, help="drop triplets whose t0/t2 mean |difference| < this (grey levels); 0 = off", minimum=0
    )
    kitti_raw: KittiRawOptions = param(default_factory=KittiRawOptions, help="KITTI raw drives")
    cityscapes: CityscapesOptions = param(default_factory=CityscapesOptions, help="Cityscapes sequences")
    video: VideoOptions = param(default_factory=VideoOptions, help="video sampling (also youtube8m)")
    image_folder: ImageFolderOptions = param(default_factory=ImageFolderOptions, help="folders of ordered frames")
    youtube8m: YouTube8MOptions = param(default_factory=YouTube8MOptions, help="YouTube8M download")
    beam: BeamOptions = param(default_factory=BeamOptions, help="defaults for Beam options not given")
    detectron2: Detectron2Options = param(default_factory=Detectron2Options, help="--segmenter detectron2")

    def check(self) -> Iterable[str]:
        if self.iou_threshold >= 1.0:
            yield f"iou_threshold: must be < 1, got {self.iou_threshold!r}"

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the record frames in pixels."""
        return (self.width, self.height)

    @property
    def intrinsics_file(self) -> Optional[str]:
        """The camera file named for videos and frame folders: ``video.intrinsics_file``, else
        ``image_folder.intrinsics_file``; None when neither is named."""
        return self.video.intrinsics_file or self.image_folder.intrinsics_file or None

    def manifest_parameters(self) -> Dict[str, Any]:
        """The parameters that determine the output's content (``manifest.json`` ``parameters``): the section
        as plain values, nested, without ``output`` and ``beam``, and ``detectron2`` only when it masks."""
        values = self.to_mapping()
        values.pop("output")
        values.pop("beam")
        if self.segmenter != "detectron2":
            values.pop("detectron2")
        return values
