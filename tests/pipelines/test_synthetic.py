"""The pipeline on small synthetic worlds (stages.synthesize) in the KITTI raw, Cityscapes and video layouts:
records' K equals the ground-truth K transformed by the crop/resize; masks are the aligned ground-truth
masks; triplets are three consecutive samples of one sequence."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from formats import groundtruth, kitti, struct2depth
from formats.camera import crop_and_resize_intrinsics, scale_intrinsics
from pipelines.geometry import transform_mask
from pipelines.mask_alignment import align_triplet
from pipelines.sources import cityscapes_crop_box
from stages import synthesize
from tests.pipelines.helpers import preprocess

NATIVE = (256, 128)
SIZE = (64, 32)
FRAMES = 7


@pytest.fixture(scope="session")
def worlds(tmp_path_factory):
    roots = {}
    for layout in ("kitti_raw", "cityscapes", "video"):
        root = tmp_path_factory.mktemp(f"synthetic_{layout}")
        synthesize.main(
            [
                "--layout",
                layout,
                "--world",
                "original",  # the layouts' mechanics on the original world (the wild one: tests/synthetic/test_wild.py)
                "--output",
                str(root),
                "--num_sequences",
                "2",
                "--frames_per_sequence",
                str(FRAMES),
                "--seed",
                "5",
                "--width",
                str(NATIVE[0]),
                "--height",
                str(NATIVE[1]),
                "--quiet",
            ]
        )
        roots[layout] = root
    return roots


def records(output):
    return sorted(struct2depth.read_list(Path(output) / "train.txt") + struct2depth.read_list(Path(output) / "val.txt"))


@pytest.mark.slow
def test_kitti_layout_records_match_ground_truth(worlds, tmp_path):
    root = worlds["kitti_raw"]
    preprocess(
        "kitti_raw",
        root,
        tmp_path,
        width=SIZE[0],
        height=SIZE[1],
        segmenter="ground_truth",
        kitti_raw={"exclude_eigen_test_scenes": False},
    )
    entries = records(tmp_path)
    assert len(entries) == 2 * (FRAMES - 2)
    aligned_any = False
    for folder, record_id in entries:
        drive = root / "2011_09_26" / folder[:-3]
        truth = groundtruth.read_sequence(drive / "groundtruth")
        frames, masks, intrinsics = struct2depth.read_record(tmp_path, folder, record_id)
        scale = (SIZE[0] / NATIVE[0], SIZE[1] / NATIVE[1])
        calibration = kitti.raw_camera_intrinsics(kitti.read_calibration(drive.parent / "calib_cam_to_cam.txt"))
        np.testing.assert_array_equal(intrinsics, scale_intrinsics(calibration, *scale))  # exact, from P_rect_02
        # the calibration file holds 7 significant digits (KITTI's %e), the sidecar the full float64
        np.testing.assert_allclose(intrinsics, scale_intrinsics(truth.intrinsics, *scale), rtol=1e-6)
        middle = int(record_id)
        raw = [cv2.imread(str(drive / "image_02" / "data" / f"{k:010d}.png")) for k in (middle - 1, middle, middle + 1)]
        for frame, image in zip(frames, raw):  # the same sequence, consecutive frames, in order
            expected = cv2.cvtColor(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(frame, expected)
        native_masks = [
            groundtruth.read_mask(drive / "groundtruth", k).astype(np.uint8) for k in (middle - 1, middle, middle + 1)
        ]
        expected_masks = align_triplet([transform_mask(mask, SIZE) for mask in native_masks])
        for mask, expected in zip(masks, expected_masks):
            np.testing.assert_array_equal(mask, expected)
        aligned_any |= any(mask.any() for mask in masks)
    assert aligned_any, "the synthetic world should have moving objects in some triplet"


@pytest.mark.slow
def test_cityscapes_layout_crop_and_intrinsics(worlds, tmp_path):
    root = worlds["cityscapes"]
    preprocess("cityscapes", root, tmp_path, width=SIZE[0], height=SIZE[1], segmenter="ground_truth")
    entries = records(tmp_path)
    # every 2nd frame of 7: samples 0, 2, 4, 6 -> middles 2 and 4 in each of the 2 sequences
    assert entries == [(f"synthcity_{s:06d}", f"{m:010d}") for s in (0, 1) for m in (2, 4)]
    box = cityscapes_crop_box(NATIVE)
    assert box == (32, 96, 24, 232)
    for folder, record_id in entries:
        truth = groundtruth.read_sequence(root / "groundtruth" / "train" / folder)
        _, _, intrinsics = struct2depth.read_record(tmp_path, folder, record_id)
        np.testing.assert_allclose(intrinsics, crop_and_resize_intrinsics(truth.intrinsics, box, SIZE), rtol=1e-12)


@pytest.mark.slow
def test_video_layout_triplets_stay_within_each_video(worlds, tmp_path):
    root = worlds["video"]
    manifest = preprocess(
        "video",
        str(root / "*.mp4"),
        tmp_path,
        width=SIZE[0],
        height=SIZE[1],
        segmenter="ground_truth",
        video={"fps": 10.0},
    )
    entries = records(tmp_path)
    assert entries == [(f"synthetic_{s:04d}", f"{m:010d}") for s in (0, 1) for m in range(1, FRAMES - 1)]
    for folder, record_id in entries:
        truth = groundtruth.read_sequence(root / "groundtruth" / folder)
        _, _, intrinsics = struct2depth.read_record(tmp_path, folder, record_id)
        np.testing.assert_allclose(
            intrinsics, scale_intrinsics(truth.intrinsics, SIZE[0] / NATIVE[0], SIZE[1] / NATIVE[1]), rtol=1e-12
        )
    assert {entry["sequence"]: entry["frames"] for entry in manifest["sequences"]} == {
        "synthetic_0000": FRAMES,
        "synthetic_0001": FRAMES,
    }
