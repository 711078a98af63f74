"""What preprocessing may write to and delete: it owns only what it can prove it wrote.

Rules (docs/preprocessing.md, "Output folder"):

- An output folder is wilddepth's when it holds the marker file :data:`MARKER` (written when a run claims an
  empty or new folder), or, for outputs of earlier versions, a ``manifest.json`` that wilddepth wrote.
  A run refuses (before any work) a non-empty folder that is not wilddepth's, a folder that is, contains or
  lies inside its input, and a folder it cannot write to.
- A run deletes only (a) record files ``<sequence>/<10 digits>(.png|-fseg.png|_cam.txt)`` of records listed
  in the folder's previous ``train.txt``/``val.txt`` that this run did not write again, and (b) leftover
  temporaries named exactly like its own atomic writes (``.tmp-<one of its file names>.<8 chars>``), in the
  output folder and its listed sequence folders. Nothing else is deleted, whatever its name.
- A run that finds no input or writes no record fails, and the earlier output stays as it was: its
  ``manifest.json`` is parked (:data:`PARKED_MANIFEST`) while a run is in progress and put back when the
  run writes nothing.

Local folders are checked fully. For remote outputs (``gs://`` ...) the marker and emptiness checks go
through Beam's filesystems and nothing is ever deleted.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import re
from typing import Iterable, List, Optional, Set, Tuple

from formats import atomic
from pipelines import fileio

MARKER = ".wilddepth-output"
PARKED_MANIFEST = ".wilddepth-previous-manifest.json"
MANIFEST = "manifest.json"
DEAD_LETTER_FILE = "dead_letter.jsonl"
LIST_FILES = ("train.txt", "val.txt")
ROOT_FILES = LIST_FILES + (DEAD_LETTER_FILE, MANIFEST, MARKER)
RECORD_SUFFIXES = (".png", "-fseg.png", "_cam.txt")
MARKER_TEXT = (
    json.dumps(
        {
            "written_by": "wilddepth preprocess",
            "format": "struct2depth",
            "rule": "this folder is a wilddepth output: a run deletes only record files listed in its own "
            "train.txt/val.txt and its own temporaries; see docs/preprocessing.md",
        },
        indent=2,
        sort_keys=True,
    )
    + "\n"
)
_RECORD_ID = re.compile(r"^\d{10}$")
_RECORD_FILE = re.compile(r"^\d{10}(\.png|-fseg\.png|_cam\.txt)$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class OutputFolderError(FileExistsError):
    """The output folder may not be used (foreign content, overlaps the input, not writable)."""

    exit_code = 2


class NoInputError(FileNotFoundError):
    """The input matches nothing: nothing was read and the output was not touched."""

    exit_code = 2


class NoRecordsError(RuntimeError):
    """The run produced no record; the earlier output was left as it was."""

    exit_code = 2


def is_safe_name(name: str) -> bool:
    """True for a sequence folder name that is one path component, not hidden, without spaces."""
    return bool(_SAFE_NAME.match(name)) and name not in (".", "..")


# --- input ----------------------------------------------------------------------------------------------


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _inside(child: str, parent: str) -> bool:
    """``child`` is ``parent`` or lies below it (both real, absolute paths)."""
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def input_paths(source: str, input_path: str) -> List[str]:
    """The local input roots of a run: the folder (KITTI, Cityscapes, image folders) or the matched video
    files. Raises :class:`NoInputError` when a local input does not exist or a pattern matches nothing."""
    if source == "youtube8m" or not input_path or fileio.is_remote(input_path):
        return []
    if source == "video":
        if _GLOB_CHARS.search(input_path):
            matches = sorted(path for path in _glob.glob(os.path.expanduser(input_path)) if os.path.isfile(path))
            if not matches:
                raise NoInputError(f"--input {input_path!r} matches no file")
            return matches
        if not os.path.isfile(input_path):
            raise NoInputError(f"--input {input_path!r}: no such video file")
        return [input_path]
    if not os.path.exists(input_path):
        raise NoInputError(f"--input {input_path!r}: no such folder")
    if not os.path.isdir(input_path):
        raise NoInputError(f"--input {input_path!r} is not a folder (source {source} reads a folder)")
    return [input_path]


def check_not_overlapping(inputs: Iterable[str], output: str) -> None:
    """Refuse an output that is an input, lies inside an input folder, or holds an input."""
    if fileio.is_remote(output):
        return
    out = _real(output)
    for path in inputs:
        real = _real(path)
        if _inside(out, real) or _inside(real, out):
            raise OutputFolderError(
                f"--output {output!r} overlaps the input {path!r}: records must go to a "
                "folder outside the input that does not contain it"
            )


# --- the output folder ----------------------------------------------------------------------------------


def _is_wilddepth_manifest(path: str) -> bool:
    try:
        manifest = json.loads(fileio.read_text(path))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("format") == "struct2depth"
        and "record_id" in manifest
        and isinstance(manifest.get("counts"), dict)
    )


def _entries(output: str) -> List[str]:
    if not fileio.is_remote(output):
        return sorted(os.listdir(output))
    return [fileio.basename(path) for path in fileio.glob(fileio.join(output, "*"))]


def claim_output(output: str) -> Tuple[bool, bool]:
    """Make sure a run may write to ``output`` before any work: create it if missing, refuse a non-empty
    folder that is not wilddepth's, and (re)write the marker, which also proves the folder writable.
    Returns (created the folder, created the marker)."""
    remote = fileio.is_remote(output)
    created_folder = False
    if not remote:
        created_folder = not os.path.lexists(output)
        if os.path.lexists(output) and not os.path.isdir(output):
            raise OutputFolderError(f"--output {output!r} exists and is not a folder")
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as error:
            raise OutputFolderError(f"--output {output!r} cannot be created: {error.strerror or error}") from None
    marker = fileio.join(output, MARKER)
    created_marker = not fileio.exists(marker)
    if created_marker:
        entries = _entries(output)
        legacy = MANIFEST in entries and _is_wilddepth_manifest(fileio.join(output, MANIFEST))
        if entries and not legacy:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputFolderError(
                f"--output {output!r} is not empty ({shown}) and is not a wilddepth output "
                f"(no {MARKER}): choose a new or empty folder"
            )
    if not remote and not os.access(output, os.W_OK | os.X_OK):
        raise OutputFolderError(f"--output {output!r} is not writable")
    try:
        fileio.write_text(marker, MARKER_TEXT)
    except OSError as error:
        raise OutputFolderError(f"--output {output!r} is not writable: {error.strerror or error}") from None
    return created_folder, created_marker


def release_output(output: str, created_folder: bool, created_marker: bool) -> None:
    """After a run that wrote nothing: take back the marker (and the folder) this run created, if nothing
    else is in the folder, so a failed first run leaves no trace."""
    if fileio.is_remote(output) or not os.path.isdir(output):
        return
    if created_marker and os.listdir(output) == [MARKER]:
        os.unlink(os.path.join(output, MARKER))
    if created_folder and not os.listdir(output):
        os.rmdir(output)


def park_manifest(output: str) -> None:
    """A run in progress: move the complete output's manifest aside (an output without a manifest is
    incomplete), so that :func:`restore_manifest` can put it back when the run writes nothing."""
    if fileio.is_remote(output):
        return
    manifest, parked = os.path.join(output, MANIFEST), os.path.join(output, PARKED_MANIFEST)
    if os.path.isfile(manifest):
        os.replace(manifest, parked)
    elif os.path.isfile(parked):
        os.unlink(parked)  # left by a killed run: the folder was incomplete since, nothing to restore


def restore_manifest(output: str) -> bool:
    """Put a parked manifest back (the run wrote nothing); returns whether there was one."""
    if fileio.is_remote(output):
        return False
    manifest, parked = os.path.join(output, MANIFEST), os.path.join(output, PARKED_MANIFEST)
    if os.path.isfile(parked) and not os.path.exists(manifest):
        os.replace(parked, manifest)
        return True
    return False


def drop_parked_manifest(output: str) -> None:
    if not fileio.is_remote(output):
        parked = os.path.join(output, PARKED_MANIFEST)
        if os.path.isfile(parked):
            os.unlink(parked)


# --- what a run may delete ------------------------------------------------------------------------------


def listed_records(output: str) -> Set[Tuple[str, str]]:
    """(sequence, record id) of the records in ``output``'s current list files: the records an earlier run
    of wilddepth wrote there. Lines that are not a safe ``<sequence> <10 digits>`` pair are ignored."""
    listed: Set[Tuple[str, str]] = set()
    for name in LIST_FILES:
        path = fileio.join(output, name)
        try:
            text = fileio.read_text(path) if fileio.exists(path) else ""
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            tokens = line.split(" ")
            if len(tokens) == 2 and is_safe_name(tokens[0]) and _RECORD_ID.match(tokens[1]):
                listed.add((tokens[0], tokens[1]))
    return listed


def _is_own_root_temporary(target: str) -> bool:
    return target in ROOT_FILES


def _is_own_record_temporary(target: str) -> bool:
    return bool(_RECORD_FILE.match(target))


def remove_own_temporaries(output: str, sequences: Iterable[str]) -> int:
    """Delete leftover temporaries of wilddepth's own atomic writes in ``output`` and its ``sequences``
    folders (not recursive); returns how many were removed."""
    if fileio.is_remote(output):
        return 0
    removed = atomic.remove_stale_temporaries(output, recursive=False, targets=_is_own_root_temporary)
    for sequence in sorted(set(sequences)):
        folder = os.path.join(output, sequence)
        if is_safe_name(sequence) and os.path.isdir(folder) and not os.path.islink(folder):
            removed += atomic.remove_stale_temporaries(folder, recursive=False, targets=_is_own_record_temporary)
    return removed


def prune_records(output: str, previous: Iterable[Tuple[str, str]], written: Iterable[Tuple[str, str]]) -> int:
    """Delete the files of records listed by the earlier run (``previous``) that this run did not write,
    and the sequence folders that leaves empty. Returns the number of files removed."""
    if fileio.is_remote(output):
        return 0
    keep = set(written)
    removed = 0
    emptied: Set[str] = set()
    for sequence, record_id in sorted(set(previous) - keep):
        if not (is_safe_name(sequence) and _RECORD_ID.match(record_id)):
            continue
        folder = os.path.join(output, sequence)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for suffix in RECORD_SUFFIXES:
            path = os.path.join(folder, record_id + suffix)
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed += 1
        emptied.add(folder)
    for folder in sorted(emptied):
        try:
            os.rmdir(folder)  # only succeeds when nothing else is left in it
        except OSError:
            pass
    return removed


def prepare(source: str, input_path: str, output: str) -> Tuple[bool, bool]:
    """Every check before a run, in order: the input exists, output and input do not overlap, the output
    is new, empty or wilddepth's and writable; then park its manifest and remove own temporaries.
    Returns :func:`claim_output`'s (created the folder, created the marker)."""
    inputs = input_paths(source, input_path)
    check_not_overlapping(inputs, output)
    created = claim_output(output)
    park_manifest(output)
    remove_own_temporaries(output, {sequence for sequence, _ in listed_records(output)})
    return created


def written_sequences(written: Iterable[Tuple[str, str]]) -> Set[str]:
    return {sequence for sequence, _ in written}


def summary_of(letters: Iterable, limit: int = 3) -> Optional[str]:
    """A short human summary of dead letters (for the no-record error)."""
    letters = list(letters)
    if not letters:
        return None
    lines = sorted({f"{letter.frame}: {letter.reason}" for letter in letters})
    more = f" (+{len(lines) - limit} more)" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more
