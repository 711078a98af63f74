"""Pure sampling, triplet, split and geometry rules against hand-computed cases."""

import numpy as np
import pytest
from apache_beam import pvalue

from formats.camera import intrinsics_matrix
from formats.cityscapes import CROP_BOX
from pipelines.geometry import default_intrinsics, transform_image, transform_mask
from pipelines.records import DeadLetter, FrameRef
from pipelines.sampling import (
    BurstSampler,
    UniformSampler,
    assign_splits,
    make_sampler,
    nominal_period,
    triplet_windows,
)
from pipelines.sources import cityscapes_crop_box, eigen_test_scenes, natural_key, plan_frames


def sample(sampler, timestamps):
    return [(i, s) for i, t in enumerate(timestamps) if (s := sampler.offer(t)) is not None]


def test_uniform_two_fps_over_25fps_picks_first_frame_at_or_after_each_target():
    times = [k * 0.04 for k in range(221)]  # 8.8 s at 25 fps
    picked = [i for i, _ in sample(UniformSampler(2.0), times)]
    # targets 0, 0.5, ..., 8.5 -> frames 0, 13 (0.52 s), 25 (1.0 s), 38, 50, ...
    assert picked[:5] == [0, 13, 25, 38, 50]
    assert len(picked) == 18
    assert all(0 <= times[i] - 0.5 * k < 0.04 for k, i in enumerate(picked))


def test_uniform_sampler_skips_targets_inside_a_gap_and_keeps_the_grid():
    times = [0.0, 0.5, 1.0, 2.6, 3.0, 3.5]
    assert [i for i, _ in sample(UniformSampler(2.0), times)] == [0, 1, 2, 3, 4, 5]
    times = [0.0, 0.1, 0.2, 0.55, 0.6, 1.01]
    assert [i for i, _ in sample(UniformSampler(2.0), times)] == [0, 3, 5]


def test_burst_sampler_takes_consecutive_frames_each_interval_as_own_segment():
    times = [k * 0.1 for k in range(25)]  # 10 fps
    assert sample(BurstSampler(1.0, 3), times) == [
        (0, 0),
        (1, 0),
        (2, 0),
        (10, 1),
        (11, 1),
        (12, 1),
        (20, 2),
        (21, 2),
        (22, 2),
    ]
    with pytest.raises(ValueError, match="burst"):
        BurstSampler(1.0, 2)
    with pytest.raises(ValueError, match="unknown sampling"):
        make_sampler("random", 2.0, 1.0, 3)


def test_triplet_windows_respect_missing_samples_segments_gaps_and_cuts():
    t = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert triplet_windows([0, 1, 2, 3, 4, 5], t, [0] * 6, 1.5) == [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)]
    # sample 2 missing (unreadable): indices jump
    assert triplet_windows([0, 1, 3, 4, 5], [0.0, 0.1, 0.3, 0.4, 0.5], [0] * 5, 1.5) == [(2, 3, 4)]
    # segment change between positions 2 and 3
    assert triplet_windows([0, 1, 2, 3, 4, 5], t, [0, 0, 0, 1, 1, 1], 1.5) == [(0, 1, 2), (3, 4, 5)]
    # timestamp gap of 0.3 s > 1.5 x 0.1 s between positions 2 and 3
    t_gap = [0.0, 0.1, 0.2, 0.5, 0.6, 0.7]
    assert triplet_windows([0, 1, 2, 3, 4, 5], t_gap, [0] * 6, 1.5) == [(0, 1, 2), (3, 4, 5)]
    # a cut before position 4
    assert triplet_windows([0, 1, 2, 3, 4, 5], t, [0] * 6, 1.5, [False] * 4 + [True, False]) == [(0, 1, 2), (1, 2, 3)]
    assert nominal_period([0.0, 0.1, 0.2, 0.5], [0, 0, 0, 0]) == pytest.approx(0.1)


