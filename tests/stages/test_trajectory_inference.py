import json

import numpy as np
import pytest

from evaluation import headline, odometry_inference, trajectory
from formats import kitti, struct2depth
from stages import trajectory_inference
from stages.common import StageError, run_stage
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


# the fake world's calibration (fx = fy = 240, cx 150, cy 45 at 300 x 90) in the model's 96 x 32 input frame:
# fx = 240 * 96 / 300, fy = 240 * 32 / 90, c' = s (c + 0.5) - 0.5 (pixel centres)
TRUE_K_MODEL = [[76.8, 0, 96 / 300 * 150.5 - 0.5], [0, 240 * 32 / 90, 32 / 90 * 45.5 - 0.5], [0, 0, 1]]


class LearnedIntrinsicsFake(FakePredictor):
    """A predictor whose intrinsics head was trained: fx drifts by 1 px per frame of the drive."""

    intrinsics_source = "learned"

    def predict_egomotion(self, image_a, image_b, flip_augment=False):
        rotation, translation, intrinsics = super().predict_egomotion(image_a, image_b, flip_augment)
        intrinsics = intrinsics.copy()
        for row, image in enumerate(image_a):
            intrinsics[row, 0, 0] += self.frame_index(image) % NUM_FRAMES
        return rotation, translation, intrinsics


def first_frame(poses):
    return np.linalg.inv(poses[0]) @ poses


def test_seed_cli_flags_end_to_end_on_kitti_raw_drives(world, tmp_path):
    root, poses_by_drive = world
    predictor = fake_for(poses_by_drive, motion_scale=0.5)
    out = tmp_path / "trajectories"
    manifest = trajectory_inference.main(
        [
            f"--checkpoint_path={tmp_path / 'ckpt'}",
            f"--odometry_test_set_dir={root}",
            f"--output_dir={out}",
            "--batch_size=4",
        ],
        predictor=predictor,
    )
    assert [entry["name"] for entry in manifest["sequences"]] == sorted(poses_by_drive)
    assert manifest["accumulation"] == "compose"
    assert predictor.egomotion_calls == [(4, 32, 96, 3), (2, 32, 96, 3)] * 2  # 6 pairs per drive, batches of 4
    assert manifest["flip_augment"] is True and predictor.egomotion_flips == [True] * 4  # params.yaml default
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
        # the fake declares no intrinsics source: treated as an untrained head, its K (fx 76.8) is not reported
        intrinsics = json.loads((out / f"{name}_intrinsics.json").read_text())
        assert intrinsics["source"] == "records" and "per_pair" not in intrinsics and "errors" not in intrinsics
        assert intrinsics["image_size"] == [32, 96] and intrinsics["num_pairs"] == NUM_FRAMES - 1
        np.testing.assert_allclose(intrinsics["K"], TRUE_K_MODEL, atol=1e-4)
        assert intrinsics["source_image_size"] == [90, 300]
        np.testing.assert_allclose(intrinsics["K_source"], [[240, 0, 150], [0, 240, 45], [0, 0, 1]])
    assert manifest["intrinsics_source"] == "given"
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_dfv_accumulation_order_is_available_and_differs(world, tmp_path):
    root, poses_by_drive = world
    name = sorted(poses_by_drive)[1]
    drive_dir = root / "2011_09_26" / name
    trajectory_inference.main(
        [f"--odometry_test_set_dir={drive_dir}", f"--output_dir={tmp_path}", "--accumulation=dfv"],
        predictor=fake_for(poses_by_drive, motion_scale=1.0),
    )
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
    manifest = trajectory_inference.main(
        [f"--odometry_test_set_dir={test_set}", f"--output_dir={out}"],
        predictor=fake_for(poses_by_drive, motion_scale=1.0),
    )
    (entry,) = manifest["sequences"]
    assert entry["name"] == "09-image_2" and entry["kind"] == "triplets"
    assert entry["num_poses"] == NUM_FRAMES - 1  # N - 2 triplets give N - 1 poses
    assert (out / "odometry_09-image_2.txt").read_text().splitlines()[0] == "0.0 0.0 0.0"
    np.testing.assert_allclose(
        kitti.read_poses(out / "09-image_2_poses.txt"), first_frame(poses_by_drive[name])[: NUM_FRAMES - 1], atol=1e-5
    )


