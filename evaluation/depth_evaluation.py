"""Depth evaluation over a dataset: samples, batched inference through a predictor, metrics, plot data.

The predictor is any object with ``image_size`` (H, W) and ``predict_depth(images [B, H, W, 3] float32 in
[0, 1], flip_augment=True) -> [B, H, W]`` (``model.inference.InferenceModel`` or a test double), so this
module never imports TensorFlow.

Datasets (see ``docs/evaluation.md``):

- ``synthetic``: every KITTI-raw-layout drive below ``data_dir`` (``.../<drive>/image_02/data/<frame>.png``)
  with its renderer depth ``<drive>/groundtruth/depth/<frame>.npy`` (metres, z-depth, raw resolution);
- ``kitti_eigen``: the 697 frames of ``eigen_test_files.txt`` (or another list in that format) below a KITTI
  raw root, ground truth from the Velodyne scans (``evaluation.kitti_depth_gt``);
- ``cityscapes``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ground truth from the matching
  ``disparity/`` PNG and ``camera/`` JSON: depth = baseline * fx / d with d = (p - 1) / 256 for p > 0. Image and
  ground truth are both cut to the release's crop (rows 256:768, columns 192:1856) before anything else.

The constant-depth baseline predicts the same depth everywhere and is always median-scaled (its one free
parameter is the scale), so it scores the median of each image's valid ground truth: the yardstick every
metrics file carries.

Regions: when every sample has an object mask, model and baseline are also scored on the object pixels and on
the others (``depth_metrics.region_errors``; same crop, caps and whole-image median scale). The synthetic
world's masks (``<drive>/groundtruth/masks/<frame>.png``, instance ids, 0 = static) mark only the objects that
move in the world (cars driving, pedestrians walking; parked cars are static structure with id 0), so its
regions are named :data:`MOVING_REGIONS`. Masks given for KITTI / Cityscapes (``object_masks_dir``: one PNG per
sample, ``<dir>/<sample name>.png``, nonzero = object, the input image's size) may include parked cars, so
they are named :data:`OBJECT_REGIONS`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from evaluation import depth_metrics, images, kitti_depth_gt
from formats import atomic
from formats.cityscapes import CROP_BOX as CITYSCAPES_CROP_BOX
from formats.params import Config, param
from formats.struct2depth import read_rgb

DATASETS = ("synthetic", "kitti_eigen", "cityscapes")
MOVING_REGIONS = ("moving_objects", "static")
"""Region names (mask nonzero, mask zero) for masks that mark exactly the moving objects (synthetic ground truth)."""
OBJECT_REGIONS = ("objects", "background")
"""Region names for masks of object classes that may also be parked (user-given KITTI / Cityscapes masks)."""
EIGEN_TEST_LIST = Path(__file__).resolve().parent / "eigen_test_files.txt"


@dataclasses.dataclass(frozen=True)
class DepthEvalConfig(Config):
    """The evaluation protocol and its data: the ``eval_depth:`` section of params.yaml (depths in metres)."""

    dataset: str = param("synthetic", help="dataset to evaluate (docs/evaluation.md)", choices=DATASETS)
    data_dir: str = param(
        "data/synthetic/test", help="synthetic: KITTI raw layout + groundtruth/; kitti_eigen: KITTI raw root"
    )
    split_file: Optional[str] = param(
        None, help="kitti_eigen: null = evaluation/eigen_test_files.txt; cityscapes: image list"
    )
    cityscapes_split: str = param("test", help="cityscapes: the split to evaluate")
    frame_stride: int = param(1, help="synthetic: evaluate every n-th frame", minimum=1)
    object_masks_dir: Optional[str] = param(
        None,
        help="kitti_eigen / cityscapes: <dir>/<sample name>.png object masks (nonzero = object) for the objects / "
        "background regions; synthetic uses its ground-truth moving-object masks",
    )
    min_depth: float = param(
        depth_metrics.DEFAULT_MIN_DEPTH,
        help="metres: valid ground truth is min_depth < gt < max_depth; predictions clamped",
        above=0.0,
    )
    max_depth: float = param(
        depth_metrics.DEFAULT_MAX_DEPTH, help="metres: upper end of valid ground truth and of the clamp", above=0.0
    )
    crop: str = param("garg", help="evaluation crop (use none for cityscapes)", choices=depth_metrics.CROPS)
    scaling: str = param("median", help="per-image median scaling, or none", choices=depth_metrics.SCALINGS)
    resize: str = param(
        "depth", help="what is resized bilinearly to the ground truth's size", choices=images.RESIZE_MODES
    )
    flip_augment: bool = param(True, help="the release's min(depth, flip(depth(flip)))")
    batch_size: int = param(8, help="images per predictor call", minimum=1)
    num_images: int = param(4, help="prediction / ground-truth images written to plots/depth/images", minimum=0)
    distance_bin_m: float = param(5.0, help="bin width of plots/depth/error_by_distance.csv (metres)", above=0.0)

    def check(self) -> Iterable[str]:
        if self.min_depth >= self.max_depth:
            yield f"max_depth: must exceed min_depth ({self.min_depth}), got {self.max_depth}"
        if self.dataset == "synthetic" and self.object_masks_dir:
            yield (
                "object_masks_dir: is for kitti_eigen / cityscapes: the synthetic world's masks are its ground "
                "truth (<drive>/groundtruth/masks)"
            )

    @property
    def regions(self) -> Tuple[str, str]:
        """Names of the (mask nonzero, mask zero) regions of this dataset (:func:`region_names`)."""
        return region_names(self.dataset)


class DepthSample(NamedTuple):
    """One evaluation image: a name, its RGB file, a ground-truth loader (metres, 0 = no data), an input crop and
    an optional object-mask loader ((H, W) like the ground truth, nonzero = object pixel)."""

    name: str
    image_path: Path
    load_ground_truth: Callable[[], np.ndarray]
    crop_box: Optional[Tuple[int, int, int, int]] = None
    load_object_mask: Optional[Callable[[], np.ndarray]] = None


def _npy_loader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        depth = np.load(path)
        if depth.ndim != 2:
            raise ValueError(f"{path}: ground-truth depth must be (H, W), got {depth.shape}")
        return np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0)

    return load


def _mask_loader(path: Path, crop_box: Optional[Sequence[int]] = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise FileNotFoundError(f"{path}: object mask missing or unreadable")
        if mask.ndim != 2:
            raise ValueError(f"{path}: an object mask must be a single-channel PNG, got shape {mask.shape}")
        if crop_box is not None:
            top, bottom, left, right = (int(v) for v in crop_box)
            mask = mask[top:bottom, left:right]
        return mask

    return load


def with_object_masks(samples: Sequence[DepthSample], masks_dir: Path) -> List[DepthSample]:
    """The samples with masks ``<masks_dir>/<sample name>.png`` (at the input image's size, cut to the sample's
    crop); every mask must exist, so the regions are never scored on a silent subset."""
    masks_dir = Path(masks_dir)
    paths = [masks_dir / f"{sample.name}.png" for sample in samples]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} object masks are missing below {masks_dir}, "
            f"e.g. {missing[:3]} (expected <object_masks_dir>/<sample name>.png)"
        )
    return [
        sample._replace(load_object_mask=_mask_loader(path, sample.crop_box)) for sample, path in zip(samples, paths)
    ]


def synthetic_samples(data_dir: Path, frame_stride: int = 1) -> List[DepthSample]:
    """Every ``frame_stride``-th frame of every drive ``<...>/<drive>/image_02/data`` below ``data_dir``, with
    its renderer depth and instance mask (both part of the ground-truth contract, so both must exist)."""
    data_dir = Path(data_dir)
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    frame_dirs = sorted(path for path in data_dir.rglob("image_02/data") if path.is_dir())
    if not frame_dirs:
        raise FileNotFoundError(f"{data_dir}: no KITTI-raw-layout drive (<drive>/image_02/data) found")
    samples = []
    for frame_dir in frame_dirs:
        drive = frame_dir.parent.parent
        for image_path in sorted(frame_dir.glob("*.png"))[::frame_stride]:
            depth_path = drive / "groundtruth" / "depth" / f"{image_path.stem}.npy"
            mask_path = drive / "groundtruth" / "masks" / f"{image_path.stem}.png"
            for path, what in ((depth_path, "depth"), (mask_path, "object mask")):
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: ground-truth {what} missing for {image_path}")
            samples.append(
                DepthSample(
                    f"{drive.name}/{image_path.stem}",
                    image_path,
                    _npy_loader(depth_path),
                    load_object_mask=_mask_loader(mask_path),
                )
            )
    return samples


def read_eigen_list(path: Path) -> List[Tuple[str, str, int]]:
    """Lines ``<date>/<drive> <frame> <l|r>`` -> (scene, 10-digit frame, camera 2 or 3)."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) not in (2, 3) or "/" not in tokens[0] or not tokens[1].isdigit():
            raise ValueError(f"{path}:{number}: expected '<date>/<drive> <frame> [l|r]', got {line!r}")
        side = tokens[2] if len(tokens) == 3 else "l"
        if side not in ("l", "r"):
            raise ValueError(f"{path}:{number}: side must be l or r, got {side!r}")
        entries.append((tokens[0], f"{int(tokens[1]):010d}", 2 if side == "l" else 3))
    if not entries:
        raise ValueError(f"{path}: empty list")
    return entries


