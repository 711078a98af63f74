"""Gold tests of the warping geometry: conventions, hand-computed cases, invariants, synthetic scenes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model import geometry
from model.losses import rgbd_consistency_loss

HEIGHT, WIDTH = 24, 32
INTRINSICS = np.array([[30.0, 0.0, 15.5], [0.0, 28.0, 11.0], [0.0, 0.0, 1.0]], np.float32)


def _batch_k(batch=1):
    return tf.constant(np.tile(INTRINSICS, (batch, 1, 1)))


def _no_rotation(batch=1):
    return tf.eye(3, batch_shape=[batch])


def _random_depth(batch=2, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(1.0, 20.0, (batch, HEIGHT, WIDTH)).astype(np.float32))


def test_rotation_convention_is_rx_ry_rz():
    quarter = np.pi / 2
    rx = geometry.matrix_from_angles([[quarter, 0.0, 0.0]])[0].numpy()
    np.testing.assert_allclose(rx, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)
    rz = geometry.matrix_from_angles([[0.0, 0.0, quarter]])[0].numpy()
    np.testing.assert_allclose(rz, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    ry = geometry.matrix_from_angles([[0.0, quarter, 0.0]])[0].numpy()
    np.testing.assert_allclose(ry, [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-6)
    # Rx(90) Rz(90), computed by hand: first applies Rz, then Rx.
    both = geometry.matrix_from_angles([[quarter, 0.0, quarter]])[0].numpy()
    np.testing.assert_allclose(both, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-6)
    # General angles: a proper rotation equal to the product of the three elementary ones.
    angles = np.array([[0.3, -0.2, 0.7]], np.float32)
    elementary = [
        geometry.matrix_from_angles(np.eye(3, dtype=np.float32)[k : k + 1] * angles[0, k])[0].numpy() for k in range(3)
    ]
    full = geometry.matrix_from_angles(angles)[0].numpy()
    np.testing.assert_allclose(full, elementary[0] @ elementary[1] @ elementary[2], atol=1e-6)
    np.testing.assert_allclose(full @ full.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(full) == pytest.approx(1.0, abs=1e-5)


def test_identity_motion_gives_identity_warp():
    depth = _random_depth()
    result = geometry.warp(depth, _no_rotation(2), tf.zeros([2, 3]), _batch_k(2))
    x, y = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    np.testing.assert_allclose(result.x.numpy(), np.broadcast_to(x, (2, HEIGHT, WIDTH)), atol=1e-3)
    np.testing.assert_allclose(result.y.numpy(), np.broadcast_to(y, (2, HEIGHT, WIDTH)), atol=1e-3)
    np.testing.assert_allclose(result.depth.numpy(), depth.numpy(), rtol=1e-5)
    # The border rows/columns sit exactly on the validity bounds (0 and the strict W-1, H-1 of
    # docs/release.md §4.3), where float32 round-off of +-1e-7 decides; test_clamp_and_filter_rules checks the
    # bounds exactly.
    assert np.all(result.mask.numpy()[:, 1:-1, 1:-1] == 1)
    image = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[0, 1])
    np.testing.assert_allclose(geometry.resample_bilinear(image, result.pixel_xy).numpy(), image.numpy(), atol=1e-4)


def test_back_project_then_project_is_identity():
    depth = _random_depth(seed=3)
    points = geometry.back_project(depth, _batch_k(2))
    np.testing.assert_allclose(points[..., 2].numpy(), depth.numpy(), rtol=1e-6)
    x, y, z = geometry.project(points, _batch_k(2))
    grid = geometry.pixel_grid(HEIGHT, WIDTH).numpy()
    np.testing.assert_allclose(x.numpy()[0], grid[..., 0], atol=1e-4)
    np.testing.assert_allclose(y.numpy()[1], grid[..., 1], atol=1e-4)
    # Hand case: pixel (x=20, y=5) at depth 2 -> X = 2 (20 - 15.5) / 30, Y = 2 (5 - 11) / 28.
    np.testing.assert_allclose(
        points[0, 5, 20].numpy() / depth[0, 5, 20].numpy() * 2.0, [2 * 4.5 / 30, 2 * -6 / 28, 2.0], rtol=1e-5
    )


def test_sideways_translation_shifts_by_disparity():
    """Camera b is 0.5 to the right of a, i.e. P_a = P_b + (0.5, 0, 0): a point at depth 10 moves fx * 0.05 px."""
    depth = tf.fill([1, HEIGHT, WIDTH], 10.0)
    result = geometry.warp(depth, _no_rotation(), tf.constant([[0.5, 0.0, 0.0]]), _batch_k())
    expected = np.broadcast_to(np.arange(20) + 30.0 * 0.05, (HEIGHT, 20))
    np.testing.assert_allclose(result.x.numpy()[0, :, :20], expected, atol=1e-4)
    np.testing.assert_allclose(result.depth.numpy(), 10.0, rtol=1e-6)
    # Forward motion of b by +1 (P_a = P_b + (0, 0, 1)): depth grows by 1, pixels contract to the centre.
    result = geometry.warp(depth, _no_rotation(), tf.constant([[0.0, 0.0, 1.0]]), _batch_k())
    np.testing.assert_allclose(result.depth.numpy(), 11.0, rtol=1e-6)
    np.testing.assert_allclose(result.x.numpy()[0, 0, 0], 15.5 + (0 - 15.5) * 10 / 11, atol=1e-4)


def test_per_pixel_translation_field_moves_only_its_pixels():
    depth = tf.fill([1, HEIGHT, WIDTH], 5.0)
    field = np.zeros([1, HEIGHT, WIDTH, 3], np.float32)
    field[0, 4:8, 4:8, 1] = 0.5  # object region moves down by 0.5 m -> 28 * 0.1 = 2.8 px
    result = geometry.warp(depth, _no_rotation(), field, _batch_k())
    y = result.y.numpy()[0]
    np.testing.assert_allclose(y[4:8, 4:8], np.broadcast_to(np.arange(4, 8)[:, None] + 2.8, (4, 4)), atol=1e-4)
    np.testing.assert_allclose(
        y[10:, :], np.broadcast_to(np.arange(10, HEIGHT)[:, None], (HEIGHT - 10, WIDTH)), atol=1e-4
    )


def test_clamp_and_filter_rules():
    x = tf.constant([[[-0.1, 0.0, 30.99, 31.0, np.nan, 5.0]]])
    y = tf.constant([[[1.0, 1.0, 1.0, 1.0, 1.0, 23.0]]])
    z = tf.constant([[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]])
    result = geometry.clamp_and_filter(x, y, z, HEIGHT, WIDTH)
    np.testing.assert_array_equal(result.mask.numpy()[0, 0], [0, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(result.x.numpy()[0, 0], [0.0, 0.0, 30.99, 31.0, 0.0, 5.0], atol=1e-6)
    behind = geometry.clamp_and_filter(tf.ones([1, 1, 1]), tf.ones([1, 1, 1]), -tf.ones([1, 1, 1]), HEIGHT, WIDTH)
    assert float(behind.mask[0, 0, 0]) == 0.0
    far_out = geometry.clamp_and_filter(
        tf.fill([1, 1, 1], 100.0), tf.fill([1, 1, 1], -7.0), tf.ones([1, 1, 1]), HEIGHT, WIDTH
    )
    assert (float(far_out.x[0, 0, 0]), float(far_out.y[0, 0, 0])) == (WIDTH - 1.0, 0.0)


def test_resample_bilinear_hand_case_and_borders():
    data = tf.constant(np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1))  # value = 4 * row + column
    coordinates = tf.constant([[[[1.25, 0.5], [0.0, 0.0], [3.0, 2.0], [3.5, 1.0], [-0.5, 1.0]]]])
    values = geometry.resample_bilinear(data, coordinates).numpy().reshape(-1)
    # Inside: bilinear of a linear function is exact. At x = 3.5 the x+1 neighbour lies outside and counts 0.
    np.testing.assert_allclose(values, [4 * 0.5 + 1.25, 0.0, 11.0, 0.5 * 7.0, 0.5 * 4.0], atol=1e-6)


def test_resample_gradients_reach_data_and_coordinates():
    data = tf.random.stateless_uniform([1, 5, 6, 2], seed=[4, 2], dtype=tf.float64)
    coordinates = tf.constant([[[[1.3, 2.6], [3.7, 0.2]]]], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda d, c: geometry.resample_bilinear(d, c), [data, coordinates]
    )
    for analytic, finite_difference in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, finite_difference, atol=1e-5)
        assert np.abs(analytic).sum() > 0


def _render_textured_plane(intrinsics, rotation, translation, height, width):
    """Analytic scene: the plane z = 8 + 0.3 y (camera a frame), textured by smooth functions of (x, y) on it.

    Camera b is given by T_a_from_b = (rotation, translation). Returns (image_a, image_b, depth_b)."""
    normal, offset = np.array([0.0, -0.3, 1.0]), 8.0

    def render(origin, directions):
        distance = (offset - origin @ normal) / (directions @ normal)
        points = origin + distance[..., None] * directions
        texture = np.stack(
            [
                0.5 + 0.3 * np.sin(1.7 * points[..., 0]) * np.cos(2.3 * points[..., 1]),
                0.5 + 0.3 * np.cos(1.1 * points[..., 0] + 0.8 * points[..., 1]),
                0.5 + 0.2 * np.sin(2.9 * points[..., 1]),
            ],
            axis=-1,
        )
        return texture, distance

    x, y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([x, y, np.ones_like(x)], -1) @ np.linalg.inv(intrinsics).T  # z component 1
    image_a, _ = render(np.zeros(3), rays)
    image_b, depth_b = render(np.asarray(translation, np.float64), rays @ np.asarray(rotation, np.float64).T)
    return image_a.astype(np.float32), image_b.astype(np.float32), depth_b.astype(np.float32)


def _photometric_error(image_a, image_b, depth_b, intrinsics, angles, translation, valid=None):
    """Mean |image_a resampled at the warp of b's pixels - image_b| over the in-bounds pixels."""
    result = geometry.warp(
        depth_b[None],
        geometry.matrix_from_angles([angles]),
        tf.constant([translation], tf.float32),
        tf.constant(intrinsics[None], tf.float32),
    )
    warped = geometry.resample_bilinear(tf.constant(image_a[None]), result.pixel_xy)[0].numpy()
    mask = result.mask.numpy()[0] > 0
    if valid is not None:
        mask &= valid
    assert mask.mean() > 0.5
    return float(np.abs(warped - image_b)[mask].mean())


