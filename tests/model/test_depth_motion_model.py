"""The assembled model: config parsing, compute_loss on the real Struct2depth example, inference helpers."""

import argparse

import numpy as np
import pytest
import tensorflow as tf

from formats.params import ConfigError, add_flags
from formats.struct2depth import read_record
from model import geometry
from model.depth_motion_model import (
    MOTION_PAIRINGS,
    DepthMotionModel,
    ModelConfig,
    antisymmetric_pair,
    inverse_motion,
    layer_norm_noise_stddev,
    pair_motions,
)
from stages.common import load_params

HEIGHT, WIDTH = 64, 96


def _example_batch(real_data, height=HEIGHT, width=WIDTH):
    """The erfurt_93/0000000002 triplet, cropped to height x width around the image centre (K shifted)."""
    frames, seg_masks, intrinsics = read_record(real_data / "struct2depth_example", "erfurt_93", "0000000002")
    top = (frames[0].shape[0] - height) // 2
    left = (frames[0].shape[1] - width) // 2
    crop = (slice(top, top + height), slice(left, left + width))
    images = np.concatenate([frame[crop] for frame in frames], axis=-1).astype(np.float32) / 255.0
    segmentation = np.stack([mask[crop] for mask in seg_masks], axis=-1)
    intrinsics = intrinsics.astype(np.float32).copy()
    intrinsics[0, 2] -= left
    intrinsics[1, 2] -= top
    return {
        "images": images[None],
        "segmentation": segmentation[None],
        "intrinsics": intrinsics[None],
    }


@pytest.fixture(scope="module")
def model():
    return DepthMotionModel(ModelConfig(img_height=HEIGHT, img_width=WIDTH))


def test_config_from_the_train_section_of_params_yaml():
    """The training stage's call: the model keys of ``train:`` (other keys belong to other configs) plus the size."""
    params = load_params("train")
    config = ModelConfig.from_mapping(params, section="train", strict=False, img_height=64, img_width=224)
    assert (config.img_height, config.img_width) == (64, 224)
    for field in ("learn_intrinsics", "motion_pairing", "smooth_weight", "motion_scale_initial_value"):
        assert getattr(config, field) == params[field], field
    defaults = ModelConfig()
    assert (defaults.ssim_weight, defaults.motion_pairing, defaults.motion_scale_initial_value) == (
        3.0,
        "independent",
        0.01,
    )


def test_config_coerces_yaml_strings_and_names_bad_keys_and_values():
    config = ModelConfig.from_mapping({"smooth_weight": "1e-4", "foreground_dilation": "3", "boxify": "no"})
    assert config.smooth_weight == pytest.approx(1e-4) and config.foreground_dilation == 3 and config.boxify is False
    with pytest.raises(ConfigError, match="train: unknown key.*'smooth_wieght'"):
        ModelConfig.from_mapping({"smooth_wieght": 0.1}, section="train")
    with pytest.raises(ConfigError) as caught:
        ModelConfig.from_mapping(
            {"motion_pairing": "both", "ssim_weight": -1, "motion_network_width": 0, "depth_normalization": "bn"},
            section="train",
            img_height=100,
        )
    message = str(caught.value)
    for expected in (
        "train.motion_pairing: must be one of independent, antisymmetric, inverse",
        "train.ssim_weight: must be >= 0",
        "train.motion_network_width: must be > 0",
        "train.depth_normalization: must be one of release, randomized_layer_norm",
    ):
        assert expected in message
    with pytest.raises(ConfigError, match="img_height: must be a multiple of 32, got 100"):
        ModelConfig(img_height=100, img_width=96)
    with pytest.raises(ConfigError, match="reconstr_weight: expected a finite number"):
        ModelConfig(reconstr_weight="nan")
    with pytest.raises(ConfigError, match="img_width: a value is required"):  # params.yaml's null, size not given
        ModelConfig.from_mapping({"img_width": None}, section="train")


