import dataclasses

"""Detectron2 masker pieces that need no torch: options, class filtering, id assignment, resizing."""
import importlib.util

import numpy as np
import pytest

from pipelines import detectron2_masker as masker
from pipelines.geometry import transform_mask
from pipelines.records import Frame

COCO_FIRST_24 = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
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
]
COCO = COCO_FIRST_24 + ["backpack", "umbrella", "chair"]  # enough of the 80 for these tests
CITYSCAPES = ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]


def test_default_movable_classes_coco():
    assert masker.movable_class_ids(COCO) == [0, 1, 2, 3, 5, 6, 7] + list(range(14, 24))


def test_default_movable_classes_cityscapes_include_rider():
    assert masker.movable_class_ids(CITYSCAPES) == list(range(8))


def test_explicit_classes_and_unknown_names():
    assert masker.movable_class_ids(COCO, ["car", "person", "car"]) == [0, 2]
    with pytest.raises(ValueError, match="pedestrian"):
        masker.movable_class_ids(COCO, ["pedestrian"])
    with pytest.raises(ValueError, match="default movable"):
        masker.movable_class_ids(["chair", "table"])


def box(height, width, rows, columns):
    mask = np.zeros((height, width), bool)
    mask[rows, columns] = True
    return mask


def test_instance_ids_by_score_with_class_and_score_filter():
    h, w = 4, 6
    masks = np.stack(
        [
            box(h, w, slice(0, 4), slice(0, 3)),  # 0: car 0.7, left half
            box(h, w, slice(0, 2), slice(2, 5)),  # 1: person 0.9, overlaps the car at (0:2, 2)
            box(h, w, slice(2, 4), slice(4, 6)),  # 2: chair 0.99, not movable
            box(h, w, slice(3, 4), slice(3, 6)),  # 3: dog 0.3, below the threshold
            box(h, w, slice(0, 1), slice(3, 4)),  # 4: bicycle 0.8, inside the person: no pixel left
        ]
    )
    scores = np.array([0.7, 0.9, 0.99, 0.3, 0.8])
    classes = np.array([2, 0, 26, 16, 1])
    ids = masker.instance_id_image(masks, scores, classes, masker.movable_class_ids(COCO), score_threshold=0.5)
    expected = np.array(
        [
            [2, 2, 1, 1, 1, 0],
            [2, 2, 1, 1, 1, 0],
            [2, 2, 2, 0, 0, 0],
            [2, 2, 2, 0, 0, 0],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(ids, expected)
    assert ids.dtype == np.uint8


def test_instance_ids_equal_scores_keep_detection_order():
    masks = np.stack([box(2, 2, slice(0, 2), slice(0, 2)), box(2, 2, slice(0, 1), slice(0, 2))])
    ids = masker.instance_id_image(masks, [0.5, 0.5], [2, 2], [2])
    np.testing.assert_array_equal(ids, np.ones((2, 2), np.uint8))  # the first detection wins the tie


def test_no_detections_give_background():
    ids = masker.instance_id_image(np.zeros((0, 3, 5), bool), np.zeros(0), np.zeros(0, int), [0])
    assert ids.shape == (3, 5) and ids.dtype == np.uint8 and not ids.any()


def test_at_most_255_instances():
    masks = np.zeros((300, 1, 300), bool)
    masks[np.arange(300), 0, np.arange(300)] = True
    scores = np.linspace(1.0, 0.5, 300)
    ids = masker.instance_id_image(masks, scores, np.zeros(300, int), [0])
    np.testing.assert_array_equal(ids[0, :255], np.arange(1, 256))
    assert not ids[0, 255:].any()


def test_mismatched_detection_arrays_raise():
    with pytest.raises(ValueError, match="differ"):
        masker.instance_id_image(np.zeros((2, 3, 3), bool), [0.9], [0, 0], [0])


def test_id_resize_is_nearest_neighbour_with_aligned_pixel_centres():
    ids = np.array([[1, 2], [3, 0]], np.uint8)
    np.testing.assert_array_equal(transform_mask(ids, (6, 4)), np.repeat(np.repeat(ids, 2, 0), 3, 1))
    big = np.repeat(np.repeat(ids, 2, 0), 2, 1)
    np.testing.assert_array_equal(transform_mask(big, (2, 2)), ids)
    odd = np.array([[5, 6, 7]], np.uint8)  # 3 -> 1 column: the centre pixel, not the first
    np.testing.assert_array_equal(transform_mask(odd, (1, 1)), [[6]])


def make_frame(native=True):
    image = np.zeros((2, 4, 3), np.uint8)
    return Frame(
        source="kitti_raw",
        sequence="s",
        index=0,
        frame_id="f",
        timestamp=0.0,
        image=image,
        intrinsics=np.eye(3),
        native_image=np.zeros((4, 8, 3), np.uint8) if native else None,
    )


def test_model_input_and_attach_mask():
    frame = make_frame()
    assert masker.model_input_image(frame, "native").shape == (4, 8, 3)
    assert masker.model_input_image(frame, "working").shape == (2, 4, 3)
    with pytest.raises(ValueError, match="native_image"):
        masker.model_input_image(make_frame(native=False), "native")
    ids = np.zeros((4, 8), np.uint8)
    ids[:, 4:] = 9
    result = masker.attach_mask(frame, ids)
    np.testing.assert_array_equal(result.mask, [[0, 0, 9, 9], [0, 0, 9, 9]])
    assert result.native_image is None and frame.native_image is not None


def test_attach_mask_applies_the_frames_crop():
    """Native ids of a cropped source (Cityscapes) go through the same crop as the image."""
    frame = dataclasses.replace(make_frame(), crop_box=(0, 4, 4, 8))  # image (2x4) = right half, rows halved
    ids = np.zeros((4, 8), np.uint8)
    ids[:, 6:] = 5
    np.testing.assert_array_equal(masker.attach_mask(frame, ids).mask, [[0, 0, 5, 5], [0, 0, 5, 5]])
    # without the crop the same ids would land in the right quarter only
    assert not np.array_equal(masker.attach_mask(make_frame(), ids).mask, [[0, 0, 5, 5], [0, 0, 5, 5]])


def test_options_from_params_mapping():
    options = masker.Detectron2Options.from_mapping({"classes": "car, person", "weights": "", "batch_size": 2})
    assert options.classes == ("car", "person") and options.weights is None and options.batch_size == 2
    for bad, message in [
        ({"colour": 1}, "unknown"),
        ({"device": "tpu"}, "device"),
        ({"resolution": "half"}, "resolution"),
        ({"batch_size": 0}, "batch_size"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"classes": []}, "classes"),
    ]:
        with pytest.raises(ValueError, match=message):
            masker.Detectron2Options.from_mapping(bad)


def test_missing_detectron2_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        masker.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "detectron2" else real(name, *a) or object(),
    )
    with pytest.raises(masker.Detectron2Unavailable, match="install_detectron2.sh"):
        masker.Detectron2Segmenter({"weights": "/nonexistent/model.pkl"})


def test_missing_weights_say_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.setattr(masker.importlib.util, "find_spec", lambda name, *a: object())
    with pytest.raises(masker.Detectron2Unavailable, match="never downloads"):
        masker.Detectron2Segmenter({})
    with pytest.raises(masker.Detectron2Unavailable, match="not found"):
        masker.Detectron2Segmenter({"weights": str(tmp_path / "missing.pkl")})
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(masker.Detectron2Unavailable, match=r"\.pkl or \.pth"):
        masker.Detectron2Segmenter({"weights": str(tmp_path / "model.h5")})
    (tmp_path / "model.pkl").write_bytes(b"x")
    segmenter = masker.Detectron2Segmenter({"weights": str(tmp_path / "model.pkl"), "resolution": "working"})
    assert segmenter.needs_native_image is False


def test_module_does_not_import_torch_or_tensorflow():
    import subprocess
    import sys

    code = "import sys, pipelines.detectron2_masker; print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
