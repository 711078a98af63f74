"""The tf.data reader: decoding, shared colour jitter, flip with the intrinsics rule, skipping of bad records."""
import logging

import numpy as np
import pytest

from formats import struct2depth
from formats.camera import intrinsics_matrix
from model import data

HEIGHT, WIDTH = 64, 96
K_TEST = intrinsics_matrix(80.0, 82.0, 40.25, 30.5)


def textured_frames(rng, height=HEIGHT, width=WIDTH, shift=3):
    """Three frames cut from one smooth random texture, each shifted ``shift`` px further right."""
    big = rng.random((height // 4 + 2, (width + 2 * shift) // 4 + 2, 3))
    import cv2
    texture = cv2.resize(big, (width + 2 * shift + 8, height + 8), interpolation=cv2.INTER_CUBIC)
    texture = (np.clip(texture[4:4 + height], 0, 1) * 255).astype(np.uint8)
    return [np.ascontiguousarray(texture[:, k * shift:k * shift + width]) for k in range(3)]


def write_records(root, count=4, seed=0, height=HEIGHT, width=WIDTH, intrinsics=K_TEST, folder="seq_00"):
    """Hand-made records with a moving-object box in each frame; writes <root>/train.txt; returns entries."""
    rng = np.random.default_rng(seed)
    entries = []
    for index in range(count):
        frames = textured_frames(rng, height, width)
        masks = []
        for k in range(3):
            mask = np.zeros((height, width), np.uint8)
            mask[10:30, 20 + 2 * k:40 + 2 * k] = 7
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
    values = dict(img_height=HEIGHT, img_width=WIDTH, batch_size=1, shuffle=False, color_probability=0.0,
                  flip_probability=0.0)
    values.update(overrides)
    return data.DataConfig(str(root), **values)


def test_reads_real_struct2depth_example(real_data):
    config = data.DataConfig(str(real_data / "struct2depth_example"), img_height=128, img_width=416,
                             batch_size=2, color_probability=0.0, flip_probability=0.0)
    batch, reader = first_batch(config)
    frames, masks, intrinsics = struct2depth.read_record(real_data / "struct2depth_example", "erfurt_93",
                                                          "0000000002", width=416)
    assert batch["images"].shape == (2, 128, 416, 9) and batch["images"].dtype == np.float32
    assert batch["segmentation"].shape == (2, 128, 416, 3) and batch["segmentation"].dtype == np.uint8
    np.testing.assert_allclose(batch["images"][0, :, :, 3:6], frames[1] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(batch["segmentation"][0, :, :, 2], masks[2])
    np.testing.assert_allclose(batch["intrinsics"][0], intrinsics, rtol=1e-6)
    mean = np.tile(data.IMAGENET_MEAN, 3)
    std = np.tile(data.IMAGENET_STD, 3)
    np.testing.assert_allclose(batch["images_normalized"], (batch["images"] - mean) / std, atol=1e-5)
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
    for record_id, problem in (("0000000012", "cam"), ("0000000013", "png")):
        for source, target in zip(struct2depth.record_paths(tmp_path / "tmp", "seq_00", "0000000001"),
                                  struct2depth.record_paths(tmp_path, "seq_00", record_id)):
            target.write_bytes(source.read_bytes())
    struct2depth.record_paths(tmp_path, "seq_00", "0000000012")[2].write_text("1,2,3\n")
    struct2depth.record_paths(tmp_path, "seq_00", "0000000013")[0].write_bytes(b"not a png")
    listed = [("seq_00", "0000000099"), entries[0], ("seq_00", "0000000011"), ("seq_00", "0000000012"),
              ("seq_00", "0000000013"), entries[1]]
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
    assert "not a decodable image" in reasons["seq_00 0000000013"]
    assert reader.report.skips == 4 and reader.report.decoded == 2
    assert sum("skipping record" in message for message in caplog.messages) == 4


def test_no_valid_record_is_a_clear_error(tmp_path):
    write_records(tmp_path, count=2)
    with pytest.raises(data.NoValidRecordsError, match="img_height=128, img_width=416"):
        data.make_dataset(data.DataConfig(str(tmp_path), img_height=128, img_width=416))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(data.NoValidRecordsError, match="lists no records"):
        data.make_dataset(plain_config(tmp_path, input_file="empty"))
    with pytest.raises(struct2depth.RecordFormatError, match="list file not found"):
        data.make_dataset(plain_config(tmp_path, input_file="missing"))


def test_config_from_params_ignores_unrelated_keys():
    config = data.DataConfig.from_params("/d", {"img_height": 32, "img_width": 64, "learning_rate": 1.0,
                                                "queue_size": 7, "flip_rule": "release"})
    assert (config.img_height, config.img_width, config.queue_size, config.flip_rule) == (32, 64, 7, "release")
    with pytest.raises(ValueError, match="flip_rule"):
        data.DataConfig("/d", flip_rule="corner")
