"""The assembled depth / motion / intrinsics model and its training loss (docs/release.md §1.8, 2.4, 2.5, 3).

Data flow of ``compute_loss`` for a triplet (t0, t1, t2), one method per step:
- ``_depths``: depth of each frame (three separate calls, so batch-norm statistics come from one time step, as
  released); ImageNet normalisation happens here, inside the model, and nowhere else;
- ``_pair_motion``: for each adjacent pair (i, j) in {(0, 1), (1, 2)}, one motion-net call on both orders gives
  T_i_from_j and T_j_from_i, related as ``motion_pairing`` says (``pair_motions``); the rotations become
  matrices there, once; K = (K1 + K2) / 2 with learned intrinsics (fy = fx * the given K's fy/fx with
  ``focal_aspect: records``), else the given K;
- ``_translation_fields``: T = t + residual * dilate(mask_j) on j's grid (and the reverse on i's grid), or the
  mask-free fields, with their regularisers;
- ``_direction_losses``: frame j's depth warped into camera i (and i's into j) and the losses of
  docs/release.md §3.1-3.2 of that direction;
- ``_weighted``: the sums over the four directions, weighted (docs/release.md §3.4).
"""

from __future__ import annotations

import collections
import functools
import operator
from typing import Dict, List, NamedTuple, Optional, Tuple

import keras
import tensorflow as tf

from model import geometry, losses, masks
from model.config import MOTION_PAIRINGS, ModelConfig
from model.networks import DepthNetwork, MotionNetwork

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_PAIRS = ((0, 1), (1, 2))  # adjacent frames, earlier first


def imagenet_normalize(images: tf.Tensor) -> tf.Tensor:
    """(images - mean) / std with ImageNet statistics, per RGB channel, tiled over stacked frames."""
    frames = images.shape[-1] // 3
    mean = tf.constant(IMAGENET_MEAN * frames, tf.float32)
    std = tf.constant(IMAGENET_STD * frames, tf.float32)
    return (images - mean) / std


def split_frames(images) -> List[tf.Tensor]:
    """The three RGB frames [B, H, W, 3] of a stacked triplet [B, H, W, 9] (t0, t1, t2)."""
    images = tf.convert_to_tensor(images, tf.float32)
    return [images[..., 3 * k : 3 * k + 3] for k in range(3)]


class Motion(NamedTuple):
    """A motion ``T_a_from_b``: rotation matrices [B, 3, 3] and a translation [B, 1, 1, 3] or a per-pixel
    field [B, H, W, 3] on b's grid."""

    rotation: tf.Tensor
    translation: tf.Tensor


class PairMotion(NamedTuple):
    """The motion of a frame pair (i, j) in both orders: ``ij`` = T_i_from_j (fields on j's grid), ``ji`` =
    T_j_from_i (fields on i's grid). Background motions after pairing, the refined translation fields
    [B, H, W, 3] of the network, and the pair's K [B, 3, 3]."""

    background_ij: Motion
    background_ji: Motion
    refined_ij: tf.Tensor
    refined_ji: tf.Tensor
    intrinsics: tf.Tensor


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


def pair_motions(angles_ij, angles_ji, translation_ij, translation_ji, pairing: str) -> Tuple[Motion, Motion]:
    """Background motions (T_i_from_j, T_j_from_i) of a pair whose frame i is the earlier one, from the motion
    net's angles [B, 3] (radians) and translations [B, 1, 1, 3] of both orders, with rotation matrices.

    ``pairing``: "independent" (the release) keeps both predictions, and the cycle-consistency losses tie them;
    "antisymmetric" keeps the odd part of the angles and translations (``antisymmetric_pair``); "inverse"
    trusts only the temporal order (i, j) and uses its exact inverse for (j, i) (monodepth2's convention).
    """
    if pairing not in MOTION_PAIRINGS:
        raise ValueError(f"motion_pairing must be one of {MOTION_PAIRINGS}, got {pairing!r}")
    if pairing == "antisymmetric":
        angles_ij, angles_ji = antisymmetric_pair(angles_ij, angles_ji)
        translation_ij, translation_ji = antisymmetric_pair(translation_ij, translation_ji)
    forward = Motion(geometry.matrix_from_angles(angles_ij), translation_ij)
    if pairing == "inverse":
        return forward, Motion(*inverse_motion(forward.rotation, forward.translation))
    return forward, Motion(geometry.matrix_from_angles(angles_ji), translation_ji)


