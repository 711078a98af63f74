"""File access for local paths and any Beam filesystem (``gs://`` ...), with atomic local writes.

Local paths go through plain Python I/O and ``formats.atomic`` (temporary name, fsync, rename). Remote
paths go through ``apache_beam.io.filesystems.FileSystems``; object stores publish an object only when
its upload is closed, so remote writes are atomic too.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import List

from apache_beam.io.filesystems import FileSystems

from formats import atomic

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote(path: str) -> bool:
    return bool(_SCHEME.match(str(path)))


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path.rstrip(os.sep))


def glob(pattern: str) -> List[str]:
    """Sorted paths of the files matching ``pattern`` (empty list if none)."""
    if not is_remote(pattern):
        import glob as _glob

        return sorted(path for path in _glob.glob(pattern) if os.path.isfile(path))
    results = FileSystems.match([pattern])[0].metadata_list
    return sorted(metadata.path for metadata in results)


def exists(path: str) -> bool:
    return os.path.exists(path) if not is_remote(path) else FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    if not is_remote(path):
        with open(path, "rb") as handle:
            return handle.read()
    with FileSystems.open(path) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` (local or remote)."""
    if not is_remote(path):
        atomic.write_bytes(path, data)
        return
    with FileSystems.create(path, mime_type="application/octet-stream") as handle:
        handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
