"""Atomic file output: write to a temporary name in the same folder, make it durable, then rename.

A run killed half-way therefore leaves either the previous complete file or nothing, never a partial one.
Temporary files start with ``.tmp-`` so readers and globbing code can ignore them.

One file: ``write_bytes`` / ``atomic_open`` (``fsync`` of the file). Many files: ``Batch`` writes each to its
temporary, makes them all durable with one ``syncfs`` of their filesystem, and only then renames them in
the order they were written: far cheaper than a ``fsync`` each (measured in docs/preprocessing.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator, List, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]
TEMP_PREFIX = ".tmp-"


def _make_temporary(target: Path) -> Tuple[int, str]:
    """A new, empty temporary beside ``target`` named as ``temporary_target`` recognises
    (``.tmp-<target name>.<8 chars>``), its folder created if needed: (open fd, path)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=TEMP_PREFIX + target.name + ".", dir=target.parent)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path)
    fd, temp_name = _make_temporary(target)
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


class Batch:
    """Files published together, each atomically: ``write_bytes`` / ``write_text`` create temporaries;
    ``commit`` makes them durable (one ``syncfs`` per filesystem where Linux has it, else a ``fsync`` each)
    and then renames them in the order written; ``discard`` removes them. As a context manager it commits
    on a clean exit and discards on an exception. A file is never visible under its name before its bytes
    are on disk; a run killed before ``commit`` leaves only temporaries (``remove_stale_temporaries``)."""

    def __init__(self):
        self._pending: List[Tuple[str, Path]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def write_bytes(self, path: PathLike, data: bytes) -> None:
        target = Path(path)
        fd, temp_name = _make_temporary(target)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp_name, 0o644)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        self._pending.append((temp_name, target))

    def write_text(self, path: PathLike, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def commit(self) -> None:
        pending, self._pending = self._pending, []
        try:
            _make_durable([temp for temp, _ in pending])
            for temp, target in pending:
                os.replace(temp, target)
        except BaseException:
            for temp, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            raise

    def discard(self) -> None:
        pending, self._pending = self._pending, []
        for temp, _ in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _syncfs():
    """libc's ``syncfs(fd)`` (Linux), or None."""
    name = ctypes.util.find_library("c")
    function = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None) if name else None
    if function is not None:
        function.argtypes = [ctypes.c_int]
    return function


_SYNCFS = _syncfs()


def _make_durable(paths: List[str]) -> None:
    """Flush ``paths`` to disk: one ``syncfs`` per filesystem they live on, or a ``fsync`` each."""
    if not paths:
        return
    if _SYNCFS is None:
        for path in paths:
            _fsync_path(path)
        return
    done = set()
    for path in paths:
        device = os.stat(path).st_dev
        if device in done:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"syncfs failed: {os.strerror(error)}", path)
        finally:
            os.close(fd)
        done.add(device)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
