"""The ``train:`` section of params.yaml as typed configs: model and losses, the reader, the training loop.

Pure Python (no TensorFlow), so that ``python -m stages.train --help`` and a bad parameter are answered
before TensorFlow starts. The model (``model/depth_motion_model.py``), the reader (``model/data.py``) and the
trainer (``model/trainer.py``) take these configs; ``stages/train.py`` builds them with ``formats.params``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Optional, Tuple

from formats.params import Config, param

DEPTH_NORMALIZATIONS = ("release", "randomized_layer_norm")
SCALE_INITIAL_VALUE = 0.01  # the release's init of the learned rotation / translation scales
SCALE_MINIMUM = 0.001
MOTION_FIELD_MODES = ("masked", "mask_free")
MOTION_PAIRINGS = ("independent", "antisymmetric", "inverse")
FOCAL_ASPECTS = ("free", "records")
IMAGE_SIZE_MULTIPLE = 32  # the depth network downsamples five times


def _weight(default: float, help: str):
    """A loss weight: finite and >= 0."""
    return param(default, help=help, minimum=0.0)


@dataclasses.dataclass
class ModelConfig(Config):
    """Model and loss settings: the model keys of params.yaml's ``train:`` section plus the frame size.

    Defaults are the release's (docs/release.md §3.4, §3.7); params.yaml's CPU run differs where its comment
    says "release: ..." (reasons in docs/training.md).
    """

    img_height: int = param(
        128, help="frame height in pixels, a multiple of 32 (the stage passes the records')", above=0
    )
    img_width: int = param(416, help="frame width in pixels, a multiple of 32 (the stage passes the records')", above=0)
    learn_intrinsics: bool = param(
        True, help="learn K with the motion network's intrinsics head; false = the records' K"
    )
    focal_aspect: str = param(
        "free",
        help="with learn_intrinsics: free (release: fx and fy learned apart) or records (fy = learned fx times "
        "the records' fy/fx, the pixel aspect the resize gave; docs/training.md)",
        choices=FOCAL_ASPECTS,
    )
    intrinsics_warmup_steps: int = param(
        0,
        help="with learn_intrinsics: the first N steps warp with the records' K (the head gets no gradient), "
        "then with the head's (not in the release; 0 = from the start; docs/training.md)",
        minimum=0,
    )
    boxify: bool = param(True, help="replace each object mask by its bounding box")
    foreground_dilation: int = param(8, help="object masks are dilated by a (2n+1) x (2n+1) max-pool", minimum=0)
    depth_normalization: str = param(
        "release",
        help="release (batch norm in conv2_2/3_2/4_2) or randomized_layer_norm (everywhere)",
        choices=DEPTH_NORMALIZATIONS,
    )
    motion_field_mode: str = param(
        "masked", help="masked (release) or mask_free (DML, docs/release.md §8)", choices=MOTION_FIELD_MODES
    )
    depth_network_width: float = param(
        1.0, help="channel multiplier of the depth net; 1.0 = the release's ResNet-18 U-Net", above=0.0
    )
    motion_network_width: float = param(
        1.0, help="channel multiplier of the motion net; 1.0 = the release's (and its checkpoints')", above=0.0
    )
    motion_scale_initial_value: float = param(
        SCALE_INITIAL_VALUE,
        help="initial value of the learned rotation/translation scales (release: 0.01)",
        minimum=SCALE_MINIMUM,
    )
    motion_pairing: str = param(
        "independent",
        help="how the background motions of a pair's two orders relate (release: independent); inverse: "
        "(later, earlier) is the exact inverse of (earlier, later)",
        choices=MOTION_PAIRINGS,
    )
    reconstr_weight: float = _weight(0.85, "weight of the L1 photometric term")
    ssim_weight: float = _weight(3.0, "weight of the SSIM term (each term is also halved, as released)")
    smooth_weight: float = _weight(1e-2, "weight of the edge-aware depth smoothness")
    depth_consistency_loss_weight: float = _weight(0.01, "weight of the warped-depth consistency term")
    motion_smoothing_weight: float = _weight(1e-3, "weight of the translation-field smoothness (masked mode)")
    rotation_consistency_weight: float = _weight(1e-3, "weight of the rotation cycle-consistency term")
    translation_consistency_weight: float = _weight(1e-2, "weight of the translation cycle-consistency term")
    motion_sparsity_weight: float = _weight(
        0.2, "mask_free mode: weight of the sqrt sparsity of the residual field (DML's motion_drift)"
    )
    residual_smoothing_weight: float = _weight(
        1.0, "mask_free mode: weight of the residual field's total variation (DML's motion_smoothing)"
    )
    object_ground_weight: float = _weight(
        0.0,
        "weight of the ground-contact prior on objects (not in the release; 0 = off): an object's mean log depth "
        "is pulled to the road's where its mask ends (docs/training.md)",
    )
    layer_norm_noise_rampup_steps: int = param(
        10000, help="steps over which the randomized layer norm's noise ramps up", minimum=0
    )

    def check(self) -> Iterable[str]:
        for name in ("img_height", "img_width"):
            if getattr(self, name) % IMAGE_SIZE_MULTIPLE:
                yield f"{name}: must be a multiple of {IMAGE_SIZE_MULTIPLE}, got {getattr(self, name)}"


FLIP_RULES = ("pixel_center", "release")


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Reader settings (keys of params.yaml's ``train:`` section). Sizes in pixels of one frame (None: the
    records' size); probabilities in [0, 1]."""

    data_dir: str = param(help="folder with <input_file>.txt and the records", flag=False)
    input_file: str = param("train", help="list file <data_dir>/<input_file>.txt")
    file_extension: str = param("png", help="image files of the records", choices=("png", "jpg"))
    img_height: Optional[int] = param(
        None,
        help="frame height; null = the records' (manifest.json, else the images); a given value must agree",
        minimum=1,
    )
    img_width: Optional[int] = param(None, help="frame width; null = the records' (like img_height)", minimum=1)
    batch_size: int = param(4, help="examples (triplets) per step, over all replicas", minimum=1)
    queue_size: int = param(
        2000, help="shuffle buffer (records), after a per-epoch permutation of all records", minimum=1
    )
    seed: int = param(8964, help="seeds Python, numpy and TensorFlow, the data order and the augmentation", minimum=0)
    shuffle: bool = param(True, help="shuffle the records (false: list order)", flag=False)
    repeat: bool = param(True, help="cycle over the records forever (false: one pass)", flag=False)
    color_probability: float = param(
        0.5, help="probability of each colour-jitter op; 0 disables colour augmentation", minimum=0, maximum=1
    )
    flip_probability: float = param(0.5, help="probability of a horizontal flip; 0 disables it", minimum=0, maximum=1)
    flip_rule: str = param(
        "pixel_center",
        help="intrinsics of a flip: pixel_center: cx' = W-1-cx (exact); release: cx' = W-cx",
        choices=FLIP_RULES,
    )

    @property
    def list_path(self) -> Path:
        return Path(self.data_dir) / f"{self.input_file}.txt"


