"""Hand-computed cases and invariants for the shared file formats and intrinsics transforms."""

import os
from pathlib import Path

import numpy as np
import pytest

from formats import atomic, camera, cityscapes, groundtruth, kitti, struct2depth


def test_scale_intrinsics_hand_computed():
    K = camera.intrinsics_matrix(100.0, 200.0, 49.5, 24.5)  # principal point at the centre of a 100x50 image
    scaled = camera.scale_intrinsics(K, 0.5, 0.5)
    # centre of the 50x25 image is (24.5, 12.0): exact pixel-centre rule keeps the centre the centre
    np.testing.assert_allclose(scaled, [[50, 0, 24.5], [0, 100, 12.0], [0, 0, 1]])


def test_resized_pixel_aspect_and_tie_focal_aspect_hand_computed():
    # square pixels of a 1242x375 frame resized to 416x128: fy/fx = (128/375) / (416/1242)
    assert camera.resized_pixel_aspect((1242, 375), (416, 128)) == pytest.approx((128 / 375) / (416 / 1242))
    K = camera.scale_intrinsics(camera.intrinsics_matrix(700.0, 700.0, 620.5, 187.5), 416 / 1242, 128 / 375)
    assert K[1, 1] / K[0, 0] == pytest.approx(camera.resized_pixel_aspect((1242, 375), (416, 128)))
    head = np.stack([camera.intrinsics_matrix(100.0, 7.0, 50.0, 20.0), camera.intrinsics_matrix(80.0, 1.0, 40.0, 30.0)])
    tied = camera.tie_focal_aspect(head, [0.5, 2.0])
    np.testing.assert_allclose(tied[:, 1, 1], [50.0, 160.0])
    np.testing.assert_allclose(np.delete(tied.reshape(2, 9), 4, axis=1), np.delete(head.reshape(2, 9), 4, axis=1))
    assert head[0, 1, 1] == 7.0  # the input is not changed
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="pixel aspect"):
            camera.tie_focal_aspect(head, bad)
    with pytest.raises(ValueError, match="positive"):
        camera.resized_pixel_aspect((0, 375), (416, 128))


def test_scale_matches_cv2_resize_of_a_dot():
    import cv2

    image = np.zeros((40, 80), np.float32)
    image[10:12, 30:32] = 1.0  # blob centred at (30.5, 10.5)
    resized = cv2.resize(image, (40, 20), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(resized)
    weights = resized[ys, xs]
    centre = (np.sum(xs * weights) / weights.sum(), np.sum(ys * weights) / weights.sum())
    K = camera.intrinsics_matrix(1.0, 1.0, 30.5, 10.5)
    scaled = camera.scale_intrinsics(K, 0.5, 0.5)
    np.testing.assert_allclose(centre, (scaled[0, 2], scaled[1, 2]), atol=1e-6)


def test_crop_then_resize_cityscapes_example():
    # u0 = 1096.98 in the 2048x1024 original; exact crop 192.. and scale 416/1664 -> ~226.1
    K = camera.intrinsics_matrix(2262.52, 2265.3017905988554, 1096.98, 513.137)
    out = camera.crop_and_resize_intrinsics(K, cityscapes.CROP_BOX, (416, 128))
    assert out[0, 0] == pytest.approx(2262.52 * 0.25)
    assert out[0, 2] == pytest.approx(0.25 * (1096.98 - 192 + 0.5) - 0.5)
    assert out[1, 2] == pytest.approx(0.25 * (513.137 - 256 + 0.5) - 0.5)


@pytest.mark.parametrize("bad", [np.eye(2), np.diag([0.0, 1.0, 1.0]), np.full((3, 3), np.nan)])
def test_invalid_intrinsics_rejected(bad):
    with pytest.raises(ValueError):
        camera.validate_intrinsics(bad)


def test_reads_the_release_example(real_data):
    root = real_data / "struct2depth_example"
    entries = struct2depth.read_list(root / "train.txt")
    assert entries == [("erfurt_93", "0000000002")]
    frames, masks, K = struct2depth.read_record(root, *entries[0])
    assert [f.shape for f in frames] == [(128, 416, 3)] * 3
    assert masks[0].dtype == np.uint8 and masks[0].shape == (128, 416)
    assert K[0, 0] == pytest.approx(565.63) and K[0, 2] == pytest.approx(222.8240625)


def test_encode_png_of_a_blank_image_is_the_encoders_bytes_and_decodes_to_zeros():
    import cv2

    for shape in [(4, 12, 3), (4, 12), (5, 7, 3)]:
        blank = np.zeros(shape, np.uint8)
        expected = cv2.imencode(".png", blank, struct2depth.PNG_PARAMS)[1].tobytes()
        assert struct2depth.encode_png(blank) == expected == struct2depth.encode_png(blank.copy())
        assert not cv2.imdecode(np.frombuffer(expected, np.uint8), cv2.IMREAD_UNCHANGED).any()
    one = np.zeros((4, 12, 3), np.uint8)
    one[3, 11, 2] = 1  # one non-zero value: encoded for real, not the cached blank
    assert struct2depth.encode_png(one) != struct2depth.encode_png(np.zeros((4, 12, 3), np.uint8))
    assert struct2depth.decode_rgb(struct2depth.encode_png(one))[3, 11, 2] == 1


def test_record_roundtrip_is_byte_identical(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(3)]
    masks = [np.zeros((8, 12), np.uint8), np.full((8, 12), 3, np.uint8), np.eye(8, 12, dtype=np.uint8) * 7]
    K = camera.intrinsics_matrix(10.5, 11.25, 5.5, 3.5)
    struct2depth.write_record(tmp_path / "a", "seq", "0000000001", frames, masks, K)
    struct2depth.write_record(tmp_path / "b", "seq", "0000000001", frames, masks, K)
    for suffix in (".png", "-fseg.png", "_cam.txt"):
        name = f"0000000001{suffix}"
        assert (tmp_path / "a/seq" / name).read_bytes() == (tmp_path / "b/seq" / name).read_bytes()
    read_frames, read_masks, read_K = struct2depth.read_record(tmp_path / "a", "seq", "0000000001")
    for a, b in zip(read_frames + read_masks, frames + masks):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read_K, K)


