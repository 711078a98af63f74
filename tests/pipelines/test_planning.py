"""Triplet planning from metadata (pipelines/planning.py) and the frame store (pipelines/triplets.py):
hand-computed cases, plus the wrong-size-first-frame case end to end (issue 10 item 7)."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from formats import struct2depth
from pipelines import sampling
from pipelines.config import PreprocessConfig
from pipelines.planning import (
    FrameMeta,
    chunk_plans,
    grey_histogram,
    histogram_correlation,
    majority_size,
    plan_sequence,
)
from pipelines.records import Frame
from pipelines.triplets import (
    FRAME_STORE,
    AssembleTriplets,
    StoreFrames,
    decode_stored_frame,
    encode_stored_frame,
    remove_frame_store,
    stored_frame_path,
)
from tests.pipelines.fixtures import frame_image, make_kitti_drive, write_png
from tests.pipelines.helpers import dead_letters, preprocess

FLAT = (1.0,) * 32


def meta(index, size=(96, 48), timestamp=None, segment=0, histogram=FLAT, raw_index=None):
    return FrameMeta(
        source="kitti_raw",
        sequence="s",
        index=index,
        raw_index=index if raw_index is None else raw_index,
        frame_id=f"f{index}",
        timestamp=0.1 * index if timestamp is None else timestamp,
        segment=segment,
        native_size=size,
        intrinsics=np.eye(3),
        histogram=histogram,
    )


def ids(plan):
    return [triplet.record_id for triplet in plan.triplets]


def test_majority_size_counts_frames_and_breaks_ties_by_the_earliest_frame():
    assert majority_size([(80, 48), (96, 48), (96, 48)]) == (96, 48)
    assert majority_size([(80, 48), (96, 48)]) == (80, 48)  # tie: seen first
    assert majority_size([(96, 48), (80, 48), (80, 48), (96, 48)]) == (96, 48)  # tie: seen first
    assert majority_size([(1, 2), (3, 4), (3, 4), (5, 6), (5, 6), (5, 6)]) == (5, 6)
    assert majority_size([]) is None


def test_a_wrong_size_first_frame_is_the_only_frame_rejected():
    frames = [meta(0, size=(80, 48))] + [meta(k) for k in range(1, 7)]
    plan = plan_sequence(frames, max_gap_factor=1.5, scene_cut_correlation=0.5)
    assert [(r.frame.index, r.size, r.sequence_size) for r in plan.rejected] == [(0, (80, 48), (96, 48))]
    assert plan.rejected[0].detail == "80x48 in a sequence of 96x48 frames"
    # kept 1..6 -> middles 2..5
    assert ids(plan) == ["0000000002", "0000000003", "0000000004", "0000000005"]
    assert plan.summary == {
        "sequence": "s",
        "source": "kitti_raw",
        "first_frame": "f0",
        "last_frame": "f6",
        "frames": 6,
    }


def test_a_wrong_size_frame_in_the_middle_breaks_triplets_around_it_only():
    frames = [meta(k, size=(80, 48) if k == 3 else (96, 48)) for k in range(7)]
    plan = plan_sequence(list(reversed(frames)), 1.5, 0.5)  # arrival order does not matter
    assert [r.frame.index for r in plan.rejected] == [3]
    assert ids(plan) == ["0000000001", "0000000005"]


def test_gaps_segments_and_scene_cuts_from_metadata():
    times = [0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9]  # a 0.3 s gap (> 1.5 x 0.1 s) after index 3
    frames = [meta(k, timestamp=t) for k, t in enumerate(times)]
    assert ids(plan_sequence(frames, 1.5, 0.5)) == ["0000000001", "0000000002", "0000000005", "0000000006"]
    frames = [meta(k, segment=0 if k < 4 else 1) for k in range(8)]
    assert ids(plan_sequence(frames, 1.5, 0.5)) == ["0000000001", "0000000002", "0000000005", "0000000006"]
    dark = tuple([8.0] + [0.0] * 31)
    bright = tuple([0.0] * 31 + [8.0])
    frames = [meta(k, histogram=dark if k < 4 else bright) for k in range(8)]  # a cut between 3 and 4
    assert ids(plan_sequence(frames, 1.5, 0.5)) == ["0000000001", "0000000002", "0000000005", "0000000006"]
    assert len(plan_sequence(frames, 1.5, 0.0).triplets) == 6  # 0 = scene-cut rule off
    frames = [meta(k, raw_index=10 * k) for k in (0, 1, 2)]  # record id = raw index of the middle frame
    plan = plan_sequence(frames, 1.5, 0.5)
    assert ids(plan) == ["0000000010"]
    assert [f.index for f in plan.triplets[0].frames] == [0, 1, 2]
    assert all(f.histogram == () for f in plan.triplets[0].frames)  # plans stay small


def test_histogram_correlation_from_metadata_equals_the_one_on_images():
    a = frame_image(0)[:, :, ::-1].copy()
    b = (255 - frame_image(9))[:, :, ::-1].copy()
    for x, y in ((a, a), (a, b), (b, frame_image(3))):
        assert histogram_correlation(grey_histogram(x), grey_histogram(y)) == sampling.histogram_correlation(x, y)
    assert histogram_correlation(grey_histogram(a), grey_histogram(a)) == pytest.approx(1.0)


def test_stored_frames_round_trip_exactly_and_metadata_holds_no_pixels(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (128, 416, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (128, 416), dtype=np.uint8)
    back_image, back_mask = decode_stored_frame(encode_stored_frame(image, mask))
    np.testing.assert_array_equal(back_image, image)
    np.testing.assert_array_equal(back_mask, mask)
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        decode_stored_frame(_npy(np.zeros((4, 4, 3), np.uint8)))
    config = PreprocessConfig.from_mapping({"source": "kitti_raw", "input": "x", "output": str(tmp_path)})
    frame = Frame(
        source="kitti_raw",
        sequence="seq",
        index=5,
        frame_id="a.png",
        timestamp=0.5,
        image=image,
        intrinsics=np.array([[200.0, 0, 207.5], [0, 190.0, 63.5], [0, 0, 1]]),
        mask=mask,
        raw_index=7,
        segment=1,
        native_size=(1242, 375),
    )
    (stored,) = StoreFrames(config).process(frame)
    path = tmp_path / FRAME_STORE / "seq" / "0000000005.npy"
    assert stored_frame_path(str(tmp_path), "seq", 5) == str(path)
    assert (stored.index, stored.raw_index, stored.native_size, stored.segment) == (5, 7, (1242, 375), 1)
    np.testing.assert_array_equal(stored.intrinsics, [[200.0, 0.0, 207.5], [0.0, 190.0, 63.5], [0.0, 0.0, 1.0]])
    assert len(pickle.dumps(stored)) < 1500  # what crosses a shuffle: metadata, not the 160 kB frame
    np.testing.assert_array_equal(decode_stored_frame(path.read_bytes())[0], image)


def test_runs_of_triplets_keep_order_and_cover_every_triplet_once():
    plan = plan_sequence([meta(i) for i in range(20)], 1.5, 0.0)
    runs = chunk_plans(plan.triplets, 8)
    assert [len(run) for run in runs] == [8, 8, 2]
    assert [t.record_id for run in runs for t in run] == ids(plan)
    assert chunk_plans([], 8) == []
    with pytest.raises(ValueError, match="chunk size"):
        chunk_plans(plan.triplets, 0)


def test_a_run_of_triplets_reads_each_stored_frame_once_and_gives_the_same_triplets(tmp_path, monkeypatch):
    from pipelines import triplets as triplets_module

    config = PreprocessConfig.from_mapping(
        {"source": "kitti_raw", "input": "x", "output": str(tmp_path), "static_threshold": 0}
    )
    rng = np.random.default_rng(1)
    store = StoreFrames(config)
    metas = []
    for index in range(7):
        image = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
        mask = np.zeros((8, 12), np.uint8)
        mask[index % 3, :4] = 1 + index % 2
        (stored,) = store.process(
            Frame("kitti_raw", "s", index, f"f{index}", 0.1 * index, image, np.eye(3), mask=mask, native_size=(12, 8))
        )
        metas.append(stored)
    plan = plan_sequence(metas, 1.5, 0.0)
    reads = []
    real_read = triplets_module.fileio.read_bytes
    monkeypatch.setattr(triplets_module.fileio, "read_bytes", lambda path: reads.append(path) or real_read(path))
    assembler = AssembleTriplets(config)
    together = list(assembler.process(tuple(plan.triplets)))
    assert len(reads) == 7  # 5 triplets of 3 frames, each of the 7 frames read once
    one_by_one = [triplet for run in chunk_plans(plan.triplets, 1) for triplet in assembler.process(run)]
    assert len(reads) == 7 + 15
    assert [t.record_id for t in together] == [t.record_id for t in one_by_one] == ids(plan)
    for a, b in zip(together, one_by_one):
        for frame_a, frame_b, mask_a, mask_b in zip(a.frames, b.frames, a.masks, b.masks):
            np.testing.assert_array_equal(frame_a.image, frame_b.image)
            np.testing.assert_array_equal(mask_a, mask_b)


def _npy(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_removing_the_frame_store_keeps_files_wilddepth_did_not_store(tmp_path):
    store = tmp_path / FRAME_STORE
    (store / "a").mkdir(parents=True)
    (store / "b").mkdir()
    (store / "a" / "0000000001.npy").write_bytes(b"x")
    (store / "a" / ".tmp-0000000002.npy.k3j2").write_bytes(b"x")  # a store killed mid-write
    (store / "b" / "0000000001.npy").write_bytes(b"x")
    (store / "b" / "notes.txt").write_text("mine")  # not ours: kept, with its folder
    assert remove_frame_store(str(tmp_path)) == 3
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        FRAME_STORE,
        f"{FRAME_STORE}/b",
        f"{FRAME_STORE}/b/notes.txt",
    ]
    (store / "b" / "notes.txt").unlink()
    (store / "b" / "0000000003.npy").write_bytes(b"x")
    assert remove_frame_store(str(tmp_path)) == 1
    assert list(tmp_path.iterdir()) == []
    assert remove_frame_store(str(tmp_path / "missing")) == 0


def test_pipeline_blames_only_a_wrong_size_first_frame_and_leaves_no_frame_store(tmp_path):
    root = tmp_path / "kitti"
    drive = make_kitti_drive(root, "2011_09_26", 1, 7)  # 2011_09_26_drive_0001 is no Eigen test scene
    write_png(drive / "image_02" / "data" / "0000000000.png", frame_image(0, (80, 48)))
    output = tmp_path / "out"
    manifest = preprocess("kitti_raw", root, output)
    letters = dead_letters(output)
    assert [(Path(letter["frame"]).name, letter["reason"]) for letter in letters] == [
        ("0000000000.png", "size_change: 80x48 in a sequence of 96x48 frames")
    ]
    entries = struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt")
    folder = "2011_09_26_drive_0001_sync_02"
    assert sorted(entries) == [(folder, f"{k:010d}") for k in (2, 3, 4, 5)]
    assert manifest["counts"]["rejected"] == {"size_change": 1}
    assert manifest["sequences"][0]["frames"] == 6 and manifest["sequences"][0]["records"] == 4
    assert not (output / FRAME_STORE).exists()
    assert json.loads((output / "manifest.json").read_text())["counts"]["triplets_written"] == 4
