"""Every kind of bad input lands in dead_letter.jsonl with its reason; the good inputs are all written."""

from pathlib import Path

import pytest

from formats import struct2depth
from tests.pipelines.fixtures import frame_image, make_kitti_drive, make_video, write_png
from tests.pipelines.helpers import dead_letters, preprocess

DATE = "2011_09_26"


def drive_folder(drive: int) -> str:
    return f"{DATE}_drive_{drive:04d}_sync_02"


@pytest.fixture(scope="module")
def bad_kitti(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti_bad")
    make_kitti_drive(root, DATE, 1, 6)  # clean: records 1..4
    make_kitti_drive(root, DATE, 2, 4)  # an Eigen test scene: filtered
    drive = make_kitti_drive(root, DATE, 3, 9)
    (drive / "image_02/data/0000000002.png").write_bytes(b"")  # zero-byte frame
    (drive / "image_02/data/0000000006.png").write_bytes(b"not a png")  # unreadable frame
    drive = make_kitti_drive(root, DATE, 4, 7)
    write_png(drive / "image_02/data/0000000003.png", frame_image(3, (80, 48)))  # size change
    make_kitti_drive(root, DATE, 5, 7, timestamps=[0.0, 0.1, 0.2, 0.15, 0.4, 0.5, 0.6])  # backwards
    make_kitti_drive(root, "2011_09_28", 6, 5, calibration=False)  # missing calibration
    return root


def test_bad_kitti_inputs_are_dead_lettered_and_good_ones_written(bad_kitti, tmp_path):
    manifest = preprocess("kitti_raw", bad_kitti, tmp_path)
    letters = {
        (Path(letter["frame"]).relative_to(bad_kitti).as_posix(), letter["reason"].split(":")[0])
        for letter in dead_letters(tmp_path)
    }
    assert letters == {
        (f"{DATE}/{DATE}_drive_0003_sync/image_02/data/0000000002.png", "unreadable_frame"),
        (f"{DATE}/{DATE}_drive_0003_sync/image_02/data/0000000006.png", "unreadable_frame"),
        (f"{DATE}/{DATE}_drive_0004_sync/image_02/data/0000000003.png", "size_change"),
        (f"{DATE}/{DATE}_drive_0005_sync/image_02/data/0000000003.png", "non_monotonic_timestamp"),
        ("2011_09_28/2011_09_28_drive_0006_sync/image_02", "missing_calibration"),
    }
    records = sorted(struct2depth.read_list(tmp_path / "train.txt") + struct2depth.read_list(tmp_path / "val.txt"))
    expected = (
        [(drive_folder(1), struct2depth.sample_id(k)) for k in (1, 2, 3, 4)]
        + [(drive_folder(3), "0000000004")]
        + [(drive_folder(4), "0000000001"), (drive_folder(4), "0000000005")]
        + [(drive_folder(5), "0000000001"), (drive_folder(5), "0000000005")]
    )
    assert records == expected
    for folder, record_id in records:
        struct2depth.read_record(tmp_path, folder, record_id)
    assert manifest["counts"]["rejected"] == {
        "missing_calibration": 1,
        "non_monotonic_timestamp": 1,
        "size_change": 1,
        "unreadable_frame": 2,
    }
    assert manifest["counts"]["filtered"] == {"eigen_test_scene": 1}
    assert not (tmp_path / drive_folder(2)).exists()
    lines = (tmp_path / "dead_letter.jsonl").read_text().splitlines()
    assert lines == sorted(lines)


def test_bad_videos_are_dead_lettered_and_good_ones_written(tmp_path):
    videos = tmp_path / "videos"
    make_video(videos / "good.avi", 30, fourcc="MJPG")  # 3 s at 10 fps -> 6 samples at 2 fps
    data = make_video(tmp_path / "full.avi", 30, fourcc="MJPG").read_bytes()
    (videos / "truncated.avi").write_bytes(data[: int(len(data) * 0.6)])  # decodes ~16 of 30 frames
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (videos / "empty.mp4").write_bytes(b"")
    output = tmp_path / "out"
    manifest = preprocess("video", str(videos / "*"), output)
    reasons = {(Path(letter["frame"]).name, letter["reason"].split(":")[0]) for letter in dead_letters(output)}
    assert reasons == {
        ("corrupt.mp4", "corrupt_video"),
        ("empty.mp4", "corrupt_video"),
        ("truncated.avi", "truncated_video"),
    }
    records = struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt")
    good = sorted(record_id for folder, record_id in records if folder == "good")
    assert good == ["0000000005", "0000000010", "0000000015", "0000000020"]
    truncated = sorted(record_id for folder, record_id in records if folder == "truncated")
    assert truncated == ["0000000005", "0000000010"]  # samples at frames 0, 5, 10, 15 of 16 decodable
    assert manifest["counts"]["rejected"] == {"corrupt_video": 2, "truncated_video": 1}


def test_image_folder_with_an_unreadable_frame_and_backward_timestamps(tmp_path):
    folder = tmp_path / "frames" / "walk"
    for k in range(8):
        write_png(folder / f"img{k}.png", frame_image(k))
    (folder / "img5.png").write_bytes(b"\x89PNG garbage")
    (folder / "timestamps.txt").write_text("0.0\n0.1\n0.2\n0.3\n0.4\n0.5\n0.6\n0.55\n")
    output = tmp_path / "out"
    preprocess("image_folder", tmp_path / "frames", output)
    reasons = sorted((Path(letter["frame"]).name, letter["reason"].split(":")[0]) for letter in dead_letters(output))
    assert reasons == [("img5.png", "unreadable_frame"), ("img7.png", "non_monotonic_timestamp")]
    records = struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt")
    assert sorted(records) == [("walk", "0000000001"), ("walk", "0000000002"), ("walk", "0000000003")]
    _, _, intrinsics = struct2depth.read_record(output, "walk", "0000000002")
    assert intrinsics[0, 0] == pytest.approx(96 * 48 / 96)  # default guess fx = W, scaled to 48 px
