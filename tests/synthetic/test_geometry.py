"""Geometry gold tests: the rendered images, depth, poses and K agree (warping reproduces frames)."""

import numpy as np
import pytest

from formats.camera import intrinsics_matrix
from synthetic import layouts
from synthetic.render import KIND_GROUND, camera_rays, cast, render_frame
from synthetic.reprojection import T_source_from_target, warp_to_target
from synthetic.scene import build_scene, rotation_y

WIDTH, HEIGHT = 310, 94  # KITTI size / 4


def static_warp_errors(scene, frames, t, supersampling=2):
    """Mean |warp(frame t+1 -> t) - frame t| on static, non-occluded pixels, for the true and a wrong pose."""
    target, source = frames[t], frames[t + 1]
    T = T_source_from_target(scene.poses[t + 1], scene.poses[t])
    image_t = target.image / 255.0
    image_s = source.image / 255.0
    warped, valid = warp_to_target(image_s, target.depth, scene.intrinsics, T)
    # occlusion test: the warped point's depth must match the source's depth where it lands
    warped_depth, _ = warp_to_target(source.depth, target.depth, scene.intrinsics, T)
    x, y = np.meshgrid(np.arange(scene.width), np.arange(scene.height))
    rays = np.stack([x, y, np.ones_like(x)], -1) @ np.linalg.inv(scene.intrinsics).T
    z_in_source = (target.depth[..., None] * rays) @ T[2, :3] + T[2, 3]
    visible = np.abs(warped_depth - z_in_source) < 0.02 * z_in_source
    warped_mask, _ = warp_to_target((source.mask > 0).astype(float), target.depth, scene.intrinsics, T)
    static = valid & visible & (target.mask == 0) & (warped_mask == 0)
    # keep away from the image border (supersampled edge pixels) and depth edges
    static[:2] = static[-2:] = False
    static[:, :2] = static[:, -2:] = False
    error = np.abs(warped - image_t).mean(-1)
    wrong = T.copy()
    wrong[:3, 3] += (0.3, 0.1, 0.5)
    warped_wrong, valid_wrong = warp_to_target(image_s, target.depth, scene.intrinsics, wrong)
    wrong_error = np.abs(warped_wrong - image_t).mean(-1)
    return error, wrong_error, static, static & valid_wrong


@pytest.fixture(scope="module")
def kitti_scene():
    _, _, K = layouts.camera("kitti_raw", WIDTH, HEIGHT)
    scene = build_scene(7, 0, WIDTH, HEIGHT, K, 10.0, 12)
    frames = {t: render_frame(scene, t, 2) for t in (4, 5)}
    return scene, frames


def test_warp_with_ground_truth_reproduces_static_pixels(kitti_scene):
    scene, frames = kitti_scene
    error, wrong_error, static, static_wrong = static_warp_errors(scene, frames, 4)
    assert static.mean() > 0.5
    good = error[static].mean()
    bad = wrong_error[static_wrong].mean()
    assert good < 0.02, good
    assert good < 0.35 * bad, (good, bad)


def test_moving_objects_violate_the_static_warp_and_are_masked(kitti_scene):
    scene, frames = kitti_scene
    target = frames[4]
    assert np.any(target.mask > 0), "the test scene should show a moving object"
    # the mask is exactly where a mover is the nearest surface: remove the movers and compare
    static_only = render_frame(scene, 4, 1, include_movers=False)
    changed = np.abs(static_only.depth - target.depth) > 1e-6
    np.testing.assert_array_equal(changed, target.mask > 0)
    assert np.all(target.depth[changed] < static_only.depth[changed])
    # every visible mover really moves in the world between the two frames
    for instance in np.unique(target.mask[target.mask > 0]):
        assert _object_displacement(scene, 4, 5, instance) > 0.1, instance
    # and its pixels violate the static warp much more than static pixels do
    error, _, static, _ = static_warp_errors(scene, frames, 4)
    T = T_source_from_target(scene.poses[5], scene.poses[4])
    _, valid = warp_to_target(frames[5].depth, target.depth, scene.intrinsics, T)
    moving = (target.mask > 0) & valid
    assert moving.sum() > 20
    assert error[moving].mean() > 3 * error[static].mean(), (error[moving].mean(), error[static].mean())


def _object_displacement(scene, a, b, instance):
    """Metres the first box of mover ``instance`` travels in the world between frames a and b."""
    boxes_a, boxes_b = scene.mover_boxes(a), scene.mover_boxes(b)
    return float(
        np.linalg.norm(
            boxes_a.center[boxes_a.instance == instance][0] - boxes_b.center[boxes_b.instance == instance][0]
        )
    )


def test_level_camera_ground_depth_is_exact():
    """On a level camera 1.65 m above the road, the road's depth at row y is fy * h / (y - cy)."""
    K = intrinsics_matrix(200.0, 200.0, 99.5, 30.0)
    scene = build_scene(3, 0, 200, 60, K, 10.0, 1)
    yaw = np.arctan2(scene.poses[0][0, 2], scene.poses[0][2, 2])
    scene.poses[0][:3, :3] = rotation_y(yaw)  # no pitch, no roll
    scene.poses[0][1, 3] = -1.65
    frame = render_frame(scene, 0, 1, include_movers=False)
    hits = cast(scene, scene.poses[0], scene.static, camera_rays(K, 200, 60, 1), 1)
    rows, cols = np.nonzero(hits.kind == KIND_GROUND)
    assert rows.size > 100
    np.testing.assert_allclose(frame.depth[rows, cols], 200.0 * 1.65 / (rows - 30.0), rtol=1e-5)
    assert np.all(np.isfinite(frame.depth)) and frame.depth.max() < 1000.0
