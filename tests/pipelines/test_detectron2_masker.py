"""Detectron2 masker with a real Mask R-CNN R50-FPN (random weights) in a Beam pipeline on real KITTI frames.

Needs the optional install (scripts/install_detectron2.sh); run with .venv-detectron2/bin/python -m pytest.
"""

import pickle

import numpy as np
import pytest

pytestmark = pytest.mark.detectron2
pytest.importorskip("detectron2", reason="Detectron2 is not installed (bash scripts/install_detectron2.sh)")
torch = pytest.importorskip("torch")

import apache_beam as beam  # noqa: E402
import cv2  # noqa: E402
from apache_beam.testing.test_pipeline import TestPipeline  # noqa: E402

from formats import struct2depth  # noqa: E402
from pipelines import detectron2_masker as masker  # noqa: E402
from pipelines.mask_alignment import align_triplet  # noqa: E402
from pipelines.records import Frame  # noqa: E402

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
WIDTH, HEIGHT = 224, 64


def random_network(seed=0):
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    network = build_model(masker.build_config(masker.Detectron2Options(config=CONFIG)))
    return network.eval()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A .pth checkpoint of a randomly initialised Mask R-CNN R50-FPN, as a user's file would be given."""
    path = tmp_path_factory.mktemp("weights") / "random_mask_rcnn.pth"
    torch.save({"model": random_network().state_dict()}, path)
    return path


def kitti_frames(real_data, count=3):
    folder = real_data / "kitti_raw_mini" / "2011_09_26" / "2011_09_26_drive_sfnd_sync" / "image_02" / "data"
    frames = []
    for index, path in enumerate(sorted(folder.glob("*.png"))[:count]):
        native = struct2depth.read_rgb(path)
        image = cv2.resize(native, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        frames.append(
            Frame(
                source="kitti_raw",
                sequence="drive_02",
                index=index,
                frame_id=str(path),
                timestamp=index / 10.0,
                image=image,
                intrinsics=np.eye(3),
                native_image=native,
            )
        )
    assert len(frames) == count
    return frames


def write_triplet(element, root):
    _, frames = element
    frames = sorted(frames, key=lambda frame: frame.index)
    masks = align_triplet([frame.mask for frame in frames])
    struct2depth.write_record(
        root, frames[0].sequence, struct2depth.sample_id(1), [frame.image for frame in frames], masks, np.eye(3)
    )
    return [frame.mask for frame in frames]


@pytest.mark.slow
@pytest.mark.parametrize("resolution", ["native", "working"])
def test_random_mask_rcnn_in_beam_writes_wellformed_fseg(real_data, random_weights, tmp_path, resolution):
    options = {
        "config": CONFIG,
        "weights": str(random_weights),
        "score_threshold": 0.0,
        "batch_size": 2,
        "resolution": resolution,
        "device": "cpu",
    }
    segmenter = masker.Detectron2Segmenter(options)
    assert segmenter.needs_native_image == (resolution == "native")
    frames = kitti_frames(real_data)
    with TestPipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create(frames)
            | "Mask" >> segmenter
            | beam.Map(lambda frame: (frame.sequence, frame))
            | beam.GroupByKey()
            | beam.Map(write_triplet, tmp_path)
        )
    images, masks, _ = struct2depth.read_record(tmp_path, "drive_02", struct2depth.sample_id(1))
    fseg = struct2depth.read_rgb(tmp_path / "drive_02" / f"{struct2depth.sample_id(1)}-fseg.png")
    assert fseg.shape == (HEIGHT, 3 * WIDTH, 3) and fseg.dtype == np.uint8
    assert (fseg[..., 0] == fseg[..., 1]).all() and (fseg[..., 0] == fseg[..., 2]).all()
    for image, mask, frame in zip(images, masks, frames):
        np.testing.assert_array_equal(image, frame.image)
        assert mask.shape == (HEIGHT, WIDTH)
    # Aligned: every object id of the triplet appears in all three frames.
    present = [set(np.unique(mask)) - {0} for mask in masks]
    assert present[0] == present[1] == present[2]


def test_segments_with_loaded_weights_and_drops_non_movable(random_weights, real_data):
    """Per-frame ids straight from the handler: the same network and weights, classes honoured."""
    handler = masker.Detectron2ModelHandler(
        masker.Detectron2Options(config=CONFIG, weights=str(random_weights), score_threshold=0.0, resolution="working")
    )
    model = handler.load_model()
    assert model.movable_ids == [0, 1, 2, 3, 5, 6, 7] + list(range(14, 24))
    image = kitti_frames(real_data, 1)[0].image
    (result,) = handler.run_inference([image], model)
    assert result.inference.shape == (HEIGHT, WIDTH) and result.inference.dtype == np.uint8
    model.movable_ids = []
    (nothing,) = handler.run_inference([image], model)
    assert not nothing.inference.any()


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_user_weights_file_loads_exactly(tmp_path, suffix):
    source = random_network(seed=1)
    state = {name: value.detach().clone() for name, value in source.state_dict().items()}
    path = tmp_path / f"model{suffix}"
    if suffix == ".pth":
        torch.save({"model": state}, path)
    else:  # Detectron2 model-zoo layout: numpy arrays under "model", with an "__author__"
        with open(path, "wb") as stream:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"}, stream)
    target = random_network(seed=2)
    name = "backbone.bottom_up.stem.conv1.weight"
    assert not torch.equal(target.state_dict()[name], state[name])
    masker.load_weights(target, str(path))
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_incomplete_weights_are_rejected(tmp_path):
    state = random_network().state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith("roi_heads.mask_head")}
    path = tmp_path / "partial.pth"
    torch.save({"model": partial}, path)
    with pytest.raises(ValueError, match="missing parameters"):
        masker.load_weights(random_network(), str(path))


def test_cityscapes_config_movable_classes_include_rider():
    cfg = masker.build_config(masker.Detectron2Options(config="Cityscapes/mask_rcnn_R_50_FPN.yaml"))
    names = masker.thing_classes_of(cfg)
    assert "rider" in names and masker.movable_class_ids(names) == list(range(len(names)))
