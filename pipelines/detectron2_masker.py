"""Movable-object masks from Detectron2 instance segmentation, as a Beam ``RunInference`` step.

Frame in, the same frame out with ``mask`` set: uint8 (H, W) at ``frame.image`` resolution, 0 = static
background, 1..255 = one detected instance of a movable class. Ids are per frame; aligning them across a
triplet is :func:`pipelines.mask_alignment.align_triplet`'s job (the triplet step).

Resolution (``resolution`` option):
- ``native`` (default): the model sees ``frame.native_image`` and the id image is resized to the working
  size with nearest-neighbour (``cv2.INTER_NEAREST_EXACT``, pixel centres aligned), which keeps ids as ids.
  Mask R-CNN resizes every input to its test size (short edge 800, long edge at most 1333) anyway, so
  a 224x64 working frame costs as much as the native one but carries far less detail and the aspect
  ratio squash of the working frame; native input gives better masks for small, distant objects at the
  same price. ``native_image`` must show exactly the field of view of ``image`` (crop applied, resize not).
- ``working``: the model sees ``frame.image``; no resize of the ids.

Importing this module needs neither torch nor Detectron2: they are imported in the worker when the
model loads. TensorFlow must never be imported in that process (with torch 2.13 it segfaults), and
``pipelines/`` never imports it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from pipelines.config import Detectron2Options
from pipelines.geometry import mask_to_frame
from pipelines.records import Frame

INSTALL_HELP = (
    "Install Detectron2 with `bash scripts/install_detectron2.sh` and run the stage with "
    "`.venv-detectron2/bin/python -m stages.preprocess --segmenter detectron2 ...`, "
    "or choose `--segmenter ground_truth` / `--segmenter none`."
)
WEIGHTS_HELP = (
    "Give Mask R-CNN weights with `--detectron2.weights=/path/model_final.pkl` (or `.pth`) or in "
    "params.yaml `preprocess.detectron2.weights`, e.g. the Detectron2 model zoo's "
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x model_final_f10217.pkl, downloaded by you: "
    "wilddepth never downloads weights."
)

# Classes that may move. The default movable set of a model is the intersection of these names with
# the model's own class names: COCO person, vehicles and animals; Cityscapes' eight thing classes
# (rider included).
DEFAULT_MOVABLE_CLASSES = (
    "person",
    "rider",
    "bicycle",
    "car",
    "motorcycle",
    "bus",
    "train",
    "truck",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
)
MAX_INSTANCES = 255


class Detectron2Unavailable(RuntimeError):
    """Detectron2, torch or the weights are missing; the message says how to provide them."""


# --- pure post-processing (no torch) --------------------------------------------------------------------


def movable_class_ids(thing_classes: Sequence[str], wanted: Optional[Iterable[str]] = None) -> List[int]:
    """Indices into the model's ``thing_classes`` of the movable classes, ascending.

    ``wanted=None`` takes every name of :data:`DEFAULT_MOVABLE_CLASSES` the model knows. Unknown wanted
    names raise ``ValueError`` listing the model's classes (a typo must not silently mask nothing).
    """
    names = list(thing_classes)
    if wanted is None:
        ids = [index for index, name in enumerate(names) if name in DEFAULT_MOVABLE_CLASSES]
        if not ids:
            raise ValueError(
                f"none of the default movable classes is among the model's classes {names}; "
                "set preprocess.detectron2.classes"
            )
        return ids
    wanted = list(wanted)
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValueError(f"classes {unknown} are not among the model's classes {names}")
    return sorted({names.index(name) for name in wanted})


def instance_id_image(
    masks: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    movable_ids: Iterable[int],
    score_threshold: float = 0.0,
) -> np.ndarray:
    """Detections -> uint8 (H, W) instance ids, 0 = background.

    ``masks`` is bool (N, H, W), ``scores`` (N,), ``classes`` (N,) model class indices. Kept: instances of
    a movable class with score >= ``score_threshold``. They are painted in descending score order (ties:
    detection order) and a pixel keeps the first (highest-scoring) instance that covers it. Ids 1, 2, ...
    go, in that order, to the instances that own at least one pixel; at most 255 ids, the rest dropped.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    if not len(scores) == len(classes) == masks.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks, {len(scores)} scores and {len(classes)} classes differ")
    keep = np.isin(classes, list(movable_ids)) & (scores >= score_threshold)
    order = [int(i) for i in np.argsort(-scores, kind="stable") if keep[i]]
    ids = np.zeros(masks.shape[1:], np.uint8)
    next_id = 1
    for index in order:
        if next_id > MAX_INSTANCES:
            break
        region = masks[index] & (ids == 0)
        if region.any():
            ids[region] = next_id
            next_id += 1
    return ids


