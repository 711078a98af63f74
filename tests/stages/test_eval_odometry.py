import json

import numpy as np
import pytest

from evaluation import headline
from formats import kitti
from formats.struct2depth import read_rgb
from stages import eval_odometry, trajectory_inference
from tests.evaluation.fakes import FakePredictor, make_kitti_raw_world, write_triplet_folder

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
    document = eval_odometry.main(
        [f"--trajectory_dir={tmp_path / 'traj'}", f"--metrics_file={metrics_file}", f"--plots_dir={plots}"]
    )
    assert json.loads(metrics_file.read_text()) == headline.odometry(document)
    assert json.loads((metrics_file.parent / "details" / "odometry.json").read_text()) == document
    assert len(json.loads(metrics_file.read_text())) <= 12
    model, baseline = document["model"], document["constant_velocity"]
    assert model["num_snippets"] == baseline["num_snippets"] == 2 * (NUM_FRAMES - 4)
    assert model["ate5_mean"] < 1e-5 and model["ate_full_rmse"] < 1e-4
    assert model["ate_sim3_rmse"] < 1e-4 and model["ate_se3_rmse"] > 1e-3  # motion scale 0.3: only Sim(3) fixes it
    assert baseline["ate_sim3_rmse"] > 1e-3
    # the same folder given as --prediction (it has a manifest.json) gives the same document
    again = eval_odometry.main(
        [
            f"--prediction={tmp_path / 'traj'}",
            f"--metrics_file={tmp_path / 'again.json'}",
            f"--plots_dir={tmp_path / 'again'}",
        ]
    )
    assert again == document
    assert baseline["ate5_mean"] > 1e-3  # the fixture's drives turn and drift sideways
    assert document["ate5_mean_over_constant_velocity"] < 0.01
    assert model["t_err_percent"] is None and model["num_segments"] == 0  # 9 frames: no 100 m segment
    for name in poses:
        assert document["sequences"][name]["model"]["full_scale"] == pytest.approx(1 / 0.3, rel=1e-4)
    gt_rows = (plots / "trajectory_ground_truth.csv").read_text().splitlines()
    model_rows = (plots / "trajectory_model.csv").read_text().splitlines()
    assert gt_rows[0] == "sequence,frame,x,z" and len(gt_rows) == 1 + 2 * NUM_FRAMES
    for gt_row, model_row in zip(gt_rows[1:], model_rows[1:]):  # scaled model trajectory lies on the GT
        assert np.allclose(
            [float(v) for v in gt_row.split(",")[2:]], [float(v) for v in model_row.split(",")[2:]], atol=1e-4
        )
    assert len((plots / "trajectory_constant_velocity.csv").read_text().splitlines()) == 1 + 2 * NUM_FRAMES
    snippets = (plots / "ate_snippets.csv").read_text().splitlines()
    assert snippets[0] == "sequence,start,ate5_model,ate5_constant_velocity" and len(snippets) == 1 + 2 * 5


def test_segment_lengths_short_enough_give_relative_errors(world, tmp_path):
    root, poses, by_index = world
    run_inference(root, tmp_path / "traj", by_index)
    document = eval_odometry.main(
        [
            f"--trajectory_dir={tmp_path / 'traj'}",
            f"--metrics_file={tmp_path / 'm.json'}",
            f"--plots_dir={tmp_path / 'p'}",
            "--segment_lengths=2,4",
            "--segment_step=1",
        ]
    )
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
        eval_odometry.main(
            [
                f"--trajectory_dir={tmp_path / 'traj'}",
                f"--metrics_file={tmp_path / 'm.json'}",
                f"--plots_dir={tmp_path / 'p'}",
            ]
        )
    document = eval_odometry.main(
        [
            f"--trajectory_dir={tmp_path / 'traj'}",
            f"--gt_poses_dir={gt_dir}",
            f"--metrics_file={tmp_path / 'm.json'}",
            f"--plots_dir={tmp_path / 'p'}",
        ]
    )
    sequence = document["sequences"]["09-image_2"]
    assert sequence["num_poses"] == NUM_FRAMES - 1 and sequence["gt_poses_total"] == NUM_FRAMES
    assert sequence["model"]["ate5_mean"] < 1e-5


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="trajectory_inference"):
        eval_odometry.main([f"--trajectory_dir={tmp_path}", f"--metrics_file={tmp_path / 'm.json'}"])


