"""The one typed path from a ``params.yaml`` section to a config dataclass, and from its fields to flags.

A config is a dataclass that inherits :class:`Config` and declares each key with :func:`param`::

    @dataclasses.dataclass(frozen=True)
    class VideoOptions(Config):
        fps: float = param(2.0, help="frames sampled per second", above=0)
        sampling: str = param("uniform", help="frame sampling", choices=("uniform", "burst"))

- **Coercion by annotation** (``bool``, ``int``, ``float``, ``str``, ``Optional[X]``, ``Tuple[X, ...]`` and
  nested ``Config`` classes): YAML's ``1e-4`` (a string to YAML 1.1) becomes a float, ``[2, 3]`` or ``"2,3"``
  a tuple, ``"null"`` a None where None is allowed. NaN and infinity are never accepted.
- **Checks from field metadata** (``choices``, ``minimum``, ``maximum``, ``above``) and cross-field rules in
  the class's :meth:`Config.check`. All problems are reported together in one :class:`ConfigError` that names
  each key (``train.learning_rate: ...``). Direct construction (``VideoOptions(fps=5)``) is checked the same way.
- **Unknown keys are rejected** with their name (:func:`check_keys`, :meth:`Config.from_mapping`).
- **Flags**: :func:`add_flags` gives every field a flag (dotted for nested configs) whose type, choices and
  one-line help come from the field, and whose default is the section's value; ``--noname`` and
  ``--name=false`` for booleans, as the original release's absl flags accepted.

Pure Python (no TensorFlow, no Beam): ``model/``, ``pipelines/``, ``synthetic/`` and ``evaluation/`` all use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

MISSING = dataclasses.MISSING
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}
_NONE = {"null", "none", "~", ""}


class ConfigError(ValueError):
    """One or more parameters that cannot be used; the message names each key (``section.key``)."""


def param(
    default: Any = MISSING,
    *,
    help: str,
    choices: Optional[Sequence[Any]] = None,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    above: Optional[float] = None,
    default_factory: Any = MISSING,
    flag: bool = True,
) -> Any:
    """A config field: its default, one-line ``help`` and checks.

    ``minimum``/``maximum`` bound a number inclusively, ``above`` exclusively; ``choices`` lists the allowed
    values. ``flag=False`` marks a field that is not a params.yaml key (e.g. a folder given by the stage's own
    argument): it gets no flag, and a section that names it is refused.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag}
    metadata.update(minimum=minimum, maximum=maximum, above=above)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------------------------- coercion


def parse_bool(text: Any) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case) as a bool; ValueError otherwise."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _optional_inner(hint: Any) -> Tuple[bool, Any]:
    """(True, X) for Optional[X], else (False, hint)."""
    if typing.get_origin(hint) is typing.Union:
        arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
        if len(arguments) == 1 and len(typing.get_args(hint)) == 2:
            return True, arguments[0]
    return False, hint


def coerce(value: Any, hint: Any, where: str = "value") -> Any:
    """``value`` as the type ``hint`` (see the module docstring); ValueError naming ``where`` otherwise."""
    optional, hint = _optional_inner(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise ValueError(f"{where}: a value is required, got null")
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping of {hint.__name__} keys, got {value!r}")
        return hint.from_mapping(value, section=where)
    if typing.get_origin(hint) in (tuple, Tuple):
        arguments = typing.get_args(hint)
        item_hint = arguments[0] if arguments else str
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce(item, item_hint, f"{where}[{index}]") for index, item in enumerate(value))
    try:
        if hint is bool:
            return parse_bool(value)
        if hint is int:
            number = _number(value)
            if number != int(number):
                raise ValueError(f"expected a whole number, got {value!r}")
            return int(number)
        if hint is float:
            return _number(value)
        if hint is str:
            if isinstance(value, (Mapping, list, tuple)):
                raise ValueError(f"expected a string, got {value!r}")
            return str(value)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if hint is Any:
        return value
    raise TypeError(f"{where}: unsupported config annotation {hint!r}")


def _limits(value: Any, metadata: Mapping[str, Any]) -> Optional[str]:
    choices = metadata.get("choices")
    if choices is not None and value is not None:
        items = value if isinstance(value, tuple) else (value,)
        bad = [item for item in items if item not in choices]
        if bad:
            return f"must be one of {', '.join(map(str, choices))}; got {bad[0]!r}"
    minimum, maximum, above = metadata.get("minimum"), metadata.get("maximum"), metadata.get("above")
    for item in value if isinstance(value, tuple) else (value,):  # bounds apply to each item of a tuple
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if minimum is not None and item < minimum:
                return f"must be >= {minimum}, got {item!r}"
            if maximum is not None and item > maximum:
                return f"must be <= {maximum}, got {item!r}"
            if above is not None and item <= above:
                return f"must be > {above}, got {item!r}"
    return None


# ----------------------------------------------------------------------------------------------- configs


