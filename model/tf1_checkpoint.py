"""Restore the published TF1 checkpoints of the release into the Keras networks (docs/release.md §7).

The name map is a table built from each network's ``tf1_scopes()`` (TF1 scope -> Keras layer) plus the
per-variable suffix rules below. Layouts need no transposition: slim conv kernels are [kh, kw, in, out] and
slim transposed-conv kernels [kh, kw, out, in], exactly the Keras Conv2D / Conv2DTranspose layouts.

Motion ``MotionBottleneck`` 1x1 convs: the TF1 training graph created four unshared copies (one per motion-net
call, docs/release.md §7.2 / GR#230); the Keras network has one set. ``bottleneck_set`` picks which copy is loaded:
0 = the pair-(0,1) forward call, which the release's own inference graph uses for net(img1, img2).
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf

from model.layers import RandomizedLayerNormalization

DEPTH_PREFIX = "depth_prediction/"
MOTION_PREFIX = "MotionFieldNet/"
# TF1 name-scope suffixes of the four motion-net calls in the training graph, and of the image-level concat op.
BOTTLENECK_CALL_SCOPES = ("MotionFieldNet", "MotionFieldNet_1", "MotionFieldNet_2", "MotionFieldNet_3")
BOTTLENECK_CONCAT_SCOPES = ("concat", "concat_1", "concat_10", "concat_11")
SKIPPED_PATTERNS = (re.compile(r"/Adam(_\d+)?$"), re.compile(r"^global_step$"), re.compile(r"^beta[12]_power"))


class CheckpointMismatchError(ValueError):
    """A TF1 variable the Keras model needs is missing from the checkpoint or has another shape."""


def _layer_variables(scope: str, layer: keras.layers.Layer, kernel_name: str) -> Dict[str, keras.Variable]:
    """TF1 names of one layer's variables: conv kernel -> ``weights`` (slim) or ``kernel`` (dalgu90),
    bias -> ``biases``; normalizers keep gamma / beta / moving_mean / moving_variance."""
    if isinstance(layer, (keras.layers.BatchNormalization, RandomizedLayerNormalization)):
        names = {"gamma": layer.gamma, "beta": layer.beta}
        if isinstance(layer, keras.layers.BatchNormalization):
            names.update(moving_mean=layer.moving_mean, moving_variance=layer.moving_variance)
        return {f"{scope}/{name}": variable for name, variable in names.items()}
    result = {f"{scope}/{kernel_name}": layer.kernel}
    if layer.use_bias:
        result[f"{scope}/biases"] = layer.bias
    return result


def tf1_variable_map(model, bottleneck_set: int = 0) -> Dict[str, keras.Variable]:
    """Full TF1 variable name -> Keras variable for a ``DepthMotionModel`` (or anything with ``depth_net`` and
    ``motion_net``). Shapes of both sides are identical by construction (checked on load)."""
    if not 0 <= bottleneck_set < len(BOTTLENECK_CALL_SCOPES):
        raise ValueError(f"bottleneck_set must be 0..3, got {bottleneck_set}")
    mapping: Dict[str, keras.Variable] = {}
    for scope, layer in model.depth_net.tf1_scopes().items():
        encoder = scope.startswith("conv")
        mapping.update(_layer_variables(DEPTH_PREFIX + scope, layer, "kernel" if encoder else "weights"))
    for scope, layer in model.motion_net.tf1_scopes().items():
        mapping.update(_layer_variables(MOTION_PREFIX + scope, layer, "weights"))
    call_scope = BOTTLENECK_CALL_SCOPES[bottleneck_set]
    concat_scope = BOTTLENECK_CONCAT_SCOPES[bottleneck_set]
    for source, layer in model.motion_net.bottleneck_layers().items():
        if source == "images":
            scope = f"{MOTION_PREFIX}compute_loss/{concat_scope}/MotionBottleneck"
        else:
            scope = f"{MOTION_PREFIX}compute_loss/{call_scope}/{source}/Relu/MotionBottleneck"
        mapping.update(_layer_variables(scope, layer, "weights"))
    mapping[MOTION_PREFIX + "Scales/rotation"] = model.motion_net.rotation_scale
    mapping[MOTION_PREFIX + "Scales/translation"] = model.motion_net.translation_scale
    return mapping


def is_skipped(name: str) -> bool:
    """Optimizer state and counters that are never restored (Adam slots, global_step, beta powers)."""
    return any(pattern.search(name) for pattern in SKIPPED_PATTERNS)


def load_tf1_checkpoint(model, checkpoint_prefix: str, bottleneck_set: int = 0) -> List[str]:
    """Assign every mapped variable from the TF1 checkpoint at ``checkpoint_prefix`` (e.g. ``.../model-248900``).

    Raises ``CheckpointMismatchError`` listing all missing and mis-shaped variables before assigning anything.
    Returns the checkpoint's model variables that were not used (the other MotionBottleneck copies, or
    anything unexpected), so callers can log them.
    """
    reader = tf.train.load_checkpoint(str(checkpoint_prefix))
    checkpoint_shapes = reader.get_variable_to_shape_map()
    mapping = tf1_variable_map(model, bottleneck_set)
    problems: List[str] = []
    for name, variable in mapping.items():
        if name not in checkpoint_shapes:
            problems.append(f"missing: {name} (expected shape {tuple(variable.shape)})")
        elif tuple(checkpoint_shapes[name]) != tuple(variable.shape):
            problems.append(
                f"shape mismatch: {name} checkpoint {tuple(checkpoint_shapes[name])} vs model {tuple(variable.shape)}"
            )
    if problems:
        raise CheckpointMismatchError(
            f"{checkpoint_prefix}: {len(problems)} variable(s) do not match:\n  " + "\n  ".join(problems)
        )
    for name, variable in mapping.items():
        variable.assign(np.asarray(reader.get_tensor(name), dtype=variable.dtype))
    return sorted(name for name in checkpoint_shapes if name not in mapping and not is_skipped(name))


def tf1_variable_shapes(model, bottleneck_set: int = 0) -> Dict[str, Tuple[int, ...]]:
    """TF1 name -> shape, for documentation and tests."""
    return {name: tuple(variable.shape) for name, variable in tf1_variable_map(model, bottleneck_set).items()}