# --- prediction files of any origin -------------------------------------------------------------------------

from evaluation import trajectory as tr  # noqa: E402
from stages.common import run_stage  # noqa: E402


@pytest.fixture(scope="module")
def kitti09(real_data):
    root = real_data / "kitti_odometry"
    gt_file = root / "poses" / "09.txt"
    return gt_file, root / "sequences" / "09" / "times.txt", kitti.read_poses(gt_file)


def kitti_text(poses, frames=None):
    rows = []
    for k, pose in enumerate(poses):
        values = " ".join(f"{v:.9e}" for v in pose[:3, :4].reshape(-1))
        rows.append(values if frames is None else f"{frames[k]} {values}")
    return "\n".join(rows) + "\n"


def from_frame(gt, first, count, scale=0.3):
    """Frames first .. first+count-1 of ``gt`` as a prediction starting at identity, translations * scale."""
    poses = np.linalg.inv(gt[first]) @ gt[first : first + count]
    poses[:, :3, 3] *= scale
    return poses


def evaluate_files(tmp_path, *flags):
    return eval_odometry.main([*flags, f"--metrics_file={tmp_path / 'm.json'}", f"--plots_dir={tmp_path / 'p'}"])


def test_numbered_prediction_starting_at_frame_2_is_compared_with_ground_truth_frames_2_on(kitti09, tmp_path):
    gt_file, _, gt = kitti09
    prediction = tmp_path / "pred.txt"
    prediction.write_text(kitti_text(from_frame(gt, 2, 40), frames=range(2, 42)))
    document = evaluate_files(tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_file}")
    sequence = document["sequences"]["pred"]
    assert sequence["matching"] == "frame_number" and sequence["format"] == "kitti"
    assert (sequence["first_gt_frame"], sequence["last_gt_frame"], sequence["num_poses"]) == (2, 41, 40)
    assert sequence["gt_poses_total"] == gt.shape[0]
    model = sequence["model"]
    assert model["ate5_mean"] < 1e-7 and model["ate_full_rmse"] < 1e-6 and model["ate_sim3_rmse"] < 1e-6
    assert model["full_scale"] == pytest.approx(1 / 0.3, rel=1e-6)
    assert model["sim3_scale"] == pytest.approx(1 / 0.3, rel=1e-6)
    assert model["num_snippets"] == 36 and document["constant_velocity"]["ate5_mean"] > 1e-3
    rows = (tmp_path / "p" / "trajectory_ground_truth.csv").read_text().splitlines()
    assert rows[1].startswith("pred,2,") and rows[-1].startswith("pred,41,")
    assert (tmp_path / "p" / "ate_snippets.csv").read_text().splitlines()[1].startswith("pred,2,")
    # the same poses numbered from 0 are compared with frames 0..39: no longer a perfect match
    prediction.write_text(kitti_text(from_frame(gt, 2, 40), frames=range(40)))
    shifted = evaluate_files(tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_file}")
    assert shifted["model"]["ate5_mean"] > 1e-3 and shifted["model"]["ate_sim3_rmse"] > 0.01