def test_true_pose_reconstructs_synthetic_plane():
    intrinsics = np.array([[60.0, 0.0, 47.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]], np.float32)
    angles = [0.01, -0.03, 0.02]
    translation = [0.2, -0.05, 0.6]
    rotation = geometry.matrix_from_angles([angles])[0].numpy()
    image_a, image_b, depth_b = _render_textured_plane(intrinsics, rotation, translation, 64, 96)
    true_error = _photometric_error(image_a, image_b, depth_b, intrinsics, angles, translation)
    wrong_translation = _photometric_error(image_a, image_b, depth_b, intrinsics, angles, [0.4, -0.05, 0.6])
    wrong_rotation = _photometric_error(image_a, image_b, depth_b, intrinsics, [0.01, -0.05, 0.02], translation)
    assert true_error < 2e-3
    assert wrong_translation > 5 * true_error and wrong_rotation > 5 * true_error
    # The model's loss term agrees: near zero with the true motion.
    result = geometry.warp(
        depth_b[None], geometry.matrix_from_angles([angles]), tf.constant([translation]), tf.constant(intrinsics[None])
    )
    terms = rgbd_consistency_loss(
        result, tf.constant(image_b[None]), tf.constant(image_a[None]), tf.fill([1, 64, 96, 1], 1e3)
    )
    assert float(terms["rgb_error"]) < 2e-3


