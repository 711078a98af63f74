"""One bad input never sinks a preprocessing job (issue 10, items 5, 6, 8 and 9): a bad calibration, a
decompression-bomb header, an unsafe folder name or a grey frame becomes a dead letter (or a safe name),
and the good inputs are written. Fast tier: these are safety rules."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from formats import camera, kitti, struct2depth
from pipelines.records import safe_sequence_name
from pipelines.sources import is_grey
from tests.pipelines.fixtures import K_NATIVE, frame_image, kitti_calibration, make_kitti_drive, write_png
from tests.pipelines.helpers import dead_letters, preprocess

DATE = "2011_09_26"


def records_of(output: Path):
    return sorted(struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt"))


def reasons(output: Path):
    return sorted((letter["frame"], letter["reason"].split(":")[0]) for letter in dead_letters(output))


# --- item 5: K validated where it is parsed; the drive is dead-lettered -----------------------------------


def test_kitti_date_with_zero_focal_length_is_a_dead_letter_and_other_dates_are_written(tmp_path):
    root = tmp_path / "kitti"
    make_kitti_drive(root, DATE, 1, 5)
    drive = make_kitti_drive(root, "2011_09_28", 16, 5)
    bad = K_NATIVE.copy()
    bad[0, 0] = 0.0
    (drive.parent / "calib_cam_to_cam.txt").write_text(kitti_calibration(bad))
    output = tmp_path / "out"
    preprocess("kitti_raw", root, output)
    assert reasons(output) == [(str(drive / "image_02"), "bad_calibration")]
    assert "focal lengths must be positive" in dead_letters(output)[0]["reason"]
    assert records_of(output) == [(f"{DATE}_drive_0001_sync_02", f"{k:010d}") for k in (1, 2, 3)]


@pytest.mark.parametrize(
    "fx, cx, cy, ok",
    [
        (100.0, 47.5, 23.5, True),  # centre of a 96 x 48 image
        (100.0, -24.5, 23.5, True),  # on the margin: -0.5 - 0.25 * 96
        (100.0, -24.6, 23.5, False),  # just outside it
        (100.0, 47.5, 59.5, True),  # 48 - 0.5 + 0.25 * 48
        (100.0, 47.5, 59.6, False),
        (-1.0, 47.5, 23.5, False),  # negative focal length
    ],
)
def test_principal_point_must_lie_inside_or_near_the_image(fx, cx, cy, ok):
    K = camera.intrinsics_matrix(fx, 100.0, cx, cy)
    if ok:
        np.testing.assert_array_equal(camera.check_intrinsics_for_image(K, (96, 48)), K)
    else:
        with pytest.raises(ValueError):
            camera.check_intrinsics_for_image(K, (96, 48))


def test_kitti_principal_point_checked_against_s_rect():
    far = K_NATIVE.copy()
    far[0, 2] = 1000.0
    calibration = kitti.parse_calibration(kitti_calibration(far))
    with pytest.raises(kitti.InvalidIntrinsicsError, match="principal point"):
        kitti.raw_camera_intrinsics(calibration, 2, "calib")


# --- item 6: the header is checked before decoding -------------------------------------------------------


def bomb_png() -> bytes:
    """167 bytes whose header claims 100000 x 100000 RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = b"\x89PNG\r\n\x1a\n" + chunk
    return data + b"\x00" * (167 - len(data))


def test_decompression_bomb_frame_is_a_dead_letter(tmp_path):
    root = tmp_path / "kitti"
    drive = make_kitti_drive(root, DATE, 1, 7)
    bomb = drive / "image_02" / "data" / "0000000006.png"
    bomb.write_bytes(bomb_png())
    output = tmp_path / "out"
    preprocess("kitti_raw", root, output)
    assert reasons(output) == [(str(bomb), "image_too_large")]
    assert "100000x100000" in dead_letters(output)[0]["reason"]
    assert records_of(output) == [(f"{DATE}_drive_0001_sync_02", f"{k:010d}") for k in (1, 2, 3, 4)]