def model_input_image(frame: Frame, resolution: str) -> np.ndarray:
    """The RGB image the model segments for ``frame`` (see the module docstring)."""
    if resolution == "native":
        if frame.native_image is None:
            raise ValueError(
                f"{frame.frame_id}: resolution 'native' needs Frame.native_image, which the "
                "decode step keeps when the segmenter's needs_native_image is true"
            )
        return frame.native_image
    return frame.image


def attach_mask(frame: Frame, ids: np.ndarray) -> Frame:
    """``frame`` with ``mask`` = ``ids`` mapped to ``frame.image`` and ``native_image`` dropped.

    Ids computed on the working image are used as they are; ids computed on ``native_image`` go through the
    frame's own crop and nearest-neighbour resize (``pipelines.geometry.mask_to_frame``), so cropped sources
    such as Cityscapes stay aligned.
    """
    mask = ids if ids.shape == frame.image.shape[:2] else mask_to_frame(frame, ids)
    return dataclasses.replace(frame, mask=mask, native_image=None)


# --- Detectron2 (torch imported only in the worker) -------------------------------------------------------


def check_installed(options: Detectron2Options) -> None:
    """Raise :class:`Detectron2Unavailable` with the fix when Detectron2, torch or the weights are missing."""
    for module in ("torch", "torchvision", "detectron2"):
        if importlib.util.find_spec(module) is None:
            raise Detectron2Unavailable(
                f"the detectron2 segmenter needs the {module!r} package "
                f"({sys.executable} cannot import it). {INSTALL_HELP}"
            )
    if not options.weights:
        raise Detectron2Unavailable(f"no Detectron2 weights given. {WEIGHTS_HELP}")
    if not Path(options.weights).is_file():
        raise Detectron2Unavailable(f"Detectron2 weights {options.weights} not found. {WEIGHTS_HELP}")
    if Path(options.weights).suffix not in (".pkl", ".pth"):
        raise Detectron2Unavailable(f"weights must be a .pkl or .pth file, got {options.weights}")


def build_config(options: Detectron2Options):
    """Detectron2 CfgNode for ``options``: model-zoo name or yaml file, device, score threshold."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    if os.path.isfile(options.config):
        cfg.merge_from_file(options.config)
    else:
        try:
            cfg.merge_from_file(model_zoo.get_config_file(options.config))
        except RuntimeError as error:
            raise ValueError(
                f"config {options.config!r} is neither a file nor a Detectron2 model-zoo "
                "config name (e.g. COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml)"
            ) from error
    if not cfg.MODEL.MASK_ON:
        raise ValueError(f"config {options.config!r} has no mask head (MODEL.MASK_ON is false)")
    cfg.MODEL.DEVICE = options.device
    cfg.MODEL.WEIGHTS = options.weights or ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(options.score_threshold)
    cfg.freeze()
    return cfg


def thing_classes_of(cfg) -> List[str]:
    """Class names of the model's outputs, from the metadata of its test dataset."""
    from detectron2.data import MetadataCatalog

    dataset = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None
    names = list(MetadataCatalog.get(dataset).get("thing_classes", [])) if dataset else []
    if len(names) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ValueError(
            f"cannot tell the class names of config with test dataset {dataset!r} "
            f"({len(names)} names for {cfg.MODEL.ROI_HEADS.NUM_CLASSES} classes); "
            "register its metadata (thing_classes) with Detectron2's MetadataCatalog"
        )
    return names


def load_weights(model, path: str) -> None:
    """Load a .pkl/.pth checkpoint; raise if any model parameter is missing from it (wrong file)."""
    from detectron2.checkpoint import DetectionCheckpointer

    checkpointer = DetectionCheckpointer(model)
    # The public ``load`` only logs missing keys; a partly random Mask R-CNN must be an error here.
    checkpoint = checkpointer._load_file(path)
    incompatible = checkpointer._load_model(checkpoint)
    missing = getattr(incompatible, "missing_keys", []) or []
    shapes = getattr(incompatible, "incorrect_shapes", []) or []
    if missing or shapes:
        raise ValueError(
            f"weights {path} do not fit the model: {len(missing)} missing parameters "
            f"{list(missing)[:5]}, {len(shapes)} with other shapes {[s[0] for s in shapes][:5]}"
        )


