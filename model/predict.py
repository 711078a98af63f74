"""Batched, streaming inference over an ordered sequence of frames: depth per frame, ego-motion per pair.

    predictor = SequencePredictor(InferenceModel.from_checkpoint(ckpt), trajectory=True)
    for images in batches:                      # float32 [B, H, W, 3] in [0, 1], consecutive frames in order
        result = predictor.predict(images)      # depth [B, H, W]; motions of the pairs ending in this batch
    poses = predictor.poses()                   # (N, 4, 4) camera-to-first-frame, G_0 = I

The pair (frame k, frame k+1) gives T_k_from_k+1 (``predict_egomotion(a, b)``, a the earlier frame); the
last frame of a batch is kept to form the pair with the first frame of the next batch, so only one batch is
ever held. Poses are accumulated with ``evaluation.trajectory`` (exact composition by default). Translations
and depths share the model's arbitrary scale. No Beam here (``model/`` never imports it).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from evaluation import trajectory


@dataclasses.dataclass
class BatchResult:
    depth: np.ndarray  # [B, H, W] float32, > 0
    rotations: np.ndarray  # [P, 3, 3] T_k_from_k+1 of the P pairs that end in this batch
    translations: np.ndarray  # [P, 3]
    intrinsics: np.ndarray  # [P, 3, 3] the intrinsics head's K per pair, model-input pixels


class SequencePredictor:
    """Streams one sequence through an ``InferenceModel``-like object (``image_size``, ``predict_depth``,
    ``predict_egomotion``). Call :meth:`reset` (or make a new one) between sequences."""

    def __init__(
        self, model, trajectory_enabled: bool = True, depth_flip_augment: bool = True, motion_flip_augment: bool = False
    ):
        self.model = model
        self.trajectory_enabled = bool(trajectory_enabled)
        self.depth_flip_augment = bool(depth_flip_augment)
        self.motion_flip_augment = bool(motion_flip_augment)
        self.reset()

    def reset(self) -> None:
        self._previous: Optional[np.ndarray] = None
        self._rotations: List[np.ndarray] = []
        self._translations: List[np.ndarray] = []
        self._intrinsics: List[np.ndarray] = []
        self.num_frames = 0

    def predict(self, images: np.ndarray) -> BatchResult:
        """Depth of ``images`` [B, H, W, 3] (the next B frames of the sequence) and, when the trajectory is
        enabled, the motions of the pairs (previous frame, frame) that end in this batch."""
        images = np.asarray(images, dtype=np.float32)
        depth = np.asarray(self.model.predict_depth(images, flip_augment=self.depth_flip_augment), np.float32)
        if depth.shape != images.shape[:3]:
            raise ValueError(f"the model returned depth of shape {depth.shape} for images {images.shape}")
        if not np.all(np.isfinite(depth)) or np.any(depth <= 0):
            raise ValueError("the model predicted non-finite or non-positive depth (a damaged checkpoint?)")
        empty = BatchResult(depth, np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 3, 3)))
        if not self.trajectory_enabled:
            self.num_frames += images.shape[0]
            return empty
        if self._previous is not None:
            firsts = np.concatenate([self._previous[np.newaxis], images[:-1]])
            seconds = images
        else:
            firsts, seconds = images[:-1], images[1:]
        self._previous = images[-1].copy()
        self.num_frames += images.shape[0]
        if firsts.shape[0] == 0:
            return empty
        motion = (
            self.model.predict_egomotion(firsts, seconds, flip_augment=True)
            if self.motion_flip_augment
            else self.model.predict_egomotion(firsts, seconds)
        )
        rotations, translations, intrinsics = (np.asarray(array, dtype=np.float64) for array in motion)
        pairs = firsts.shape[0]
        if rotations.shape != (pairs, 3, 3) or translations.shape != (pairs, 3) or intrinsics.shape != (pairs, 3, 3):
            raise ValueError(
                f"the model returned motion shapes {rotations.shape}, {translations.shape}, "
                f"{intrinsics.shape} for {pairs} pairs"
            )
        if not (np.all(np.isfinite(rotations)) and np.all(np.isfinite(translations))):
            raise ValueError("the model predicted non-finite ego-motion (a damaged checkpoint?)")
        self._rotations.append(rotations)
        self._translations.append(translations)
        self._intrinsics.append(intrinsics)
        return BatchResult(depth, rotations, translations, intrinsics)

    def poses(self, accumulation: str = "compose", orthonormalize: bool = True) -> np.ndarray:
        """(N, 4, 4) camera-to-first-frame poses of the N frames seen so far (identity only if N <= 1)."""
        if not self.trajectory_enabled:
            raise ValueError("the trajectory was not enabled for this sequence")
        if not self._rotations:  # zero or one frame
            return np.tile(np.eye(4), (self.num_frames, 1, 1))
        rotations = np.concatenate(self._rotations)
        if orthonormalize:
            rotations = np.stack([trajectory.nearest_rotation(rotation) for rotation in rotations])
        return trajectory.accumulate(rotations, np.concatenate(self._translations), accumulation)

    def head_intrinsics(self) -> Optional[dict]:
        """Mean and standard deviation of the intrinsics head's K over the pairs (model-input pixels), or None
        when no pair was predicted. Whether it is *learned* is
        ``model.inference.intrinsics_source``'s decision (an untrained head's K is no result)."""
        if not self._intrinsics:
            return None
        stacked = np.concatenate(self._intrinsics)
        return {"K": stacked.mean(axis=0), "K_std": stacked.std(axis=0), "num_pairs": int(stacked.shape[0])}
