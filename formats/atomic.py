"""Atomic file output: write to a temporary name in the same folder, fsync, then rename.

A run killed half-way therefore leaves either the previous complete file or nothing, never a partial one.
Temporary files start with ``.tmp-`` so readers and globbing code can ignore them.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + target.name + ".", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8, newline untranslated) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


# mkstemp's names: TEMP_PREFIX + target name + "." + 8 characters of [a-z0-9_] (CPython's tempfile).
_TEMPORARY = re.compile(r"^" + re.escape(TEMP_PREFIX) + r"(?P<target>.+)\.[a-z0-9_]{8}$")


def temporary_target(name: str) -> Optional[str]:
    """The target file name of a temporary that :func:`atomic_open` creates (``.tmp-<target>.<8 chars>``),
    or None when ``name`` is not such a temporary (e.g. a user's ``.tmp-my-notes.txt``)."""
    match = _TEMPORARY.match(name)
    return match.group("target") if match else None


def remove_stale_temporaries(
    folder: PathLike, recursive: bool = True, targets: Optional[Callable[[str], bool]] = None
) -> int:
    """Delete leftovers of a killed run: files named like :func:`atomic_open`'s temporaries whose target
    name passes ``targets`` (all targets when None), in ``folder`` (and below it when ``recursive``).
    Other files, also other ``.tmp-*`` files, are never touched. Returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    candidates = folder.rglob(TEMP_PREFIX + "*") if recursive else folder.glob(TEMP_PREFIX + "*")
    for leftover in sorted(candidates):
        target = temporary_target(leftover.name)
        if target is None or (targets is not None and not targets(target)):
            continue
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink()
            removed += 1
    return removed
