"""Learned vs true camera intrinsics per test sequence, and where reported intrinsics come from. Pure numpy.

Conventions: K in pixels with the pixel-centre convention of ``formats/camera.py``, in the frame of the model's
input (the whole frame resized to the model's (H, W)); true K are brought into that frame with
``formats.camera.scale_intrinsics``, the function the preprocessing uses to size the records' K.

- The learned value of a sequence is the median, over its frame pairs, of each of fx, fy, cx, cy.
- Errors: fx, fy relative to the true focal length ((learned - true) / true); cx, cy relative to the image size
  ((learned - true) / W and / H). Signed per sequence; the summary is the median over sequences of their
  absolute values.
- ``fx_rank_agreement``: over the pairs of sequences whose true fx differ (by more than 1e-6 relative), the
  fraction whose learned fx are in the same order (1.0: ranked like the truth); ``None`` without such a pair.

Provenance (:data:`SOURCES`, see ``model.inference.intrinsics_source``): a checkpoint trained with
``learn_intrinsics: false`` has an untrained intrinsics head. Its output is then never reported: a sequence's
record says ``"source": "records"`` and carries the sequence's calibration K (what its records would hold), and
the report says ``"learned_intrinsics_available": false`` with the true K only, no errors.
"""

from __future__ import annotations

from itertools import combinations
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from formats.camera import scale_intrinsics, validate_intrinsics

SOURCES = ("learned", "given")
"""What a predictor's ``intrinsics_source`` may be: its head was trained, or K was given (head untrained)."""
PARAMETERS = ("fx", "fy", "cx", "cy")


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"intrinsics source must be one of {SOURCES}, got {source!r}")
    return source


