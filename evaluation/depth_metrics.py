"""Single-image depth metrics under the standard monocular protocol (SfMLearner / Monodepth2 evaluation). Pure numpy.

Protocol, per image, applied by :func:`evaluate_depth_map`:

1. The prediction must already have the ground truth's size (the caller resizes it, see
   ``evaluation.depth_evaluation``; wilddepth resizes the *depth* bilinearly, as SfMLearner does).
2. Valid pixels: ``min_depth < gt < max_depth`` (metres, defaults 1e-3 and 80), intersected with the
   Garg/Eigen crop (``crop="garg"``) or no crop (``crop="none"``).
3. Scaling: ``"median"`` multiplies the prediction by ``median(gt_valid) / median(pred_valid)``;
   ``"none"`` leaves it as it is (for metric-depth models).
4. The scaled prediction is clamped to ``[min_depth, max_depth]``.
5. The seven metrics over the valid pixels; the dataset number is the plain mean over images.

Regions (:func:`evaluate_depth_regions`): with an object mask of the image (nonzero = object pixel), the same
metrics are also computed on the valid pixels inside the mask and on those outside it. Steps 2-4 are unchanged:
the median scale of step 3 is computed once, on the whole image's valid pixels, and applied to every region.
The dataset number of a region is the plain mean over the images that have at least one valid pixel in it;
images without any are skipped and counted (:func:`mean_region_metrics`), not scored as zero.

Depths are in metres (ground truth) and up to scale (predictions), as float arrays of shape (H, W).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

METRIC_NAMES: Tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
"""a1, a2, a3 are the threshold accuracies delta < 1.25, 1.25**2, 1.25**3 (fractions in [0, 1])."""

DEFAULT_MIN_DEPTH = 1e-3
DEFAULT_MAX_DEPTH = 80.0
CROPS = ("garg", "none")
SCALINGS = ("median", "none")

# Garg et al. crop as fractions of the image (rows top..bottom, columns left..right), as in SfMLearner's eval.
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)


def garg_crop_bounds(height: int, width: int) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) of the Garg crop, bottom/right exclusive: floor(fraction * size)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    top, bottom, left, right = GARG_CROP_FRACTIONS
    return (
        int(np.floor(top * height)),
        int(np.floor(bottom * height)),
        int(np.floor(left * width)),
        int(np.floor(right * width)),
    )


def crop_mask(height: int, width: int, crop: str = "garg") -> np.ndarray:
    """Boolean (H, W) mask of the pixels inside ``crop`` ("garg" or "none")."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    top, bottom, left, right = garg_crop_bounds(height, width)
    mask[top:bottom, left:right] = True
    return mask


def valid_mask(
    gt: np.ndarray, min_depth: float = DEFAULT_MIN_DEPTH, max_depth: float = DEFAULT_MAX_DEPTH, crop: str = "garg"
) -> np.ndarray:
    """Pixels with ``min_depth < gt < max_depth`` inside ``crop``; NaN or 0 ground truth is invalid."""
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"ground-truth depth must be (H, W), got shape {gt.shape}")
    if not 0 <= min_depth < max_depth:
        raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
    with np.errstate(invalid="ignore"):
        in_range = (gt > min_depth) & (gt < max_depth)
    return in_range & crop_mask(gt.shape[0], gt.shape[1], crop)


def median_scale_ratio(gt_valid: np.ndarray, pred_valid: np.ndarray) -> float:
    """median(gt) / median(pred) over matching 1-D arrays of valid pixels."""
    gt_valid = np.asarray(gt_valid, dtype=np.float64)
    pred_valid = np.asarray(pred_valid, dtype=np.float64)
    if gt_valid.size == 0:
        raise ValueError("median scaling needs at least one valid pixel")
    pred_median = float(np.median(pred_valid))
    if not np.isfinite(pred_median) or pred_median <= 0:
        raise ValueError(f"median of the predicted depth must be positive and finite, got {pred_median}")
    return float(np.median(gt_valid)) / pred_median


