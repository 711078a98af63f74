"""The assembled depth / motion / intrinsics model and its training loss (docs/release.md §1.8, 2.4, 2.5, 3).

Data flow of ``compute_loss`` for a triplet (t0, t1, t2):
- depth of each frame from the ImageNet-normalised image (three separate calls, so batch-norm statistics come
  from one time step, as released);
- for each adjacent pair (i, j) in {(0, 1), (1, 2)}: motion net (i, j) gives T_i_from_j, motion net (j, i)
  gives T_j_from_i; K = (K1 + K2) / 2 with learned intrinsics, else the given K;
- translation fields T = t + residual * dilate(mask_j) on j's grid (and the reverse on i's grid);
- frame j's depth is warped into camera i (and i's into j); the losses of docs/release.md §3.1-3.3 are summed over the
  four directions and weighted (docs/release.md §3.4).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict

import keras
import tensorflow as tf

from model import geometry, losses, masks
from model.networks import DepthNetwork, MotionNetwork

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOTION_FIELD_MODES = ("masked", "mask_free")
MOTION_PAIRINGS = ("independent", "antisymmetric", "inverse")
FRAME_PAIRS = ((0, 1), (1, 2))


@dataclasses.dataclass
class ModelConfig:
    """Model and loss settings; field names are the ``train:`` keys of params.yaml (docs/release.md §3.4, §3.7
    defaults)."""

    img_height: int = 128
    img_width: int = 416
    learn_intrinsics: bool = True
    boxify: bool = True
    foreground_dilation: int = 8
    depth_normalization: str = "release"  # or "randomized_layer_norm"
    motion_field_mode: str = "masked"  # or "mask_free" (docs/release.md §8)
    # Channel-width multipliers of the two networks. 1.0 = the release (and its TF1 checkpoints); the default
    # CPU run of params.yaml uses slimmer networks to fit its 2-core budget (docs/training.md).
    depth_network_width: float = 1.0
    motion_network_width: float = 1.0
    # Initial value of the motion net's learned rotation and translation scales (0.01 in the release). With
    # 0.01 the predicted translation stays ~20x too small for thousands of steps at CPU learning rates, and
    # depth gets almost no photometric signal; params.yaml's CPU run uses 0.1 (docs/training.md).
    motion_scale_initial_value: float = 0.01
    # How the background motion of the two orders of a frame pair relate (docs/training.md). "independent" (the
    # release): the motion net predicts (i, j) and (j, i) separately and the cycle-consistency losses tie them.
    # "antisymmetric": the odd part (m_ij - m_ji) / 2 of the rotation angles and translation for (i, j), its
    # negative for (j, i). "inverse": only the temporal order (earlier, later) is trusted, the reverse is its
    # exact inverse (monodepth2's pose convention). The residual object fields always come from both calls.
    motion_pairing: str = "independent"
    reconstr_weight: float = 0.85
    ssim_weight: float = 3.0
    smooth_weight: float = 1e-2
    depth_consistency_loss_weight: float = 0.01
    motion_smoothing_weight: float = 1e-3
    rotation_consistency_weight: float = 1e-3
    translation_consistency_weight: float = 1e-2
    # mask_free mode only: DML's motion_drift (0.2) on the sqrt sparsity, and DML's motion_smoothing (1.0)
    # on the residual field's total variation, both per direction (see docs/model.md).
    motion_sparsity_weight: float = 0.2
    residual_smoothing_weight: float = 1.0
    layer_norm_noise_rampup_steps: int = 10000

    def __post_init__(self):
        for field in dataclasses.fields(self):  # weights, widths, scales: finite and >= 0 (YAML strings coerced)
            value = getattr(self, field.name)
            if field.type == "float":
                try:
                    number = float(value) if not isinstance(value, bool) else math.nan
                except (TypeError, ValueError):
                    number = math.nan
                if not (math.isfinite(number) and number >= 0):
                    raise ValueError(f"{field.name} must be a finite number >= 0, got {value!r}")
                setattr(self, field.name, number)
        for name in ("depth_network_width", "motion_network_width", "motion_scale_initial_value"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.img_height % 32 or self.img_width % 32:
            raise ValueError(f"image size must be a multiple of 32, got {self.img_height}x{self.img_width}")
        if self.motion_field_mode not in MOTION_FIELD_MODES:
            raise ValueError(f"motion_field_mode must be one of {MOTION_FIELD_MODES}, got {self.motion_field_mode!r}")
        if self.motion_pairing not in MOTION_PAIRINGS:
            raise ValueError(f"motion_pairing must be one of {MOTION_PAIRINGS}, got {self.motion_pairing!r}")

    @classmethod
    def from_params(cls, params: dict) -> "ModelConfig":
        """Build from a dict such as params.yaml's ``train:`` section; unrelated keys are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in params.items() if key in names})