def test_splits_are_whole_sequences_deterministic_and_order_independent():
    names = [f"seq_{k:02d}" for k in range(20)]
    splits = assign_splits(names, 0.1)
    assert sum(value == "val" for value in splits.values()) == 2
    assert assign_splits(list(reversed(names)), 0.1) == splits
    assert set(assign_splits(["only"], 0.1).values()) == {"train"}
    assert set(assign_splits(names, 0.0).values()) == {"train"}


def test_resize_transforms_intrinsics_exactly_for_pixel_centres():
    image = np.zeros((50, 100, 3), np.uint8)
    small, k = transform_image(image, intrinsics_matrix(100.0, 80.0, 49.5, 24.5), (50, 25))
    assert small.shape == (25, 50, 3)
    # s = 0.5: fx' = 50, cx' = 0.5 * (49.5 + 0.5) - 0.5 = 24.5; fy' = 40, cy' = 0.5 * 25 - 0.5 = 12
    np.testing.assert_allclose(k, [[50.0, 0, 24.5], [0, 40.0, 12.0], [0, 0, 1]])


def test_cityscapes_crop_is_exact_and_differs_from_the_original_approximation():
    assert cityscapes_crop_box((2048, 1024)) == CROP_BOX
    assert cityscapes_crop_box((1024, 512)) == (128, 384, 96, 928)
    # the release's example camera: fx 2262.52, fy 2265.3017905988554, u0 1096.98, v0 513.137
    k = intrinsics_matrix(2262.52, 2265.3017905988554, 1096.98, 513.137)
    _, exact = transform_image(np.zeros((1024, 2048, 3), np.uint8), k, (416, 128), CROP_BOX)
    # crop: cx = 1096.98 - 192 = 904.98, cy = 513.137 - 256 = 257.137; scale 416/1664 = 128/512 = 0.25
    assert exact[0, 2] == pytest.approx(0.25 * (904.98 + 0.5) - 0.5)  # 225.87
    assert exact[1, 2] == pytest.approx(0.25 * (257.137 + 0.5) - 0.5)  # 63.909
    assert exact[0, 0] == pytest.approx(565.63)
    # gen_data_city.py's formula gives cx = 1096.98 * 0.25 * 416/512 = 222.824 (the shipped example)
    assert exact[0, 2] - 1096.98 * 0.25 * 416 / 512 == pytest.approx(3.046, abs=1e-3)


def test_mask_resize_is_nearest_and_uses_the_same_crop():
    mask = np.zeros((1024, 2048), np.uint8)
    mask[256:768, 192:1856] = 7
    mask[:256] = 3  # outside the crop
    small = transform_mask(mask, (416, 128), CROP_BOX)
    assert small.shape == (128, 416) and set(np.unique(small)) == {7}


def test_default_intrinsics_guess_is_documented_value():
    np.testing.assert_allclose(default_intrinsics((960, 540)), [[960, 0, 479.5], [0, 960, 269.5], [0, 0, 1]])


def test_eigen_scene_list_and_natural_order():
    scenes = eigen_test_scenes()
    assert len(scenes) == 28 and len(set(scenes)) == 28 and "2011_09_26_drive_0002" in scenes
    assert sorted(["f10.png", "f2.png", "f1.png"], key=natural_key) == ["f1.png", "f2.png", "f10.png"]


def test_plan_frames_breaks_segments_at_missing_frames_and_rejects_backward_timestamps():
    paths = [f"/d/{i:010d}.png" for i in (0, 1, 2, 4, 5, 6)]
    timestamps = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.35, 0.6])  # frame 5 goes backwards
    out = list(plan_frames("kitti_raw", "s", paths, np.eye(3), timestamps, 10.0, 1, None, None))
    refs = [o for o in out if isinstance(o, FrameRef)]
    letters = [o.value for o in out if isinstance(o, pvalue.TaggedOutput)]
    assert [(r.raw_index, r.index, r.segment) for r in refs] == [(0, 0, 0), (1, 1, 0), (2, 2, 0), (4, 4, 1), (6, 6, 2)]
    assert [(letter.frame, letter.code) for letter in letters] == [("/d/0000000005.png", "non_monotonic_timestamp")]
    assert isinstance(letters[0], DeadLetter)
