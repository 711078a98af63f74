"""ImageNet initialisation of the depth encoder from a user-supplied ResNet-18 file (docs/release.md §3.5).

Like the release's ``--imagenet_ckpt``, this restores every *trainable* encoder variable of the depth network
(names ``depth_prediction/conv*``: conv kernels, normaliser gamma and beta) under its name with the
``depth_prediction/`` prefix removed. Decoder, motion network and batch-norm moving statistics are untouched
(the release does not restore moving statistics: they are not trainable).

Accepted files (nothing is ever downloaded):
1. A TF1/TF2 checkpoint prefix in dalgu90/resnet-18-tensorflow naming, the file the release used:
   ``conv1/conv/kernel`` [7,7,3,64], ``conv1/bn/{gamma,beta}``, ``conv2_1/conv_1/kernel``,
   ``conv2_1/bn_1/gamma``, ..., ``conv3_1/shortcut/kernel``; kernels HWIO. Other variables (``fc``,
   ``mu``/``sigma``, optimizer slots) are ignored and reported.
2. A ``.npz`` with the same dalgu90 names as keys.
3. A ``.npz`` of a torchvision ``resnet18`` state dict, e.g. written with
   ``np.savez(path, **{k: v.numpy() for k, v in torchvision.models.resnet18(weights=...).state_dict().items()})``.
   Names map as ``conv1.weight -> conv1/conv/kernel``, ``bn1.{weight,bias} -> conv1/bn/{gamma,beta}``,
   ``layerL.b.convC.weight -> conv{L+1}_{b+1}/conv_C/kernel``, ``layerL.b.bnC.{weight,bias} ->
   conv{L+1}_{b+1}/bn_C/{gamma,beta}``, ``layerL.0.downsample.0.weight -> conv{L+1}_1/shortcut/kernel``;
   conv weights are transposed from OIHW to HWIO. ``downsample.1`` (torchvision's shortcut batch norm, absent
   from the release's encoder), running statistics and ``fc`` are ignored and reported.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import tensorflow as tf

from model.tf1_checkpoint import DEPTH_PREFIX, tf1_variable_map

ENCODER_PREFIX = DEPTH_PREFIX + "conv"
_TORCH_BLOCK = re.compile(r"^layer(\d)\.(\d)\.(conv|bn)(\d)\.(weight|bias)$")
_TORCH_SHORTCUT = re.compile(r"^layer(\d)\.0\.downsample\.0\.weight$")
_TORCH_STEM = {"conv1.weight": "conv1/conv/kernel", "bn1.weight": "conv1/bn/gamma", "bn1.bias": "conv1/bn/beta"}


class ImagenetWeightsError(ValueError):
    """The ImageNet file is unreadable, or lacks (or mis-shapes) an encoder variable."""


@dataclasses.dataclass
class ImagenetInitReport:
    restored: List[str]  # dalgu90 names assigned
    unused: List[str]  # names in the file that were not used


def encoder_variables(model) -> Dict[str, tf.Variable]:
    """dalgu90 name (no ``depth_prediction/`` prefix) -> trainable encoder variable of ``model.depth_net``."""
    return {
        name[len(DEPTH_PREFIX) :]: variable
        for name, variable in tf1_variable_map(model).items()
        if name.startswith(ENCODER_PREFIX) and variable.trainable
    }


def torchvision_to_dalgu90(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Rename a torchvision resnet18 state dict to dalgu90 names (conv kernels OIHW -> HWIO).

    Keys that have no counterpart in the release's encoder (``fc``, running statistics, ``downsample.1``) are
    kept under their torchvision names, so a loader reports them as unused.
    """
    converted = {}
    for key, value in state.items():
        value = np.asarray(value)
        name = _TORCH_STEM.get(key)
        if name is None and (match := _TORCH_BLOCK.match(key)):
            layer, block, kind, index, field = match.groups()
            scope = f"conv{int(layer) + 1}_{int(block) + 1}"
            if kind == "conv":
                name = f"{scope}/conv_{index}/kernel" if field == "weight" else None
            else:
                name = f"{scope}/bn_{index}/{'gamma' if field == 'weight' else 'beta'}"
        elif name is None and (match := _TORCH_SHORTCUT.match(key)):
            name = f"conv{int(match.group(1)) + 1}_1/shortcut/kernel"
        if name is None:
            converted[key] = value
            continue
        converted[name] = np.transpose(value, (2, 3, 1, 0)) if name.endswith("/kernel") else value
    return converted


def read_imagenet_weights(path) -> Dict[str, np.ndarray]:
    """All arrays of the file at ``path`` (checkpoint prefix or ``.npz``), keyed by dalgu90-style names.

    torchvision files (recognised by a ``conv1.weight`` key) are converted with ``torchvision_to_dalgu90``.
    """
    path = str(path)
    if path.endswith(".npz"):
        if not Path(path).is_file():
            raise ImagenetWeightsError(f"{path}: file not found")
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        return torchvision_to_dalgu90(arrays) if "conv1.weight" in arrays else arrays
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise ImagenetWeightsError(f"{path}: not a readable checkpoint prefix or .npz file ({error})") from error
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def load_imagenet_encoder(model, path) -> ImagenetInitReport:
    """Assign the depth encoder's trainable variables from the ResNet-18 file at ``path``.

    Checks every name and shape first and raises ImagenetWeightsError listing all problems before assigning
    anything.
    """
    weights = read_imagenet_weights(path)
    targets = encoder_variables(model)
    problems = []
    for name, variable in targets.items():
        if name not in weights:
            problems.append(f"missing: {name} {tuple(variable.shape)}")
        elif tuple(weights[name].shape) != tuple(variable.shape):
            problems.append(f"shape: {name} file {tuple(weights[name].shape)} vs model {tuple(variable.shape)}")
    if problems:
        raise ImagenetWeightsError(
            f"{path}: {len(problems)} encoder variable(s) do not match:\n  " + "\n  ".join(problems)
        )
    for name, variable in targets.items():
        variable.assign(np.asarray(weights[name], dtype=np.float32))
    return ImagenetInitReport(restored=sorted(targets), unused=sorted(set(weights) - set(targets)))
