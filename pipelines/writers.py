"""Output: Struct2depth records, ``train.txt`` / ``val.txt``, ``dead_letter.jsonl`` and ``manifest.json``.

Every file is written atomically (``formats.atomic`` locally; object stores publish on close). Lists and
the dead-letter file are sorted, and the manifest holds no clock time or runner detail, so re-running
the same job over the same input gives identical bytes. The manifest is written last: an output folder
with a manifest is complete. A run that wrote no record writes nothing here (``pipelines.ownership``:
the earlier output stays as it was and the stage fails). Only records listed by the earlier run and not
written again are deleted, and only wilddepth's own temporaries (``pipelines/ownership.py``).
"""

from __future__ import annotations

import collections
import json
import os
from typing import Iterable, List, Optional

import apache_beam as beam

from formats import atomic
from formats.struct2depth import (
    encode_png,
    format_intrinsics,
    pack_triplet,
    record_paths,
    segmentation_triplet,
    write_record,
)
from pipelines import fileio, ownership
from pipelines.beam_util import counter
from pipelines.config import PreprocessConfig
from pipelines.records import DeadLetter, Triplet
from pipelines.sampling import assign_splits

MANIFEST = ownership.MANIFEST
DEAD_LETTER_FILE = ownership.DEAD_LETTER_FILE
MANIFEST_VERSION = 1


def write_triplet(output: str, triplet: Triplet, batch: Optional[atomic.Batch] = None) -> None:
    """Write one record; the triplet image last, so a record whose image exists is complete. A local record
    joins ``batch`` when given (visible once the caller commits it)."""
    images = [frame.image for frame in triplet.frames]
    intrinsics = triplet.frames[1].intrinsics
    if not fileio.is_remote(output):
        write_record(output, triplet.sequence, triplet.record_id, images, triplet.masks, intrinsics, batch)
        return
    image_path, seg_path, cam_path = (
        fileio.join(output, triplet.sequence, os.path.basename(str(p)))
        for p in record_paths("", triplet.sequence, triplet.record_id)
    )
    fileio.write_bytes(seg_path, encode_png(segmentation_triplet(triplet.masks)))
    fileio.write_text(cam_path, format_intrinsics(intrinsics))
    fileio.write_bytes(image_path, encode_png(pack_triplet(images)))


class WriteTriplet(beam.DoFn):
    """Triplet -> written record; emits (sequence, record id).

    Local records are published in batches (``formats.atomic.Batch``): one flush to disk for up to
    ``BATCH_RECORDS`` records, committed at the latest when the bundle finishes, before Beam commits the
    bundle's output keys. A bundle that fails leaves only temporaries, which the next run removes."""

    BATCH_RECORDS = 64

    def __init__(self, config: PreprocessConfig):
        self.config = config
        self._batch: Optional[atomic.Batch] = None

    def start_bundle(self):
        self._batch = atomic.Batch()

    def process(self, triplet: Triplet):
        batch = self._batch  # None when called outside a bundle: the record is published at once
        write_triplet(self.config.output, triplet, batch)
        counter("triplets_written").inc()
        if batch is not None and len(batch) >= 3 * self.BATCH_RECORDS:
            batch.commit()
        yield triplet.sequence, triplet.record_id

    def finish_bundle(self):
        self._batch.commit()

    def teardown(self):
        if self._batch is not None:
            self._batch.discard()


def dead_letter_text(letters: Iterable[DeadLetter]) -> str:
    return "".join(line + "\n" for line in sorted({letter.to_json() for letter in letters}))


def build_manifest(config: PreprocessConfig, written, splits, letters, filtered, sequences, frames_read: int) -> dict:
    by_split = collections.Counter(splits[sequence] for sequence, _ in written)
    sequences = [dict(entry, split=splits.get(entry["sequence"], "train")) for entry in sequences]
    return {
        "format": "struct2depth",
        "version": MANIFEST_VERSION,
        "record_id": "raw index of the middle frame, 10 digits",
        "parameters": config.manifest_parameters(),
        "counts": {
            "frames_read": int(frames_read),
            "triplets_written": len(written),
            "train": by_split.get("train", 0),
            "val": by_split.get("val", 0),
            "sequences": len(sequences),
            "rejected": dict(sorted(collections.Counter(letter.code for letter in letters).items())),
            "filtered": dict(sorted(collections.Counter(item.reason for item in filtered).items())),
        },
        "sequences": sorted(sequences, key=lambda entry: entry["sequence"]),
        "filtered": sorted(f"{item.reason}: {item.item}" for item in filtered),
    }


def prune_stale_records(output: str, previous, written) -> int:
    """Delete, under a local ``output``, the files of records that the earlier run listed (``previous``:
    (sequence, id) pairs from its train.txt/val.txt) and this run did not write, plus wilddepth's own
    leftover temporaries in the output and those sequence folders. Nothing else is touched, whatever its
    name. Returns the number of files removed."""
    if fileio.is_remote(output):
        return 0
    removed = ownership.prune_records(output, previous, written)
    sequences = ownership.written_sequences(previous) | ownership.written_sequences(written)
    return removed + ownership.remove_own_temporaries(output, sequences)


class Finalize(beam.DoFn):
    """Runs once, after all records are written: lists, dead letters, stale-record pruning, manifest.
    With no record written it writes and deletes nothing (the driver reports the failure)."""

    def __init__(self, config: PreprocessConfig):
        self.config = config

    def process(self, written: List, letters, filtered, sequences, frames_read):
        written = sorted(written)
        if not written:
            return
        output = self.config.output
        previous = ownership.listed_records(output)
        splits = assign_splits(
            [entry["sequence"] for entry in sequences] + [s for s, _ in written], self.config.val_fraction
        )
        for split in ("train", "val"):
            entries = [(sequence, record_id) for sequence, record_id in written if splits[sequence] == split]
            fileio.write_text(
                fileio.join(output, f"{split}.txt"),
                "".join(f"{sequence} {record_id}\n" for sequence, record_id in entries),
            )
        fileio.write_text(fileio.join(output, DEAD_LETTER_FILE), dead_letter_text(letters))
        prune_stale_records(output, previous, written)
        manifest = build_manifest(self.config, written, splits, letters, filtered, sequences, frames_read)
        fileio.write_text(fileio.join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        yield manifest
