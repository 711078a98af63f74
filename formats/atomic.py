"""Atomic file output: write to a temporary name in the same folder, fsync, then rename.

A run killed half-way therefore leaves either the previous complete file or nothing, never a partial one.
Temporary files start with ``.tmp-`` so readers and globbing code can ignore them.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

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


def remove_stale_temporaries(folder: PathLike) -> int:
    """Delete ``.tmp-*`` leftovers of a killed run below ``folder``; returns how many were removed."""
    removed = 0
    for leftover in Path(folder).rglob(TEMP_PREFIX + "*"):
        if leftover.is_file():
            leftover.unlink()
            removed += 1
    return removed