def kitti_eigen_samples(data_dir: Path, split_file: Optional[Path] = None) -> List[DepthSample]:
    """The Eigen test frames below a KITTI raw root; every image and scan must exist (no silent subset)."""
    data_dir = Path(data_dir)
    samples, missing = [], []
    for scene, frame, camera in read_eigen_list(Path(split_file) if split_file else EIGEN_TEST_LIST):
        date, drive = scene.split("/", 1)
        image_path = data_dir / scene / f"image_0{camera}" / "data" / f"{frame}.png"
        scan_path = data_dir / scene / "velodyne_points" / "data" / f"{frame}.bin"
        for path in (image_path, scan_path):
            if not path.is_file():
                missing.append(str(path))

        def load(date_dir=data_dir / date, drive=drive, frame=frame, camera=camera):
            return kitti_depth_gt.kitti_raw_depth(date_dir, drive, frame, camera)

        samples.append(DepthSample(f"{drive}/{frame}", image_path, load))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} files of the test list are missing below {data_dir}, e.g. "
            f"{missing[:3]}; a partial Eigen evaluation is not comparable"
        )
    return samples


def cityscapes_depth(disparity_path: Path, camera_path: Path) -> np.ndarray:
    """Depth (metres, 0 = invalid) from a Cityscapes disparity PNG and camera JSON: baseline * fx / d."""
    encoded = cv2.imread(str(disparity_path), cv2.IMREAD_UNCHANGED)
    if encoded is None:
        raise FileNotFoundError(f"{disparity_path}: disparity image missing or unreadable")
    camera = json.loads(Path(camera_path).read_text())
    try:
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{camera_path}: needs extrinsic.baseline and intrinsic.fx") from error
    disparity = (encoded.astype(np.float64) - 1.0) / 256.0
    depth = np.zeros(encoded.shape[:2], dtype=np.float32)
    valid = (encoded > 0) & (disparity > 0)
    depth[valid] = baseline * fx / disparity[valid]
    return depth