def test_config_flags_show_their_descriptions():
    parser = argparse.ArgumentParser()
    add_flags(parser, [ModelConfig], {"motion_pairing": "inverse"})
    text = " ".join(parser.format_help().split())
    assert (
        "--motion_pairing" in text
        and "how the background motions of a pair's two orders relate" in text
        and "(default: inverse)" in text
    )
    assert "--ssim_weight" in text and "weight of the SSIM term" in text
    assert parser.parse_args(["--smooth_weight=1e-4"]).smooth_weight == pytest.approx(1e-4)


def test_motion_scale_initial_value_reaches_the_motion_network():
    config = ModelConfig.from_mapping(
        {"motion_scale_initial_value": 0.1, "depth_network_width": 0.25, "motion_network_width": 0.25},
        img_width=96,
        img_height=64,
    )
    model = DepthMotionModel(config)
    assert float(model.motion_net.rotation_scale) == pytest.approx(0.1)
    assert float(model.motion_net.translation_scale) == pytest.approx(0.1)
    assert ModelConfig().motion_scale_initial_value == 0.01  # the release's value stays the library default


def test_noise_ramp():
    assert float(layer_norm_noise_stddev(0, 10000)) == 0.0
    assert float(layer_norm_noise_stddev(5000, 10000)) == pytest.approx(0.125)
    assert float(layer_norm_noise_stddev(10**6, 10000)) == pytest.approx(0.5)


def test_variables_built_in_init(model):
    assert len(model.depth_net.trainable_variables) > 50
    assert len(model.motion_net.trainable_variables) > 50


def test_compute_loss_on_real_example_has_finite_gradients(real_data, model):
    batch = _example_batch(real_data)
    assert batch["segmentation"].max() > 0, "the example crop should contain objects"
    with tf.GradientTape() as tape:
        result = model.compute_loss(batch, tf.constant(2000, tf.int64), training=True)
    names = [
        "rgb",
        "ssim",
        "depth_consistency",
        "depth_smoothing",
        "motion_smoothing",
        "rotation_consistency",
        "translation_consistency",
    ]
    for name in names + ["total"]:
        assert result[name].shape == () and np.isfinite(result[name].numpy()), name
    assert float(result["total"]) == pytest.approx(sum(float(result[name]) for name in names), rel=1e-5)
    assert float(result["rgb"]) > 0 and float(result["ssim"]) > 0
    assert result["intrinsics"].shape == (1, 3, 3) and result["depth"].shape == (1, HEIGHT, WIDTH, 1)
    variables = model.trainable_variables
    gradients = tape.gradient(result["total"], variables)
    missing = [v.path for v, g in zip(variables, gradients) if g is None]
    assert not missing, missing
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    # Depth and motion both receive signal.
    assert float(tf.linalg.global_norm([g for v, g in zip(variables, gradients) if "disp1" in v.path])) > 0


def test_given_intrinsics_are_used_without_learning(real_data):
    model = DepthMotionModel(
        ModelConfig(img_height=HEIGHT, img_width=WIDTH, learn_intrinsics=False, motion_field_mode="mask_free")
    )
    batch = _example_batch(real_data)
    result = model.compute_loss(batch, tf.constant(0, tf.int64))
    np.testing.assert_allclose(result["intrinsics"].numpy(), batch["intrinsics"], rtol=1e-6)
    assert np.isfinite(float(result["total"])) and float(result["motion_sparsity"]) > 0


def test_object_ground_term_is_added_only_with_its_weight(real_data):
    """object_ground_weight > 0 adds the objects' ground-contact term (in the total, gradient into depth only);
    0 (the release) computes nothing."""
    batch = _example_batch(real_data)
    sizes = {"img_height": HEIGHT, "img_width": WIDTH, "depth_network_width": 0.25, "motion_network_width": 0.25}
    assert "object_ground" not in DepthMotionModel(ModelConfig(**sizes)).compute_loss(batch, tf.constant(0, tf.int64))
    model = DepthMotionModel(ModelConfig(object_ground_weight=0.5, motion_field_mode="mask_free", **sizes))
    with tf.GradientTape() as tape:
        result = model.compute_loss(batch, tf.constant(0, tf.int64))
        term = result["object_ground"]
    assert float(term) > 0
    others = sum(float(value) for name, value in result.items() if name not in ("total", "intrinsics", "depth"))
    assert float(result["total"]) == pytest.approx(others, rel=1e-5)
    gradients = tape.gradient(term, model.depth_net.trainable_variables + model.motion_net.trainable_variables)
    depth_count = len(model.depth_net.trainable_variables)
    assert any(g is not None for g in gradients[:depth_count])
    assert all(g is None for g in gradients[depth_count:])


