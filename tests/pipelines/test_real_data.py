"""The pipeline on the real samples in ../shared/data/real (read in place, never copied)."""

import cv2
import numpy as np
import pytest

from formats import kitti, struct2depth
from formats.camera import scale_intrinsics
from pipelines.config import PreprocessConfig
from pipelines.records import Frame, Triplet, VideoInput
from pipelines.video import DecodeVideo
from pipelines.writers import write_triplet
from tests.pipelines.helpers import dead_letters, preprocess


@pytest.mark.slow
def test_kitti_raw_sample_records_have_exactly_scaled_calibration(real_data, tmp_path):
    root = real_data / "kitti_raw_mini"
    manifest = preprocess("kitti_raw", root, tmp_path, width=416, height=128)
    folder = "2011_09_26_drive_sfnd_sync_02"
    entries = struct2depth.read_list(tmp_path / "train.txt") + struct2depth.read_list(tmp_path / "val.txt")
    assert sorted(entries) == [(folder, struct2depth.sample_id(k)) for k in (1, 2, 3, 4)]
    calibration = kitti.read_calibration(root / "2011_09_26" / "calib_cam_to_cam.txt")
    expected = scale_intrinsics(kitti.raw_camera_intrinsics(calibration, 2), 416 / 1242, 128 / 375)
    frames, masks, intrinsics = struct2depth.read_record(tmp_path, folder, "0000000002")
    np.testing.assert_array_equal(intrinsics, expected)  # exact: the text round-trips float64
    raw = cv2.imread(str(root / "2011_09_26" / "2011_09_26_drive_sfnd_sync" / "image_02" / "data" / "0000000001.png"))
    np.testing.assert_array_equal(
        frames[0], cv2.cvtColor(cv2.resize(raw, (416, 128), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    )
    assert all(not mask.any() for mask in masks)
    assert manifest["counts"]["frames_read"] == 6 and manifest["counts"]["triplets_written"] == 4
    assert dead_letters(tmp_path) == []


def test_dashcam_video_is_sampled_at_two_fps_from_container_timestamps(real_data):
    config = PreprocessConfig.from_mapping({"source": "video", "input": "", "output": "", "width": 64, "height": 36})
    path = str(real_data / "video" / "dashcam_highway.mp4")
    out = list(DecodeVideo(config).process(VideoInput("video", "dashcam_highway", path)))
    frames = [item for item in out if isinstance(item, Frame)]
    assert len(frames) == len(out) == 18  # 8.8 s at 2 fps: targets 0, 0.5, ..., 8.5; no dead letters
    times = np.array([frame.timestamp for frame in frames])
    np.testing.assert_allclose(times - 0.5 * np.arange(18), 0.02, atol=0.0201)  # within one 25 fps frame
    assert [frame.raw_index for frame in frames[:4]] == [0, 13, 25, 38]
    np.testing.assert_allclose(
        frames[0].intrinsics,
        scale_intrinsics(np.array([[960.0, 0, 479.5], [0, 960.0, 269.5], [0, 0, 1]]), 64 / 960, 36 / 540),
    )


@pytest.mark.slow
def test_dashcam_video_pipeline_writes_its_triplets(real_data, tmp_path):
    manifest = preprocess("video", real_data / "video" / "dashcam_highway.mp4", tmp_path)
    assert manifest["counts"]["frames_read"] == 18
    assert manifest["counts"]["triplets_written"] == 16
    ids = [record_id for _, record_id in struct2depth.read_list(tmp_path / "train.txt")]
    assert ids[:2] == ["0000000013", "0000000025"]  # the middle frame's native frame number
    struct2depth.read_record(tmp_path, "dashcam_highway", ids[0])


def test_writer_reproduces_the_struct2depth_example_format(real_data, tmp_path):
    example = real_data / "struct2depth_example"
    ((folder, record_id),) = struct2depth.read_list(example / "train.txt")
    frames, masks, intrinsics = struct2depth.read_record(example, folder, record_id)
    triplet = Triplet(
        folder,
        record_id,
        tuple(Frame("example", folder, k, "", 0.0, frames[k], intrinsics) for k in range(3)),
        tuple(masks),
    )
    write_triplet(str(tmp_path), triplet)
    for suffix in (".png", "-fseg.png"):
        ours = (tmp_path / folder / f"{record_id}{suffix}").read_bytes()
        theirs = (example / folder / f"{record_id}{suffix}").read_bytes()
        assert ours[:8] == theirs[:8] == b"\x89PNG\r\n\x1a\n"
        assert ours[12:29] == theirs[12:29]  # IHDR: 1248 x 128, 8-bit, colour type 2 (RGB), same flags
        np.testing.assert_array_equal(
            cv2.imread(str(tmp_path / folder / f"{record_id}{suffix}")),
            cv2.imread(str(example / folder / f"{record_id}{suffix}")),
        )
    ours_cam = (tmp_path / folder / f"{record_id}_cam.txt").read_text()
    assert ours_cam.strip() == (example / folder / f"{record_id}_cam.txt").read_text().strip()
    reread = struct2depth.read_record(tmp_path, folder, record_id)
    np.testing.assert_array_equal(reread[2], intrinsics)
