"""The few figures of each evaluation that `dvc metrics show` prints (the headline), drawn from the full
documents, which stay in ``metrics/details/`` (tracked, but not DVC metrics).

Pure functions: a full document in, a flat ``{name: number}`` out. Keys are stable across runs so that
`dvc metrics diff` and `dvc exp show` compare them; a figure that a run cannot produce is ``None``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional


def _get(mapping: Optional[Mapping], *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def depth(document: Mapping) -> Dict[str, Any]:
    """Abs Rel and δ<1.25 of the model, the constant-depth baseline's Abs Rel, their ratio, and Abs Rel on the
    two regions (e.g. moving objects and static pixels) with their ratio, when the evaluation had masks."""
    headline = {
        "abs_rel": _get(document, "model", "abs_rel"),
        "a1": _get(document, "model", "a1"),
        "abs_rel_constant": _get(document, "constant_baseline", "abs_rel"),
        "abs_rel_over_constant": document.get("abs_rel_over_constant"),
    }
    regions = document.get("regions") or {}
    for name, region in regions.items():
        headline[f"{name}_abs_rel"] = _get(region, "model", "abs_rel")
        headline[f"{name}_abs_rel_constant"] = _get(region, "constant_baseline", "abs_rel")
    ratio_keys = [key for key in document if key.endswith("_abs_rel") and "_over_" in key]
    for key in ratio_keys:
        headline[key] = document[key]
    return headline


def odometry(document: Mapping) -> Dict[str, Any]:
    """ATE-n (mean over snippets) of the model and of the constant-velocity baseline, their ratio, and the
    Sim(3)-aligned full-trajectory ATE of both (metres, in the ground truth's units)."""
    length = document.get("snippet_length", 5)
    ate = f"ate{length}_mean"
    headline = {
        ate: _get(document, "model", ate),
        f"{ate}_constant_velocity": _get(document, "constant_velocity", ate),
        f"{ate}_over_constant_velocity": document.get(f"{ate}_over_constant_velocity"),
    }
    for key in ("ate_sim3_rmse", "ate_full_rmse"):
        if _get(document, "model", key) is not None:
            headline[key] = _get(document, "model", key)
            headline[f"{key}_constant_velocity"] = _get(document, "constant_velocity", key)
    return headline


def intrinsics(report: Mapping) -> Dict[str, Any]:
    """Whether the intrinsics were learned, and the median absolute relative errors of fx, fy (of the truth)
    and cx, cy (of the image size) over the test sequences; ``None`` when the head was not trained."""
    headline: Dict[str, Any] = {"learned": bool(report.get("learned_intrinsics_available"))}
    summary = report.get("summary") or {}
    for key in ("fx", "fy", "cx", "cy"):
        headline[f"{key}_rel_error"] = summary.get(f"{key}_rel_error_abs_median")
    headline["fx_rank_agreement"] = summary.get("fx_rank_agreement")
    return headline
