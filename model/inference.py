"""Load a trained checkpoint for inference: depth, ego-motion and learned intrinsics as numpy arrays.

    model = InferenceModel.from_checkpoint("checkpoints/train")        # directory -> newest checkpoint
    model = InferenceModel.from_checkpoint("checkpoints/train/model-3000")
    depth = model.predict_depth(images)          # images [B, H, W, 3] float32 in [0, 1], (H, W) = model.image_size
    R, t, K = model.predict_egomotion(image_a, image_b)   # T_a_from_b (docs/release.md §2.5), learned K

The network is rebuilt from ``model_config.json`` beside the checkpoint (written by the trainer through
``model/checkpoints.py``), and only the model's variables are restored (optimizer state is ignored).
Inference is deterministic: no layer-norm noise, batch norm on its moving statistics.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf

from model.checkpoints import (
    MODEL_CONFIG_FILE,
    checkpoint_prefix,
    make_checkpoint,
    read_model_config,
    read_model_config_mapping,
)
from model.config import ModelConfig
from model.depth_motion_model import DepthMotionModel

INTRINSICS_SOURCES = ("learned", "given")


def intrinsics_source(checkpoint_path) -> str:
    """Where a checkpoint's intrinsics come from: ``"learned"`` (its intrinsics head was trained) or ``"given"``.

    Read from ``model_config.json`` beside the checkpoint (``checkpoint_path``: a checkpoint directory or a
    prefix ``.../model-3000``), as written by ``model.checkpoints.write_model_config``. ``learn_intrinsics: false``
    means training warped with the records' K and never trained the head: its output is not a result and must not
    be reported as one. A config without the key gets ``ModelConfig``'s default, as the trainer would have.
    """
    config = read_model_config_mapping(checkpoint_path)
    learned = config.get("learn_intrinsics", ModelConfig.learn_intrinsics)
    if not isinstance(learned, bool):
        raise ValueError(
            f"{MODEL_CONFIG_FILE} of {checkpoint_path}: learn_intrinsics must be true or false, got {learned!r}"
        )
    return "learned" if learned else "given"


class InferenceModel:
    """A DepthMotionModel restored from a training checkpoint, with numpy in and out."""

    def __init__(self, model: DepthMotionModel, checkpoint_path: str):
        self.model = model
        self.checkpoint_path = checkpoint_path
        self._depth = {
            flip: tf.function(
                lambda images, flip=flip: model.predict_depth(images, flip_augment=flip), reduce_retracing=True
            )
            for flip in (False, True)
        }
        self._egomotion = {
            flip: tf.function(
                lambda a, b, flip=flip: model.predict_egomotion(a, b, flip_augment=flip), reduce_retracing=True
            )
            for flip in (False, True)
        }

    @classmethod
    def from_checkpoint(cls, path) -> "InferenceModel":
        """``path``: a checkpoint prefix (``.../model-3000``) or a checkpoint directory (its newest checkpoint)."""
        prefix = checkpoint_prefix(path)
        model = DepthMotionModel(read_model_config(prefix))
        make_checkpoint(model).restore(prefix).expect_partial().assert_existing_objects_matched()
        return cls(model, prefix)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def intrinsics_source(self) -> str:
        """``"learned"`` or ``"given"`` (head untrained: K of ``predict_egomotion`` is not a result), see
        :func:`intrinsics_source`."""
        return "learned" if self.config.learn_intrinsics else "given"

    @property
    def focal_aspect(self) -> str:
        """``"records"``: the head's fy is no result; fy = fx * the frames' pixel aspect (``formats.camera``
        ``tie_focal_aspect``), as in training. ``"free"``: the head's K as it is."""
        return self.config.focal_aspect

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) in pixels that the network was trained at and expects."""
        return self.config.img_height, self.config.img_width

    def _check_images(self, images, name: str) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (*self.image_size, 3):
            raise ValueError(
                f"{name} must be [B, {self.image_size[0]}, {self.image_size[1]}, 3], got {list(images.shape)}"
            )
        if not np.all(np.isfinite(images)):
            raise ValueError(f"{name} contains NaN or Inf")
        return images

    def predict_depth(self, images, flip_augment: bool = True) -> np.ndarray:
        """Depth [B, H, W] (up to scale) of RGB images [B, H, W, 3] float32 in [0, 1].

        ``flip_augment``: min(depth(x), flip(depth(flip(x)))), as the release's inference graph.
        """
        images = self._check_images(images, "images")
        return self._depth[bool(flip_augment)](tf.constant(images)).numpy()[..., 0]

    def predict_egomotion(self, image_a, image_b, flip_augment: bool = False):
        """(R [B, 3, 3], t [B, 3], K [B, 3, 3]) numpy: T_a_from_b maps points of camera b into camera a
        (image_a the earlier frame), as ``DepthMotionModel.predict_egomotion`` (both input orders averaged
        unless the model was trained with ``motion_pairing="inverse"``; ``flip_augment`` also averages the
        mirrored pair); K is the intrinsics head's estimate in pixels, a result only when
        ``intrinsics_source == "learned"``."""
        image_a = self._check_images(image_a, "image_a")
        image_b = self._check_images(image_b, "image_b")
        rotation, translation, intrinsics = self._egomotion[bool(flip_augment)](
            tf.constant(image_a), tf.constant(image_b)
        )
        return rotation.numpy(), translation.numpy(), intrinsics.numpy()