def mask_free_field(background, refined_field):
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


def layer_norm_noise_stddev(step, rampup_steps: int) -> tf.Tensor:
    """docs/release.md §2.2 schedule: 0.5 * min(step / rampup_steps, 1)^2."""
    progress = tf.minimum(tf.cast(step, tf.float32) / float(max(rampup_steps, 1)), 1.0)
    return 0.5 * tf.square(progress)


def _sum(values: List[tf.Tensor]) -> tf.Tensor:
    """Left-to-right sum (the order the terms were produced in)."""
    return functools.reduce(operator.add, values)


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

    @property
    def intrinsics_variables(self) -> List[tf.Variable]:
        """The intrinsics head's trainable variables (foci kernel and bias, offsets kernel)."""
        return self.motion_net.foci.trainable_variables + self.motion_net.offsets.trainable_variables

    def call(self, images, training=False):
        """Depth [B, H, W, 1] of [0, 1] images [B, H, W, 3] (no flip augmentation)."""
        return self._depth(images, training=training)

    def _depth(self, images, training=False, noise_stddev=0.0) -> tf.Tensor:
        """Depth [B, H, W, 1] of [0, 1] RGB images [B, H, W, 3]; the one place where images are ImageNet-normalised."""
        return self.depth_net(imagenet_normalize(images), training=training, noise_stddev=noise_stddev)

    def _motion_both_orders(self, image_a, image_b, training=False) -> List[List[tf.Tensor]]:
        """One motion-net call on the stacked batch of (a, b) and (b, a): its four outputs (angles [B, 3],
        background translation [B, 1, 1, 3], refined field [B, H, W, 3], K [B, 3, 3]), each split into
        [output of (a, b), output of (b, a)]."""
        pair_input = tf.concat([tf.concat([image_a, image_b], -1), tf.concat([image_b, image_a], -1)], 0)
        return [tf.split(output, 2) for output in self.motion_net(pair_input, training=training)]

    # --- training loss -------------------------------------------------------------------------------------

    def compute_loss(self, batch, step, training=True) -> Dict[str, tf.Tensor]:
        """Weighted loss terms of docs/release.md §3.4 for a batch of triplets (see the interface in docs/model.md).

        ``batch``: ``images`` [B, H, W, 9] in [0, 1] (t0, t1, t2 RGB), ``segmentation`` [B, H, W, 3] ids (masked
        mode, or ``object_ground_weight`` > 0), ``intrinsics`` [B, 3, 3] in pixels (without learned intrinsics, or
        with ``focal_aspect: records``). Returns {"total", "rgb", "ssim", "depth_consistency", "depth_smoothing",
        "motion_smoothing", "rotation_consistency", "translation_consistency" (+ "motion_sparsity" in mask_free
        mode, "object_ground" with ``object_ground_weight`` > 0)}, each already multiplied by its weight, plus
        diagnostics "intrinsics" [B, 3, 3] (K used, mean over the two pairs) and "depth" [B, H, W, 1] (frame t1).
        """
        config = self.config
        frames = split_frames(batch["images"])
        noise_stddev = layer_norm_noise_stddev(step, config.layer_norm_noise_rampup_steps)
        depths = [self._depth(frame, training, noise_stddev) for frame in frames]
        object_masks = None
        if config.motion_field_mode == "masked":
            object_masks = masks.dilate(
                masks.mobile_mask(batch["segmentation"], boxify=config.boxify), config.foreground_dilation
            )
        needs_records_k = (
            not config.learn_intrinsics or config.focal_aspect == "records" or config.intrinsics_warmup_steps > 0
        )
        given_intrinsics = tf.convert_to_tensor(batch["intrinsics"], tf.float32) if needs_records_k else None

        terms = collections.defaultdict(list)  # unweighted term -> its values in the order they are computed
        used_intrinsics = []
        for i, j in FRAME_PAIRS:
            pair = self._pair_motion(frames[i], frames[j], given_intrinsics, training, step)
            used_intrinsics.append(pair.intrinsics)
            motion_ij, regularizers_ij = self._translation_field(pair.background_ij, pair.refined_ij, object_masks, j)
            motion_ji, regularizers_ji = self._translation_field(pair.background_ji, pair.refined_ji, object_masks, i)
            for step_terms in (
                regularizers_ij,
                regularizers_ji,
                self._direction_losses(depths, frames, j, i, motion_ij, motion_ji, pair.intrinsics),
                self._direction_losses(depths, frames, i, j, motion_ji, motion_ij, pair.intrinsics),
            ):
                for name, value in step_terms.items():
                    terms[name].append(value)
        totals = {name: _sum(values) for name, values in terms.items()}
        totals["depth_smoothing"] = tf.add_n([losses.depth_smoothness(depths[k], frames[k]) for k in range(3)])
        if config.object_ground_weight > 0:
            ids = tf.convert_to_tensor(batch["segmentation"])
            totals["object_ground"] = tf.add_n([losses.object_ground_contact(depths[k], ids[..., k]) for k in range(3)])
        result = self._weighted(totals)
        result["intrinsics"] = 0.5 * (used_intrinsics[0] + used_intrinsics[1])
        result["depth"] = depths[1]
        return result

    def _pair_motion(self, frame_i, frame_j, given_intrinsics, training, step=None) -> PairMotion:
        """Step 1, motion pairing: the motion net on (i, j) and (j, i), background motions related as
        ``motion_pairing`` says (rotations as matrices from here on), and the pair's K (the mean of both
        orders' with learned intrinsics, its fy tied to the given K's pixel aspect with ``focal_aspect: records``,
        from step ``intrinsics_warmup_steps`` on; else ``given_intrinsics``)."""
        angles, background, refined, intrinsics = self._motion_both_orders(frame_i, frame_j, training)
        motion_ij, motion_ji = pair_motions(*angles, *background, self.config.motion_pairing)
        if self.config.learn_intrinsics:
            learned = 0.5 * (intrinsics[0] + intrinsics[1])
            if self.config.focal_aspect == "records":
                learned = geometry.tie_focal_aspect(learned, given_intrinsics)
            if self.config.intrinsics_warmup_steps > 0 and step is not None:
                warm = tf.cast(step, tf.int64) >= self.config.intrinsics_warmup_steps
                learned = tf.where(warm, learned, tf.cast(given_intrinsics, learned.dtype))
            given_intrinsics = learned
        return PairMotion(motion_ij, motion_ji, refined[0], refined[1], given_intrinsics)

    def _translation_field(
        self, background: Motion, refined, object_masks: Optional[tf.Tensor], frame: int
    ) -> Tuple[Motion, Dict[str, tf.Tensor]]:
        """Step 2, translation field: the full motion (rotation, per-pixel field [B, H, W, 3]) of one order,
        whose field lives on ``frame``'s grid, and the unweighted regularisers of that field."""
        if self.config.motion_field_mode == "mask_free":
            field, gated = mask_free_field(background.translation, refined)
            regularizers = {
                "motion_sparsity": losses.motion_sparsity(gated, field),
                "motion_smoothing": losses.residual_field_smoothness(gated, field),
            }
        else:
            # Released behaviour: the refined field (which starts from the background translation) is added to the
            # background translation on the dilated object mask of the frame it lives on.
            field = background.translation + refined * object_masks[..., frame : frame + 1]
            regularizers = {"motion_smoothing": losses.motion_field_smoothness(field)}
        return Motion(background.rotation, field), regularizers

    @staticmethod
    def _direction_losses(depths, frames, source: int, target: int, forward: Motion, backward: Motion, intrinsics):
        """Step 3, one direction: frame ``source``'s depth warped into camera ``target`` with ``forward`` =
        T_target_from_source; photometric, depth and cycle-consistency terms (``backward`` = T_source_from_target,
        its partner in the cycle), unweighted."""
        warp = geometry.warp(depths[source], forward.rotation, forward.translation, intrinsics)
        rgbd = losses.rgbd_consistency_loss(warp, frames[source], frames[target], depths[target])
        rotation_error, translation_error = losses.motion_field_consistency_loss(
            warp, rgbd["mask"], forward.rotation, forward.translation, backward.rotation, backward.translation
        )
        return {
            "rgb": rgbd["rgb_error"],
            "ssim": rgbd["ssim_error"],
            "depth_consistency": rgbd["depth_error"],
            "rotation_consistency": rotation_error,
            "translation_consistency": translation_error,
        }

    def _weighted(self, totals: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Step 4, weighting: each summed term times its weight (docs/release.md §3.4), and their sum "total"."""
        config = self.config
        weighted = {
            "rgb": config.reconstr_weight * totals["rgb"],
            # The release multiplies each SSIM term by 0.5 before ssim_weight (effective weight 1.5).
            "ssim": config.ssim_weight * 0.5 * totals["ssim"],
            "depth_consistency": config.depth_consistency_loss_weight * totals["depth_consistency"],
            "depth_smoothing": config.smooth_weight * totals["depth_smoothing"],
            "rotation_consistency": config.rotation_consistency_weight * totals["rotation_consistency"],
            "translation_consistency": config.translation_consistency_weight * totals["translation_consistency"],
        }
        if config.motion_field_mode == "mask_free":
            weighted["motion_smoothing"] = config.residual_smoothing_weight * totals["motion_smoothing"]
            weighted["motion_sparsity"] = config.motion_sparsity_weight * totals["motion_sparsity"]
        else:
            weighted["motion_smoothing"] = config.motion_smoothing_weight * totals["motion_smoothing"]
        if "object_ground" in totals:
            weighted["object_ground"] = config.object_ground_weight * totals["object_ground"]
        weighted["total"] = tf.add_n(list(weighted.values()))
        return weighted

    # --- inference -----------------------------------------------------------------------------------------

    def predict_depth(self, images, flip_augment=True) -> tf.Tensor:
        """Depth [B, H, W, 1] of [0, 1] RGB images [B, H, W, 3]; no noise, batch norm on moving statistics.

        ImageNet normalisation is applied here (the evident intent of the release; its inference graph skipped
        it by a feed quirk, docs/release.md §2.5). With ``flip_augment``: min(depth(x), flip(depth(flip(x)))), as
        released.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        depth = self._depth(images)
        if flip_augment:
            flipped = self._depth(tf.reverse(images, axis=[2]))
            depth = tf.minimum(depth, tf.reverse(flipped, axis=[2]))
        return depth

    def predict_egomotion(self, image_a, image_b, flip_augment: bool = False):
        """(R [B, 3, 3], t [B, 3], K [B, 3, 3]): the estimate of T_a_from_b and K = (K1 + K2) / 2 from the
        intrinsics head (meaningful only for a model trained with learned intrinsics; with ``focal_aspect:
        records`` only fx, cx, cy are: callers tie fy with ``formats.camera.tie_focal_aspect``).

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
        angles, background, _, intrinsics = self._motion_both_orders(image_a, image_b)
        rotation_ab, rotation_ba = (geometry.matrix_from_angles(half) for half in angles)
        translation_ab, translation_ba = (half[:, 0, 0, :] for half in background)
        intrinsics = 0.5 * (intrinsics[0] + intrinsics[1])
        if self.config.motion_pairing == "inverse":
            return rotation_ab, translation_ab, intrinsics
        rotation_matrix, translation = geometry.average_bidirectional_motion(
            rotation_ab, translation_ab, rotation_ba, translation_ba
        )
        return rotation_matrix, translation, intrinsics