def compute_depth_errors(gt: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """The seven metrics over matching 1-D arrays of positive depths (already masked, scaled, clamped).

    abs_rel = mean(|gt - pred| / gt); sq_rel = mean((gt - pred)^2 / gt); rmse = sqrt(mean((gt - pred)^2)) in
    metres; rmse_log = sqrt(mean((ln gt - ln pred)^2)); a_k = fraction with max(gt/pred, pred/gt) < 1.25^k.
    """
    gt = np.asarray(gt, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred differ in size: {gt.shape} vs {pred.shape}")
    if gt.size == 0:
        raise ValueError("no valid pixels to evaluate")
    if np.any(~np.isfinite(pred)) or np.any(pred <= 0) or np.any(gt <= 0):
        raise ValueError("depths must be finite and positive (mask and clamp before computing errors)")
    ratio = np.maximum(gt / pred, pred / gt)
    difference = gt - pred
    return {
        "abs_rel": float(np.mean(np.abs(difference) / gt)),
        "sq_rel": float(np.mean(difference**2 / gt)),
        "rmse": float(np.sqrt(np.mean(difference**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
    }


def align_prediction(
    gt: np.ndarray,
    pred: np.ndarray,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float = DEFAULT_MAX_DEPTH,
    crop: str = "garg",
    scaling: str = "median",
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Apply steps 2-4 of the protocol.

    Returns ``(gt_valid, pred_valid, mask, ratio)``: 1-D arrays of valid ground truth and scaled, clamped
    prediction, the (H, W) valid mask, and the scale factor applied (1.0 for ``scaling="none"``).
    """
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"prediction {pred.shape} must be resized to the ground truth's size {gt.shape} first")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    mask = valid_mask(gt, min_depth, max_depth, crop)
    if not mask.any():
        raise ValueError("the image has no valid ground-truth pixel inside the crop and depth range")
    gt_valid, pred_valid = gt[mask], pred[mask]
    if not np.all(np.isfinite(pred_valid)):
        raise ValueError("prediction has non-finite values on valid pixels")
    ratio = median_scale_ratio(gt_valid, pred_valid) if scaling == "median" else 1.0
    pred_valid = np.clip(pred_valid * ratio, min_depth, max_depth)
    return gt_valid, pred_valid, mask, ratio


def evaluate_depth_map(
    gt: np.ndarray,
    pred: np.ndarray,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float = DEFAULT_MAX_DEPTH,
    crop: str = "garg",
    scaling: str = "median",
) -> Dict[str, float]:
    """The seven metrics of one image (steps 2-5 of the protocol); also ``scale_ratio`` and ``valid_pixels``."""
    gt_valid, pred_valid, mask, ratio = align_prediction(gt, pred, min_depth, max_depth, crop, scaling)
    metrics = compute_depth_errors(gt_valid, pred_valid)
    metrics["scale_ratio"] = ratio
    metrics["valid_pixels"] = int(mask.sum())
    return metrics


def region_selectors(valid: np.ndarray, object_mask: np.ndarray) -> np.ndarray:
    """1-D boolean over the valid pixels (in the row-major order of ``gt[valid]``): True where the object mask is
    nonzero. ``valid`` is the (H, W) mask of :func:`align_prediction`; ``object_mask`` (H, W) bool or ids."""
    valid = np.asarray(valid, dtype=bool)
    object_mask = np.asarray(object_mask)
    if object_mask.shape != valid.shape:
        raise ValueError(f"object mask {object_mask.shape} must have the ground truth's size {valid.shape}")
    return (object_mask != 0)[valid]


def region_errors(
    gt_valid: np.ndarray, pred_valid: np.ndarray, inside: np.ndarray
) -> Dict[str, Optional[Dict[str, float]]]:
    """Metrics of ``"all"`` valid pixels, of the ``"objects"`` ones (``inside`` True) and of the ``"rest"``, each
    with ``valid_pixels``; ``None`` for a region without pixels. Inputs as :func:`compute_depth_errors` gets
    them (masked, scaled, clamped) plus the 1-D ``inside`` of :func:`region_selectors`."""
    inside = np.asarray(inside, dtype=bool).reshape(-1)
    if inside.shape != np.shape(gt_valid):
        raise ValueError(f"region selector {inside.shape} must match the valid pixels {np.shape(gt_valid)}")
    result: Dict[str, Optional[Dict[str, float]]] = {}
    for name, selector in (("all", np.ones_like(inside)), ("objects", inside), ("rest", ~inside)):
        count = int(selector.sum())
        if count == 0:
            result[name] = None
            continue
        metrics = compute_depth_errors(gt_valid[selector], pred_valid[selector])
        metrics["valid_pixels"] = count
        result[name] = metrics
    return result


def evaluate_depth_regions(
    gt: np.ndarray,
    pred: np.ndarray,
    object_mask: np.ndarray,
    min_depth: float = DEFAULT_MIN_DEPTH,
    max_depth: float = DEFAULT_MAX_DEPTH,
    crop: str = "garg",
    scaling: str = "median",
) -> Dict[str, Optional[Dict[str, float]]]:
    """:func:`region_errors` of one image and its object mask (nonzero = object), under steps 2-4 of the
    protocol; each region also carries the image's ``scale_ratio``.

    The scale (median scaling) is the whole image's (:func:`align_prediction`), so ``"all"`` equals
    :func:`evaluate_depth_map` and the regions are scored with the prediction the whole-image number uses.
    """
    gt_valid, pred_valid, valid, ratio = align_prediction(gt, pred, min_depth, max_depth, crop, scaling)
    result = region_errors(gt_valid, pred_valid, region_selectors(valid, object_mask))
    for metrics in result.values():
        if metrics is not None:
            metrics["scale_ratio"] = ratio
    return result


def mean_region_metrics(
    per_image: Iterable[Optional[Mapping[str, float]]],
) -> Tuple[Optional[Dict[str, float]], int, int]:
    """``(means, num_images, num_skipped)``: each of :data:`METRIC_NAMES` averaged over the images whose region
    has valid pixels (rows that are ``None`` are skipped and counted); ``means`` is ``None`` if all are."""
    rows: List[Optional[Mapping[str, float]]] = list(per_image)
    present = [row for row in rows if row is not None]
    return (mean_metrics(present) if present else None), len(present), len(rows) - len(present)


def mean_metrics(per_image: Iterable[Mapping[str, float]]) -> Dict[str, float]:
    """Average each of :data:`METRIC_NAMES` over images (the protocol's dataset number)."""
    rows: List[Mapping[str, float]] = list(per_image)
    if not rows:
        raise ValueError("no images to average")
    return {name: float(np.mean([row[name] for row in rows])) for name in METRIC_NAMES}


class DistanceBinnedErrors:
    """Accumulates errors by ground-truth distance over many images (pixel-weighted), for plots.

    ``bin_edges`` in metres, increasing; a pixel with edges[i] <= gt < edges[i + 1] falls in bin i.
    """

    def __init__(self, bin_edges: np.ndarray):
        edges = np.asarray(bin_edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin_edges must be a strictly increasing 1-D array with at least 2 entries")
        self.bin_edges = edges
        self.count = np.zeros(edges.size - 1, dtype=np.int64)
        self.abs_rel_sum = np.zeros(edges.size - 1)
        self.squared_error_sum = np.zeros(edges.size - 1)

    def add(self, gt_valid: np.ndarray, pred_valid: np.ndarray) -> None:
        """Add matching 1-D arrays of valid (masked, scaled, clamped) depths."""
        gt_valid = np.asarray(gt_valid, dtype=np.float64).reshape(-1)
        pred_valid = np.asarray(pred_valid, dtype=np.float64).reshape(-1)
        index = np.searchsorted(self.bin_edges, gt_valid, side="right") - 1
        inside = (index >= 0) & (index < self.count.size)
        index, gt_valid, pred_valid = index[inside], gt_valid[inside], pred_valid[inside]
        self.count += np.bincount(index, minlength=self.count.size)
        self.abs_rel_sum += np.bincount(index, np.abs(gt_valid - pred_valid) / gt_valid, minlength=self.count.size)
        self.squared_error_sum += np.bincount(index, (gt_valid - pred_valid) ** 2, minlength=self.count.size)

    def table(self) -> Dict[str, np.ndarray]:
        """Per bin: centre (m), pixel count, Abs Rel and RMSE (NaN where a bin is empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            abs_rel = np.where(self.count > 0, self.abs_rel_sum / self.count, np.nan)
            rmse = np.where(self.count > 0, np.sqrt(self.squared_error_sum / self.count), np.nan)
        centre = 0.5 * (self.bin_edges[:-1] + self.bin_edges[1:])
        return {"distance_m": centre, "count": self.count.copy(), "abs_rel": abs_rel, "rmse": rmse}