def _hints(cls: type) -> Dict[str, Any]:
    cached = cls.__dict__.get("_wilddepth_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        cls._wilddepth_hints = cached
    return cached


def config_fields(cls: type) -> List[dataclasses.Field]:
    """The fields of config class ``cls`` that are params.yaml keys (``flag=True``)."""
    return [field for field in dataclasses.fields(cls) if field.metadata.get("flag", True)]


class Config:
    """Base of every config dataclass: coerces and checks its fields after construction (frozen or not).

    Override :meth:`check` for rules that involve several fields; yield one problem per broken rule.
    """

    def __post_init__(self) -> None:
        problems: List[str] = []
        hints = _hints(type(self))
        for field in dataclasses.fields(self):
            where = field.name
            try:
                value = coerce(getattr(self, field.name), hints[field.name], where)
            except ConfigError as error:
                problems.extend(str(error).split("\n  ")[1:] or [str(error)])
                continue
            except ValueError as error:
                problems.append(str(error))
                continue
            problem = _limits(value, field.metadata)
            if problem:
                problems.append(f"{where}: {problem}")
            object.__setattr__(self, field.name, value)
        if not problems:
            problems.extend(self.check())
        if problems:
            raise ConfigError(_message(type(self), problems))

    def check(self) -> Iterable[str]:
        """Problems of combinations of fields (``"key: why"``); nothing by default."""
        return ()

    @classmethod
    def from_mapping(cls, mapping: Optional[Mapping[str, Any]], *, section: str = "", strict: bool = True, **fixed):
        """Build from a params.yaml section (or its flag-overridden copy) plus ``fixed`` non-param fields.

        ``strict`` refuses keys that are not fields of ``cls``; a section shared by several configs is
        checked once with :func:`check_keys` and then read with ``strict=False``.
        """
        mapping = dict(mapping or {})
        names = {field.name for field in config_fields(cls)}
        unknown = sorted(set(mapping) - names)
        if strict and unknown:
            raise ConfigError(_unknown_message(section or cls.__name__, unknown, names))
        values = {key: value for key, value in mapping.items() if key in names}
        values.update(fixed)
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(_prefixed(str(error), section)) from None
        except TypeError as error:  # a required field missing
            raise ConfigError(f"{section or cls.__name__}: {error}") from None

    def to_mapping(self) -> Dict[str, Any]:
        """The params as plain YAML/JSON values (nested configs as mappings, tuples as lists)."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _message(cls: type, problems: Sequence[str]) -> str:
    return f"invalid {cls.__name__} parameters:\n  " + "\n  ".join(problems)


def _prefixed(message: str, section: str) -> str:
    if not section:
        return message
    head, *lines = message.split("\n  ")
    return "\n  ".join([head] + [f"{section}.{line}" for line in lines])


def _unknown_message(section: str, unknown: Sequence[str], known: Iterable[str]) -> str:
    names = ", ".join(repr(key) for key in unknown)
    return f"{section}: unknown key(s) {names} (known keys: {', '.join(sorted(known))})"


def check_keys(mapping: Mapping[str, Any], classes: Sequence[type], section: str) -> None:
    """Refuse keys of ``mapping`` that no class of ``classes`` declares, and recurse into nested configs."""
    known: Dict[str, Any] = {}
    for cls in classes:
        hints = _hints(cls)
        for field in config_fields(cls):
            known.setdefault(field.name, hints[field.name])
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(_unknown_message(section, unknown, known))
    for key, value in mapping.items():
        _, hint = _optional_inner(known[key])
        if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, Mapping):
            check_keys(value, [hint], f"{section}.{key}")


# ----------------------------------------------------------------------------------------------- flags


def _flag_specs(classes: Sequence[type], prefix: str = "") -> Iterable[Tuple[str, Any, dataclasses.Field]]:
    """(dotted name, annotation, field) of every flag of ``classes``; the first class declaring a name wins."""
    seen = set()
    for cls in classes:
        hints = _hints(cls)
        for field in config_fields(cls):
            if field.name in seen:
                continue
            seen.add(field.name)
            _, hint = _optional_inner(hints[field.name])
            if isinstance(hint, type) and issubclass(hint, Config):
                yield from _flag_specs([hint], f"{prefix}{field.name}.")
            else:
                yield f"{prefix}{field.name}", hints[field.name], field


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def _lookup(values: Mapping[str, Any], dotted: str, default: Any) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "(none)"
    return "null" if value is None else str(value)


def _metavar(hint: Any, choices: Optional[Sequence[Any]] = None) -> str:
    if choices and typing.get_origin(hint) not in (tuple, Tuple):
        return "{" + ",".join(map(str, choices)) + "}"
    if typing.get_origin(hint) in (tuple, Tuple):
        return "A,B,..."
    return {int: "INT", float: "FLOAT", str: "TEXT"}.get(hint, "VALUE")


def add_flags(parser: argparse.ArgumentParser, classes: Sequence[type], values: Mapping[str, Any]) -> None:
    """One flag per params key of ``classes``: typed by its annotation, help and choices from its field,
    default from ``values`` (the section as read from params.yaml), else the field's default."""
    for name, hint, field in _flag_specs(classes):
        dest = name.replace(".", "__")
        default = _lookup(values, name, _field_default(field))
        help_text = field.metadata.get("help", "")
        choices = field.metadata.get("choices")
        if choices:
            help_text += f" {{{', '.join(map(str, choices))}}}"
        help_text = f"{help_text} (default: {_show(default)})".replace("%", "%%")

        def convert(text, hint=hint, name=name):
            try:
                return coerce(text, hint, f"--{name}")
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None

        _, plain = _optional_inner(hint)
        if plain is bool:
            parser.add_argument(
                f"--{name}",
                dest=dest,
                nargs="?",
                const=True,
                default=default,
                type=convert,
                help=help_text,
                metavar="BOOL",
            )
            parser.add_argument(f"--no{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)
        else:
            parser.add_argument(
                f"--{name}", dest=dest, default=default, type=convert, help=help_text, metavar=_metavar(plain, choices)
            )


def flag_values(namespace: argparse.Namespace, classes: Sequence[type]) -> Dict[str, Any]:
    """The section as a nested mapping after flags (same shape as params.yaml's section)."""
    nested: Dict[str, Any] = {}
    for name, _, _ in _flag_specs(classes):
        node = nested
        *parents, leaf = name.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = getattr(namespace, name.replace(".", "__"))
    return nested
