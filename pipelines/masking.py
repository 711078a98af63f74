"""Pluggable moving-object masking: ``make_segmenter(name, options)`` -> a PTransform Frame -> Frame.

Every segmenter sets ``frame.mask`` (uint8 (H, W) object ids at ``frame.image`` resolution, 0 = static
background). A segmenter may also emit ``records.DeadLetter`` elements for frames it cannot mask; the
pipeline routes them to the dead-letter output. A segmenter whose boolean attribute
``needs_native_image`` is true gets ``frame.native_image`` (full-resolution RGB) filled by the decoder and
maps its masks to working resolution with ``pipelines.geometry.mask_to_frame``.

Names: ``none`` (all-zero masks), ``ground_truth`` (the synthetic world's instance masks, read from
``frame.groundtruth_dir/masks/<raw index>.png``), ``detectron2`` (``pipelines.detectron2_masker``,
optional install).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Union

import apache_beam as beam
import cv2
import numpy as np

from formats.groundtruth import frame_name
from pipelines import fileio, records
from pipelines.beam_util import count_rejected
from pipelines.config import Detectron2Options
from pipelines.geometry import mask_to_frame
from pipelines.records import Frame, dead_letter


class NoMasks(beam.PTransform):
    """All-zero masks: every pixel is static background."""

    needs_native_image = False

    def expand(self, frames):
        return frames | "ZeroMask" >> beam.Map(
            lambda frame: dataclasses.replace(frame, mask=np.zeros(frame.image.shape[:2], np.uint8))
        )


class _ReadGroundTruthMask(beam.DoFn):
    def process(self, frame: Frame):
        if not frame.groundtruth_dir or frame.raw_index is None:
            yield _masking_error(frame, records.MISSING_MASK, "the sequence has no groundtruth/ sidecar")
            return
        path = fileio.join(frame.groundtruth_dir, "masks", f"{frame_name(frame.raw_index)}.png")
        try:
            data = fileio.read_bytes(path)
        except OSError:
            yield _masking_error(frame, records.MISSING_MASK, f"{path} not found")
            return
        native = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if native is None or native.ndim != 2:
            yield _masking_error(frame, records.BAD_MASK, f"{path} is not a single-channel PNG")
            return
        if frame.native_size and (native.shape[1], native.shape[0]) != tuple(frame.native_size):
            yield _masking_error(
                frame,
                records.BAD_MASK,
                f"{path} is {native.shape[1]}x{native.shape[0]}, "
                f"the frame {frame.native_size[0]}x{frame.native_size[1]}",
            )
            return
        if int(native.max(initial=0)) > 255:
            yield _masking_error(
                frame, records.BAD_MASK, f"{path} has object ids > 255 (the -fseg format holds 0..255)"
            )
            return
        yield dataclasses.replace(frame, mask=mask_to_frame(frame, native.astype(np.uint8)))


def _masking_error(frame: Frame, code: str, detail: str):
    return count_rejected(dead_letter(frame.source, frame.frame_id, code, detail))


class GroundTruthMasks(beam.PTransform):
    """The synthetic world's instance masks, cropped and resized (nearest) like the frame."""

    needs_native_image = False

    def expand(self, frames):
        return frames | "ReadGroundTruthMask" >> beam.ParDo(_ReadGroundTruthMask())


def make_segmenter(name: str, options: Union[Detectron2Options, Mapping, None] = None) -> beam.PTransform:
    """The masking step ``name`` (none | ground_truth | detectron2); ``options`` configure Detectron2
    (``preprocess.detectron2``: a :class:`pipelines.config.Detectron2Options` or its mapping; None = defaults)."""
    if name == "none":
        return NoMasks()
    if name == "ground_truth":
        return GroundTruthMasks()
    if name == "detectron2":
        try:
            from pipelines.detectron2_masker import Detectron2Segmenter
        except ImportError as error:
            raise RuntimeError(
                "segmenter 'detectron2' needs the optional Detectron2 install: run scripts/install_detectron2.sh "
                f"and see docs/masking.md (import failed: {error})"
            ) from error
        return Detectron2Segmenter(options)
    raise ValueError(f"unknown segmenter {name!r}: expected none, ground_truth or detectron2")


def needs_native_image(segmenter: beam.PTransform) -> bool:
    return bool(getattr(segmenter, "needs_native_image", False))