def test_bad_cam_file_gives_clear_error(tmp_path):
    (tmp_path / "x_cam.txt").write_text("1,2,3\n")
    with pytest.raises(struct2depth.RecordFormatError, match="9 comma-separated"):
        struct2depth.read_intrinsics(tmp_path / "x_cam.txt")
    with pytest.raises(struct2depth.RecordFormatError, match="empty"):
        struct2depth.decode_rgb(b"", "zero.png")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_batch_publishes_files_only_after_one_flush_and_in_order(tmp_path, monkeypatch):
    events = []
    real_replace = os.replace
    monkeypatch.setattr(atomic, "_make_durable", lambda paths: events.append(("durable", len(paths))))
    monkeypatch.setattr(
        atomic.os,
        "replace",
        lambda source, target: events.append(("rename", Path(target).name)) or real_replace(source, target),
    )
    batch = atomic.Batch()
    batch.write_bytes(tmp_path / "a" / "x-fseg.png", b"seg")
    batch.write_text(tmp_path / "a" / "x_cam.txt", "k\n")
    batch.write_bytes(tmp_path / "a" / "x.png", b"image")
    assert len(batch) == 3
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert all(atomic.temporary_target(name) for name in names)  # nothing visible yet; temporaries the next run removes
    batch.commit()
    assert events == [("durable", 3), ("rename", "x-fseg.png"), ("rename", "x_cam.txt"), ("rename", "x.png")]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x-fseg.png", "x.png", "x_cam.txt"]
    assert (tmp_path / "a" / "x_cam.txt").read_text() == "k\n" and len(batch) == 0
    assert oct((tmp_path / "a" / "x.png").stat().st_mode & 0o777) == "0o644"


def test_atomic_batch_discards_on_failure_and_keeps_earlier_files(tmp_path):
    atomic.write_bytes(tmp_path / "x.png", b"old")
    with pytest.raises(RuntimeError):
        with atomic.Batch() as batch:
            batch.write_bytes(tmp_path / "x.png", b"new")
            batch.write_bytes(tmp_path / "y.png", b"new")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"] and (tmp_path / "x.png").read_bytes() == b"old"


def test_atomic_batch_flush_failure_publishes_nothing(tmp_path, monkeypatch):
    def failing(fd):
        return -1

    monkeypatch.setattr(atomic, "_SYNCFS", failing)
    batch = atomic.Batch()
    batch.write_bytes(tmp_path / "x.png", b"new")
    with pytest.raises(OSError, match="syncfs failed"):
        batch.commit()
    assert list(tmp_path.iterdir()) == []


def test_atomic_batch_without_syncfs_fsyncs_every_file(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic, "_SYNCFS", None)
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    with atomic.Batch() as batch:
        for name in ("a", "b", "c"):
            batch.write_bytes(tmp_path / name, name.encode())
    assert len(synced) == 3 and (tmp_path / "c").read_bytes() == b"c"


def test_real_kitti_calibration(real_data):
    calib = kitti.read_calibration(real_data / "kitti_raw_mini/2011_09_26/calib_cam_to_cam.txt")
    K = kitti.raw_camera_intrinsics(calib, 2)
    assert K[0, 0] == pytest.approx(721.5377) and K[1, 2] == pytest.approx(172.854)
    assert kitti.raw_image_size(calib, 2) == (1242, 375)
    with pytest.raises(kitti.CalibrationError, match="P_rect_07"):
        kitti.raw_camera_intrinsics(calib, 7)


def test_real_odometry_poses_roundtrip(real_data, tmp_path):
    poses = kitti.read_poses(real_data / "kitti_odometry/poses/09.txt")
    assert poses.shape == (1591, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
    kitti.write_poses(tmp_path / "p.txt", poses)
    np.testing.assert_allclose(kitti.read_poses(tmp_path / "p.txt"), poses, rtol=1e-8, atol=1e-12)


def test_raw_timestamps_roundtrip():
    import datetime as dt

    seconds = np.array([0.0, 0.1036, 0.2071234])
    text = kitti.format_raw_timestamps(seconds, dt.datetime(2011, 9, 26, 13, 2, 25))
    np.testing.assert_allclose(kitti.parse_raw_timestamps(text), seconds, atol=1e-9)


def test_groundtruth_roundtrip(tmp_path):
    truth = groundtruth.GroundTruth(
        np.tile(np.eye(4), (2, 1, 1)), camera.intrinsics_matrix(5, 5, 2, 2), np.array([0.0, 0.1])
    )
    groundtruth.write_sequence(tmp_path, truth)
    groundtruth.write_frame(tmp_path, 1, np.ones((3, 4)), np.full((3, 4), 300))
    back = groundtruth.read_sequence(tmp_path)
    np.testing.assert_allclose(back.poses, truth.poses)
    assert groundtruth.read_mask(tmp_path, 1).dtype == np.uint16
    assert groundtruth.read_depth(tmp_path, 1).dtype == np.float32