# --- item 8: sequence names are safe for every source ----------------------------------------------------


def test_kitti_drive_folder_with_a_space_gives_two_field_list_lines(tmp_path):
    root = tmp_path / "kitti"
    drive = make_kitti_drive(root, DATE, 7, 5)
    spaced = drive.parent / f"{DATE}_drive_0007 copy_sync"
    drive.rename(spaced)
    output = tmp_path / "out"
    preprocess("kitti_raw", root, output)
    name = safe_sequence_name(f"{DATE}_drive_0007 copy_sync_02")
    assert " " not in name
    for line in (output / "train.txt").read_text().splitlines() + (output / "val.txt").read_text().splitlines():
        assert len(line.split()) == 2
    assert records_of(output) == [(name, f"{k:010d}") for k in (1, 2, 3)]
    struct2depth.read_record(output, name, "0000000002")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2011_09_26_drive_0001_sync_02", "2011_09_26_drive_0001_sync_02"),
        ("erfurt_000093", "erfurt_000093"),
    ],
)
def test_safe_names_keep_safe_names(raw, expected):
    assert safe_sequence_name(raw) == expected


@pytest.mark.parametrize("raw", ["drive 1", "..", ".hidden", "a/b", "-x", "", "día"])
def test_unsafe_names_become_one_safe_component_that_never_collides(raw):
    name = safe_sequence_name(raw)
    assert name and name[0] not in ".-" and "/" not in name and " " not in name
    assert name not in (".", "..")
    assert name != safe_sequence_name(raw.replace(" ", "_")) or raw == raw.replace(" ", "_")


def test_space_and_underscore_names_stay_distinct():
    assert safe_sequence_name("drive 1") != safe_sequence_name("drive_1") == "drive_1"


# --- item 9: grey frames in a colour sequence ------------------------------------------------------------


def test_grey_frames_are_dead_letters(tmp_path):
    folder = tmp_path / "frames" / "walk"
    for k in range(10):
        write_png(folder / f"{k:03d}.png", frame_image(k))
    grey_file = folder / "003.png"  # stored as a 1-channel PNG
    write_png(grey_file, frame_image(3)[:, :, 0])
    grey_rgb = folder / "006.png"  # stored as RGB with three equal channels
    write_png(grey_rgb, np.repeat(frame_image(6)[:, :, :1], 3, axis=2))
    output = tmp_path / "out"
    preprocess("image_folder", tmp_path / "frames", output)
    assert reasons(output) == [(str(grey_file), "grey_frame"), (str(grey_rgb), "grey_frame")]
    assert records_of(output) == [("walk", "0000000001"), ("walk", "0000000008")]  # no triplet spans a grey frame


def test_is_grey():
    colour = frame_image(1)
    assert not is_grey(colour)
    assert is_grey(np.repeat(colour[:, :, :1], 3, axis=2))
    assert is_grey(colour[:, :, 0])
    assert not is_grey(np.zeros((4, 4, 3), np.uint8))  # uniform: no colour to lose
    grey = np.repeat(colour[:, :, :1], 3, axis=2)
    for row in range(grey.shape[0]):  # one coloured pixel in any row (sampled or not) makes it a colour frame
        tinted = grey.copy()
        tinted[row, -1, 2] ^= 1
        assert not is_grey(tinted), row


# --- issue 13 §3 (part): a named intrinsics file must exist ----------------------------------------------


def test_named_but_missing_intrinsics_file_fails_before_work(tmp_path):
    folder = tmp_path / "frames"
    for k in range(4):
        write_png(folder / f"{k}.png", frame_image(k))
    with pytest.raises(FileNotFoundError, match="intrinsics file"):
        preprocess("image_folder", folder, tmp_path / "out", image_folder={"intrinsics_file": str(tmp_path / "K.txt")})
    assert not (tmp_path / "out").exists()


