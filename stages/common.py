"""Shared plumbing of the stages: ``params.yaml`` is the one source of defaults, flags override it.

Every key of a stage's section becomes a flag of the same name. Flags accept the absl style the original
release used: ``--train_steps=1``, ``--batch_size 16``, ``--learn_intrinsics``/``--nolearn_intrinsics``
and ``--learn_intrinsics=false``. Nested sections become dotted flags (``--train.seed=3`` for
``synthesize: {train: {seed: 3}}``).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = REPO_ROOT / "params.yaml"
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


def load_params(section: str, path: os.PathLike | None = None) -> Dict[str, Any]:
    """The ``section`` mapping of ``params.yaml`` (``$WILDDEPTH_PARAMS`` or the repository's file)."""
    path = Path(path or os.environ.get("WILDDEPTH_PARAMS", DEFAULT_PARAMS))
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} not found")
    document = yaml.safe_load(path.read_text()) or {}
    if section not in document:
        raise KeyError(f"{path} has no section {section!r} (sections: {sorted(document)})")
    return dict(document[section] or {})


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterable[Tuple[str, Any]]:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def _unflatten(flat: Mapping[str, Any]) -> Dict[str, Any]:
    nested: Dict[str, Any] = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def _value_type(default: Any):
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, list):
        return lambda text: [item.strip() for item in text.split(",") if item.strip()]
    return str


def add_param_flags(parser: argparse.ArgumentParser, defaults: Mapping[str, Any]) -> None:
    """Add one flag per (flattened) key of ``defaults``; booleans also get ``--no<name>``.

    A default of ``null`` in params.yaml makes a string flag whose default is ``None``.
    """
    for name, default in _flatten(defaults):
        dest = name.replace(".", "__")
        if isinstance(default, bool):
            parser.add_argument(f"--{name}", dest=dest, nargs="?", const=True, default=default, type=parse_bool,
                                help=f"(default from params.yaml: {default})")
            parser.add_argument(f"--no{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{name}", dest=dest, default=default, type=_value_type(default),
                                help=f"(default from params.yaml: {default})")


def collect_params(namespace: argparse.Namespace, defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """The nested parameter dict after flags: same shape as ``defaults``."""
    flat = {name: getattr(namespace, name.replace(".", "__")) for name, _ in _flatten(defaults)}
    return _unflatten(flat)


def parse_stage_args(
    section: str,
    description: str,
    argv: Optional[Sequence[str]] = None,
    extra_arguments=None,
    allow_unknown: bool = False,
):
    """Parse ``argv`` for stage ``section``.

    Returns ``(params, args, unknown)``: ``params`` is the section of params.yaml with flags applied,
    ``args`` the full namespace (including ``extra_arguments`` added by the caller's function), and
    ``unknown`` the unparsed arguments when ``allow_unknown`` (e.g. Beam pipeline options).
    A ``--params`` flag selects another parameter file.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults = load_params(section, known.params)
    parser = argparse.ArgumentParser(prog=f"python -m stages.{section}", description=description)
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml of the repository)")
    add_param_flags(parser, defaults)
    if extra_arguments is not None:
        extra_arguments(parser)
    if allow_unknown:
        args, unknown = parser.parse_known_args(argv)
    else:
        args, unknown = parser.parse_args(argv), []
    return collect_params(args, defaults), args, unknown