def imagenet_normalize(images: tf.Tensor) -> tf.Tensor:
    """(images - mean) / std with ImageNet statistics, per RGB channel, tiled over stacked frames."""
    frames = images.shape[-1] // 3
    mean = tf.constant(IMAGENET_MEAN * frames, tf.float32)
    std = tf.constant(IMAGENET_STD * frames, tf.float32)
    return (images - mean) / std


def antisymmetric_pair(forward: tf.Tensor, backward: tf.Tensor):
    """((forward - backward) / 2, (backward - forward) / 2): the odd part of a motion predicted for both input
    orders. Exact for translations without rotation and first-order exact for small rotation angles; anything
    the network predicts regardless of the order (an even part) cancels."""
    odd = 0.5 * (forward - backward)
    return odd, -odd


def inverse_motion(rotation: tf.Tensor, translation: tf.Tensor):
    """Inverse of the rigid motion (R [B, 3, 3], t [B, 1, 1, 3]) -> (R^T, -R^T t), same shapes."""
    inverse_rotation = tf.linalg.matrix_transpose(rotation)
    inverse_translation = -tf.einsum("bij,bhwj->bhwi", inverse_rotation, translation)
    return inverse_rotation, inverse_translation


def layer_norm_noise_stddev(step, rampup_steps: int) -> tf.Tensor:
    """docs/release.md §2.2 schedule: 0.5 * min(step / rampup_steps, 1)^2."""
    progress = tf.minimum(tf.cast(step, tf.float32) / float(max(rampup_steps, 1)), 1.0)
    return 0.5 * tf.square(progress)