def cityscapes_samples(
    data_dir: Path,
    split: str = "test",
    split_file: Optional[Path] = None,
    crop_box: Sequence[int] = CITYSCAPES_CROP_BOX,
) -> List[DepthSample]:
    """Cityscapes frames (all of ``leftImg8bit/<split>`` or the relative paths listed in ``split_file``)."""
    data_dir = Path(data_dir)
    if split_file:
        relative = [line.split()[0] for line in Path(split_file).read_text().splitlines() if line.strip()]
        image_paths = [data_dir / path for path in relative]
    else:
        image_paths = sorted((data_dir / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not image_paths:
        raise FileNotFoundError(f"{data_dir}: no Cityscapes images for split {split!r}")
    top, bottom, left, right = (int(v) for v in crop_box)
    samples = []
    for image_path in image_paths:
        stem = image_path.name[: -len("_leftImg8bit.png")]
        split_name, city = image_path.parent.parent.name, image_path.parent.name
        disparity_path = data_dir / "disparity" / split_name / city / f"{stem}_disparity.png"
        camera_path = data_dir / "camera" / split_name / city / f"{stem}_camera.json"
        for path in (image_path, disparity_path, camera_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing")

        def load(disparity_path=disparity_path, camera_path=camera_path):
            return cityscapes_depth(disparity_path, camera_path)[top:bottom, left:right]

        samples.append(DepthSample(f"{city}/{stem}", image_path, load, (top, bottom, left, right)))
    return samples


def build_samples(config: DepthEvalConfig) -> List[DepthSample]:
    """Samples of ``config.dataset``; with ``object_masks_dir`` (KITTI / Cityscapes only) each sample also gets
    its object mask."""
    if config.dataset == "synthetic":
        return synthetic_samples(Path(config.data_dir), config.frame_stride)
    if config.dataset == "kitti_eigen":
        samples = kitti_eigen_samples(Path(config.data_dir), config.split_file)
    else:
        samples = cityscapes_samples(Path(config.data_dir), config.cityscapes_split, config.split_file)
    return with_object_masks(samples, Path(config.object_masks_dir)) if config.object_masks_dir else samples


def region_names(dataset: str) -> Tuple[str, str]:
    """Names of the (mask nonzero, mask zero) regions: moving objects for the synthetic world's ground truth,
    plain objects for given masks (which may include parked cars)."""
    return MOVING_REGIONS if dataset == "synthetic" else OBJECT_REGIONS


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"failed to encode {path}")
    atomic.write_bytes(path, encoded.tobytes())


class _Scored(NamedTuple):
    """One image scored: its per-image row, and what its bins and comparison panel need."""

    row: Dict
    gt_valid: np.ndarray
    pred_valid: np.ndarray
    constant_valid: np.ndarray
    resized: np.ndarray  # the prediction at the ground truth's size
    ratio: float  # its scale (median ratio, or 1)
    ground_truth: np.ndarray


def evaluate(
    samples: Sequence[DepthSample],
    predictor,
    config: Optional[DepthEvalConfig] = None,
    *,
    images_dir: Optional[Path] = None,
    progress: bool = False,
) -> Dict:
    """Run the predictor on every sample and score it and the constant baseline under ``config``'s protocol.

    Returns ``{"model": means, "constant_baseline": means, "regions": {...} or None, "per_image": rows,
    "by_distance": table}``. When the samples have object masks, ``regions`` maps each of the two names of
    ``config.regions`` (mask nonzero, mask zero) to ``{"model", "constant_baseline"}`` means over the images
    with valid pixels in it, ``num_images`` and ``num_images_without_pixels`` (see ``depth_metrics``).
    Visual comparisons of ``config.num_images`` evenly spaced samples go to ``images_dir`` as PNGs.
    """
    config = config or DepthEvalConfig()
    use_regions = _uses_regions(samples)
    size_hw = tuple(int(v) for v in predictor.image_size)
    edges = np.arange(0.0, config.max_depth + config.distance_bin_m, config.distance_bin_m)
    model_bins, baseline_bins = depth_metrics.DistanceBinnedErrors(edges), depth_metrics.DistanceBinnedErrors(edges)
    count = min(config.num_images, len(samples))
    shown = set(np.linspace(0, len(samples) - 1, num=count).round().astype(int).tolist())
    rows: List[Dict] = []
    for start, batch in _batches(samples, config.batch_size, progress):
        rgbs, predictions = _predict_batch(batch, predictor, size_hw, config.flip_augment)
        for offset, (sample, rgb, prediction) in enumerate(zip(batch, rgbs, predictions)):
            scored = _score(sample, prediction, config, use_regions)
            model_bins.add(scored.gt_valid, scored.pred_valid)
            baseline_bins.add(scored.gt_valid, scored.constant_valid)
            rows.append(scored.row)
            if images_dir is not None and start + offset in shown:
                _write_panel(Path(images_dir), start + offset, sample, rgb, scored, config)
    return _summary(rows, model_bins.table(), baseline_bins.table(), config.regions if use_regions else None)


def _uses_regions(samples: Sequence[DepthSample]) -> bool:
    """True when every sample has an object mask; an error when only some have one (or there is none)."""
    if not samples:
        raise ValueError("no samples to evaluate")
    with_masks = [sample.load_object_mask is not None for sample in samples]
    if any(with_masks) and not all(with_masks):
        raise ValueError(
            f"{with_masks.count(False)} of {len(samples)} samples have no object mask: "
            "region metrics need a mask for every image"
        )
    return all(with_masks)


def _batches(samples: Sequence[DepthSample], batch_size: int, progress: bool) -> Iterator:
    """(index of the first sample, samples) per batch, with a progress bar when asked."""
    starts: Iterable[int] = range(0, len(samples), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="eval_depth", unit="batch")
    for start in starts:
        yield start, samples[start : start + batch_size]


def _predict_batch(batch, predictor, size_hw, flip_augment: bool):
    """(RGB images as read, predicted depths [B, H, W] at the model's size)."""
    rgbs = [read_rgb(sample.image_path) for sample in batch]
    inputs = np.stack([images.model_input(rgb, size_hw, sample.crop_box) for rgb, sample in zip(rgbs, batch)])
    predictions = np.asarray(predictor.predict_depth(inputs, flip_augment=flip_augment))
    if predictions.shape != (len(batch),) + size_hw:
        raise ValueError(f"predictor returned {predictions.shape}, expected {(len(batch),) + size_hw}")
    return rgbs, predictions


def _score(sample: DepthSample, prediction: np.ndarray, config: DepthEvalConfig, use_regions: bool) -> _Scored:
    """Model and constant baseline against one sample's ground truth (and its regions)."""
    ground_truth = sample.load_ground_truth()
    resized = images.resize_prediction(prediction, ground_truth.shape, config.resize)
    limits = (config.min_depth, config.max_depth, config.crop)
    try:
        gt_valid, pred_valid, valid, ratio = depth_metrics.align_prediction(
            ground_truth, resized, *limits, config.scaling
        )
        _, constant_valid, _, _ = depth_metrics.align_prediction(ground_truth, np.ones_like(resized), *limits, "median")
    except ValueError as error:
        raise ValueError(f"{sample.name}: {error}") from error
    row = {
        "name": sample.name,
        "scale_ratio": ratio,
        "valid_pixels": int(gt_valid.size),
        "model": depth_metrics.compute_depth_errors(gt_valid, pred_valid),
        "constant_baseline": depth_metrics.compute_depth_errors(gt_valid, constant_valid),
    }
    if use_regions:
        row["regions"] = _region_row(sample, valid, gt_valid, pred_valid, constant_valid, config.regions)
    return _Scored(row, gt_valid, pred_valid, constant_valid, resized, ratio, ground_truth)


def _region_row(sample, valid, gt_valid, pred_valid, constant_valid, regions: Tuple[str, str]) -> Dict:
    """Per region name: the model's and the baseline's errors on its valid pixels."""
    try:
        inside = depth_metrics.region_selectors(valid, sample.load_object_mask())
    except ValueError as error:
        raise ValueError(f"{sample.name}: {error}") from error
    model_regions = depth_metrics.region_errors(gt_valid, pred_valid, inside)
    constant_regions = depth_metrics.region_errors(gt_valid, constant_valid, inside)
    return {
        name: {"model": model_regions[key], "constant_baseline": constant_regions[key]}
        for name, key in zip(regions, ("objects", "rest"))
    }


def _write_panel(images_dir: Path, index: int, sample: DepthSample, rgb: np.ndarray, scored: _Scored, config) -> None:
    """``<index>_<name>.png``: input (cut to the sample's crop), scaled and clamped prediction, ground truth."""
    scaled = np.clip(scored.resized * scored.ratio, config.min_depth, config.max_depth)
    if sample.crop_box is not None:
        top, bottom, left, right = sample.crop_box
        rgb = rgb[top:bottom, left:right]
    panel = images.comparison_panel(rgb, scaled, scored.ground_truth)
    _write_png(images_dir / f"{index:04d}_{sample.name.replace('/', '_')}.png", panel)


def _summary(rows: List[Dict], model_table: Dict, baseline_table: Dict, regions: Optional[Tuple[str, str]]) -> Dict:
    """The result of :func:`evaluate` from its per-image rows and distance tables."""
    return {
        "model": depth_metrics.mean_metrics(row["model"] for row in rows),
        "constant_baseline": depth_metrics.mean_metrics(row["constant_baseline"] for row in rows),
        "regions": summarize_regions(rows, regions) if regions is not None else None,
        "per_image": rows,
        "by_distance": {
            "distance_m": model_table["distance_m"],
            "count": model_table["count"],
            "abs_rel_model": model_table["abs_rel"],
            "abs_rel_constant": baseline_table["abs_rel"],
            "rmse_model": model_table["rmse"],
            "rmse_constant": baseline_table["rmse"],
        },
    }


def summarize_regions(rows: Sequence[Dict], names: Sequence[str]) -> Dict[str, Dict]:
    """Per region: model and baseline means over the images with valid pixels in it, and the counts."""
    summary = {}
    for name in names:
        model, count, skipped = depth_metrics.mean_region_metrics(row["regions"][name]["model"] for row in rows)
        baseline, _, _ = depth_metrics.mean_region_metrics(row["regions"][name]["constant_baseline"] for row in rows)
        summary[name] = {
            "model": model,
            "constant_baseline": baseline,
            "num_images": count,
            "num_images_without_pixels": skipped,
            "valid_pixels": int(
                sum(
                    row["regions"][name]["model"]["valid_pixels"]
                    for row in rows
                    if row["regions"][name]["model"] is not None
                )
            ),
        }
    return summary


def by_distance_csv(table: Dict[str, np.ndarray]) -> str:
    """CSV text of the by-distance table; empty bins are left out (DVC plots cannot draw NaN)."""
    columns = list(table)
    lines = [",".join(columns)]
    for index in range(len(table["distance_m"])):
        if table["count"][index] == 0:
            continue
        lines.append(",".join(f"{float(table[column][index]):.6g}" for column in columns))
    return "\n".join(lines) + "\n"


def per_image_csv(rows: Sequence[Dict]) -> str:
    """CSV text: one line per image with the model's and the baseline's Abs Rel and the scale ratio; with regions
    also each region's Abs Rel (model, baseline; empty where the image has no pixel in it) and pixel count."""
    names = list(rows[0].get("regions") or {}) if rows else []
    header = "index,name,abs_rel_model,abs_rel_constant,scale_ratio,valid_pixels"
    header += "".join(f",abs_rel_model_{name},abs_rel_constant_{name},valid_pixels_{name}" for name in names)
    lines = [header]
    for index, row in enumerate(rows):
        line = (
            f"{index},{row['name']},{row['model']['abs_rel']:.6g},"
            f"{row['constant_baseline']['abs_rel']:.6g},{row['scale_ratio']:.6g},{row['valid_pixels']}"
        )
        for name in names:
            model, baseline = row["regions"][name]["model"], row["regions"][name]["constant_baseline"]
            line += f",{model['abs_rel']:.6g},{baseline['abs_rel']:.6g},{model['valid_pixels']}" if model else ",,,0"
        lines.append(line)
    return "\n".join(lines) + "\n"
