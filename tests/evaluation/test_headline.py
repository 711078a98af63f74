"""The headline figures of each metrics document (what `dvc metrics show` prints), hand cases."""

from evaluation import headline


def test_depth_headline_with_regions():
    document = {
        "model": {"abs_rel": 0.1, "a1": 0.9, "rmse": 3.0},
        "constant_baseline": {"abs_rel": 0.4, "a1": 0.5},
        "abs_rel_over_constant": 0.25,
        "num_images": 12,
        "regions": {
            "moving_objects": {"model": {"abs_rel": 0.3}, "constant_baseline": {"abs_rel": 0.5}},
            "static": {"model": {"abs_rel": 0.2}, "constant_baseline": {"abs_rel": 0.4}},
        },
        "moving_objects_over_static_abs_rel": 1.5,
        "protocol": {"crop": "garg"},
    }
    assert headline.depth(document) == {
        "abs_rel": 0.1,
        "a1": 0.9,
        "abs_rel_constant": 0.4,
        "abs_rel_over_constant": 0.25,
        "moving_objects_abs_rel": 0.3,
        "moving_objects_abs_rel_constant": 0.5,
        "static_abs_rel": 0.2,
        "static_abs_rel_constant": 0.4,
        "moving_objects_over_static_abs_rel": 1.5,
    }


def test_depth_headline_without_regions_and_empty_region():
    document = {
        "model": {"abs_rel": 0.1, "a1": 0.9},
        "constant_baseline": {"abs_rel": 0.4},
        "abs_rel_over_constant": 0.25,
        "regions": {"objects": {"model": None, "constant_baseline": None}},
    }
    result = headline.depth(document)
    assert result["objects_abs_rel"] is None and result["a1"] == 0.9
    assert "static_abs_rel" not in headline.depth({"model": {}, "constant_baseline": {}})


def test_odometry_headline():
    document = {
        "snippet_length": 5,
        "model": {"ate5_mean": 0.01, "ate5_std": 0.002, "ate_full_rmse": 2.0, "ate_sim3_rmse": 1.0},
        "constant_velocity": {"ate5_mean": 0.02, "ate_full_rmse": 3.0, "ate_sim3_rmse": 4.0},
        "ate5_mean_over_constant_velocity": 0.5,
        "sequences": {"a": {}},
    }
    assert headline.odometry(document) == {
        "ate5_mean": 0.01,
        "ate5_mean_constant_velocity": 0.02,
        "ate5_mean_over_constant_velocity": 0.5,
        "ate_sim3_rmse": 1.0,
        "ate_sim3_rmse_constant_velocity": 4.0,
        "ate_full_rmse": 2.0,
        "ate_full_rmse_constant_velocity": 3.0,
    }


def test_intrinsics_headline_learned_and_untrained():
    learned = {
        "learned_intrinsics_available": True,
        "summary": {
            "fx_rel_error_abs_median": 0.04,
            "fy_rel_error_abs_median": 0.05,
            "cx_rel_error_abs_median": 0.01,
            "cy_rel_error_abs_median": 0.02,
            "fx_rank_agreement": 1.0,
        },
    }
    assert headline.intrinsics(learned) == {
        "learned": True,
        "fx_rel_error": 0.04,
        "fy_rel_error": 0.05,
        "cx_rel_error": 0.01,
        "cy_rel_error": 0.02,
        "fx_rank_agreement": 1.0,
    }
    untrained = headline.intrinsics({"learned_intrinsics_available": False, "sequences": {}})
    assert untrained["learned"] is False and untrained["fx_rel_error"] is None
