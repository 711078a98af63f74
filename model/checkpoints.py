"""Checkpoints of a wilddepth run: layout, finiteness, ``model_config.json``, initial weights.

A checkpoint ``<checkpoint_dir>/model-<step>`` is keyed by variable path (``model_variables/<path>``,
``optimizer_variables/<path>``, plus ``data_position``, the input stream's next position). Every checkpoint
the trainer writes holds finite values only (:func:`save_if_finite`). ``<checkpoint_dir>/model_config.json``
holds the ModelConfig fields that rebuild the network for any checkpoint of the directory
(:func:`write_model_config`, :func:`read_model_config`). Used by ``model/trainer.py`` (writing, resuming,
fine-tuning) and ``model/inference.py`` (loading).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import tensorflow as tf

from formats import atomic
from model.config import ModelConfig
from model.tf1_checkpoint import CheckpointMismatchError, load_tf1_checkpoint, tf1_variable_map

LOGGER = logging.getLogger(__name__)
MODEL_CONFIG_FILE = "model_config.json"
CHECKPOINT_NAME = "model"


class NonFiniteLossError(RuntimeError):
    """The loss, a gradient or the weights became NaN/Inf; nothing non-finite was saved (exit status 3)."""

    exit_code = 3


# --- layout -----------------------------------------------------------------------------------------------


def named_variables(variables, strip_root: bool = False) -> Dict[str, tf.Variable]:
    """Variable path -> variable, checking that paths are unique. ``strip_root`` drops the first path
    component (Keras numbers optimizer names per process: ``adam``, ``adam_1``, ...)."""
    named: Dict[str, tf.Variable] = {}
    for variable in variables:
        key = variable.path.split("/", 1)[-1] if strip_root else variable.path
        if key in named:
            raise ValueError(f"two variables share the path {key!r}; checkpoints need unique paths")
        named[key] = variable
    return named


def make_checkpoint(model, optimizer=None, data_position: Optional[tf.Variable] = None) -> tf.train.Checkpoint:
    """A checkpoint keyed by variable path (``model_variables/<path>``, ``optimizer_variables/<path>``), plus
    the input stream's next position (``data_position``) when given.

    Keyed by path rather than by ``tf.train.Checkpoint(model=model)``'s object graph: with Keras 3, layers kept
    in Python lists or dicts (the encoder blocks, the decoder levels) are not tracked by that graph, so most
    variables would silently be left out. The optimizer's learning rate is not saved: the flag of the current
    run decides it, also when resuming.
    """
    objects = {"model_variables": named_variables(model.variables)}
    if optimizer is not None:
        objects["optimizer_variables"] = {
            path: variable
            for path, variable in named_variables(optimizer.variables, strip_root=True).items()
            if path != "learning_rate"
        }
    if data_position is not None:
        objects["data_position"] = data_position
    return tf.train.Checkpoint(**objects)


def checkpoint_key(variable_path: str, root: str = "model_variables") -> str:
    """The key of a model variable in a checkpoint written by ``make_checkpoint`` (TF escapes '.' and '/')."""
    return f"{root}/{variable_path.replace('.', '..').replace('/', '.S')}/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_prefix(path) -> str:
    """A checkpoint prefix from ``path``: a prefix (``.../model-3000``) or a directory (its newest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            raise FileNotFoundError(f"no checkpoint in directory {path}")
        return prefix
    if not Path(str(path) + ".index").is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected {path}.index or a checkpoint directory)")
    return str(path)


# --- finiteness -------------------------------------------------------------------------------------------


def non_finite_tensors(prefix) -> List[str]:
    """Names of the floating-point tensors of checkpoint ``prefix`` that hold NaN or Inf."""
    reader = tf.train.load_checkpoint(str(prefix))
    bad = []
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
            bad.append(name)
    return sorted(bad)


def non_finite_variables(variables: Iterable[tf.Variable]) -> List[str]:
    """Paths of the floating-point variables of ``variables`` holding NaN or Inf."""
    return [
        variable.path
        for variable in variables
        if tf.as_dtype(variable.dtype).is_floating and not np.all(np.isfinite(variable.numpy()))
    ]