@pytest.fixture(scope="module")
def synthetic_sequence(tmp_path_factory):
    """Three frames of the project's synthetic world at 96 x 64, with ground truth (stages.synthesize)."""
    output = tmp_path_factory.mktemp("synthetic")
    repo = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.synthesize",
            "--layout",
            "kitti_raw",
            "--world",
            "original",  # this test's expectations are the original world's (a moving camera at frame 0)
            "--output",
            str(output),
            "--num_sequences",
            "1",
            "--frames_per_sequence",
            "3",
            "--seed",
            "0",
            "--width",
            "96",
            "--height",
            "64",
        ],
        check=True,
        cwd=repo,
        capture_output=True,
    )
    drives = sorted(output.glob("*/*_drive_*_sync"))
    assert drives, f"no drive written under {output}"
    return drives[0]


def test_synthetic_world_true_pose_and_numpy_reference(synthetic_sequence):
    import cv2

    from formats import groundtruth
    from synthetic.reprojection import T_source_from_target, warp_to_target

    truth_folder = synthetic_sequence / "groundtruth"
    truth = groundtruth.read_sequence(truth_folder)
    intrinsics = truth.intrinsics.astype(np.float32)

    def image(index):
        path = synthetic_sequence / "image_02" / "data" / f"{groundtruth.frame_name(index)}.png"
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0

    image_a, image_b = image(0), image(1)
    depth_b = groundtruth.read_depth(truth_folder, 1).astype(np.float32)
    static_b = groundtruth.read_mask(truth_folder, 1) == 0
    transform = T_source_from_target(truth.poses[0], truth.poses[1])  # T_a_from_b: camera 1 into camera 0
    rotation, translation = transform[:3, :3], transform[:3, 3]

    result = geometry.warp(
        depth_b[None],
        tf.constant(rotation[None], tf.float32),
        tf.constant(translation[None], tf.float32),
        tf.constant(intrinsics[None]),
    )
    warped = geometry.resample_bilinear(tf.constant(image_a[None]), result.pixel_xy)[0].numpy()
    reference, reference_valid = warp_to_target(image_a, depth_b, intrinsics, transform)
    both_valid = reference_valid & (result.mask.numpy()[0] > 0)
    assert both_valid.mean() > 0.5
    np.testing.assert_allclose(warped[both_valid], reference[both_valid], atol=2e-3)

    # Static pixels reconstruct well with the true pose and clearly worse with a wrong one.
    valid = both_valid & static_b
    true_error = float(np.abs(warped - image_b)[valid].mean())
    wrong = geometry.warp(
        depth_b[None],
        tf.constant(rotation[None], tf.float32),
        tf.constant((translation + [0.0, 0.0, 1.0])[None], tf.float32),
        tf.constant(intrinsics[None]),
    )
    wrong_warped = geometry.resample_bilinear(tf.constant(image_a[None]), wrong.pixel_xy)[0].numpy()
    wrong_error = float(np.abs(wrong_warped - image_b)[valid & (wrong.mask.numpy()[0] > 0)].mean())
    assert wrong_error > 1.5 * true_error, (true_error, wrong_error)


