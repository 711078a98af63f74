"""Every layout is written like the real dataset, parses with the readers of formats/, and is deterministic."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from formats import cityscapes, groundtruth, kitti
from stages import synthesize
from stages.common import run_stage
from synthetic import layouts
from synthetic.generate import Job, run
from synthetic.reprojection import T_source_from_target, warp_to_target

SIZES = {"kitti_raw": (248, 75), "kitti_odometry": (248, 75), "cityscapes": (256, 128), "video": (192, 108)}
FRAMES = 3


def render(tmp_path_factory, layout, seed=11, workers=1, name=None, sequences=1):
    width, height = SIZES[layout]
    output = tmp_path_factory.mktemp(name or layout)
    run(
        Job(
            layout=layout,
            output=str(output),
            split="val",
            seed=seed,
            num_sequences=sequences,
            frames_per_sequence=FRAMES,
            width=width,
            height=height,
            fps=10.0,
            supersampling=2,
            workers=workers,
        ),
        progress=False,
    )
    return output


@pytest.fixture(scope="module", params=layouts.LAYOUTS)
def layout_output(request, tmp_path_factory):
    return request.param, render(tmp_path_factory, request.param)


def read_rgb(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[..., ::-1]


def layout_frames_and_k(layout, root):
    """Images of sequence 0 and the K stated by the layout's own calibration file."""
    width, height = SIZES[layout]
    if layout == "kitti_raw":
        calibration = kitti.read_calibration(root / layouts.KITTI_DATE / "calib_cam_to_cam.txt")
        K = kitti.raw_camera_intrinsics(calibration, 2)
        assert kitti.raw_image_size(calibration, 2) == (width, height)
        drive = root / layouts.KITTI_DATE / f"{layouts.KITTI_DATE}_drive_0001_sync"
        stamps = kitti.parse_raw_timestamps((drive / "image_02" / "timestamps.txt").read_text())
        np.testing.assert_allclose(stamps, np.arange(FRAMES) / 10.0, atol=1e-9)
        assert np.all(np.diff(stamps) > 0)
        images = [read_rgb(drive / "image_02" / "data" / f"{i:010d}.png") for i in range(FRAMES)]
    elif layout == "kitti_odometry":
        sequence = root / "sequences" / "00"
        K = kitti.intrinsics_from_projection(
            kitti.calibration_matrix(kitti.read_calibration(sequence / "calib.txt"), "P2", (3, 4))
        )
        np.testing.assert_allclose(
            kitti.parse_odometry_times((sequence / "times.txt").read_text()), np.arange(FRAMES) / 10.0
        )
        poses = kitti.read_poses(root / "poses" / "00.txt")
        np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
        images = [read_rgb(sequence / "image_2" / f"{i:06d}.png") for i in range(FRAMES)]
    elif layout == "cityscapes":
        folder = root / "leftImg8bit_sequence" / "val" / layouts.CITY
        names = sorted(p.name for p in folder.iterdir())
        assert [cityscapes.parse_frame_name(n).frame for n in names] == list(range(FRAMES))
        K = cityscapes.read_camera_intrinsics(
            root / "camera" / "val" / layouts.CITY / f"{layouts.CITY}_000000_000001_camera.json"
        )
        images = [read_rgb(folder / n) for n in names]
    else:
        capture = cv2.VideoCapture(str(root / "synthetic_0000.mp4"))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
        images = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            images.append(frame[..., ::-1])
        capture.release()
        K = groundtruth.read_sequence(root / "groundtruth" / "synthetic_0000").intrinsics
    assert len(images) == FRAMES and images[0].shape == (height, width, 3)
    return images, K


def test_layout_parses_and_its_calibration_is_the_rendering_k(layout_output):
    layout, root = layout_output
    images, K = layout_frames_and_k(layout, root)
    truth_folder = layouts.groundtruth_dir(layout, root, "val", 0)
    truth = groundtruth.read_sequence(truth_folder)
    np.testing.assert_allclose(K, truth.intrinsics, rtol=1e-6)
    assert truth.poses.shape == (FRAMES, 4, 4) and np.all(np.diff(truth.timestamps) > 0)
    depth = groundtruth.read_depth(truth_folder, 0)
    mask = groundtruth.read_mask(truth_folder, 0)
    assert depth.dtype == np.float32 and depth.shape == images[0].shape[:2] == mask.shape
    assert np.all(np.isfinite(depth)) and depth.min() > 0.5 and depth.max() < 1000.0
    # gold warp with the layout's own K: frame 1 warped into frame 0 matches on static pixels
    depth1 = groundtruth.read_depth(truth_folder, 1)
    T = T_source_from_target(truth.poses[1], truth.poses[0])
    warped, valid = warp_to_target(images[1] / 255.0, depth, K, T)
    warped_depth, _ = warp_to_target(depth1, depth, K, T)
    x, y = np.meshgrid(np.arange(depth.shape[1]), np.arange(depth.shape[0]))
    z_source = (depth[..., None] * (np.stack([x, y, np.ones_like(x)], -1) @ np.linalg.inv(K).T)) @ T[2, :3] + T[2, 3]
    static = valid & (mask == 0) & (np.abs(warped_depth - z_source) < 0.02 * z_source)
    static[:2] = static[-2:] = False
    static[:, :2] = static[:, -2:] = False
    error = np.abs(warped - images[0] / 255.0).mean(-1)[static].mean()
    wrong = T.copy()
    wrong[:3, 3] += (0.3, 0.1, 0.5)
    warped_wrong, valid_wrong = warp_to_target(images[1] / 255.0, depth, K, wrong)
    wrong_error = np.abs(warped_wrong - images[0] / 255.0).mean(-1)[static & valid_wrong].mean()
    limit = 0.045 if layout == "video" else 0.025  # mp4v is lossy
    assert error < limit and error < 0.5 * wrong_error, (error, wrong_error)


