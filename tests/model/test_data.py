"""The tf.data reader: decoding, shared colour jitter, flip with the intrinsics rule, skipping of bad records."""

import logging

import numpy as np
import pytest

from formats import struct2depth
from formats.camera import intrinsics_matrix
from formats.params import ConfigError
from model import data

HEIGHT, WIDTH = 64, 96
K_TEST = intrinsics_matrix(80.0, 82.0, 40.25, 30.5)


def textured_frames(rng, height=HEIGHT, width=WIDTH, shift=3):
    """Three frames cut from one smooth random texture, each shifted ``shift`` px further right."""
    big = rng.random((height // 4 + 2, (width + 2 * shift) // 4 + 2, 3))
    import cv2

    texture = cv2.resize(big, (width + 2 * shift + 8, height + 8), interpolation=cv2.INTER_CUBIC)
    texture = (np.clip(texture[4 : 4 + height], 0, 1) * 255).astype(np.uint8)
    return [np.ascontiguousarray(texture[:, k * shift : k * shift + width]) for k in range(3)]


def write_records(root, count=4, seed=0, height=HEIGHT, width=WIDTH, intrinsics=K_TEST, folder="seq_00"):
    """Hand-made records with a moving-object box in each frame; writes <root>/train.txt; returns entries."""
    rng = np.random.default_rng(seed)
    entries = []
    for index in range(count):
        frames = textured_frames(rng, height, width)
        masks = []
        for k in range(3):
            mask = np.zeros((height, width), np.uint8)
            mask[10:30, 20 + 2 * k : 40 + 2 * k] = 7
            masks.append(mask)
        record_id = struct2depth.sample_id(index + 1)
        struct2depth.write_record(root, folder, record_id, frames, masks, intrinsics)
        entries.append((folder, record_id))
    struct2depth.write_list(root / "train.txt", entries)
    return entries


def first_batch(config):
    dataset, reader = data.make_dataset(config)
    return {key: value.numpy() for key, value in next(iter(dataset)).items()}, reader


def plain_config(root, **overrides):
    values = dict(
        img_height=HEIGHT, img_width=WIDTH, batch_size=1, shuffle=False, color_probability=0.0, flip_probability=0.0
    )
    values.update(overrides)
    return data.DataConfig(str(root), **values)


def test_reads_real_struct2depth_example(real_data):
    config = data.DataConfig(
        str(real_data / "struct2depth_example"),
        img_height=128,
        img_width=416,
        batch_size=2,
        color_probability=0.0,
        flip_probability=0.0,
    )
    batch, reader = first_batch(config)
    frames, masks, intrinsics = struct2depth.read_record(
        real_data / "struct2depth_example", "erfurt_93", "0000000002", width=416
    )
    assert batch["images"].shape == (2, 128, 416, 9) and batch["images"].dtype == np.float32
    assert batch["segmentation"].shape == (2, 128, 416, 3) and batch["segmentation"].dtype == np.uint8
    np.testing.assert_allclose(batch["images"][0, :, :, 3:6], frames[1] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(batch["segmentation"][0, :, :, 2], masks[2])
    np.testing.assert_allclose(batch["intrinsics"][0], intrinsics, rtol=1e-6)
    assert reader.report.skips == 0


def test_colour_jitter_is_shared_by_the_three_frames(tmp_path):
    rng = np.random.default_rng(3)
    frame = textured_frames(rng)[0]
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    struct2depth.write_record(tmp_path, "s", "0000000001", [frame] * 3, [mask] * 3, K_TEST)
    struct2depth.write_list(tmp_path / "train.txt", [("s", "0000000001")])
    batch, _ = first_batch(plain_config(tmp_path, color_probability=1.0, batch_size=4))
    images = batch["images"]
    assert not np.allclose(images[0, :, :, 0:3], frame / 255.0, atol=1e-3), "colour augmentation had no effect"
    np.testing.assert_allclose(images[..., 0:3], images[..., 3:6], atol=1e-6)
    np.testing.assert_allclose(images[..., 0:3], images[..., 6:9], atol=1e-6)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert not np.allclose(images[0], images[1], atol=1e-3), "examples must get independent jitter"


@pytest.mark.parametrize("rule, expected_cx", [("pixel_center", WIDTH - 1 - 40.25), ("release", WIDTH - 40.25)])
def test_flip_mirrors_images_masks_and_intrinsics(tmp_path, rule, expected_cx):
    write_records(tmp_path, count=1)
    plain, _ = first_batch(plain_config(tmp_path))
    flipped, _ = first_batch(plain_config(tmp_path, flip_probability=1.0, flip_rule=rule))
    np.testing.assert_array_equal(flipped["images"], plain["images"][:, :, ::-1])
    np.testing.assert_array_equal(flipped["segmentation"], plain["segmentation"][:, :, ::-1])
    expected = K_TEST.copy()
    expected[0, 2] = expected_cx
    np.testing.assert_allclose(flipped["intrinsics"][0], expected, rtol=1e-6)


def test_random_flip_and_shuffle_are_seeded(tmp_path):
    write_records(tmp_path, count=4)
    config = plain_config(tmp_path, shuffle=True, flip_probability=0.5, color_probability=0.5, batch_size=4)
    first, _ = first_batch(config)
    again, _ = first_batch(config)
    np.testing.assert_array_equal(first["images"], again["images"])
    many, _ = data.make_dataset(config)
    cxs = np.concatenate([batch["intrinsics"][:, 0, 2].numpy() for batch in many.take(8)])
    assert set(np.round(cxs, 3)) == {40.25, round(WIDTH - 1 - 40.25, 3)}, "both flipped and unflipped expected"


def test_bad_records_are_reported_and_skipped(tmp_path, caplog):
    entries = write_records(tmp_path, count=2)
    # Missing image, wrong frame size, broken intrinsics, undecodable PNG.
    frames = textured_frames(np.random.default_rng(1), HEIGHT, WIDTH + 32)
    struct2depth.write_record(tmp_path, "seq_00", "0000000011", frames, [np.zeros((HEIGHT, WIDTH + 32))] * 3, K_TEST)
    write_records(tmp_path / "tmp", count=1)
    for record_id in ("0000000012", "0000000013"):
        for source, target in zip(
            struct2depth.record_paths(tmp_path / "tmp", "seq_00", "0000000001"),
            struct2depth.record_paths(tmp_path, "seq_00", record_id),
        ):
            target.write_bytes(source.read_bytes())
    struct2depth.record_paths(tmp_path, "seq_00", "0000000012")[2].write_text("1,2,3\n")
    struct2depth.record_paths(tmp_path, "seq_00", "0000000013")[0].write_bytes(b"not a png")
    listed = [
        ("seq_00", "0000000099"),
        entries[0],
        ("seq_00", "0000000011"),
        ("seq_00", "0000000012"),
        ("seq_00", "0000000013"),
        entries[1],
    ]
    struct2depth.write_list(tmp_path / "train.txt", listed)

    config = plain_config(tmp_path, repeat=False, batch_size=1)
    with caplog.at_level(logging.WARNING, logger="model.data"):
        dataset, reader = data.make_dataset(config)
        batches = list(dataset)
    assert len(batches) == 2
    reasons = reader.report.reasons
    assert set(reasons) == {"seq_00 0000000099", "seq_00 0000000011", "seq_00 0000000012", "seq_00 0000000013"}
    assert "file not found" in reasons["seq_00 0000000099"]
    assert "expected 3 frames of 96x64" in reasons["seq_00 0000000011"]
    assert "9 comma-separated floats" in reasons["seq_00 0000000012"]
    assert "not a PNG, JPEG or BMP image" in reasons["seq_00 0000000013"]
    assert reader.report.skips == 4 and reader.report.decoded == 2
    assert sum("skipping record" in message for message in caplog.messages) == 4


def test_no_valid_record_is_a_clear_error(tmp_path):
    write_records(tmp_path, count=2)
    with pytest.raises(data.FrameSizeError, match=r"give 416x128 \(WxH\) but the records of .* are 96x64"):
        data.make_dataset(data.DataConfig(str(tmp_path), img_height=128, img_width=416))
    for path in tmp_path.glob("seq_00/*_cam.txt"):
        path.write_text("1,2,3\n")
    with pytest.raises(data.NoValidRecordsError, match="(?s)none of the 2 records .*9 comma-separated floats"):
        data.make_dataset(plain_config(tmp_path))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(data.NoValidRecordsError, match="lists no usable records"):
        data.make_dataset(plain_config(tmp_path, input_file="empty"))
    with pytest.raises(struct2depth.RecordFormatError, match="list file not found"):
        data.make_dataset(plain_config(tmp_path, input_file="missing"))


def test_config_from_the_train_section_ignores_the_other_configs_keys_and_refuses_unknown_ones():
    section = {"img_height": 32, "img_width": "64", "learning_rate": 1.0, "queue_size": 7, "flip_rule": "release"}
    config = data.DataConfig.from_mapping(section, section="train", strict=False, data_dir="/d")
    assert (config.img_height, config.img_width, config.queue_size, config.flip_rule) == (32, 64, 7, "release")
    with pytest.raises(ConfigError, match="train: unknown key.*'learning_rate'"):
        data.DataConfig.from_mapping(section, section="train", data_dir="/d")
    with pytest.raises(ConfigError, match="flip_rule: must be one of pixel_center, release; got 'corner'"):
        data.DataConfig("/d", flip_rule="corner")
    assert data.DataConfig("/d", img_height="null").img_height is None


# --- bad input: one bad line or record never sinks the list (issue 10, items 6, 8, 9) ----------------------


def huge_png_header(width=100_000, height=100_000) -> bytes:
    """A 45-byte PNG whose IHDR claims ``width`` x ``height`` RGB pixels (no image data follows)."""
    import struct
    import zlib

    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + body
        + struct.pack(">I", zlib.crc32(body))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def test_huge_header_and_grey_records_are_skipped_with_a_reason(tmp_path):
    import cv2

    entries = write_records(tmp_path, count=4)
    huge, grey = entries[1], entries[2]
    struct2depth.record_paths(tmp_path, *huge)[0].write_bytes(huge_png_header())
    grey_path = struct2depth.record_paths(tmp_path, *grey)[0]
    colour = cv2.imread(str(grey_path), cv2.IMREAD_COLOR)
    cv2.imwrite(str(grey_path), cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    dataset, reader = data.make_dataset(plain_config(tmp_path, repeat=False))
    assert len(list(dataset)) == 2
    reasons = reader.report.reasons
    assert set(reasons) == {" ".join(huge), " ".join(grey)}
    assert "header claims 100000x100000 pixels, more than the limit" in reasons[" ".join(huge)]
    assert "grey image (1 channel(s)); training needs RGB frames" in reasons[" ".join(grey)]


def test_bad_list_lines_are_reported_and_the_others_used(tmp_path, caplog):
    entries = write_records(tmp_path, count=2)
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    write_records(outside, count=1, folder="x")
    lines = [
        " ".join(entries[0]),
        "drive with space 0000000001",  # three fields (a folder name with a space)
        f"../{outside.name}/x 0000000001",  # leaves data_dir
        "/etc passwd",  # absolute
        "seq_00 ../../etc/passwd",  # id with a path
        "C:\\\\data 0000000001",  # Windows drive
        " ".join(entries[1]),
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="model.data"):
        dataset, reader = data.make_dataset(plain_config(tmp_path, repeat=False))
        batches = list(dataset)
    assert reader.entries == entries and len(batches) == 2
    bad = reader.report.bad_lines
    assert [line.split("train.txt:")[1].split(":")[0] for line in bad] == ["2", "3", "4", "5", "6"]
    assert "expected '<folder> <id>', got 4 fields 'drive with space 0000000001'" in bad[0]
    assert "contains '..'" in bad[1] and "absolute path" in bad[2] and "not a plain file name" in bad[3]
    assert "absolute path" in bad[4]
    assert sum("list line left out" in message for message in caplog.messages) == 5
    assert "5 list lines left out" in reader.report.summary()


# --- the frame size comes from the records (issue 11, item 2) -----------------------------------------------


def test_frame_size_from_the_images_or_the_manifest(tmp_path):
    write_records(tmp_path, count=3)
    resolved = data.resolve_frame_size(data.DataConfig(str(tmp_path)))
    assert (resolved.img_height, resolved.img_width) == (HEIGHT, WIDTH)
    assert data.resolve_frame_size(data.DataConfig(str(tmp_path), img_width=WIDTH)).img_height == HEIGHT
    (tmp_path / "manifest.json").write_text('{"parameters": {"width": 0, "height": 0}}')
    assert data.resolve_frame_size(data.DataConfig(str(tmp_path))).img_width == WIDTH, "no usable size: the images"
    (tmp_path / "manifest.json").write_text('{"parameters": {"width": 416, "height": 128}}')
    resolved = data.resolve_frame_size(data.DataConfig(str(tmp_path)))
    assert (resolved.img_height, resolved.img_width) == (128, 416), "the manifest comes first"
    with pytest.raises(
        data.FrameSizeError,
        match=r"give \?x64 \(WxH\) but the records of .* are 416x128 "
        r"\(from .*manifest.json parameters\)",
    ):
        data.resolve_frame_size(data.DataConfig(str(tmp_path), img_height=64))


def test_real_example_frame_size_from_its_images(real_data):
    config = data.resolve_frame_size(data.DataConfig(str(real_data / "struct2depth_example")))
    assert (config.img_height, config.img_width) == (128, 416)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", 0, "batch_size: must be >= 1"),
        ("queue_size", "x", "queue_size: expected a number"),
        ("flip_probability", 1.5, "flip_probability: must be <= 1"),
        ("img_height", 2.5, "whole number"),
        ("img_height", 0, "img_height: must be >= 1"),
        ("color_probability", float("nan"), "color_probability: expected a finite number"),
        ("file_extension", "bmp", "file_extension: must be one of png, jpg"),
    ],
)
def test_bad_reader_settings_are_rejected(field, value, message):
    with pytest.raises(ConfigError, match=message):
        data.DataConfig("/d", **{field: value})


# --- full shuffles and resuming the stream (issue 14 item 3, issue 10 item 4) ------------------------------


def listed_only(root, count, folders=8):
    """A list of ``count`` records sorted by folder, and a manifest with the size (no image files)."""
    root.mkdir(parents=True, exist_ok=True)
    entries = [(f"drive_{index * folders // count:02d}", struct2depth.sample_id(index)) for index in range(count)]
    struct2depth.write_list(root / "train.txt", entries)
    (root / "manifest.json").write_text(f'{{"parameters": {{"width": {WIDTH}, "height": {HEIGHT}}}}}')
    return entries


def stream_indices(config, start=0, count=None):
    reader = data.RecordDataset(config)
    pairs = [(int(p), int(i)) for p, i in reader.index_stream(start).take(count or 3 * len(reader))]
    return [p for p, _ in pairs], [i for _, i in pairs]


def test_every_epoch_is_a_full_permutation_and_early_batches_span_the_list(tmp_path):
    count, queue, batch = 400, 16, 8
    listed_only(tmp_path, count)
    config = data.DataConfig(str(tmp_path), queue_size=queue, batch_size=batch)
    positions, indices = stream_indices(config)
    assert positions == list(range(3 * count))
    epochs = [indices[k * count : (k + 1) * count] for k in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(count)), "every record exactly once per epoch"
    assert epochs[0] != epochs[1], "a new permutation every epoch"
    first_batches = np.array(epochs[0][: 5 * batch]).reshape(5, batch)
    spreads = first_batches.max(axis=1) - first_batches.min(axis=1)
    # A buffer of 16 over the sorted list would keep the first batches within indices 0..~60.
    assert np.median(spreads) > count / 2 and first_batches.max() > 0.9 * count, first_batches
    unshuffled = stream_indices(data.DataConfig(str(tmp_path), shuffle=False), count=count)[1]
    assert unshuffled == list(range(count))


def test_stream_from_a_position_continues_the_uninterrupted_stream(tmp_path):
    listed_only(tmp_path, 50)
    config = data.DataConfig(str(tmp_path), queue_size=7)
    positions, indices = stream_indices(config, count=150)
    for start in (0, 1, 49, 50, 123):
        resumed_positions, resumed = stream_indices(config, start=start, count=150 - start)
        assert resumed_positions == positions[start:] and resumed == indices[start:]


def test_resumed_batches_equal_the_uninterrupted_batches_despite_a_bad_record(tmp_path):
    entries = write_records(tmp_path, count=6)
    struct2depth.record_paths(tmp_path, *entries[2])[0].write_bytes(b"broken")
    config = data.DataConfig(str(tmp_path), batch_size=2, queue_size=3, seed=5)
    dataset, _ = data.make_dataset(config)
    full = [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(8)]
    # After batch 3 a checkpoint would store the next position, whatever bad records were skipped.
    next_position = int(full[3]["position"].max()) + 1
    resumed_dataset, _ = data.make_dataset(config, start_position=next_position)
    for expected, batch in zip(full[4:], resumed_dataset.take(4)):
        for key in expected:
            np.testing.assert_array_equal(batch[key].numpy(), expected[key], err_msg=key)
    assert next_position != 4 * 2, "the bad record should have shifted positions (else this test is weaker)"