def test_learned_fy_is_tied_to_the_records_pixel_aspect(real_data):
    """focal_aspect records: the K used has fy = learned fx * the batch K's fy / fx; free: the head's own fy;
    records without a batch K is an error, not a silent free fy."""
    batch = _example_batch(real_data)
    batch["intrinsics"][0, 1, 1] *= 1.5  # records squashed vertically: fy / fx = 1.5 x the example's ~1.0
    aspect = batch["intrinsics"][0, 1, 1] / batch["intrinsics"][0, 0, 0]
    config = dict(img_height=HEIGHT, img_width=WIDTH, learn_intrinsics=True, depth_network_width=0.25)
    tied = DepthMotionModel(ModelConfig(focal_aspect="records", motion_network_width=0.25, **config))
    K = tied.compute_loss(batch, tf.constant(0, tf.int64))["intrinsics"].numpy()[0]
    assert K[1, 1] == pytest.approx(K[0, 0] * aspect, rel=1e-5)
    free = DepthMotionModel(ModelConfig(motion_network_width=0.25, **config))
    free.set_weights(tied.get_weights())
    K_free = free.compute_loss(batch, tf.constant(0, tf.int64))["intrinsics"].numpy()[0]
    assert K_free[0, 0] == pytest.approx(K[0, 0], rel=1e-5) and K_free[1, 1] != pytest.approx(K[1, 1], rel=1e-3)
    with pytest.raises(KeyError):
        tied.compute_loss({key: value for key, value in batch.items() if key != "intrinsics"}, tf.constant(0, tf.int64))


def test_intrinsics_warmup_uses_the_records_k_first_then_the_head(real_data):
    """intrinsics_warmup_steps N: before step N the warps use the batch K and the head gets no gradient; from
    step N on the head's K is used and trained."""
    batch = _example_batch(real_data)
    config = dict(img_height=HEIGHT, img_width=WIDTH, depth_network_width=0.25, motion_network_width=0.25)
    model = DepthMotionModel(ModelConfig(learn_intrinsics=True, intrinsics_warmup_steps=5, **config))
    head = model.intrinsics_variables
    for step, warm in ((0, False), (4, False), (5, True), (9, True)):
        with tf.GradientTape() as tape:
            result = model.compute_loss(batch, tf.constant(step, tf.int64))
        K = result["intrinsics"].numpy()[0]
        gradients = tape.gradient(result["total"], head)
        if warm:
            assert not np.allclose(K, batch["intrinsics"][0], rtol=1e-3)
            assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
        else:
            np.testing.assert_allclose(K, batch["intrinsics"][0], rtol=1e-6)
            assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0 for g in gradients)
    with pytest.raises(ConfigError, match="intrinsics_warmup_steps"):
        ModelConfig(intrinsics_warmup_steps=-1)