def test_unnumbered_prediction_of_another_length_is_an_error_not_a_truncation(kitti09, tmp_path, capsys):
    gt_file, _, gt = kitti09
    prediction = tmp_path / "pred.txt"
    prediction.write_text(kitti_text(from_frame(gt, 0, 40)))
    argv = [
        f"--prediction={prediction}",
        f"--gt_poses={gt_file}",
        f"--metrics_file={tmp_path / 'm.json'}",
        f"--plots_dir={tmp_path / 'p'}",
    ]
    assert run_stage(eval_odometry.main, argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert f"{prediction}: 40 poses but the ground truth" in error and "frame number" in error
    assert not (tmp_path / "m.json").exists()
    # the whole sequence without numbers is matched line by line
    prediction.write_text(kitti_text(from_frame(gt, 0, gt.shape[0])))
    document = evaluate_files(tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_file}")
    assert document["sequences"]["pred"]["matching"] == "line_order"
    assert document["model"]["ate_sim3_rmse"] < 1e-5 and document["model"]["num_snippets"] == gt.shape[0] - 4


def test_gaps_in_frame_numbers_keep_only_consecutive_snippets(kitti09, tmp_path):
    gt_file, _, gt = kitti09
    frames = list(range(10, 20)) + list(range(30, 36))
    poses = np.linalg.inv(gt[10]) @ gt[frames]
    prediction = tmp_path / "gappy.txt"
    prediction.write_text(kitti_text(poses, frames))
    document = evaluate_files(tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_file}")
    assert document["model"]["num_snippets"] == 6 + 2  # windows inside 10..19 and 30..35 only
    assert document["model"]["ate5_mean"] < 1e-7 and document["model"]["ate_se3_rmse"] < 1e-6
    starts = [int(row.split(",")[1]) for row in (tmp_path / "p" / "ate_snippets.csv").read_text().splitlines()[1:]]
    assert starts == [10, 11, 12, 13, 14, 15, 30, 31]


def test_tum_prediction_is_matched_by_timestamp_within_the_tolerance(kitti09, tmp_path, capsys):
    gt_file, times_file, gt = kitti09
    times = kitti.parse_odometry_times(times_file.read_text())
    prediction = tmp_path / "pred_tum.txt"
    prediction.write_text(tr.format_tum(times[5:45] + 0.004, from_frame(gt, 5, 40)))
    document = evaluate_files(
        tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_file}", f"--gt_times={times_file}"
    )
    sequence = document["sequences"]["pred_tum"]
    assert sequence["matching"] == "timestamp" and sequence["format"] == "tum"
    assert (sequence["first_gt_frame"], sequence["last_gt_frame"]) == (5, 44)
    assert sequence["largest_time_diff_s"] == pytest.approx(0.004, abs=1e-5)
    assert sequence["model"]["ate5_mean"] < 1e-6 and sequence["model"]["ate_sim3_rmse"] < 1e-5
    argv = [
        f"--prediction={prediction}",
        f"--gt_poses={gt_file}",
        f"--gt_times={times_file}",
        "--max_time_diff=0.002",
        f"--metrics_file={tmp_path / 'm2.json'}",
        f"--plots_dir={tmp_path / 'p2'}",
    ]
    assert run_stage(eval_odometry.main, argv) == 2
    error = capsys.readouterr().err.strip()
    assert f"{prediction}:1: timestamp" in error and "no ground-truth pose within 0.002 s" in error
    assert "40 of 40 poses unmatched" in error
    # without ground-truth times a TUM file is matched by line order, so its length must be the sequence's
    argv = [
        f"--prediction={prediction}",
        f"--gt_poses={gt_file}",
        f"--metrics_file={tmp_path / 'm2.json'}",
        f"--plots_dir={tmp_path / 'p2'}",
    ]
    assert run_stage(eval_odometry.main, argv) == 2
    assert "ground truth's timestamps" in capsys.readouterr().err


def test_tum_ground_truth_carries_its_own_timestamps(kitti09, tmp_path):
    _, times_file, gt = kitti09
    times = kitti.parse_odometry_times(times_file.read_text())
    gt_tum = tmp_path / "gt_tum.txt"
    gt_tum.write_text(tr.format_tum(times[:60], gt[:60]))
    prediction = tmp_path / "pred.txt"
    prediction.write_text(tr.format_tum(times[20:50], from_frame(gt, 20, 30)))
    document = evaluate_files(tmp_path, f"--prediction={prediction}", f"--gt_poses={gt_tum}", "--format=tum")
    assert document["sequences"]["pred"]["first_gt_frame"] == 20
    assert document["model"]["ate_sim3_rmse"] < 1e-4