def last_finite_checkpoint(prefixes: Iterable[str], skip: Optional[str] = None) -> Optional[str]:
    """The last of ``prefixes`` (oldest first, e.g. ``CheckpointManager.checkpoints``) other than ``skip``
    whose tensors are all finite."""
    for prefix in reversed(list(prefixes)):
        if prefix != skip and not non_finite_tensors(prefix):
            return prefix
    return None


def last_finite_text(manager: tf.train.CheckpointManager, skip: Optional[str] = None) -> str:
    """One clause for error messages naming the newest finite checkpoint of ``manager`` and its step."""
    prefix = last_finite_checkpoint(manager.checkpoints, skip)
    if prefix is None:
        return "no finite checkpoint exists in " + str(manager.directory)
    step = prefix.rsplit("-", 1)[-1]
    return f"last good (finite) checkpoint: {prefix} (step {step})"


def save_if_finite(
    manager: tf.train.CheckpointManager, checkpoint: tf.train.Checkpoint, step: int, variables, write: bool = True
) -> str:
    """Save ``checkpoint`` as ``model-<step>`` through ``manager``, only if every variable of ``variables`` is
    finite (NonFiniteLossError naming the last finite checkpoint otherwise). ``write=False`` (a non-chief
    worker) takes part in the save, whose collectives every worker must run, in a scratch folder that is
    deleted at once. Returns the prefix written, or "" without ``write``."""
    bad = non_finite_variables(variables)
    if bad:
        raise NonFiniteLossError(
            f"not saving step {step}: {len(bad)} variables hold NaN or Inf (e.g. {bad[0]}); "
            f"{last_finite_text(manager)}. Lower --learning_rate or inspect the data, then rerun to resume."
        )
    if not write:
        scratch = tempfile.mkdtemp(prefix="wilddepth-worker-checkpoint-")
        try:
            checkpoint.write(os.path.join(scratch, CHECKPOINT_NAME))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return ""
    path = manager.save(checkpoint_number=step)
    LOGGER.info("saved %s", path)
    return path


# TF's sharded save writes <prefix>_temp/part-... (older versions <prefix>_temp_<uuid hex>/part-...) and moves
# the parts into place at the end; a kill in between leaves the folder.
_TEMP_FOLDER = re.compile(r"^" + CHECKPOINT_NAME + r"-\d+_temp(_[0-9a-f]{32})?$")
_TEMP_PART = re.compile(r"^part-\d{5}-of-\d{5}(\.index|\.data-\d{5}-of-\d{5})?(\.tempstate\d+)?$")


def remove_stale_checkpoint_temporaries(checkpoint_dir) -> list:
    """Remove ``model-<step>_temp[_<uuid>]/`` folders of TF's checkpoint writer left in ``checkpoint_dir`` by a
    kill during a save. Only folders with exactly that name holding only ``part-*`` files are removed; anything
    else is left alone with a warning. Returns the removed folders."""
    removed = []
    for folder in sorted(Path(checkpoint_dir).iterdir()):
        if not (folder.is_dir() and not folder.is_symlink() and _TEMP_FOLDER.match(folder.name)):
            continue
        children = list(folder.iterdir())
        if not all(child.is_file() and not child.is_symlink() and _TEMP_PART.match(child.name) for child in children):
            LOGGER.warning("not removing %s: it holds files other than checkpoint parts", folder)
            continue
        for child in children:
            child.unlink()
        folder.rmdir()
        LOGGER.warning("removed %s, a half-written checkpoint left by an interrupted save", folder)
        removed.append(folder)
    return removed


# --- model_config.json ------------------------------------------------------------------------------------


def write_model_config(checkpoint_dir, model_config: ModelConfig) -> Path:
    """Atomically write ``<checkpoint_dir>/model_config.json`` (the fields of ModelConfig)."""
    path = Path(checkpoint_dir) / MODEL_CONFIG_FILE
    atomic.write_text(path, json.dumps(dataclasses.asdict(model_config), indent=2, sort_keys=True) + "\n")
    return path