class DepthMotionModel(keras.Model):
    """Depth network + motion/intrinsics network + the self-supervised loss. Variables are built in __init__."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.depth_net = DepthNetwork(normalization=config.depth_normalization, width=config.depth_network_width)
        self.motion_net = MotionNetwork(
            width=config.motion_network_width, scale_initial_value=config.motion_scale_initial_value
        )
        height, width = config.img_height, config.img_width
        self.depth_net(tf.zeros([1, height, width, 3]))
        self.motion_net(tf.zeros([1, height, width, 6]))

    def call(self, images, training=False):
        """Depth [B, H, W, 1] of [0, 1] images [B, H, W, 3] (no flip augmentation)."""
        return self.depth_net(imagenet_normalize(images), training=training)

    # --- training loss -------------------------------------------------------------------------------------

    def compute_loss(self, batch, step, training=True) -> Dict[str, tf.Tensor]:
        """Weighted loss terms of docs/release.md §3.4 for a batch of triplets (see the interface in docs/model.md).

        Returns {"total", "rgb", "ssim", "depth_consistency", "depth_smoothing", "motion_smoothing",
        "rotation_consistency", "translation_consistency" (+ "motion_sparsity" in mask_free mode)}, each
        already multiplied by its weight, plus diagnostics "intrinsics" [B, 3, 3] (K used, mean over the two
        pairs) and "depth" [B, H, W, 1] (frame t1).
        """
        config = self.config
        images = tf.convert_to_tensor(batch["images"], tf.float32)
        images_normalized = tf.convert_to_tensor(batch["images_normalized"], tf.float32)
        frames = [images[..., 3 * k : 3 * k + 3] for k in range(3)]
        noise_stddev = layer_norm_noise_stddev(step, config.layer_norm_noise_rampup_steps)
        depths = [
            self.depth_net(images_normalized[..., 3 * k : 3 * k + 3], training=training, noise_stddev=noise_stddev)
            for k in range(3)
        ]
        mask_free = config.motion_field_mode == "mask_free"
        if not mask_free:
            object_masks = masks.dilate(
                masks.mobile_mask(batch["segmentation"], boxify=config.boxify), config.foreground_dilation
            )

        totals = {
            name: tf.constant(0.0)
            for name in (
                "rgb",
                "ssim",
                "depth_consistency",
                "rotation_consistency",
                "translation_consistency",
                "motion_smoothing",
                "motion_sparsity",
            )
        }
        used_intrinsics = []
        for i, j in FRAME_PAIRS:
            # One motion-net call on the stacked batch for both orders: (i, j) -> T_i_from_j, (j, i) -> T_j_from_i.
            pair_input = tf.concat([tf.concat([frames[i], frames[j]], -1), tf.concat([frames[j], frames[i]], -1)], 0)
            rotation, background, residual, intrinsics = self.motion_net(pair_input, training=training)
            rotation_ij, rotation_ji = tf.split(rotation, 2)
            background_ij, background_ji = tf.split(background, 2)
            residual_ij, residual_ji = tf.split(residual, 2)
            if config.motion_pairing == "antisymmetric":
                rotation_ij, rotation_ji = antisymmetric_pair(rotation_ij, rotation_ji)
                background_ij, background_ji = antisymmetric_pair(background_ij, background_ji)
            elif config.motion_pairing == "inverse":  # FRAME_PAIRS are in temporal order: i < j
                rotation_ij = geometry.matrix_from_angles(rotation_ij)
                rotation_ji, background_ji = inverse_motion(rotation_ij, background_ij)
            if config.learn_intrinsics:
                intrinsics_ij, intrinsics_ji = tf.split(intrinsics, 2)
                pair_intrinsics = 0.5 * (intrinsics_ij + intrinsics_ji)
            else:
                pair_intrinsics = tf.convert_to_tensor(batch["intrinsics"], tf.float32)
            used_intrinsics.append(pair_intrinsics)

            if mask_free:
                field_ij, gated_ij = self._mask_free_field(background_ij, residual_ij)
                field_ji, gated_ji = self._mask_free_field(background_ji, residual_ji)
                for gated, field in ((gated_ij, field_ij), (gated_ji, field_ji)):
                    totals["motion_sparsity"] += losses.motion_sparsity(gated, field)
                    totals["motion_smoothing"] += losses.residual_field_smoothness(gated, field)
            else:
                # Released behaviour: the refined field (which starts from the background translation) is added
                # to the background translation on the dilated object mask of the frame it lives on.
                field_ij = background_ij + residual_ij * object_masks[..., j : j + 1]
                field_ji = background_ji + residual_ji * object_masks[..., i : i + 1]
                totals["motion_smoothing"] += losses.motion_field_smoothness(field_ij) + losses.motion_field_smoothness(
                    field_ji
                )

            # Direction 1: frame j (source) warped into camera i (target) with T_i_from_j; direction 2 reverse.
            directions = (
                (j, i, rotation_ij, field_ij, rotation_ji, field_ji),
                (i, j, rotation_ji, field_ji, rotation_ij, field_ij),
            )
            for source, target, rotation_1, field_1, rotation_2, field_2 in directions:
                warp = geometry.warp(depths[source], rotation_1, field_1, pair_intrinsics)
                terms = losses.rgbd_consistency_loss(warp, frames[source], frames[target], depths[target])
                rotation_error, translation_error = losses.motion_field_consistency_loss(
                    warp, terms["mask"], rotation_1, field_1, rotation_2, field_2
                )
                totals["rgb"] += terms["rgb_error"]
                totals["ssim"] += terms["ssim_error"]
                totals["depth_consistency"] += terms["depth_error"]
                totals["rotation_consistency"] += rotation_error
                totals["translation_consistency"] += translation_error

        depth_smoothing = tf.add_n([losses.depth_smoothness(depths[k], frames[k]) for k in range(3)])
        weighted = {
            "rgb": config.reconstr_weight * totals["rgb"],
            # The release multiplies each SSIM term by 0.5 before ssim_weight (effective weight 1.5).
            "ssim": config.ssim_weight * 0.5 * totals["ssim"],
            "depth_consistency": config.depth_consistency_loss_weight * totals["depth_consistency"],
            "depth_smoothing": config.smooth_weight * depth_smoothing,
            "rotation_consistency": config.rotation_consistency_weight * totals["rotation_consistency"],
            "translation_consistency": config.translation_consistency_weight * totals["translation_consistency"],
        }
        if mask_free:
            weighted["motion_smoothing"] = config.residual_smoothing_weight * totals["motion_smoothing"]
            weighted["motion_sparsity"] = config.motion_sparsity_weight * totals["motion_sparsity"]
        else:
            weighted["motion_smoothing"] = config.motion_smoothing_weight * totals["motion_smoothing"]
        result = dict(weighted)
        result["total"] = tf.add_n(list(weighted.values()))
        result["intrinsics"] = 0.5 * (used_intrinsics[0] + used_intrinsics[1])
        result["depth"] = depths[1]
        return result

    @staticmethod
    def _mask_free_field(background, refined_field):
        """docs/release.md §8 (DML) object motion without segmentation -> (full field, gated residual).

        The v1 network's refined field starts from the background translation, so the residual is taken as
        refined - background (deviation, see docs/model.md); DML's auto-mask keeps it only where its norm
        exceeds the mean norm over batch, height and width.
        """
        residual = refined_field - background
        norm = tf.norm(residual, axis=-1, keepdims=True)
        auto_mask = tf.cast(norm > tf.reduce_mean(norm), tf.float32)
        gated = residual * tf.stop_gradient(auto_mask)
        return background + gated, gated

    # --- inference -----------------------------------------------------------------------------------------

    def predict_depth(self, images, flip_augment=True) -> tf.Tensor:
        """Depth [B, H, W, 1] of [0, 1] RGB images [B, H, W, 3]; no noise, batch norm on moving statistics.

        ImageNet normalisation is applied here (the evident intent of the release; its inference graph skipped
        it by a feed quirk, docs/release.md §2.5). With ``flip_augment``: min(depth(x), flip(depth(flip(x)))), as
        released.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        depth = self.depth_net(imagenet_normalize(images), training=False)
        if flip_augment:
            flipped = self.depth_net(imagenet_normalize(tf.reverse(images, axis=[2])), training=False)
            depth = tf.minimum(depth, tf.reverse(flipped, axis=[2]))
        return depth

    def predict_egomotion(self, image_a, image_b, flip_augment: bool = False):
        """(R [B, 3, 3], t [B, 3], K [B, 3, 3]): the estimate of T_a_from_b and K = (K1 + K2) / 2 from the
        intrinsics head (meaningful only for a model trained with learned intrinsics).

        The motion is the average of the (a, b) and the inverted (b, a) predictions (docs/release.md §2.5), except with
        ``motion_pairing="inverse"``: training never used the background motion of the (later, earlier) order,
        so only the (a, b) prediction is returned, and image_a must be the earlier frame, as in training.
        ``flip_augment`` (not in the release) also predicts the mirrored pair and averages it, mirrored back
        (x -> -x: R -> S R S, t -> S t, cx -> W - 1 - cx with S = diag(-1, 1, 1)), with the unflipped
        estimate; this cancels a left/right bias of the network. R is then a mean of two rotations, as the
        docs/release.md §2.5 average already is (trajectory inference projects it back onto SO(3)).
        """
        image_a = tf.convert_to_tensor(image_a, tf.float32)
        image_b = tf.convert_to_tensor(image_b, tf.float32)
        if flip_augment:
            rotation, translation, intrinsics = self.predict_egomotion(image_a, image_b)
            mirrored = self.predict_egomotion(tf.reverse(image_a, [2]), tf.reverse(image_b, [2]))
            mirror = tf.constant([-1.0, 1.0, 1.0])
            rotation_mirrored = mirrored[0] * mirror[:, tf.newaxis] * mirror[tf.newaxis, :]
            translation_mirrored = mirrored[1] * mirror
            intrinsics_mirrored = geometry.flip_intrinsics(mirrored[2], tf.shape(image_a)[2])
            return (
                0.5 * (rotation + rotation_mirrored),
                0.5 * (translation + translation_mirrored),
                0.5 * (intrinsics + intrinsics_mirrored),
            )
        pair_input = tf.concat([tf.concat([image_a, image_b], -1), tf.concat([image_b, image_a], -1)], 0)
        rotation, background, _, intrinsics = self.motion_net(pair_input, training=False)
        rotation_ab, rotation_ba = tf.split(geometry.matrix_from_angles(rotation), 2)
        translation_ab, translation_ba = tf.split(background[:, 0, 0, :], 2)
        intrinsics_ab, intrinsics_ba = tf.split(intrinsics, 2)
        intrinsics = 0.5 * (intrinsics_ab + intrinsics_ba)
        if self.config.motion_pairing == "inverse":
            return rotation_ab, translation_ab, intrinsics
        rotation_matrix, translation = geometry.average_bidirectional_motion(
            rotation_ab, translation_ab, rotation_ba, translation_ba
        )
        return rotation_matrix, translation, intrinsics