def parameters(intrinsics: np.ndarray) -> Dict[str, float]:
    """{fx, fy, cx, cy} of a 3x3 K."""
    matrix = np.asarray(intrinsics, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {matrix.shape}")
    return {"fx": float(matrix[0, 0]), "fy": float(matrix[1, 1]), "cx": float(matrix[0, 2]), "cy": float(matrix[1, 2])}


def median_parameters(pair_intrinsics: np.ndarray) -> Dict[str, float]:
    """Per-parameter median over a sequence's pairs: ``pair_intrinsics`` (N, 3, 3), N >= 1."""
    stack = np.asarray(pair_intrinsics, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[1:] != (3, 3) or stack.shape[0] == 0:
        raise ValueError(f"expected (N >= 1, 3, 3) intrinsics, got {stack.shape}")
    return parameters(np.median(stack, axis=0))


def true_intrinsics_in_model_frame(
    intrinsics: np.ndarray, frame_size_hw: Sequence[int], model_size_hw: Sequence[int]
) -> np.ndarray:
    """The true K of frames of size (H0, W0) in the frame of the model's input (H, W): the frames are resized
    whole, so K is scaled by (W / W0, H / H0) with the pixel-centre rule."""
    (frame_h, frame_w), (model_h, model_w) = (tuple(int(v) for v in size) for size in (frame_size_hw, model_size_hw))
    if min(frame_h, frame_w, model_h, model_w) <= 0:
        raise ValueError(f"sizes must be positive, got frames {frame_size_hw} and model {model_size_hw}")
    return scale_intrinsics(validate_intrinsics(intrinsics), model_w / frame_w, model_h / frame_h)


def relative_errors(
    learned: Mapping[str, float], true: Mapping[str, float], size_hw: Sequence[int]
) -> Dict[str, float]:
    """Signed errors: fx, fy over the true focal length; cx over the width, cy over the height (model pixels)."""
    height, width = (float(v) for v in size_hw)
    if true["fx"] <= 0 or true["fy"] <= 0:
        raise ValueError(f"true focal lengths must be positive, got {true}")
    return {
        "fx_rel_error": (learned["fx"] - true["fx"]) / true["fx"],
        "fy_rel_error": (learned["fy"] - true["fy"]) / true["fy"],
        "cx_rel_error": (learned["cx"] - true["cx"]) / width,
        "cy_rel_error": (learned["cy"] - true["cy"]) / height,
    }


def rank_agreement(learned: Sequence[float], true: Sequence[float], tolerance: float = 1e-6) -> Optional[float]:
    """Fraction of pairs (i, j) with distinct truths whose learned values are ordered like the true ones."""
    if len(learned) != len(true):
        raise ValueError("learned and true values differ in number")
    agree = total = 0
    for i, j in combinations(range(len(true)), 2):
        difference = true[j] - true[i]
        if abs(difference) <= tolerance * max(abs(true[i]), abs(true[j])):
            continue
        total += 1
        agree += int(np.sign(learned[j] - learned[i]) == np.sign(difference))
    return agree / total if total else None


def sequence_record(
    pair_intrinsics: np.ndarray,
    source: str,
    model_size_hw: Sequence[int],
    true_intrinsics: Optional[np.ndarray] = None,
    calibration: Optional[str] = None,
) -> Dict:
    """The intrinsics part of trajectory inference's ``<sequence>_intrinsics.json`` (model-input pixels).

    ``source="learned"``: ``K`` is the per-parameter median of the head's K over the pairs, with ``K_mean``,
    ``K_std``, ``per_pair`` (fx, fy, cx, cy rows) and, when the true K is known, ``K_true`` and the signed
    ``errors``. ``source="given"`` (head untrained): ``"source": "records"``, ``K`` is the true K (the
    sequence's calibration, what its records would carry) or ``None``; nothing from the head.
    """
    check_source(source)
    height, width = (int(v) for v in model_size_hw)
    true_matrix = None if true_intrinsics is None else validate_intrinsics(true_intrinsics)
    record: Dict = {"image_size": [height, width], "calibration": calibration}
    if source == "given":
        record.update(
            {
                "source": "records",
                "note": "the checkpoint was trained with learn_intrinsics false: its intrinsics head is untrained and "
                "its output is not reported; K is the sequence's calibration (the K its records carry), "
                "or null when none was found",
                "K": None if true_matrix is None else true_matrix.tolist(),
            }
        )
        return record
    stack = np.asarray(pair_intrinsics, dtype=np.float64)
    learned = median_parameters(stack)
    median_k = np.median(stack, axis=0)
    record.update(
        {
            "source": "learned",
            "K": median_k.tolist(),
            "K_mean": stack.mean(axis=0).tolist(),
            "K_std": stack.std(axis=0).tolist(),
            "per_pair": [[parameters(k)[name] for name in PARAMETERS] for k in stack],
            "K_true": None if true_matrix is None else true_matrix.tolist(),
            "errors": (
                None if true_matrix is None else relative_errors(learned, parameters(true_matrix), (height, width))
            ),
        }
    )
    return record


def report(records: Mapping[str, Mapping], source: str) -> Dict:
    """``metrics/intrinsics.json`` from the per-sequence records of :func:`sequence_record` (name -> record).

    Learned: per sequence ``learned``, ``true`` (or ``None``) and the signed errors; ``summary``: median over
    the sequences with a true K of the absolute errors, ``fx_rank_agreement``, and the counts. Given: the true K
    only and ``"learned_intrinsics_available": false``.
    """
    check_source(source)
    if not records:
        raise ValueError("no sequences to report")
    sizes = {tuple(record["image_size"]) for record in records.values()}
    if len(sizes) != 1:
        raise ValueError(f"the sequences were inferred at different model sizes: {sorted(sizes)}")
    document: Dict = {
        "learned_intrinsics_available": source == "learned",
        "source": "learned" if source == "learned" else "records",
        "image_size": list(sizes.pop()),
        "sequences": {},
    }
    if source == "given":
        for name, record in records.items():
            document["sequences"][name] = {"true": None if record["K"] is None else parameters(np.array(record["K"]))}
        return document
    with_truth: List[Tuple[Dict[str, float], Dict[str, float], Dict[str, float]]] = []
    for name, record in records.items():
        learned = parameters(np.array(record["K"]))
        true = None if record["K_true"] is None else parameters(np.array(record["K_true"]))
        entry = {"learned": learned, "true": true}
        if true is not None:
            entry.update(record["errors"])
            with_truth.append((learned, true, record["errors"]))
        document["sequences"][name] = entry
    summary: Dict = {"num_sequences": len(with_truth), "num_sequences_without_truth": len(records) - len(with_truth)}
    if with_truth:
        for key in ("fx_rel_error", "fy_rel_error", "cx_rel_error", "cy_rel_error"):
            summary[f"{key}_abs_median"] = float(np.median([abs(errors[key]) for _, _, errors in with_truth]))
        summary["fx_rank_agreement"] = rank_agreement(
            [learned["fx"] for learned, _, _ in with_truth], [true["fx"] for _, true, _ in with_truth]
        )
    document["summary"] = summary
    return document