def test_malformed_intrinsics_file_is_a_dead_letter_not_a_guess(tmp_path):
    folder = tmp_path / "frames" / "walk"
    for k in range(4):
        write_png(folder / f"{k}.png", frame_image(k))
    (folder / "intrinsics.txt").write_text("120, 0, 47.5, 0, 118\n")
    other = tmp_path / "frames" / "run"
    for k in range(4):
        write_png(other / f"{k}.png", frame_image(k + 20))
    output = tmp_path / "out"
    preprocess("image_folder", tmp_path / "frames", output)
    assert reasons(output) == [(str(folder / "intrinsics.txt"), "bad_calibration")]
    assert {folder for folder, _ in records_of(output)} == {"run"}


# --- issue 13 §3: lens distortion undistorted before the resize, K exact ---------------------------------


def test_image_folder_with_distortion_gives_straight_frames_and_exact_K(tmp_path):
    import cv2

    from formats.camera import scale_intrinsics
    from tests.formats.test_distortion import DIST, SIZE, K, corners, distorted, ideal_checkerboard, max_line_residual

    bent = distorted(ideal_checkerboard(*SIZE))
    colour = np.stack([bent, (bent * 0.8 + 20).astype(np.uint8), bent], axis=-1)  # BGR, not grey
    folder = tmp_path / "frames" / "board"
    for k in range(3):
        write_png(folder / f"{k}.png", colour)
    (folder / "intrinsics.txt").write_text(
        ",".join(repr(float(v)) for v in K.reshape(-1)) + "\n" + " ".join(repr(float(v)) for v in DIST) + "\n"
    )
    output = tmp_path / "out"
    preprocess("image_folder", tmp_path / "frames", output, width=320, height=240)
    frames, _, intrinsics = struct2depth.read_record(output, "board", "0000000001")
    np.testing.assert_array_equal(intrinsics, scale_intrinsics(K, 0.5, 0.5))
    assert max_line_residual(corners(cv2.cvtColor(frames[1], cv2.COLOR_RGB2GRAY))) < 0.5
    # without the distortion line the same frames stay bent: the check above can fail
    (folder / "intrinsics.txt").write_text(",".join(repr(float(v)) for v in K.reshape(-1)) + "\n")
    preprocess("image_folder", tmp_path / "frames", output, width=320, height=240)
    frames, _, _ = struct2depth.read_record(output, "board", "0000000001")
    assert max_line_residual(corners(cv2.cvtColor(frames[1], cv2.COLOR_RGB2GRAY))) > 1.0


def test_ground_truth_and_detectron2_masks_follow_the_undistortion():
    from formats.distortion import undistort_mask
    from pipelines.geometry import mask_to_frame, transform_mask
    from pipelines.sources import frame_from_bgr
    from tests.formats.test_distortion import DIST, SIZE, K

    native = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    native[..., 0] = 50
    frame = frame_from_bgr(
        native, "image_folder", "s", 0, "f", 0.0, K, (320, 240), "none", False, None, 0, 0, tuple(DIST)
    )
    ids = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    ids[:40, :60] = 3  # an object in the (strongly distorted) corner
    expected = transform_mask(undistort_mask(ids, K, DIST), (320, 240))
    np.testing.assert_array_equal(mask_to_frame(frame, ids), expected)
    assert not np.array_equal(expected, transform_mask(ids, (320, 240)))


def test_video_with_malformed_camera_file_is_a_dead_letter(tmp_path):
    from tests.pipelines.fixtures import make_video

    make_video(tmp_path / "videos" / "clip.avi", 12, fourcc="MJPG")
    camera = tmp_path / "camera.txt"
    camera.write_text("120,0,47.5,0,118,23.25,0,0,1\n-0.2 0.1\n")  # 2 distortion values: not a model
    output = tmp_path / "out"
    from pipelines.ownership import NoRecordsError

    with pytest.raises(NoRecordsError, match="bad_calibration 1"):
        preprocess("video", tmp_path / "videos" / "clip.avi", output, video={"intrinsics_file": str(camera)})
    assert not (output / "train.txt").exists()
