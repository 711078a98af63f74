import json

import numpy as np
import pytest

from evaluation import odometry_inference, trajectory
from formats import kitti, struct2depth
from stages import trajectory_inference
from tests.evaluation.fakes import FakePredictor, make_kitti_raw_world, write_triplet_folder

NUM_FRAMES = 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_test")
    poses = make_kitti_raw_world(root, num_drives=2, num_frames=NUM_FRAMES)
    return root, poses


def fake_for(poses_by_drive, **kwargs):
    by_index = {}
    for drive_number, name in enumerate(sorted(poses_by_drive)):
        for k, pose in enumerate(poses_by_drive[name]):
            by_index[drive_number * NUM_FRAMES + k] = pose
    return FakePredictor(image_size=(32, 96), poses_by_index=by_index, **kwargs)


def first_frame(poses):
    return np.linalg.inv(poses[0]) @ poses


def test_seed_cli_flags_end_to_end_on_kitti_raw_drives(world, tmp_path):
    root, poses_by_drive = world
    predictor = fake_for(poses_by_drive, motion_scale=0.5)
    out = tmp_path / "trajectories"
    manifest = trajectory_inference.main([f"--checkpoint_path={tmp_path / 'ckpt'}",
                                          f"--odometry_test_set_dir={root}", f"--output_dir={out}",
                                          "--batch_size=4"], predictor=predictor)
    assert [entry["name"] for entry in manifest["sequences"]] == sorted(poses_by_drive)
    assert manifest["accumulation"] == "compose"
    assert predictor.egomotion_calls == [(4, 32, 96, 3), (2, 32, 96, 3)] * 2  # 6 pairs per drive, batches of 4
    assert manifest["flip_augment"] is True and predictor.egomotion_flips == [True] * 4   # params.yaml default
    for entry in manifest["sequences"]:
        name = entry["name"]
        expected = first_frame(poses_by_drive[name])
        expected[:, :3, 3] *= 0.5  # the fake's scale
        # KITTI 3x4 full poses parse back: exact composition of T_k_from_k+1 rebuilds the trajectory
        written = kitti.read_poses(out / f"{name}_poses.txt")
        np.testing.assert_allclose(written, expected, atol=1e-5)
        assert entry["gt_poses"].endswith(f"{name}/groundtruth/poses.txt")
        # TUM with the sequence's timestamps
        times, tum_poses = trajectory.parse_tum((out / f"{name}_tum.txt").read_text())
        np.testing.assert_allclose(times, 0.1 * np.arange(NUM_FRAMES), atol=1e-6)
        np.testing.assert_allclose(tum_poses, expected, atol=1e-5)
        # the release's XYZ file: N lines, the first one the origin
        xyz = np.loadtxt(out / f"odometry_{name}.txt")
        assert xyz.shape == (NUM_FRAMES, 3) and np.array_equal(xyz[0], [0, 0, 0])
        np.testing.assert_allclose(xyz, expected[:, :3, 3], atol=1e-5)
        intrinsics = json.loads((out / f"{name}_intrinsics.json").read_text())
        assert intrinsics["image_size"] == [32, 96] and intrinsics["num_pairs"] == NUM_FRAMES - 1
        np.testing.assert_allclose(intrinsics["K"], [[76.8, 0, 48], [0, 76.8, 16], [0, 0, 1]], atol=1e-4)
        assert intrinsics["source_image_size"] == [90, 300]
        assert intrinsics["K_source"][0][0] == pytest.approx(76.8 * 300 / 96, rel=1e-5)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_dfv_accumulation_order_is_available_and_differs(world, tmp_path):
    root, poses_by_drive = world
    name = sorted(poses_by_drive)[1]
    drive_dir = root / "2011_09_26" / name
    trajectory_inference.main([f"--odometry_test_set_dir={drive_dir}", f"--output_dir={tmp_path}",
                               "--accumulation=dfv"], predictor=fake_for(poses_by_drive, motion_scale=1.0))
    written = kitti.read_poses(tmp_path / f"{name}_poses.txt")
    relative = np.linalg.inv(poses_by_drive[name][:-1]) @ poses_by_drive[name][1:]
    expected = trajectory.accumulate(relative[:, :3, :3], relative[:, :3, 3], "dfv")
    np.testing.assert_allclose(written, expected, atol=1e-5)
    assert np.abs(written[-1, :3, 3] - first_frame(poses_by_drive[name])[-1, :3, 3]).max() > 1e-3


def test_image_folder_and_triplet_folder_inputs(world, tmp_path):
    root, poses_by_drive = world
    name = sorted(poses_by_drive)[0]
    frame_dir = root / "2011_09_26" / name / "image_02" / "data"
    sequences = odometry_inference.find_sequences(frame_dir)
    assert [(s.name, s.kind, len(s.files)) for s in sequences] == [(name, "frames", NUM_FRAMES)]
    # the release's layout: <odometry_test_set_dir>/09-image_2/<triplet>.png, plus ignored -fseg files
    frames = [struct2depth.read_rgb(path) for path in sorted(frame_dir.glob("*.png"))]
    test_set = tmp_path / "odometry_test"
    write_triplet_folder(test_set / "09-image_2", frames)
    (test_set / "09-image_2" / "0000000000-fseg.png").write_bytes((frame_dir / "0000000000.png").read_bytes())
    out = tmp_path / "out"
    manifest = trajectory_inference.main([f"--odometry_test_set_dir={test_set}", f"--output_dir={out}"],
                                         predictor=fake_for(poses_by_drive, motion_scale=1.0))
    (entry,) = manifest["sequences"]
    assert entry["name"] == "09-image_2" and entry["kind"] == "triplets"
    assert entry["num_poses"] == NUM_FRAMES - 1  # N - 2 triplets give N - 1 poses
    assert (out / "odometry_09-image_2.txt").read_text().splitlines()[0] == "0.0 0.0 0.0"
    np.testing.assert_allclose(kitti.read_poses(out / "09-image_2_poses.txt"),
                               first_frame(poses_by_drive[name])[:NUM_FRAMES - 1], atol=1e-5)


def test_bad_inputs(world, tmp_path):
    root, poses_by_drive = world
    with pytest.raises(SystemExit):
        trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}",
                                   "--img_height=128"], predictor=fake_for(poses_by_drive))
    with pytest.raises(SystemExit):  # no predictor and no checkpoint
        trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="no image sequence"):
        odometry_inference.find_sequences(tmp_path)
    with pytest.raises(SystemExit):  # the seed's required flag
        trajectory_inference.main([f"--output_dir={tmp_path}"], predictor=fake_for(poses_by_drive))
