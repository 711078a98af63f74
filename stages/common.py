"""Shared plumbing of the stages: ``params.yaml`` is the one source of defaults, flags override it.

Every key of a stage's section becomes a flag of the same name. Flags accept the absl style the original
release used: ``--train_steps=1``, ``--batch_size 16``, ``--learn_intrinsics``/``--nolearn_intrinsics``
and ``--learn_intrinsics=false``. Nested sections become dotted flags (``--train.seed=3`` for
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
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
# Errors a user can cause with an argument, a file or a folder: reported in one line, exit 2.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError, ValueError)
DEFAULT_PARAMS = REPO_ROOT / "params.yaml"
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


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


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
_COMMENT_LINE = re.compile(r"^(?P<indent> *)#\s?(?P<text>.*)$")


def param_comments(section: str, path: os.PathLike | None = None) -> Dict[str, str]:
    """The comment written beside each key of ``section`` in params.yaml (its help text), by dotted key.

    A comment is what follows ``#`` on the key's line, continued by comment-only lines indented deeper than
    the key that follow it directly. params.yaml's comments say what each key does, so ``--help`` shows them.
    """
    path = Path(path or os.environ.get("WILDDEPTH_PARAMS", DEFAULT_PARAMS))
    comments: Dict[str, str] = {}
    stack: list = []  # (indent, key) of the open mappings
    last: Optional[Tuple[int, str]] = None
    for line in path.read_text().splitlines():
        key_match = _KEY_LINE.match(line)
        comment_match = _COMMENT_LINE.match(line)
        if key_match:
            indent = len(key_match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            dotted = ".".join([key for _, key in stack] + [key_match["key"]])
            stack.append((indent, key_match["key"]))
            rest = key_match["rest"]
            text = _trailing_comment(rest)
            comments[dotted] = text
            last = (indent, dotted)
        elif comment_match and last is not None and len(comment_match["indent"]) > last[0] and comments[last[1]]:
            comments[last[1]] += " " + comment_match["text"].strip()
        else:
            last = None
    prefix = section + "."
    return {key[len(prefix) :]: text for key, text in comments.items() if key.startswith(prefix) and text}


def _trailing_comment(text: str) -> str:
    """What follows the first ``#`` outside quotes (YAML: a comment starts at ``#`` after a space)."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[index + 1 :].strip()
    return ""


def add_param_flags(
    parser: argparse.ArgumentParser, defaults: Mapping[str, Any], comments: Optional[Mapping[str, str]] = None
) -> None:
    """Add one flag per (flattened) key of ``defaults``; booleans also get ``--no<name>``.

    A default of ``null`` in params.yaml makes a string flag whose default is ``None``. ``comments`` (see
    :func:`param_comments`) become the flags' help text.
    """
    comments = comments or {}
    for name, default in _flatten(defaults):
        dest = name.replace(".", "__")
        described = comments.get(name, "")
        text = f"{described} (default: {default})" if described else f"(default from params.yaml: {default})"
        text = text.replace("%", "%%")  # argparse formats help with %
        if isinstance(default, bool):
            parser.add_argument(
                f"--{name}", dest=dest, nargs="?", const=True, default=default, type=parse_bool, help=text
            )
            parser.add_argument(f"--no{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{name}", dest=dest, default=default, type=_value_type(default), help=text)


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
    configs: Sequence[type] = (),
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
    if configs:
        typed.check_keys(defaults, configs, section)
        typed.add_flags(parser, configs, defaults)
    else:  # TRANSITION: untyped stages (removed once every stage declares its configs)
        add_param_flags(parser, defaults, param_comments(section, known.params))
    if extra_arguments is not None:
        extra_arguments(parser)
    if allow_unknown:
        args, unknown = parser.parse_known_args(argv)
    else:
        args, unknown = parser.parse_args(argv), []
    if configs:
        return typed.flag_values(args, configs), args, unknown
    return collect_params(args, defaults), args, unknown