def test_antisymmetric_pair_keeps_the_odd_part():
    forward, backward = tf.constant([[0.3, -0.1, 1.0]]), tf.constant([[-0.1, -0.1, -0.6]])
    odd_forward, odd_backward = antisymmetric_pair(forward, backward)
    np.testing.assert_allclose(odd_forward.numpy(), [[0.2, 0.0, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(odd_backward.numpy(), [[-0.2, 0.0, -0.8]], rtol=1e-6)


@pytest.fixture(scope="module")
def loss_with_motion(real_data):
    """compute_loss of one slim model with its motion net replaced: ``motion_of_order(is_first_order)`` ->
    (angles [3], t [3]) for the (i, j) half and the (j, i) half of the stacked pair batch."""
    model = DepthMotionModel(
        ModelConfig(
            img_height=HEIGHT,
            img_width=WIDTH,
            learn_intrinsics=False,
            depth_network_width=0.25,
            motion_network_width=0.25,
        )
    )
    batch = _example_batch(real_data)
    batch["segmentation"] = np.zeros_like(batch["segmentation"])  # background motion only

    def compute(pairing, motion_of_order):
        def motion(images, training=False):
            count = images.shape[0]
            pairs = [motion_of_order(index < count // 2) for index in range(count)]
            angles = tf.constant([angles for angles, _ in pairs], tf.float32)
            translation = tf.constant([t for _, t in pairs], tf.float32)[:, None, None, :]
            field = tf.broadcast_to(translation, [count, HEIGHT, WIDTH, 3])
            return angles, translation, field, tf.zeros([count, 3, 3])

        model.config.motion_pairing = pairing
        model.motion_net.call = motion
        return {
            key: float(value)
            for key, value in model.compute_loss(batch, 0, training=False).items()
            if value.shape.rank == 0
        }

    return compute


def test_antisymmetric_pairing_cancels_a_motion_that_ignores_the_input_order(loss_with_motion):
    """The shortcut of a short run (one constant motion for both orders) becomes zero motion; an odd motion
    (t for (i, j), -t for (j, i)) is left as it is."""
    constant = lambda first: ([0.0, 0.01, 0.0], [0.0, 0.0, 0.3])
    still = lambda first: ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    odd = lambda first: ([0.0, 0.0, 0.0], [0.0, 0.0, 0.3]) if first else ([0.0, 0.0, 0.0], [0.0, 0.0, -0.3])
    cancelled = loss_with_motion("antisymmetric", constant)
    assert cancelled["rgb"] == pytest.approx(loss_with_motion("antisymmetric", still)["rgb"], rel=1e-6)
    assert cancelled["rgb"] != pytest.approx(loss_with_motion("independent", constant)["rgb"], rel=1e-3)
    assert loss_with_motion("antisymmetric", odd)["rgb"] == pytest.approx(
        loss_with_motion("independent", odd)["rgb"], rel=1e-6
    )


def _angles_of(rotation):
    """The angles (rx, ry, rz) of R = Rx Ry Rz (|ry| < 90 degrees)."""
    return [
        np.arctan2(-rotation[1, 2], rotation[2, 2]),
        np.arcsin(rotation[0, 2]),
        np.arctan2(-rotation[0, 1], rotation[0, 0]),
    ]


def test_inverse_pairing_uses_the_inverse_of_the_temporal_order(loss_with_motion):
    """Whatever the net predicts for (later, earlier), "inverse" uses the exact inverse of (earlier, later):
    the same loss as the independent pairing given the exact inverse for that order."""
    angles = np.array([0.02, -0.01, 0.005])
    translation = np.array([0.05, -0.02, 0.3])
    rotation = geometry.matrix_from_angles(tf.constant(angles, tf.float32)).numpy().astype(np.float64)
    inverse_angles = _angles_of(rotation.T)
    np.testing.assert_allclose(geometry.matrix_from_angles([inverse_angles])[0].numpy(), rotation.T, atol=1e-7)
    garbage = lambda first: (list(angles), list(translation)) if first else ([0.3, 0.0, 0.0], [1.0, 1.0, 1.0])
    inverse_translation = list(-rotation.T @ translation)
    exact = lambda first: (list(angles), list(translation)) if first else (inverse_angles, inverse_translation)
    inverse = loss_with_motion("inverse", garbage)
    reference = loss_with_motion("independent", exact)
    for name in ("rgb", "ssim", "depth_consistency"):
        assert inverse[name] == pytest.approx(reference[name], rel=1e-4), name
    assert inverse["rgb"] != pytest.approx(loss_with_motion("independent", garbage)["rgb"], rel=1e-2)
    assert inverse["rotation_consistency"] == pytest.approx(0.0, abs=1e-9)

    inverse_rotation, inverse_translation = inverse_motion(
        tf.constant(rotation[None], tf.float32), tf.constant(translation.reshape(1, 1, 1, 3), tf.float32)
    )
    np.testing.assert_allclose(inverse_rotation[0].numpy() @ rotation, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(
        inverse_rotation[0].numpy() @ translation + inverse_translation.numpy().reshape(3), np.zeros(3), atol=1e-6
    )


def test_pair_motions_hand_on_rotation_matrices_in_every_pairing():
    angles_ij, angles_ji = tf.constant([[0.02, -0.01, 0.005]]), tf.constant([[-0.01, 0.03, 0.0]])
    translation_ij, translation_ji = tf.constant([[[[0.1, 0.0, 0.5]]]]), tf.constant([[[[0.0, 0.2, -0.4]]]])
    for pairing in MOTION_PAIRINGS:
        forward, backward = pair_motions(angles_ij, angles_ji, translation_ij, translation_ji, pairing)
        assert forward.rotation.shape == backward.rotation.shape == (1, 3, 3), pairing
        assert forward.translation.shape == backward.translation.shape == (1, 1, 1, 3), pairing
    np.testing.assert_allclose(forward.rotation.numpy(), geometry.matrix_from_angles(angles_ij).numpy())
    np.testing.assert_allclose(backward.rotation.numpy()[0] @ forward.rotation.numpy()[0], np.eye(3), atol=1e-6)
    forward, backward = pair_motions(angles_ij, angles_ji, translation_ij, translation_ji, "antisymmetric")
    np.testing.assert_allclose(forward.rotation.numpy(), geometry.matrix_from_angles(0.5 * (angles_ij - angles_ji)))
    np.testing.assert_allclose(backward.translation.numpy(), -0.5 * (translation_ij - translation_ji).numpy())
    with pytest.raises(ValueError, match="motion_pairing"):
        pair_motions(angles_ij, angles_ji, translation_ij, translation_ji, "both")


def test_predict_depth_flip_is_min_of_both(model):
    images = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[1, 2])
    plain = model.predict_depth(images, flip_augment=False)
    flipped = tf.reverse(model.predict_depth(tf.reverse(images, [2]), flip_augment=False), [2])
    np.testing.assert_allclose(model.predict_depth(images).numpy(), np.minimum(plain, flipped), rtol=1e-5)
    assert np.all(plain.numpy() > 0)


def test_predict_egomotion_averages_both_directions(model):
    image_a = tf.random.stateless_uniform([1, HEIGHT, WIDTH, 3], seed=[3, 4])
    image_b = tf.random.stateless_uniform([1, HEIGHT, WIDTH, 3], seed=[5, 6])
    rotation, translation, intrinsics = model.predict_egomotion(image_a, image_b)
    angles_ab, t_ab, _, k_ab = model.motion_net(tf.concat([image_a, image_b], -1))
    angles_ba, t_ba, _, k_ba = model.motion_net(tf.concat([image_b, image_a], -1))
    r_ab, r_ba = geometry.matrix_from_angles(angles_ab)[0].numpy(), geometry.matrix_from_angles(angles_ba)[0].numpy()
    expected_rotation = 0.5 * (r_ab + np.linalg.inv(r_ba))
    np.testing.assert_allclose(rotation[0].numpy(), expected_rotation, atol=1e-6)
    expected_translation = 0.5 * (t_ab.numpy().reshape(3) - expected_rotation @ t_ba.numpy().reshape(3))
    np.testing.assert_allclose(translation[0].numpy(), expected_translation, atol=1e-6)
    np.testing.assert_allclose(intrinsics.numpy(), 0.5 * (k_ab + k_ba).numpy(), rtol=1e-6)


def test_predict_egomotion_with_inverse_pairing_uses_the_temporal_order_only(model):
    """The (later, earlier) background was never trained with "inverse": only net(a, b) is returned."""
    image_a = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[3, 4])
    image_b = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[5, 6])
    model.config.motion_pairing = "inverse"
    try:
        rotation, translation, intrinsics = model.predict_egomotion(image_a, image_b)
    finally:
        model.config.motion_pairing = "independent"
    angles_ab, t_ab, _, k_ab = model.motion_net(tf.concat([image_a, image_b], -1))
    _, _, _, k_ba = model.motion_net(tf.concat([image_b, image_a], -1))
    np.testing.assert_allclose(rotation.numpy(), geometry.matrix_from_angles(angles_ab).numpy(), atol=1e-7)
    np.testing.assert_allclose(translation.numpy(), t_ab.numpy()[:, 0, 0, :], atol=1e-7)
    np.testing.assert_allclose(intrinsics.numpy(), 0.5 * (k_ab + k_ba).numpy(), rtol=1e-6)


def test_predict_egomotion_flip_augment_is_mirror_symmetric_and_averages(model):
    """With flip_augment the estimate of a mirrored pair is the mirror of the estimate (for any network), and
    it is the mean of the plain estimate and the mirrored-back estimate of the mirrored pair."""
    image_a = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[7, 4])
    image_b = tf.random.stateless_uniform([2, HEIGHT, WIDTH, 3], seed=[8, 6])
    mirror = np.diag([-1.0, 1.0, 1.0])

    def flipped(image):
        return tf.reverse(image, [2])

    rotation, translation, intrinsics = (x.numpy() for x in model.predict_egomotion(image_a, image_b, True))
    rotation_m, translation_m, intrinsics_m = (
        x.numpy() for x in model.predict_egomotion(flipped(image_a), flipped(image_b), True)
    )
    np.testing.assert_allclose(rotation_m, mirror @ rotation @ mirror, atol=1e-6)
    np.testing.assert_allclose(translation_m, translation @ mirror, atol=1e-6)
    np.testing.assert_allclose(intrinsics_m[:, 0, 2], WIDTH - 1 - intrinsics[:, 0, 2], rtol=1e-5)
    np.testing.assert_allclose(intrinsics_m[:, 1], intrinsics[:, 1], rtol=1e-5)

    plain = [x.numpy() for x in model.predict_egomotion(image_a, image_b)]
    of_mirrored = [x.numpy() for x in model.predict_egomotion(flipped(image_a), flipped(image_b))]
    np.testing.assert_allclose(rotation, 0.5 * (plain[0] + mirror @ of_mirrored[0] @ mirror), atol=1e-6)
    np.testing.assert_allclose(translation, 0.5 * (plain[1] + of_mirrored[1] @ mirror), atol=1e-6)
    assert not np.allclose(plain[1], translation, atol=1e-6)  # a random net is not mirror-symmetric


def test_compute_loss_in_tf_function(model, real_data):
    batch = {k: tf.convert_to_tensor(v) for k, v in _example_batch(real_data).items()}
    compiled = tf.function(lambda b, s: model.compute_loss(b, s)["total"])
    assert np.isfinite(float(compiled(batch, tf.constant(10, tf.int64))))


def test_mixed_bfloat16_builds_trains_and_returns_float32():
    """mixed_precision: the networks compute in bfloat16 but hand float32 to the warp and the losses."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = DepthMotionModel(
            ModelConfig(
                img_height=64, img_width=96, depth_network_width=0.25, motion_network_width=0.25, learn_intrinsics=True
            )
        )
        images = np.random.default_rng(0).uniform(size=(2, 64, 96, 9)).astype(np.float32)
        batch = {
            "images": images,
            "segmentation": np.zeros((2, 64, 96, 9), np.uint8),
            "intrinsics": np.tile(np.array([[50, 0, 48], [0, 50, 32], [0, 0, 1]], np.float32), (2, 1, 1)),
        }
        with tf.GradientTape() as tape:
            outputs = model.compute_loss(batch, tf.constant(0, tf.int64))
        gradients = tape.gradient(outputs["total"], model.trainable_variables)
        assert outputs["total"].dtype == tf.float32 and np.isfinite(outputs["total"].numpy())
        assert all(gradient is not None for gradient in gradients)
        assert model.predict_depth(images[..., :3]).dtype == tf.float32
        assert all(x.dtype == tf.float32 for x in model.predict_egomotion(images[..., :3], images[..., 3:6]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
