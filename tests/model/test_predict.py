"""model/predict.py: pairs across batch boundaries, pose accumulation, head intrinsics, damaged outputs."""

import numpy as np
import pytest

from model.predict import SequencePredictor


class PairModel:
    """Each frame is a constant image of value k / 100; the 'motion' of a pair encodes (a, b)."""

    image_size = (4, 6)

    def __init__(self, bad_depth=False):
        self.bad_depth = bad_depth
        self.depth_calls = []

    def predict_depth(self, images, flip_augment=True):
        self.depth_calls.append((len(images), flip_augment))
        depth = 1.0 + images[..., 0]
        return depth * np.nan if self.bad_depth else depth

    def predict_egomotion(self, image_a, image_b, flip_augment=False):
        a = np.rint(image_a[:, 0, 0, 0] * 100)
        b = np.rint(image_b[:, 0, 0, 0] * 100)
        count = len(a)
        rotations = np.tile(np.eye(3), (count, 1, 1))
        translations = np.stack([a, b, np.ones(count)], axis=1)
        intrinsics = np.tile(np.diag([10.0, 20.0, 1.0]), (count, 1, 1))
        return rotations, translations, intrinsics


def frames(first, count):
    return np.stack([np.full((4, 6, 3), k / 100.0, np.float32) for k in range(first, first + count)])


def test_pairs_span_batch_boundaries_and_poses_accumulate():
    model = PairModel()
    predictor = SequencePredictor(model, trajectory_enabled=True, depth_flip_augment=False)
    pairs = []
    for first, count in ((0, 3), (3, 3), (6, 1)):
        result = predictor.predict(frames(first, count))
        assert result.depth.shape == (count, 4, 6)
        pairs += [tuple(pair) for pair in result.translations[:, :2].astype(int)]
    assert pairs == [(k, k + 1) for k in range(6)], "every consecutive pair exactly once, in order"
    assert model.depth_calls == [(3, False), (3, False), (1, False)]
    poses = predictor.poses()
    assert poses.shape == (7, 4, 4)
    np.testing.assert_allclose(poses[:, 2, 3], np.arange(7))  # z: one unit per pair
    np.testing.assert_allclose(poses[:, 0, 3], np.concatenate([[0], np.cumsum(np.arange(6))]))  # sum of a
    head = predictor.head_intrinsics()
    assert head["num_pairs"] == 6
    np.testing.assert_allclose(head["K"], np.diag([10.0, 20.0, 1.0]))


def test_without_trajectory_no_motion_and_single_frame_pose():
    predictor = SequencePredictor(PairModel(), trajectory_enabled=False)
    assert predictor.predict(frames(0, 2)).rotations.shape == (0, 3, 3)
    assert predictor.head_intrinsics() is None
    with pytest.raises(ValueError, match="not enabled"):
        predictor.poses()
    single = SequencePredictor(PairModel())
    single.predict(frames(0, 1))
    np.testing.assert_array_equal(single.poses(), np.eye(4)[np.newaxis])


def test_damaged_depth_is_an_error():
    with pytest.raises(ValueError, match="non-finite"):
        SequencePredictor(PairModel(bad_depth=True)).predict(frames(0, 2))