def digest(root: Path):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_same_seed_same_bytes_any_worker_count(tmp_path_factory):
    first = render(tmp_path_factory, "kitti_raw", seed=5, workers=1, name="a", sequences=2)
    second = render(tmp_path_factory, "kitti_raw", seed=5, workers=2, name="b", sequences=2)
    assert digest(first) == digest(second)
    other = render(tmp_path_factory, "kitti_raw", seed=6, workers=1, name="c", sequences=1)
    path = Path(layouts.KITTI_DATE) / f"{layouts.KITTI_DATE}_drive_0001_sync" / "image_02" / "data" / "0000000000.png"
    assert digest(first)[str(path)] != digest(other)[str(path)]
    assert json.loads((first / "synthetic.json").read_text())["seed"] == 5


def test_video_bytes_are_deterministic(tmp_path_factory):
    first = render(tmp_path_factory, "video", seed=3, name="v1")
    second = render(tmp_path_factory, "video", seed=3, name="v2")
    assert digest(first) == digest(second)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layout", "nuscenes"], "synthesize.layout: must be one of"),
        (["--frames_per_sequence", "0"], "synthesize.frames_per_sequence: must be >= 1"),
        (["--num_sequences", "0"], "num_sequences: must be >= 1"),
        (["--split", "holdout"], "unknown split 'holdout'"),
        (["--train.seed", "null"], "pass --seed and --num_sequences"),
        (["--fps", "0"], "synthesize.fps: must be > 0"),
        (["--world", "mars"], "synthesize.world: must be one of"),
        (["--camera", "fisheye"], "synthesize.camera: must be one of"),
        (["--path", "offroad"], "synthesize.path: must be one of"),
        (["--world", "wild", "--wild_camera.sizes", "1280"], "expected WIDTHxHEIGHT"),
        (["--world", "wild", "--wild_camera.hfov_min_deg", "100"], "hfov_min_deg <= hfov_max_deg"),
        (["--world", "wild", "--wild_camera.fps", "10,-5"], "positive frame rates"),
        (["--world", "wild", "--wild_path.stop_probability", "1.5"], "wild_path.stop_probability: must be <= 1.0"),
        (["--world", "wild", "--wild_path.turn_max_deg", "10"], "turn_min_deg <= turn_max_deg"),
        (["--world", "wild", "--width", "10"], "too small"),
    ],
)
def test_bad_arguments_give_clear_errors(tmp_path, argv, message, capsys):
    with pytest.raises(ValueError) as error:
        synthesize.main(["--output", str(tmp_path / "out"), "--quiet"] + argv)
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()
    # through the stage runner: exit 2 and one line on stderr, no traceback
    assert run_stage(synthesize.main, ["--output", str(tmp_path / "out"), "--quiet"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_stage_uses_split_defaults(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "synthesize:\n  layout: kitti_odometry\n  world: original\n  width: 124\n  height: 38\n  fps: 5.0\n"
        "  frames_per_sequence: 2\n  supersampling: 1\n  workers: 1\n"
        "  train: {seed: 1, num_sequences: 1}\n  test: {seed: 2, num_sequences: 2}\n"
    )
    synthesize.main(["--params", str(params), "--split", "test", "--output", str(tmp_path / "o"), "--quiet"])
    assert sorted(p.name for p in (tmp_path / "o" / "sequences").iterdir()) == ["00", "01"]
    assert json.loads((tmp_path / "o" / "synthetic.json").read_text())["seed"] == 2
    np.testing.assert_allclose(
        kitti.parse_odometry_times((tmp_path / "o/sequences/01/times.txt").read_text()), [0.0, 0.2]
    )
