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
        "a1": 1 / 3,
        "a2": 1 / 3,
        "a3": 1 / 3,  # ratios 2, 1, 2; 2 > 1.25**3 = 1.953125
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


# --- regions: object pixels vs the rest, scored with the whole image's median scale ---------------------------


def test_regions_on_a_hand_computed_2x3_image():
    gt = np.array([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0]])
    pred = np.array([[2.0, 2.0, 2.0], [2.0, 4.0, 4.0]])
    mask = np.array([[0, 1, 0], [1, 1, 0]], np.uint8)
    # whole-image median scale: median(gt) = (2 + 4) / 2 = 3, median(pred) = 2 -> 1.5; scaled pred [[3,3,3],[3,6,6]]
    regions = dm.evaluate_depth_regions(gt, pred, mask, crop="none", scaling="median")
    objects, rest, whole = regions["objects"], regions["rest"], regions["all"]
    # objects: gt (2, 2, 4) vs (3, 3, 6): every ratio 1.5
    expected_objects = {
        "abs_rel": 0.5,
        "sq_rel": (0.5 + 0.5 + 1.0) / 3,
        "rmse": math.sqrt(2.0),
        "rmse_log": math.log(1.5),
        "a1": 0.0,
        "a2": 1.0,
        "a3": 1.0,
    }
    # rest: gt (1, 4, 8) vs (3, 3, 6): ratios 3, 4/3, 4/3
    expected_rest = {
        "abs_rel": (2.0 + 0.25 + 0.25) / 3,
        "sq_rel": (4.0 + 0.25 + 0.5) / 3,
        "rmse": math.sqrt(3.0),
        "rmse_log": math.sqrt((math.log(3) ** 2 + 2 * math.log(4 / 3) ** 2) / 3),
        "a1": 0.0,
        "a2": 2 / 3,
        "a3": 2 / 3,
    }
    for name in dm.METRIC_NAMES:
        assert objects[name] == pytest.approx(expected_objects[name]), name
        assert rest[name] == pytest.approx(expected_rest[name]), name
    assert (objects["valid_pixels"], rest["valid_pixels"], whole["valid_pixels"]) == (3, 3, 6)
    assert objects["scale_ratio"] == rest["scale_ratio"] == 1.5
    assert whole["abs_rel"] == pytest.approx((1.5 + 2.5) / 6)
    # "all" is exactly the whole-image protocol
    plain = dm.evaluate_depth_map(gt, pred, crop="none", scaling="median")
    for name in dm.METRIC_NAMES:
        assert whole[name] == pytest.approx(plain[name]), name
    # the constant baseline (ones, median-scaled by the whole image: 3 everywhere) on the same regions
    constant = dm.evaluate_depth_regions(gt, np.ones_like(gt), mask, crop="none")
    assert constant["objects"]["abs_rel"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    assert constant["rest"]["abs_rel"] == pytest.approx((2.0 + 0.25 + 0.625) / 3)


def test_region_masks_are_ids_and_invalid_pixels_stay_out():
    gt = np.array([[1.0, 2.0, 4.0], [2.0, 0.0, 8.0]])  # (1, 1) has no ground truth
    pred = gt.copy()
    pred[0, 0] = 2.0
    ids = np.array([[300, 0, 0], [0, 7, 0]], np.uint16)  # instance ids: any nonzero id is an object
    regions = dm.evaluate_depth_regions(gt, pred, ids, crop="none", scaling="none")
    assert regions["objects"]["valid_pixels"] == 1 and regions["objects"]["abs_rel"] == pytest.approx(1.0)
    assert regions["rest"]["valid_pixels"] == 4 and regions["rest"]["abs_rel"] == 0.0
    # a region without valid pixels is None, not a zero error
    regions = dm.evaluate_depth_regions(gt, pred, np.zeros((2, 3)), crop="none", scaling="none")
    assert regions["objects"] is None and regions["rest"]["valid_pixels"] == 5
    only_hole = np.zeros((2, 3))
    only_hole[1, 1] = 1
    assert dm.evaluate_depth_regions(gt, pred, only_hole, crop="none")["objects"] is None
    with pytest.raises(ValueError, match="object mask"):
        dm.evaluate_depth_regions(gt, pred, np.zeros((3, 2)), crop="none")
    with pytest.raises(ValueError, match="region selector"):
        dm.region_errors(np.ones(3), np.ones(3), np.ones(2, bool))


def test_region_means_skip_and_count_images_without_pixels():
    rows = [{name: 1.0 for name in dm.METRIC_NAMES}, None, {name: 3.0 for name in dm.METRIC_NAMES}, None]
    means, count, skipped = dm.mean_region_metrics(rows)
    assert means == {name: 2.0 for name in dm.METRIC_NAMES} and (count, skipped) == (2, 2)
    assert dm.mean_region_metrics([None, None]) == (None, 0, 2)
