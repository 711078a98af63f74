import json

import numpy as np
import pytest

from formats import kitti
from stages import eval_odometry, trajectory_inference
from tests.evaluation.fakes import FakePredictor, make_kitti_raw_world, write_triplet_folder
from formats.struct2depth import read_rgb

NUM_FRAMES = 9


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_test")
    poses = make_kitti_raw_world(root, num_drives=2, num_frames=NUM_FRAMES)
    by_index = {d * NUM_FRAMES + k: pose for d, name in enumerate(sorted(poses)) for k, pose in enumerate(poses[name])}
    return root, poses, by_index


def run_inference(root, out, by_index, **fake_kwargs):
    predictor = FakePredictor(image_size=(32, 96), poses_by_index=by_index, **fake_kwargs)
    trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={out}"], predictor=predictor)


def test_perfect_motion_up_to_scale_scores_zero_and_beats_constant_velocity(world, tmp_path):
    root, poses, by_index = world
    run_inference(root, tmp_path / "traj", by_index, motion_scale=0.3)
    metrics_file, plots = tmp_path / "metrics" / "odometry.json", tmp_path / "plots"
    document = eval_odometry.main([f"--trajectory_dir={tmp_path / 'traj'}", f"--metrics_file={metrics_file}",
                                   f"--plots_dir={plots}"])
    assert json.loads(metrics_file.read_text()) == document
    model, baseline = document["model"], document["constant_velocity"]
    assert model["num_snippets"] == baseline["num_snippets"] == 2 * (NUM_FRAMES - 4)
    assert model["ate5_mean"] < 1e-5 and model["ate_full_rmse"] < 1e-4
    assert baseline["ate5_mean"] > 1e-3  # the fixture's drives turn and drift sideways
    assert document["ate5_mean_over_constant_velocity"] < 0.01
    assert model["t_err_percent"] is None and model["num_segments"] == 0  # 9 frames: no 100 m segment
    for name in poses:
        assert document["sequences"][name]["model"]["full_scale"] == pytest.approx(1 / 0.3, rel=1e-4)
    gt_rows = (plots / "trajectory_ground_truth.csv").read_text().splitlines()
    model_rows = (plots / "trajectory_model.csv").read_text().splitlines()
    assert gt_rows[0] == "sequence,frame,x,z" and len(gt_rows) == 1 + 2 * NUM_FRAMES
    for gt_row, model_row in zip(gt_rows[1:], model_rows[1:]):  # scaled model trajectory lies on the GT
        assert np.allclose([float(v) for v in gt_row.split(",")[2:]], [float(v) for v in model_row.split(",")[2:]],
                           atol=1e-4)
    assert len((plots / "trajectory_constant_velocity.csv").read_text().splitlines()) == 1 + 2 * NUM_FRAMES
    snippets = (plots / "ate_snippets.csv").read_text().splitlines()
    assert snippets[0] == "sequence,start,ate5_model,ate5_constant_velocity" and len(snippets) == 1 + 2 * 5


def test_segment_lengths_short_enough_give_relative_errors(world, tmp_path):
    root, poses, by_index = world
    run_inference(root, tmp_path / "traj", by_index)
    document = eval_odometry.main([f"--trajectory_dir={tmp_path / 'traj'}", f"--metrics_file={tmp_path / 'm.json'}",
                                   f"--plots_dir={tmp_path / 'p'}", "--segment_lengths=2,4", "--segment_step=1"])
    assert document["model"]["num_segments"] > 0
    assert document["model"]["t_err_percent"] == pytest.approx(0.0, abs=1e-3)
    assert document["constant_velocity"]["r_err_deg_per_100m"] > 1.0


def test_release_triplet_folder_with_kitti_pose_directory(world, tmp_path):
    root, poses, by_index = world
    name = sorted(poses)[0]
    frames = [read_rgb(p) for p in sorted((root / "2011_09_26" / name / "image_02" / "data").glob("*.png"))]
    write_triplet_folder(tmp_path / "test_set" / "09-image_2", frames)
    gt_dir = tmp_path / "poses"
    kitti.write_poses(gt_dir / "09.txt", poses[name])  # full sequence: predictions cover its first N - 1 frames
    run_inference(tmp_path / "test_set", tmp_path / "traj", by_index)
    with pytest.raises(FileNotFoundError, match="gt_poses_dir"):
        eval_odometry.main([f"--trajectory_dir={tmp_path / 'traj'}", f"--metrics_file={tmp_path / 'm.json'}",
                            f"--plots_dir={tmp_path / 'p'}"])
    document = eval_odometry.main([f"--trajectory_dir={tmp_path / 'traj'}", f"--gt_poses_dir={gt_dir}",
                                   f"--metrics_file={tmp_path / 'm.json'}", f"--plots_dir={tmp_path / 'p'}"])
    sequence = document["sequences"]["09-image_2"]
    assert sequence["num_poses"] == NUM_FRAMES - 1 and sequence["gt_poses_total"] == NUM_FRAMES
    assert sequence["model"]["ate5_mean"] < 1e-5


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="trajectory_inference"):
        eval_odometry.main([f"--trajectory_dir={tmp_path}", f"--metrics_file={tmp_path / 'm.json'}"])