@dataclasses.dataclass
class LoadedModel:
    """What one worker process holds: the network and how to feed it."""

    network: Any
    input_format: str  # "BGR" or "RGB"
    min_size: int
    max_size: int
    movable_ids: List[int]
    score_threshold: float
    device: str


class Detectron2ModelHandler(ModelHandler[np.ndarray, PredictionResult, LoadedModel]):
    """RunInference handler: RGB uint8 (H, W, 3) images in, uint8 (H, W) instance-id images out.

    Loaded once per worker process and shared by its threads (RunInference's default); batches of
    ``batch_size`` images go through the network in one forward pass.
    """

    def __init__(self, options: Detectron2Options):
        self._options = options

    def load_model(self) -> LoadedModel:
        if "tensorflow" in sys.modules:
            raise RuntimeError(
                "TensorFlow is imported in this process; with torch it crashes. Run the "
                "Detectron2 masker in a process that never imports TensorFlow."
            )
        check_installed(self._options)
        import torch
        from detectron2.modeling import build_model

        if self._options.device == "cuda" and not torch.cuda.is_available():
            raise Detectron2Unavailable("device 'cuda' requested but torch sees no GPU; use device: cpu")
        cfg = build_config(self._options)
        movable = movable_class_ids(thing_classes_of(cfg), self._options.classes)
        network = build_model(cfg)
        network.eval()
        load_weights(network, self._options.weights)
        return LoadedModel(
            network,
            cfg.INPUT.FORMAT,
            int(cfg.INPUT.MIN_SIZE_TEST),
            int(cfg.INPUT.MAX_SIZE_TEST),
            movable,
            float(self._options.score_threshold),
            self._options.device,
        )

    def run_inference(
        self, batch: Sequence[np.ndarray], model: LoadedModel, inference_args: Optional[Dict[str, Any]] = None
    ) -> Iterable[PredictionResult]:
        import torch

        inputs = [self._network_input(image, model) for image in batch]
        with torch.inference_mode():
            outputs = model.network(inputs)
        results = []
        for image, output in zip(batch, outputs):
            instances = output["instances"].to("cpu")
            ids = instance_id_image(
                instances.pred_masks.numpy(),
                instances.scores.numpy(),
                instances.pred_classes.numpy(),
                model.movable_ids,
                model.score_threshold,
            )
            results.append(PredictionResult(example=image, inference=ids))
        return results

    @staticmethod
    def _network_input(image: np.ndarray, model: LoadedModel) -> Dict[str, Any]:
        """Detectron2's test-time input: short edge resized to MIN_SIZE_TEST (long edge <= MAX_SIZE_TEST),
        channels in the config's order; outputs come back at the original (height, width)."""
        import torch

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        scale = model.min_size / min(height, width)
        if max(height, width) * scale > model.max_size:
            scale = model.max_size / max(height, width)
        resized = cv2.resize(
            image, (int(round(width * scale)), int(round(height * scale))), interpolation=cv2.INTER_LINEAR
        )
        if model.input_format == "BGR":
            resized = resized[:, :, ::-1]
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))).to(model.device)
        return {"image": tensor, "height": height, "width": width}

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        # Fixed-size batches (the last one of a bundle may be smaller), not Beam's adaptive sizing.
        return {"min_batch_size": int(self._options.batch_size), "max_batch_size": int(self._options.batch_size)}

    def get_metrics_namespace(self) -> str:
        return "wilddepth_detectron2"

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(np.asarray(image).nbytes for image in batch)


class Detectron2Segmenter(beam.PTransform):
    """PCollection[Frame] -> PCollection[Frame] with ``mask`` set (see the module docstring).

    ``options``: params.yaml ``preprocess.detectron2`` (:class:`pipelines.config.Detectron2Options`, or its
    mapping). Construction fails fast with :class:`Detectron2Unavailable` when Detectron2 or the weights are
    missing.
    """

    def __init__(self, options: Union[Detectron2Options, Mapping[str, Any], None] = None):
        super().__init__()
        if not isinstance(options, Detectron2Options):
            options = Detectron2Options.from_mapping(options, section="detectron2")
        self.options = options
        check_installed(self.options)
        self.needs_native_image = self.options.resolution == "native"

    def expand(self, frames):
        resolution = self.options.resolution
        return (
            frames
            | "ModelInput" >> beam.Map(lambda frame: (frame, model_input_image(frame, resolution)))
            | "RunInference" >> RunInference(KeyedModelHandler(Detectron2ModelHandler(self.options)))
            | "AttachMask" >> beam.MapTuple(lambda frame, result: attach_mask(frame, result.inference))
        )