def read_model_config_mapping(checkpoint_path) -> Dict[str, Any]:
    """The JSON object of the ``model_config.json`` beside ``checkpoint_path`` (a checkpoint directory or a
    prefix ``.../model-3000``): FileNotFoundError if it is missing, ValueError if it is not a JSON object."""
    path = Path(checkpoint_path)
    config_path = (path if path.is_dir() else path.parent) / MODEL_CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: it is written by the trainer beside its checkpoints")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object of ModelConfig fields")
    return config


def read_model_config(checkpoint_path) -> ModelConfig:
    """The ModelConfig of the checkpoints at ``checkpoint_path`` (see :func:`read_model_config_mapping`)."""
    return ModelConfig(**read_model_config_mapping(checkpoint_path))


# --- initial weights (fine-tuning) ------------------------------------------------------------------------


@dataclasses.dataclass
class InitReport:
    """What ``load_initial_weights`` did: the checkpoint read, its kind, and variable paths or names."""

    prefix: str
    kind: str  # "wilddepth" or "tf1"
    restored: List[str]  # model variable paths set from the checkpoint
    not_restored: List[str]  # model variable paths left at their initial value
    unused: List[str]  # checkpoint variables no model variable took

    def summary(self) -> str:
        text = (
            f"initialised from {self.kind} checkpoint {self.prefix}: {len(self.restored)} of "
            f"{len(self.restored) + len(self.not_restored)} model variables restored"
        )
        if self.not_restored:
            text += "; not restored (initial values kept): " + ", ".join(self.not_restored)
        if self.unused:
            text += f"; {len(self.unused)} checkpoint variables unused: " + ", ".join(self.unused[:10])
            text += " ..." if len(self.unused) > 10 else ""
        return text + "; the optimizer starts fresh at step 0"


def load_initial_weights(model, path) -> InitReport:
    """Set the model's variables from a wilddepth checkpoint (keys ``model_variables/<path>``, optimizer state
    ignored) or a release TF1 checkpoint (``model/tf1_checkpoint.py`` name map). Shapes must match (same network
    widths): CheckpointMismatchError lists every mismatch before anything is assigned. Variables the checkpoint
    lacks keep their initial values and are reported."""
    prefix = checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    if any(name.startswith("model_variables/") for name in shapes):
        keys = {checkpoint_key(variable.path): variable for variable in model.variables}
        problems = [
            f"{variable.path}: checkpoint {tuple(shapes[key])} vs model {tuple(variable.shape)}"
            for key, variable in keys.items()
            if key in shapes and tuple(shapes[key]) != tuple(variable.shape)
        ]
        if problems:
            raise CheckpointMismatchError(
                f"{prefix}: {len(problems)} variable(s) have other shapes (other network widths?):\n  "
                + "\n  ".join(problems[:20])
            )
        restored, not_restored = [], []
        for key, variable in keys.items():
            if key in shapes:
                variable.assign(np.asarray(reader.get_tensor(key), dtype=variable.dtype))
                restored.append(variable.path)
            else:
                not_restored.append(variable.path)
        unused = sorted(name for name in shapes if name.startswith("model_variables/") and name not in keys)
        kind = "wilddepth"
    elif any(name.startswith(("depth_prediction/", "MotionFieldNet/")) for name in shapes):
        unused = load_tf1_checkpoint(model, prefix)
        mapped = {id(variable) for variable in tf1_variable_map(model).values()}
        restored = [variable.path for variable in model.variables if id(variable) in mapped]
        not_restored = [variable.path for variable in model.variables if id(variable) not in mapped]
        kind = "tf1"
    else:
        raise CheckpointMismatchError(
            f"{prefix}: neither a wilddepth checkpoint (model_variables/...) nor a "
            "release TF1 checkpoint (depth_prediction/..., MotionFieldNet/...)"
        )
    if not restored:
        raise CheckpointMismatchError(f"{prefix}: no model variable of this network is in the checkpoint")
    return InitReport(prefix, kind, restored, not_restored, unused)
