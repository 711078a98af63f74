import math

import numpy as np
import pytest

from evaluation import depth_metrics as dm


def test_garg_crop_bounds_for_kitti_size():
    # floor(0.40810811*375)=153, floor(0.99189189*375)=371, floor(0.03594771*1242)=44, floor(0.96405229*1242)=1197
    assert dm.garg_crop_bounds(375, 1242) == (153, 371, 44, 1197)
    mask = dm.crop_mask(375, 1242, "garg")
    assert mask.sum() == (371 - 153) * (1197 - 44)
    assert mask[153, 44] and mask[370, 1196] and not mask[152, 44] and not mask[371, 44] and not mask[153, 1197]
    assert dm.crop_mask(4, 5, "none").all()
    with pytest.raises(ValueError):
        dm.crop_mask(4, 5, "eigen_typo")


def test_valid_mask_depth_caps_are_strict():
    gt = np.array([[0.0, 1e-3, 2e-3, 79.9, 80.0, np.nan]])
    assert dm.valid_mask(gt, crop="none").tolist() == [[False, False, True, True, False, False]]


def test_perfect_prediction_has_zero_error_and_full_accuracy():
    gt = np.random.default_rng(0).uniform(1.0, 70.0, size=(375, 1242))
    metrics = dm.evaluate_depth_map(gt, gt.copy(), scaling="none")
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log"):
        assert metrics[name] == pytest.approx(0.0, abs=1e-12)
    assert metrics["a1"] == metrics["a2"] == metrics["a3"] == 1.0
    assert metrics["valid_pixels"] == (371 - 153) * (1197 - 44)


def test_median_scaling_removes_a_constant_scale_error():
    gt = np.random.default_rng(1).uniform(2.0, 60.0, size=(40, 50))
    scaled = dm.evaluate_depth_map(gt, gt / 3.7, crop="none", scaling="median")
    assert scaled["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert scaled["scale_ratio"] == pytest.approx(3.7)
    unscaled = dm.evaluate_depth_map(gt, gt / 3.7, crop="none", scaling="none")
    assert unscaled["abs_rel"] == pytest.approx(1 - 1 / 3.7)
    assert unscaled["a1"] == 0.0


def test_known_values_on_a_tiny_array():
    gt = np.array([[1.0, 2.0, 4.0]])
    pred = np.array([[2.0, 2.0, 2.0]])
    expected = {
        "abs_rel": (1 / 1 + 0 + 2 / 4) / 3,
        "sq_rel": (1 / 1 + 0 + 4 / 4) / 3,
        "rmse": math.sqrt((1 + 0 + 4) / 3),
        "rmse_log": math.log(2) * math.sqrt(2 / 3),
        "a1": 1 / 3, "a2": 1 / 3, "a3": 1 / 3,  # ratios 2, 1, 2; 2 > 1.25**3 = 1.953125
    }
    got = dm.evaluate_depth_map(gt, pred, crop="none", scaling="none")
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    # median(gt)=2, median(pred)=1 -> ratio 2 gives the same numbers from a prediction of ones
    median_scaled = dm.evaluate_depth_map(gt, np.ones((1, 3)), crop="none", scaling="median")
    assert median_scaled["scale_ratio"] == 2.0
    for name, value in expected.items():
        assert median_scaled[name] == pytest.approx(value), name


def test_scaled_prediction_is_clamped_to_the_depth_caps():
    gt = np.array([[10.0, 10.0, 10.0]])
    pred = np.array([[1.0, 1.0, 100.0]])  # ratio 10 -> 10, 10, 1000 -> clamped to 80
    gt_valid, pred_valid, _, ratio = dm.align_prediction(gt, pred, crop="none")
    assert ratio == 10.0 and pred_valid.tolist() == [10.0, 10.0, 80.0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="resized"):
        dm.evaluate_depth_map(np.ones((4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no valid"):
        dm.evaluate_depth_map(np.zeros((4, 4)), np.ones((4, 4)), crop="none")
    with pytest.raises(ValueError, match="positive"):
        dm.evaluate_depth_map(np.ones((4, 4)), np.zeros((4, 4)), crop="none")
    with pytest.raises(ValueError, match="scaling"):
        dm.evaluate_depth_map(np.ones((4, 4)), np.ones((4, 4)), crop="none", scaling="mean")
    with pytest.raises(ValueError):
        dm.compute_depth_errors(np.array([1.0]), np.array([0.0]))


def test_mean_metrics_is_the_plain_average_over_images():
    rows = [dict.fromkeys(dm.METRIC_NAMES, 1.0), dict.fromkeys(dm.METRIC_NAMES, 3.0)]
    assert dm.mean_metrics(rows) == dict.fromkeys(dm.METRIC_NAMES, 2.0)
    with pytest.raises(ValueError):
        dm.mean_metrics([])


def test_distance_binned_errors():
    bins = dm.DistanceBinnedErrors([0.0, 10.0, 20.0, 30.0])
    bins.add(np.array([5.0, 5.0, 15.0, 35.0]), np.array([6.0, 4.0, 12.0, 1.0]))  # 35 m lies outside the bins
    table = bins.table()
    assert table["distance_m"].tolist() == [5.0, 15.0, 25.0]
    assert table["count"].tolist() == [2, 1, 0]
    assert table["abs_rel"][:2].tolist() == pytest.approx([0.2, 0.2])
    assert table["rmse"][:2].tolist() == pytest.approx([1.0, 3.0])
    assert np.isnan(table["abs_rel"][2])
