"""Shared plumbing of the stages: ``params.yaml`` is the one source of defaults, flags override it.

Each stage owns one section of params.yaml, read through its typed config classes (``formats/params.py``):
every key becomes a typed flag of the same name whose help, choices and bounds come from the config field,
and a key that no config declares is refused by name. Flags accept the absl style the original release
used: ``--train_steps=1``, ``--batch_size 16``, ``--learn_intrinsics``/``--nolearn_intrinsics`` and
``--learn_intrinsics=false``. Nested sections become dotted flags (``--train.seed=3`` for
``synthesize: {train: {seed: 3}}``).

Every stage's ``__main__`` is ``sys.exit(run_stage(main))``, which gives all stages the same exit codes:

====  ==========================================================================================
0     done
1     unexpected error (a bug): the traceback is printed
2     bad input or parameters: one line on stderr, no traceback (``WILDDEPTH_DEBUG=1`` adds it)
3     training stopped on a non-finite loss or weights (the last finite checkpoint is kept)
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
# Errors a user can cause with an argument, a file or a folder: reported in one line, exit 2.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError, ValueError)
DEFAULT_PARAMS = REPO_ROOT / "params.yaml"


class StageError(Exception):
    """A user error (bad input, parameter or folder): the stage ends with a one-line message and exit 2.

    Subclasses may set another integer ``exit_code``; any exception class with an ``exit_code`` attribute is
    mapped to that code by :func:`run_stage`, so library code can declare its code without importing this module.
    """

    exit_code = EXIT_BAD_INPUT


class ParamsError(StageError, KeyError):
    """A parameter file without the stage's section (a KeyError for callers that catch that)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _error_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of ``error`` (see the module docstring)."""
    code = getattr(type(error), "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(error, USER_ERRORS):
        return EXIT_BAD_INPUT
    return EXIT_UNEXPECTED


def _module_name(function) -> str:
    module = getattr(function, "__module__", None) or "stage"
    if module == "__main__":  # python -m stages.x: the spec keeps the real name
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module


def run_stage(main: Callable[..., Any], argv: Optional[Sequence[str]] = None, name: Optional[str] = None) -> int:
    """Call ``main(argv)`` and turn its outcome into the documented exit code; messages go to stderr.

    ``main`` may return an int (its exit code), or anything else (success). ``SystemExit`` passes through
    unchanged (argparse's usage errors already exit 2 with a message).
    """
    name = name or _module_name(main).rsplit(".", 1)[-1]
    try:
        result = main(argv) if argv is not None else main()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure is classified and reported here
        code = exit_code_for(error)
        if code == EXIT_UNEXPECTED or os.environ.get("WILDDEPTH_DEBUG"):
            traceback.print_exc()
        print(f"{name}: error: {_error_line(error)}", file=sys.stderr)
        return code
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return EXIT_OK


def details_path(metrics_file: os.PathLike) -> Path:
    """Where the full document of a headline metrics file goes: ``<folder>/details/<name>``."""
    metrics_file = Path(metrics_file)
    return metrics_file.parent / "details" / metrics_file.name


def write_metrics(metrics_file: os.PathLike, headline: Mapping[str, Any], document: Mapping[str, Any]) -> Path:
    """Write the ``headline`` figures to ``metrics_file`` (what `dvc metrics show` prints) and the full
    ``document`` to :func:`details_path` (per-sequence and per-term details); both atomically. Returns the
    details path."""
    import json

    from formats import atomic

    details = details_path(metrics_file)
    atomic.write_text(details, json.dumps(document, indent=2) + "\n")
    atomic.write_text(metrics_file, json.dumps(dict(headline), indent=2) + "\n")
    return details


def load_params(section: str, path: os.PathLike | None = None) -> Dict[str, Any]:
    """The ``section`` mapping of ``params.yaml`` (``$WILDDEPTH_PARAMS`` or the repository's file)."""
    path = Path(path or os.environ.get("WILDDEPTH_PARAMS", DEFAULT_PARAMS))
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} not found")
    document = yaml.safe_load(path.read_text()) or {}
    if section not in document:
        raise ParamsError(f"{path} has no section {section!r} (sections: {sorted(document)})")
    return dict(document[section] or {})


def parse_stage_args(
    section: str,
    description: str,
    argv: Optional[Sequence[str]] = None,
    extra_arguments=None,
    allow_unknown: bool = False,
    *,
    configs: Sequence[type],
):
    """Parse ``argv`` for stage ``section``, whose keys are the fields of the config classes ``configs``.

    Returns ``(params, args, unknown)``: ``params`` is the section of params.yaml with flags applied (a nested
    mapping whose keys are all known and whose values are typed), ready for ``Config.from_mapping``; ``args``
    the full namespace (including ``extra_arguments`` added by the caller's function); ``unknown`` the unparsed
    arguments when ``allow_unknown`` (e.g. Beam pipeline options). ``--params`` selects another parameter file.
    A key of the section that no config declares is an error naming it (exit 2).
    """
    from formats import params as typed

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults = load_params(section, known.params)
    parser = argparse.ArgumentParser(prog=f"python -m stages.{section}", description=description)
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml of the repository)")
    typed.check_keys(defaults, configs, section)
    typed.add_flags(parser, configs, defaults)
    if extra_arguments is not None:
        extra_arguments(parser)
    if allow_unknown:
        args, unknown = parser.parse_known_args(argv)
    else:
        args, unknown = parser.parse_args(argv), []
    return typed.flag_values(args, configs), args, unknown