MAX_LEARNING_RATE = 1.0  # Adam moves every weight by about the learning rate per step: above 1 is a typo


@dataclasses.dataclass(frozen=True)
class TrainerConfig(Config):
    """Loop settings (keys of params.yaml's ``train:`` section, plus the stage's folders). Steps count
    optimizer updates; frequencies are in steps."""

    checkpoint_dir: str = param(help="checkpoints, model_config.json, tensorboard/", flag=False)
    learning_rate: float = param(
        5e-4, help="Adam learning rate (release: 1e-4)", minimum=0.0, maximum=MAX_LEARNING_RATE
    )
    learning_rate_decay_steps: Tuple[int, ...] = param(
        (),
        help="after each of these steps the learning rate is multiplied by learning_rate_decay (monodepth2: x0.1 "
        "after 3/4 of its steps); empty = constant, as the release (docs/training.md)",
    )
    learning_rate_decay: float = param(
        0.1, help="factor applied to the learning rate after each of learning_rate_decay_steps", above=0.0, maximum=1.0
    )
    beta1: float = param(0.9, help="Adam beta1 (release: 0.9)", minimum=0.0, maximum=0.999999)
    intrinsics_learning_rate_factor: float = param(
        1.0,
        help="the intrinsics head's (foci, offsets) Adam step is this x learning_rate (release: 1); Adam moves "
        "a weight by about the rate per step, too slowly for a focal length to leave its initial value in a "
        "short run (docs/training.md)",
        above=0.0,
        maximum=1000.0,
    )
    clip_gradient_norm: float = param(
        10.0, help="each gradient tensor is clipped to this L2 norm separately; 0 disables", minimum=0.0
    )
    train_steps: int = param(
        2500, help="total optimizer steps, counting those of a resumed run (release: 1,000,000)", minimum=1
    )
    summary_freq: int = param(100, help="steps between dvclive / TensorBoard logs", minimum=1)
    checkpoint_freq: int = param(500, help="steps between checkpoints; 0 = once per epoch (the release)", minimum=0)
    keep_checkpoints: int = param(5, help="newest checkpoints kept in checkpoint_dir", minimum=1)
    seed: int = param(8964, help="seeds Python, numpy and TensorFlow, the data order and the augmentation", minimum=0)
    weight_reg: float = param(
        0.01, help="accepted for compatibility; has no effect, as in the release (docs/release.md §3.6)", minimum=0.0
    )
    mixed_precision: bool = param(False, help="mixed_bfloat16 compute (GPU); see docs/training.md")
    jit_compile: bool = param(False, help="XLA-compile the training step")
    intra_op_threads: int = param(
        1,
        help="threads one TensorFlow op may use; 0 = TensorFlow's default (all cores). 1 runs whole ops in "
        "parallel instead: 1.2x faster steps at 64x224 on 2 cores, equal at 128x416 (docs/training.md)",
        minimum=0,
    )
    inter_op_threads: int = param(
        0, help="TensorFlow ops run at once; 0 = TensorFlow's default (the number of cores)", minimum=0
    )
    debug: bool = param(False, help="one step, tensors dumped to <checkpoint_dir>/debug")
    val_file: str = param(
        "val", help="validation list file <val_data_dir>/<val_file>.txt; validation is skipped without it"
    )
    val_freq: int = param(500, help="steps between validations (and at the last step); 0 = never", minimum=0)
    val_batches: int = param(
        8, help="validation batches at most: a fixed, unshuffled, un-augmented subset, the same every time", minimum=1
    )
    val_depth_images: int = param(
        16, help="frames of --val_depth_dir scored for val/abs_rel (evenly spaced, median scaling)", minimum=1
    )
    val_data_dir: Optional[str] = param(None, help="folder of <val_file>.txt; None: no validation loss", flag=False)
    val_depth_dir: Optional[str] = param(
        None, help="synthetic world (KITTI-raw layout, groundtruth/) for val/abs_rel; None: none", flag=False
    )
    imagenet_ckpt: Optional[str] = param(None, help="ResNet-18 weights for the depth encoder", flag=False)
    init_checkpoint: Optional[str] = param(
        None, help="wilddepth or release TF1 checkpoint to fine-tune from (no resume)", flag=False
    )
    metrics_dir: Optional[str] = param(None, help="dvclive directory; None: no dvclive", flag=False)
    progress: bool = param(True, help="show a progress bar", flag=False)

    def check(self) -> Iterable[str]:
        steps = list(self.learning_rate_decay_steps)
        if any(step < 1 for step in steps) or steps != sorted(set(steps)):
            yield f"learning_rate_decay_steps: must be increasing step numbers >= 1, got {steps}"

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (1-based: the update that makes ``step`` steps done)."""
        decays = sum(1 for boundary in self.learning_rate_decay_steps if step > boundary)
        return self.learning_rate * self.learning_rate_decay**decays
