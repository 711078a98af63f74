"""One Cityscapes camera reader (formats.cityscapes.read_camera_intrinsics), used by the pipeline's planner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from apache_beam import pvalue

from formats import cityscapes
from pipelines.config import PreprocessConfig
from pipelines.records import FrameRef
from pipelines.sources import PlanCityscapesSequence

K = np.array([[2262.52, 0.0, 1096.98], [0.0, 2265.3, 513.137], [0.0, 0.0, 1.0]])


def camera_text(fx=2262.52, fy=2265.3, u0=1096.98, v0=513.137):
    return json.dumps({"extrinsic": {}, "intrinsic": {"fx": fx, "fy": fy, "u0": u0, "v0": v0}})


def test_reads_k_and_refuses_what_is_not_a_pinhole_camera(tmp_path):
    path = tmp_path / "a_camera.json"
    path.write_text(cityscapes.camera_json(K))
    np.testing.assert_array_equal(cityscapes.read_camera_intrinsics(path), K)
    with pytest.raises(FileNotFoundError, match="camera file not found"):
        cityscapes.read_camera_intrinsics(tmp_path / "missing.json")
    for text, message in [
        ("{not json", "not a Cityscapes camera file"),
        (json.dumps({"intrinsic": {"fx": 1.0}}), "not a Cityscapes camera file"),
        (camera_text(fx=0.0), "focal lengths must be positive"),
        (camera_text(fy=-3.0), "focal lengths must be positive"),
        (camera_text(u0=float("nan")), "non-finite"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as caught:
            cityscapes.read_camera_intrinsics(path)
        assert str(path) in str(caught.value)


def test_reads_through_a_given_reader():
    read = {"gs://bucket/c_camera.json": camera_text()}.__getitem__
    np.testing.assert_allclose(cityscapes.read_camera_intrinsics("gs://bucket/c_camera.json", read), K)


def sequence(tmp_path, camera=None):
    root = tmp_path / "city"
    frames = root / "leftImg8bit_sequence" / "train" / "aachen"
    frames.mkdir(parents=True)
    paths = [str(frames / f"aachen_000001_{n:06d}_leftImg8bit.png") for n in (10, 11, 12)]
    if camera is not None:
        folder = root / "camera" / "train" / "aachen"
        folder.mkdir(parents=True)
        (folder / "aachen_000001_000019_camera.json").write_text(camera)
    return (str(root), "train", "aachen", 1, paths)


@pytest.mark.parametrize(
    "camera,code",
    [(None, "missing_calibration"), ("{}", "bad_calibration"), (camera_text(fx=-1.0), "bad_calibration")],
)
def test_planner_dead_letters_a_sequence_without_a_usable_camera(tmp_path, camera, code):
    planner = PlanCityscapesSequence(PreprocessConfig(source="cityscapes"))
    (output,) = list(planner.process(sequence(tmp_path, camera)))
    assert isinstance(output, pvalue.TaggedOutput) and output.value.code == code


def test_planner_carries_the_camera_k_as_a_matrix(tmp_path):
    planner = PlanCityscapesSequence(PreprocessConfig(source="cityscapes"))
    refs = list(planner.process(sequence(tmp_path, camera_text())))
    assert [ref.raw_index for ref in refs] == [10, 12] and all(isinstance(ref, FrameRef) for ref in refs)
    assert refs[0].intrinsics.shape == (3, 3)
    np.testing.assert_allclose(refs[0].intrinsics, K)
