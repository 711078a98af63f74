"""Learned vs true intrinsics: hand-computed errors, rank agreement, records and the report's provenance."""

import numpy as np
import pytest

from evaluation import intrinsics_evaluation as ie
from formats.camera import intrinsics_matrix


def test_true_k_in_the_model_frame_uses_the_pixel_centre_resize():
    k = intrinsics_matrix(700.0, 710.0, 479.5, 269.5)  # 960 x 540 frames
    scaled = ie.true_intrinsics_in_model_frame(k, (540, 960), (64, 224))
    sx, sy = 224 / 960, 64 / 540
    np.testing.assert_allclose(scaled, intrinsics_matrix(700 * sx, 710 * sy, sx * 480 - 0.5, sy * 270 - 0.5))
    # the centre of the frame stays the centre of the model's input
    assert scaled[0, 2] == pytest.approx((224 - 1) / 2) and scaled[1, 2] == pytest.approx((64 - 1) / 2)
    with pytest.raises(ValueError, match="positive"):
        ie.true_intrinsics_in_model_frame(k, (0, 960), (64, 224))


def test_relative_errors_by_hand():
    errors = ie.relative_errors(
        {"fx": 110, "fy": 90, "cx": 50, "cy": 30}, {"fx": 100, "fy": 100, "cx": 48, "cy": 32}, (64, 200)
    )
    assert errors == pytest.approx(
        {"fx_rel_error": 0.1, "fy_rel_error": -0.1, "cx_rel_error": 2 / 200, "cy_rel_error": -2 / 64}
    )


def test_median_over_pairs_is_per_parameter():
    stack = np.stack(
        [intrinsics_matrix(100, 50, 10, 5), intrinsics_matrix(300, 40, 12, 6), intrinsics_matrix(110, 45, 11, 100)]
    )
    assert ie.median_parameters(stack) == {"fx": 110, "fy": 45, "cx": 11, "cy": 6}  # robust to the one outlier
    with pytest.raises(ValueError):
        ie.median_parameters(np.zeros((0, 3, 3)))


def test_rank_agreement_counts_pairs_with_distinct_truths():
    assert ie.rank_agreement([1, 2, 3], [10, 20, 30]) == 1.0
    assert ie.rank_agreement([3, 2, 1], [10, 20, 30]) == 0.0
    assert ie.rank_agreement([1, 3, 2], [10, 20, 30]) == pytest.approx(2 / 3)  # (1,2) and (1,3) right, (2,3) wrong
    assert ie.rank_agreement([3, 1, 4], [10, 10, 30]) == 1.0  # the tied pair is left out
    assert ie.rank_agreement([5, 6], [10, 10]) is None  # one camera: nothing to rank
    assert ie.rank_agreement([5, 5], [10, 20]) == 0.0  # equal learned values do not agree
    with pytest.raises(ValueError):
        ie.rank_agreement([1], [1, 2])


def test_records_and_report_keep_an_untrained_head_out():
    head = np.repeat(intrinsics_matrix(50, 60, 20, 10)[None], 3, axis=0)
    true = intrinsics_matrix(100, 100, 48, 16)
    given = ie.sequence_record(head, "given", (32, 96), true, "calib.txt")
    assert given["source"] == "records" and given["K"] == true.tolist() and "errors" not in given
    assert ie.sequence_record(head, "given", (32, 96), None)["K"] is None
    report = ie.report({"a": given}, "given")
    assert report == {
        "learned_intrinsics_available": False,
        "source": "records",
        "image_size": [32, 96],
        "sequences": {"a": {"true": {"fx": 100, "fy": 100, "cx": 48, "cy": 16}}},
    }
    learned = ie.sequence_record(head, "learned", (32, 96), true)
    assert learned["errors"] == pytest.approx(
        {"fx_rel_error": -0.5, "fy_rel_error": -0.4, "cx_rel_error": -28 / 96, "cy_rel_error": -6 / 32}
    )
    other = ie.sequence_record(
        np.repeat(intrinsics_matrix(90, 100, 48, 16)[None], 2, axis=0),
        "learned",
        (32, 96),
        intrinsics_matrix(80, 100, 48, 16),
    )
    report = ie.report({"a": learned, "b": other}, "learned")
    assert report["learned_intrinsics_available"] is True
    assert report["summary"]["fx_rel_error_abs_median"] == pytest.approx((0.5 + 0.125) / 2)
    assert report["summary"]["fx_rank_agreement"] == 0.0  # truth a > b, learned a < b
    assert report["sequences"]["b"]["fx_rel_error"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="different model sizes"):
        ie.report({"a": learned, "b": ie.sequence_record(head, "learned", (64, 96))}, "learned")
    with pytest.raises(ValueError, match="intrinsics source"):
        ie.sequence_record(head, "records", (32, 96))
    with pytest.raises(ValueError, match="no sequences"):
        ie.report({}, "learned")