def test_average_bidirectional_motion_of_consistent_pair_is_exact():
    rotation = geometry.matrix_from_angles([[0.1, -0.2, 0.05]])
    translation = tf.constant([[0.3, 0.1, -1.0]])
    inverse_rotation = tf.transpose(rotation, [0, 2, 1])
    inverse_translation = -tf.linalg.matvec(inverse_rotation, translation)
    averaged_rotation, averaged_translation = geometry.average_bidirectional_motion(
        rotation, translation, inverse_rotation, inverse_translation
    )
    np.testing.assert_allclose(averaged_rotation.numpy(), rotation.numpy(), atol=1e-6)
    np.testing.assert_allclose(averaged_translation.numpy(), translation.numpy(), atol=1e-6)


def test_tie_focal_aspect_is_the_tensor_form_of_the_numpy_one():
    from formats import camera

    head = np.array([[[100.0, 0, 50], [0, 7.0, 20], [0, 0, 1]], [[80.0, 0, 40], [0, 1.0, 30], [0, 0, 1]]])
    reference = np.array([[[10.0, 0, 5], [0, 5.0, 2], [0, 0, 1]], [[3.0, 0, 1], [0, 6.0, 1], [0, 0, 1]]])
    tied = geometry.tie_focal_aspect(head, reference).numpy()
    np.testing.assert_allclose(tied, camera.tie_focal_aspect(head, [0.5, 2.0]), rtol=1e-6)


def test_flip_intrinsics_per_example_and_batched():
    K = np.array([[100.0, 0.0, 40.0], [0.0, 90.0, 20.0], [0.0, 0.0, 1.0]], np.float32)
    flipped = geometry.flip_intrinsics(K, 96).numpy()
    np.testing.assert_allclose(flipped, [[100.0, 0.0, 55.0], [0.0, 90.0, 20.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(geometry.flip_intrinsics(K, 96, rule="release").numpy()[0, 2], 56.0)
    batch = np.stack([K, 2.0 * K])
    batch[1, 2, 2] = 1.0
    batched = geometry.flip_intrinsics(batch, 96).numpy()
    for k in range(2):
        np.testing.assert_allclose(batched[k], geometry.flip_intrinsics(batch[k], 96).numpy())
    np.testing.assert_allclose(geometry.flip_intrinsics(batched, 96).numpy(), batch, rtol=1e-6)


def test_intrinsics_matrix_is_the_tensor_form_of_the_numpy_builder():
    from formats.camera import intrinsics_matrix

    parameters = np.array([[100.0, 90.0, 40.0, 20.0], [50.0, 55.0, 31.5, 11.0]], np.float32)
    batched = geometry.intrinsics_matrix(*tf.unstack(tf.constant(parameters), axis=-1)).numpy()
    assert batched.shape == (2, 3, 3)
    for k in range(2):
        np.testing.assert_array_equal(batched[k], intrinsics_matrix(*parameters[k]).astype(np.float32))