def test_a_folder_of_predictions_uses_gt_poses_dir(kitti09, real_data, tmp_path):
    gt_dir = real_data / "kitti_odometry" / "poses"
    results = tmp_path / "results"
    results.mkdir()
    for name in ("09", "10"):
        gt = kitti.read_poses(gt_dir / f"{name}.txt")
        (results / f"{name}.txt").write_text(kitti_text(from_frame(gt, 0, gt.shape[0], scale=2.0)))
    document = evaluate_files(tmp_path, f"--prediction={results}", f"--gt_poses_dir={gt_dir}")
    assert sorted(document["sequences"]) == ["09", "10"]
    assert document["model"]["ate_sim3_rmse"] < 1e-5 and document["model"]["t_err_percent"] < 1e-4
    assert document["model"]["num_segments"] > 100
    (results / "11.txt").write_text(kitti_text(np.eye(4)[None]))
    with pytest.raises(FileNotFoundError, match="11.txt"):
        evaluate_files(tmp_path, f"--prediction={results}", f"--gt_poses_dir={gt_dir}")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: lines[:3] + [" ".join(lines[3].split()[:-1])] + lines[4:], ":4: 12 values where earlier"),
        (lambda lines: lines[:7] + [lines[7].replace(lines[7].split()[5], "nan", 1)] + lines[8:], ":8: non-finite"),
        (
            lambda lines: lines[:2] + [lines[2].replace(lines[2].split()[1], "0.5", 1)] + lines[3:],
            ":3: rotation is not orthonormal",
        ),
        (lambda lines: lines[:5] + [lines[4]] + lines[6:], ":6: frame number 4 does not increase"),
        (lambda lines: lines[:-1] + ["5000 " + " ".join(lines[-1].split()[1:])], ":30: frame number 5000 is beyond"),
    ],
)
def test_bad_prediction_files_exit_2_with_file_and_line(kitti09, tmp_path, capsys, edit, message):
    gt_file, _, gt = kitti09
    lines = kitti_text(from_frame(gt, 0, 30), frames=range(30)).splitlines()
    prediction = tmp_path / "bad.txt"
    prediction.write_text("\n".join(edit(lines)) + "\n")
    argv = [
        f"--prediction={prediction}",
        f"--gt_poses={gt_file}",
        f"--metrics_file={tmp_path / 'm.json'}",
        f"--plots_dir={tmp_path / 'p'}",
    ]
    assert run_stage(eval_odometry.main, argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert f"{prediction}{message}" in error
    assert not (tmp_path / "m.json").exists()


def test_bad_ground_truth_and_parameters_exit_2(kitti09, tmp_path, capsys):
    gt_file, _, gt = kitti09
    prediction = tmp_path / "pred.txt"
    prediction.write_text(kitti_text(from_frame(gt, 0, 10), frames=range(10)))
    bad_gt = tmp_path / "gt.txt"
    bad_gt.write_text(kitti_text(gt[:20]).replace(kitti_text(gt[:20]).splitlines()[9].split()[0], "inf", 1))
    common = [f"--metrics_file={tmp_path / 'm.json'}", f"--plots_dir={tmp_path / 'p'}"]
    for argv, message in (
        ([f"--prediction={prediction}", f"--gt_poses={bad_gt}"], f"{bad_gt}:10: non-finite"),
        ([f"--prediction={prediction}", f"--gt_poses={tmp_path / 'nope.txt'}"], "nope.txt: trajectory file not found"),
        ([f"--prediction={prediction}"], "--gt_poses"),
        ([f"--prediction={prediction}", f"--gt_poses={gt_file}", "--format=g2o"], "format: must be one of"),
        ([f"--prediction={prediction}", f"--gt_poses={gt_file}", "--max_time_diff=0"], "max_time_diff: must be > 0"),
        ([f"--gt_poses={gt_file}"], "exactly one of --trajectory_dir"),
        ([f"--prediction={prediction}", f"--gt_poses={gt_file}", "--format=tum"], ":1: a TUM line needs 8"),
    ):
        assert run_stage(eval_odometry.main, argv + common) == 2, argv
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error, (argv, error)


def test_config_is_params_yaml_and_names_bad_keys(tmp_path, capsys):
    from evaluation.odometry_evaluation import OdometryEvalConfig
    from formats.params import ConfigError
    from stages.common import load_params

    config = OdometryEvalConfig.from_mapping(load_params("eval_odometry"), section="eval_odometry")
    assert config == OdometryEvalConfig() and config.segment_lengths[0] == 100.0
    with pytest.raises(ConfigError, match="eval_odometry: unknown key.*'snippet'"):
        OdometryEvalConfig.from_mapping({"snippet": 5}, section="eval_odometry")
    with pytest.raises(ConfigError, match="eval_odometry.segment_lengths: must be positive"):
        OdometryEvalConfig.from_mapping({"segment_lengths": [100, -1]}, section="eval_odometry")
    assert OdometryEvalConfig.from_mapping({"rotation_tolerance": "1e-2"}).rotation_tolerance == 0.01
    params = tmp_path / "params.yaml"
    params.write_text("eval_odometry:\n  snippet_length: 5\n  ate_length: 5\n")
    assert run_stage(eval_odometry.main, ["--params", str(params), f"--trajectory_dir={tmp_path}"]) == 2
    assert "'ate_length'" in capsys.readouterr().err


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit):
        eval_odometry.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--segment_step INT first frames of the relative-error segments, every n frames (default: 10)" in text