def test_bad_inputs(world, tmp_path):
    root, poses_by_drive = world
    with pytest.raises(StageError, match="--img_height=128 but the checkpoint works at"):
        trajectory_inference.main(
            [f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}", "--img_height=128"],
            predictor=fake_for(poses_by_drive),
        )
    with pytest.raises(StageError, match="--checkpoint_path is required"):  # no predictor and no checkpoint
        trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}"])
    assert run_stage(trajectory_inference.main, [f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}"]) == 2
    bad = fake_for(poses_by_drive)
    bad.intrinsics_source = "maybe"
    with pytest.raises(ValueError, match="intrinsics source must be one of"):
        trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={tmp_path}"], predictor=bad)
    with pytest.raises(FileNotFoundError, match="no image sequence"):
        odometry_inference.find_sequences(tmp_path)
    with pytest.raises(SystemExit):  # the seed's required flag
        trajectory_inference.main([f"--output_dir={tmp_path}"], predictor=fake_for(poses_by_drive))


# --- intrinsics: per-sequence records, provenance and the metrics report ---------------------------------------


def test_learned_intrinsics_median_over_pairs_vs_the_true_k_and_the_report(world, tmp_path):
    root, poses_by_drive = world
    predictor = fake_for(poses_by_drive)
    predictor.__class__ = LearnedIntrinsicsFake
    out, metrics_file = tmp_path / "out", tmp_path / "metrics" / "intrinsics.json"
    manifest = trajectory_inference.main(
        [
            f"--odometry_test_set_dir={root}",
            f"--output_dir={out}",
            f"--intrinsics_metrics_file={metrics_file}",
            "--batch_size=4",
        ],
        predictor=predictor,
    )
    assert manifest["intrinsics_source"] == "learned"
    fx = 76.8 + 2.5  # the head's fx over the 6 pairs: 76.8 + 0 ... 5 -> median + 2.5 (the mean is the same here)
    true = {"fx": 76.8, "fy": 240 * 32 / 90, "cx": 96 / 300 * 150.5 - 0.5, "cy": 32 / 90 * 45.5 - 0.5}
    expected_errors = {
        "fx_rel_error": 2.5 / 76.8,
        "fy_rel_error": (76.8 - true["fy"]) / true["fy"],
        "cx_rel_error": (48 - true["cx"]) / 96,
        "cy_rel_error": (16 - true["cy"]) / 32,
    }
    for name in sorted(poses_by_drive):
        record = json.loads((out / f"{name}_intrinsics.json").read_text())
        assert record["source"] == "learned" and record["calibration"].endswith("groundtruth/intrinsics.txt")
        np.testing.assert_allclose(record["K"], [[fx, 0, 48], [0, 76.8, 16], [0, 0, 1]], atol=1e-4)
        assert [row[0] for row in record["per_pair"]] == pytest.approx(76.8 + np.arange(NUM_FRAMES - 1), abs=1e-4)
        np.testing.assert_allclose(record["K_true"], TRUE_K_MODEL, atol=1e-9)
        for key, value in expected_errors.items():
            assert record["errors"][key] == pytest.approx(value, abs=1e-6), key
        assert record["K_source"][0][0] == pytest.approx(fx * 300 / 96, rel=1e-5)
    report = json.loads((metrics_file.parent / "details" / metrics_file.name).read_text())
    assert json.loads(metrics_file.read_text()) == headline.intrinsics(report)
    assert report["learned_intrinsics_available"] is True and report["image_size"] == [32, 96]
    entry = report["sequences"][sorted(poses_by_drive)[0]]
    assert entry["learned"]["fx"] == pytest.approx(fx, abs=1e-4) and entry["true"]["fy"] == pytest.approx(true["fy"])
    summary = report["summary"]
    assert summary["num_sequences"] == 2 and summary["num_sequences_without_truth"] == 0
    assert summary["fx_rel_error_abs_median"] == pytest.approx(2.5 / 76.8, abs=1e-6)
    assert summary["fy_rel_error_abs_median"] == pytest.approx(abs(expected_errors["fy_rel_error"]), abs=1e-6)
    assert summary["fx_rank_agreement"] is None  # one camera: no pair of sequences with different true fx


def test_tied_focal_aspect_sets_fy_from_fx_and_the_calibration_aspect(world, tmp_path):
    """focal_aspect records: every pair's fy = its fx * the resized calibration's fy / fx (here square native
    pixels resized 300x90 -> 96x32: (32/90) / (96/300)), whatever the head's fy."""
    root, poses_by_drive = world
    predictor = fake_for(poses_by_drive)
    predictor.__class__ = LearnedIntrinsicsFake
    predictor.focal_aspect = "records"
    out = tmp_path / "out"
    trajectory_inference.main([f"--odometry_test_set_dir={root}", f"--output_dir={out}"], predictor=predictor)
    aspect = (32 / 90) / (96 / 300)
    for name in sorted(poses_by_drive):
        record = json.loads((out / f"{name}_intrinsics.json").read_text())
        per_pair = np.array(record["per_pair"])
        np.testing.assert_allclose(per_pair[:, 1], per_pair[:, 0] * aspect, rtol=1e-9)  # rows: fx, fy, cx, cy
        np.testing.assert_allclose(record["K"][1][1], (76.8 + 2.5) * aspect, rtol=1e-6)
        assert record["errors"]["fy_rel_error"] == pytest.approx(2.5 / 76.8, abs=1e-6)  # = fx's: the tie is exact


def test_untrained_head_reports_only_the_true_k(world, tmp_path):
    root, poses_by_drive = world
    predictor = fake_for(poses_by_drive)
    predictor.intrinsics_source = "given"
    metrics_file = tmp_path / "intrinsics.json"
    trajectory_inference.main(
        [
            f"--odometry_test_set_dir={root}",
            f"--output_dir={tmp_path / 'out'}",
            f"--intrinsics_metrics_file={metrics_file}",
        ],
        predictor=predictor,
    )
    report = json.loads((metrics_file.parent / "details" / metrics_file.name).read_text())
    assert json.loads(metrics_file.read_text()) == headline.intrinsics(report)
    assert report["learned_intrinsics_available"] is False and report["source"] == "records"
    assert "summary" not in report
    for name in sorted(poses_by_drive):
        assert set(report["sequences"][name]) == {"true"}  # no learned value, no error
        assert report["sequences"][name]["true"]["fx"] == pytest.approx(76.8)
        record = json.loads((tmp_path / "out" / f"{name}_intrinsics.json").read_text())
        # nothing of the head (its K has fy 76.8, cx 48, cy 16): only the calibration, scaled to the model's frame
        assert set(record) == {
            "image_size",
            "calibration",
            "source",
            "note",
            "K",
            "source_image_size",
            "K_source",
            "num_pairs",
        }
        np.testing.assert_allclose(record["K"], TRUE_K_MODEL, atol=1e-9)


def test_calibration_of_kitti_layouts_and_triplet_folders(world, real_data, tmp_path):
    (sequence,) = odometry_inference.find_sequences(real_data / "kitti_raw_mini")
    assert sequence.calibration.name == "calib_cam_to_cam.txt" and sequence.camera == 2
    calibration = kitti.read_calibration(sequence.calibration)
    np.testing.assert_array_equal(
        odometry_inference.read_calibration(sequence), kitti.raw_camera_intrinsics(calibration, 2)
    )
    # KITTI odometry: sequences/NN/calib.txt, P<camera> of the image folder
    folder = tmp_path / "sequences" / "09"
    (folder / "image_3").mkdir(parents=True)
    frame = struct2depth.encode_png(np.zeros((4, 6, 3), np.uint8))
    for k in range(2):
        (folder / "image_3" / f"{k:06d}.png").write_bytes(frame)
    (folder / "calib.txt").write_text("P2: 7 0 3 0 0 8 2 0 0 0 1 0\nP3: 5 0 2 -1 0 6 1 0 0 0 1 0\n")
    (sequence,) = odometry_inference.find_sequences(tmp_path / "sequences")
    np.testing.assert_array_equal(odometry_inference.read_calibration(sequence), [[5, 0, 2], [0, 6, 1], [0, 0, 1]])
    (folder / "calib.txt").write_text("P0: 1 2 3\n")
    with pytest.raises(ValueError, match="P3"):
        odometry_inference.read_calibration(sequence)
    # the release's triplet folders carry no calibration: no true K, no error figures
    root, poses_by_drive = world
    frame_dir = root / "2011_09_26" / sorted(poses_by_drive)[0] / "image_02" / "data"
    frames = [struct2depth.read_rgb(path) for path in sorted(frame_dir.glob("*.png"))]
    write_triplet_folder(tmp_path / "release" / "09-image_2", frames)
    (triplets,) = odometry_inference.find_sequences(tmp_path / "release")
    assert triplets.calibration is None and odometry_inference.read_calibration(triplets) is None
    predictor = fake_for(poses_by_drive)
    predictor.__class__ = LearnedIntrinsicsFake
    trajectory_inference.main(
        [
            f"--odometry_test_set_dir={tmp_path / 'release'}",
            f"--output_dir={tmp_path / 'o'}",
            f"--intrinsics_metrics_file={tmp_path / 'i.json'}",
        ],
        predictor=predictor,
    )
    report = json.loads((tmp_path / "details" / "i.json").read_text())
    assert report["sequences"]["09-image_2"]["true"] is None
    assert report["summary"] == {"num_sequences": 0, "num_sequences_without_truth": 1}


def test_config_reads_only_its_own_section(tmp_path, capsys):
    from evaluation.odometry_inference import TrajectoryInferenceConfig
    from formats.params import ConfigError

    params = tmp_path / "params.yaml"
    params.write_text("trajectory_inference:\n  batch_size: '2e0'\n  accumulation: dfv\n")  # no eval_odometry section
    options, _ = trajectory_inference.parse_args(
        ["--params", str(params), "--odometry_test_set_dir=x", "--output_dir=y"]
    )
    assert options == TrajectoryInferenceConfig(batch_size=2, accumulation="dfv")
    with pytest.raises(ConfigError, match="trajectory_inference: unknown key.*'snippet_length'"):
        TrajectoryInferenceConfig.from_mapping({"snippet_length": 5}, section="trajectory_inference")
    with pytest.raises(ConfigError, match="trajectory_inference.accumulation: must be one of compose, dfv"):
        TrajectoryInferenceConfig.from_mapping({"accumulation": "sum"}, section="trajectory_inference")
    params.write_text("trajectory_inference:\n  batch_size: 0\n")
    argv = ["--params", str(params), "--odometry_test_set_dir=x", "--output_dir=y"]
    assert run_stage(trajectory_inference.main, argv) == 2
    assert "trajectory_inference.batch_size: must be >= 1" in capsys.readouterr().err


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit):
        trajectory_inference.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--input_format {auto,triplets,frames} auto, triplets (release *-image_2 folders) or frames" in text
    assert "--orthonormalize [BOOL] project each averaged rotation onto SO(3)" in text
