"""The wild world: a camera per sequence written in every layout's own calibration, drives with turns, stops,
speed and lane changes, determinism per seed, and the original world unchanged byte for byte."""

import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import odometry_metrics
from formats import cityscapes, groundtruth, kitti
from formats.camera import intrinsics_matrix, scale_intrinsics
from stages import synthesize
from stages.common import load_params
from synthetic import generate, layouts, paths, textures
from synthetic.cameras import CameraRanges, draw_camera, parse_size, sized
from synthetic.generate import Job, run
from synthetic.render import render_frame
from synthetic.scene import build_scene, camera_drive, footprint_points
from tests.synthetic.test_geometry import static_warp_errors

# --- the original world is unchanged -------------------------------------------------------------------

# sha256 over (relative path, sha256 of the bytes) of every file of a render (seed 11, split val, 2 sequences
# x 3 frames, 2x2 supersampling, 1 worker) made by synthetic/ as of commit d470630, before the world/camera/
# path switches existed. PNG and mp4 bytes depend on the locked OpenCV build (requirements/lock-cpu.txt).
# kitti_odometry's digest changed once since: its poses/NN.txt printed a BLAS rounding residue (~1e-16 where
# the first pose is exactly the identity), which differs between CPUs (an AMD CI machine failed the pin); the
# file is now computed without BLAS (see test_rendered_world_does_not_depend_on_the_cpus_blas_kernels).
ORIGINAL_SIZES = {"kitti_raw": (124, 38), "kitti_odometry": (124, 38), "cityscapes": (128, 64), "video": (96, 54)}
ORIGINAL_DIGESTS = {
    "kitti_raw": "c2b00a2757af075d14cc4f6c67d01a2db6f85b050948170f593acde2af45dc65",
    "kitti_odometry": "a1a2e72c61b51986d497021e54a748c654415d2ff17a12ad3382873c61c8f033",
    "cityscapes": "78e2d6dea734b79938e3e9998a7d2eb932b173cef31be40454acad2b610175d4",
    "video": "b967fad63b77c205b3123e1ad2c5fd30916f2b5d0d2382cea17d5d894ccfdea3",
}


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_original_world_is_unchanged_byte_for_byte(tmp_path, layout):
    width, height = ORIGINAL_SIZES[layout]
    run(
        Job(
            layout=layout,
            output=str(tmp_path),
            split="val",
            seed=11,
            num_sequences=2,
            frames_per_sequence=3,
            width=width,
            height=height,
            fps=10.0,
            supersampling=2,
            workers=1,
        ),
        progress=False,
    )
    assert tree_digest(tmp_path) == ORIGINAL_DIGESTS[layout]


_RENDER_ALL_LAYOUTS = """
import json, sys, tempfile
from synthetic import layouts
from synthetic.generate import Job, run
from tests.synthetic.test_wild import ORIGINAL_SIZES, tree_digest
digests = {}
for world in ("kitti", "wild"):
    for layout in layouts.LAYOUTS:
        width, height = ORIGINAL_SIZES[layout]
        with tempfile.TemporaryDirectory() as output:
            run(Job(layout=layout, output=output, split="val", seed=11, num_sequences=2, frames_per_sequence=3,
                    width=width, height=height, fps=10.0, supersampling=1, workers=1, camera=world, path=world
                    if world == "wild" else "straight"), progress=False)
            digests[world + "/" + layout] = tree_digest(output)
json.dump(digests, sys.stdout)
"""


@pytest.mark.slow  # three subprocesses, ~30 s
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="OpenBLAS core types are x86 names")
def test_rendered_world_does_not_depend_on_the_cpus_blas_kernels():
    """NumPy's OpenBLAS picks its kernels by CPU (OPENBLAS_CORETYPE forces one); each rounds differently. Every
    layout, original and wild world, must come out byte-identical under the generic SSE3 kernel (Prescott),
    the AVX2 one (Haswell, also what AMD Zen machines get) and this machine's own choice."""
    digests = {}
    for core in (None, "Prescott", "Haswell"):
        env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_CORETYPE"}
        if core:
            env["OPENBLAS_CORETYPE"] = core
        done = subprocess.run(
            [sys.executable, "-c", _RENDER_ALL_LAYOUTS],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests[core or "native"] = json.loads(done.stdout)
    assert digests["Prescott"] == digests["native"]
    assert digests["Haswell"] == digests["native"]


def test_default_params_are_the_wild_world_and_the_original_is_one_switch_away():
    params = load_params("synthesize")
    config = synthesize.SynthesizeConfig.from_mapping(params, section="synthesize")
    job = config.job("test", "unused")
    assert (job.camera, job.path) == ("wild", "wild")
    assert job.wild_camera == CameraRanges.from_mapping(params["wild_camera"])
    assert (job.seed, job.num_sequences) == (params["test"]["seed"], params["test"]["num_sequences"])
    original = dataclasses.replace(config, world="original").job("test", "unused")
    assert (original.camera, original.path) == ("kitti", "straight")
    only_camera = dataclasses.replace(config, path="straight").job("test", "unused")
    assert (only_camera.camera, only_camera.path) == ("wild", "straight")
    only_path = dataclasses.replace(config, world="original", path="wild").job("test", "unused")
    assert (only_path.camera, only_path.path) == ("kitti", "wild")


# --- cameras ---------------------------------------------------------------------------------------------


def test_camera_draws_stay_in_their_ranges_and_vary():
    ranges = CameraRanges(
        hfov_min_deg=40.0,
        hfov_max_deg=90.0,
        principal_point_offset=0.03,
        sizes=("1242x375", "1280x720", "640x480"),
        fps=(10.0, 15.0, 20.0),
    )
    drawn = [draw_camera(ranges, 3, sequence) for sequence in range(60)]
    for camera in drawn:
        width, height = camera.width, camera.height
        assert (width, height) in ranges.frame_sizes and camera.fps in ranges.fps
        assert 40.0 <= camera.hfov_deg <= 90.0
        K = camera.intrinsics
        # square pixels and fx = (W / 2) / tan(hfov / 2)
        assert K[0, 0] == K[1, 1] == pytest.approx((width / 2) / math.tan(math.radians(camera.hfov_deg) / 2))
        assert abs(K[0, 2] - (width - 1) / 2) <= 0.03 * width and abs(K[1, 2] - (height - 1) / 2) <= 0.03 * height
        assert K[0, 1] == 0 and K[1, 0] == 0 and np.array_equal(K[2], [0, 0, 1])
    hfov = np.array([camera.hfov_deg for camera in drawn])
    offsets = np.array([camera.intrinsics[0, 2] - (camera.width - 1) / 2 for camera in drawn])
    assert hfov.max() - hfov.min() > 35.0  # spread over the range, not one camera
    assert {(c.width, c.height) for c in drawn} == set(ranges.frame_sizes)
    assert {c.fps for c in drawn} == set(ranges.fps)
    assert offsets.min() < -0.01 * 640 and offsets.max() > 0.01 * 640


def test_camera_draws_are_deterministic_per_seed():
    ranges = CameraRanges()
    first = [draw_camera(ranges, 5, i) for i in range(6)]
    again = [draw_camera(ranges, 5, i) for i in range(6)]
    other = [draw_camera(ranges, 6, i) for i in range(6)]
    for a, b in zip(first, again):
        assert np.array_equal(a.intrinsics, b.intrinsics) and (a.width, a.height, a.fps) == (b.width, b.height, b.fps)
    assert any(not np.array_equal(a.intrinsics, c.intrinsics) for a, c in zip(first, other))


def test_sized_camera_keeps_the_aspect_ratio_and_scales_k_exactly():
    native = draw_camera(CameraRanges(sizes=("640x480",)), 1, 0)
    small = sized(native, 160)
    assert (small.width, small.height) == (160, 120)
    fx, cx, cy = native.intrinsics[0, 0], native.intrinsics[0, 2], native.intrinsics[1, 2]
    # hand formula of the pixel-centre convention: f' = s f, c' = s (c + 0.5) - 0.5 with s = 1/4
    np.testing.assert_allclose(
        small.intrinsics, intrinsics_matrix(fx / 4, fx / 4, (cx + 0.5) / 4 - 0.5, (cy + 0.5) / 4 - 0.5), rtol=1e-12
    )
    assert (sized(native, 0, 96).width, sized(native, 0, 96).height) == (128, 96)
    forced = sized(native, 100, 100)
    np.testing.assert_allclose(forced.intrinsics, scale_intrinsics(native.intrinsics, 100 / 640, 100 / 480))
    assert sized(native) is native
    with pytest.raises(ValueError, match="native camera"):
        sized(small, 80)


@pytest.mark.parametrize(
    "layout, native", [("kitti_raw", (1242, 375)), ("cityscapes", (2048, 1024)), ("video", (960, 540))]
)
def test_layout_camera_follows_the_native_aspect_ratio_like_a_wild_camera(layout, native):
    """One size rule for every camera: a single 0 side follows the native aspect ratio (the default world
    renders 448 wide, and `-S synthesize.world=original` must not squash the KITTI camera to 448x375)."""
    width, height, K = layouts.camera(layout, 448, 0)
    assert (width, height) == (448, round(448 * native[1] / native[0]))
    _, _, native_k = layouts.camera(layout)
    np.testing.assert_allclose(K, scale_intrinsics(native_k, width / native[0], height / native[1]), rtol=1e-12)
    assert layouts.camera(layout, 0, 100)[:2] == (round(100 * native[0] / native[1]), 100)
    assert layouts.camera(layout, 0, 0)[:2] == native
    assert layouts.camera(layout, 300, 100)[:2] == (300, 100)
    with pytest.raises(ValueError, match="too small"):
        layouts.camera(layout, 4, 0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"sizes": ["1280"]}, "WIDTHxHEIGHT"),
        ({"sizes": ["4x4"]}, "too small"),
        ({"sizes": []}, "sizes is empty"),
        ({"hfov_min_deg": 95.0}, "hfov_min_deg <= hfov_max_deg"),
        ({"principal_point_offset": 0.7}, "principal_point_offset"),
        ({"fps": [0]}, "positive frame rates"),
        ({"fps": ["fast"]}, "expected a number"),
        ({"focal": 3}, "unknown key"),
    ],
)
def test_bad_camera_ranges_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        CameraRanges.from_mapping(params, section="wild_camera")


def test_sizes_parse_from_params_and_flags():
    assert parse_size("1280x720") == (1280, 720) and parse_size(" 640X480 ") == (640, 480)
    ranges = CameraRanges.from_mapping({"sizes": " 1280X720,640x480", "fps": "10,25"})
    assert ranges.frame_sizes == ((1280, 720), (640, 480)) and ranges.fps == (10.0, 25.0)
    assert ranges.sizes == ("1280x720", "640x480")  # canonical, as synthetic.json records them


# --- every layout carries each sequence's own K ------------------------------------------------------------

WILD_WIDTH = 192
WILD_FRAMES = 3


def wild_job(layout, output, seed=21, sequences=2, path="straight", workers=1, frames=WILD_FRAMES, width=WILD_WIDTH):
    return Job(
        layout=layout,
        output=str(output),
        split="val",
        seed=seed,
        num_sequences=sequences,
        frames_per_sequence=frames,
        width=width,
        height=0,
        fps=10.0,
        supersampling=1,
        workers=workers,
        camera="wild",
        path=path,
    )


@pytest.fixture(scope="module", params=layouts.LAYOUTS)
def wild_layout(request, tmp_path_factory):
    job = wild_job(request.param, tmp_path_factory.mktemp(f"wild_{request.param}"))
    run(job, progress=False)
    return job


def layout_calibration(job: Job, sequence: int):
    """(K from the layout's own calibration file read by formats/, frame size, frame times in s, frames)."""
    root = Path(job.output)
    if job.layout == "kitti_raw":
        date = layouts.kitti_raw_date(sequence, camera_per_sequence=True)
        calibration = kitti.read_calibration(root / date / "calib_cam_to_cam.txt")
        K = kitti.raw_camera_intrinsics(calibration, 2)
        size = kitti.raw_image_size(calibration, 2)
        drive = layouts.kitti_raw_drive(root, sequence, camera_per_sequence=True)
        assert drive.parent.name == date and drive.name.startswith(date)
        times = kitti.parse_raw_timestamps((drive / "image_02" / "timestamps.txt").read_text())
        frames = [
            cv2.imread(str(drive / "image_02" / "data" / f"{i:010d}.png")) for i in range(job.frames_per_sequence)
        ]
    elif job.layout == "kitti_odometry":
        folder = root / "sequences" / f"{sequence:02d}"
        K = kitti.intrinsics_from_projection(
            kitti.calibration_matrix(kitti.read_calibration(folder / "calib.txt"), "P2", (3, 4))
        )
        times = kitti.parse_odometry_times((folder / "times.txt").read_text())
        frames = [cv2.imread(str(folder / "image_2" / f"{i:06d}.png")) for i in range(job.frames_per_sequence)]
        size = frames[0].shape[1::-1]
    elif job.layout == "cityscapes":
        folder = root / "camera" / job.split / layouts.CITY
        stems = [cityscapes.frame_stem(layouts.CITY, sequence, i) for i in range(job.frames_per_sequence)]
        every = [cityscapes.read_camera_intrinsics(folder / f"{stem}_camera.json") for stem in stems]
        for other in every[1:]:
            np.testing.assert_array_equal(other, every[0])
        K = every[0]
        frames = [
            cv2.imread(str(root / "leftImg8bit_sequence" / job.split / layouts.CITY / f"{stem}_leftImg8bit.png"))
            for stem in stems
        ]
        size = frames[0].shape[1::-1]
        times = None
    else:
        name = layouts.video_name(sequence)
        K = groundtruth.read_sequence(root / "groundtruth" / name).intrinsics
        capture = cv2.VideoCapture(str(root / f"{name}.mp4"))
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        size = frames[0].shape[1::-1]
        times = np.arange(len(frames)) / fps
    assert len(frames) == job.frames_per_sequence
    assert all(f is not None and f.shape[1::-1] == tuple(size) for f in frames)
    return K, tuple(size), times


def test_every_layout_writes_each_sequences_own_camera(wild_layout):
    job = wild_layout
    written = []
    for sequence in range(job.num_sequences):
        camera = generate.sequence_camera(job, sequence)
        K, size, times = layout_calibration(job, sequence)
        truth = groundtruth.read_sequence(layouts.groundtruth_dir(job.layout, job.output, job.split, sequence, True))
        np.testing.assert_allclose(K, camera.intrinsics, rtol=1e-6)  # layout file (%e: 7 digits)
        np.testing.assert_allclose(truth.intrinsics, camera.intrinsics, rtol=1e-6)  # ground-truth sidecar
        assert size == (camera.width, camera.height)
        assert camera.width == WILD_WIDTH and camera.height == round(
            WILD_WIDTH * camera.native_size[1] / camera.native_size[0]
        )
        if times is not None:
            np.testing.assert_allclose(np.diff(times), 1.0 / camera.fps, rtol=1e-6)
        np.testing.assert_allclose(np.diff(truth.timestamps), 1.0 / camera.fps, atol=1e-6)
        written.append(K)
    assert not np.allclose(written[0], written[1])  # two sequences, two cameras
    record = json.loads((Path(job.output) / "synthetic.json").read_text())
    assert record["camera"] == "wild" and len(record["sequences"]) == job.num_sequences
    assert record["sequences"][1]["fx"] == pytest.approx(written[1][0, 0], rel=1e-6)


def ground_plane_agreement(depth: np.ndarray, K: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Pixels whose depth is that of the road plane y = 0 seen through K from camera-to-world ``pose``: the
    ray K^-1 (x, y, 1) meets the plane at depth -origin_y / (R K^-1 (x, y, 1))_y."""
    height, width = depth.shape
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    rays = np.stack([x, y, np.ones_like(x)], -1) @ np.linalg.inv(K).T
    downward = rays @ pose[1, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        plane_depth = -pose[1, 3] / downward
    return (downward > 0) & (np.abs(plane_depth - depth) < 1e-4 * depth)


def test_the_written_k_is_the_rendered_k(wild_layout):
    """The K read back from the layout explains the rendered depth: through it, road pixels lie exactly on the
    plane y = 0, and re-rendering the scene with it gives the written depth map (to the 7 digits the text
    files keep) and mask. K off by half a pixel or 0.5 % in focal length does neither."""
    job = wild_layout
    sequence = 1
    K, _, _ = layout_calibration(job, sequence)
    folder = layouts.groundtruth_dir(job.layout, job.output, job.split, sequence, True)
    truth = groundtruth.read_sequence(folder)
    depth = groundtruth.read_depth(folder, 1)
    on_road = ground_plane_agreement(depth, K, truth.poses[1])
    assert on_road.mean() > 0.15
    scene = generate.scene_for(job, sequence)

    def rerender(intrinsics):
        return render_frame(dataclasses.replace(scene, intrinsics=intrinsics), 1, 1)

    def changed(rendered):  # share of pixels whose depth moved by more than 1e-4 of itself
        return float(np.mean(np.abs(rendered.depth - depth) > 1e-4 * depth))

    again = rerender(K)
    np.testing.assert_allclose(again.depth, depth, rtol=1e-5)
    np.testing.assert_array_equal(again.mask, groundtruth.read_mask(folder, 1))
    for change in ((0, 0, 1.005), (1, 1, 1.005), (0, 2, None), (1, 2, None)):
        wrong = K.copy()
        row, col, factor = change
        wrong[row, col] = wrong[row, col] * factor if factor else wrong[row, col] + 0.5
        assert changed(rerender(wrong)) > 0.15, change  # measured 0.32-0.66
        if row == 1:  # fy and cy decide where the road meets each row
            assert ground_plane_agreement(depth, wrong, truth.poses[1]).mean() < 0.2 * on_road.mean(), change


# --- drives with turns, stops, speed and lane changes -------------------------------------------------------


def yaw_of(pose) -> float:
    return math.atan2(pose[0, 2], pose[2, 2])


def wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


@pytest.mark.parametrize("fps", [10.0, 20.0])
def test_wild_drives_reach_the_requested_heading_change(fps):
    ranges = paths.PathRanges()
    for index in range(8):
        drive = camera_drive(7, index, fps, 60, path=ranges)
        plan, road = drive.plan, drive.road
        assert 20.0 <= abs(math.degrees(plan.turn_angle)) <= 90.0
        start, length, angle = road.turns[0]
        assert (start, length, angle) == (20.0 + plan.turn_start, plan.turn_length, plan.turn_angle)
        assert drive.camera_s[0] < start and start + length < drive.camera_s[-1]  # the whole turn is driven
        assert length / (2 * abs(angle)) >= paths.MIN_TURN_RADIUS - 1e-9
        # the camera's own yaw turns by the requested angle plus the road's gentle curvature over the drive
        gentle = dataclasses.replace(road, turns=())
        expected = angle + float(gentle.heading(drive.camera_s[-1]) - gentle.heading(drive.camera_s[0]))
        turned = wrap(yaw_of(drive.poses[-1]) - yaw_of(drive.poses[0]))
        assert abs(wrap(turned - expected)) < 0.05, (index, math.degrees(turned), math.degrees(expected))
        # and so does its direction of travel (from positions, independent of the orientation)
        positions = drive.poses[:, [0, 2], 3]
        moves = [positions[1] - positions[0], positions[-1] - positions[-2]]
        if min(np.linalg.norm(m) for m in moves) > 0.05 * 10 / fps:
            travelled = wrap(math.atan2(moves[1][0], moves[1][1]) - math.atan2(moves[0][0], moves[0][1]))
            assert abs(wrap(travelled - expected)) < 0.12, index


def speeds(drive, fps):
    return np.linalg.norm(np.diff(drive.poses[:, [0, 2], 3], axis=0), axis=1) * fps


def test_wild_drives_stop_and_change_speed():
    stopping = paths.PathRanges(stop_probability=1.0)
    cruising = paths.PathRanges(stop_probability=0.0)
    for index in range(6):
        v = speeds(camera_drive(3, index, 10.0, 60, path=stopping), 10.0)
        assert v.min() < 0.05 and v.max() > 4.0, index  # stands still, and drives
        still = v < 0.05
        assert 2 <= still.sum() and np.all(np.diff(np.flatnonzero(still)) == 1)  # one stop, at least 0.2 s
        v = speeds(camera_drive(3, index, 10.0, 60, path=cruising), 10.0)
        assert v.min() > 1.0 and v.max() / v.min() > 1.15, index  # keeps moving, at changing speed


def test_wild_drives_change_lanes():
    ranges = paths.PathRanges(lane_change_probability=1.0)
    for index in range(6):
        drive = camera_drive(4, index, 10.0, 60, path=ranges)
        plan = drive.plan
        assert {plan.lane_from, plan.lane_to} == set(paths.LANES)
        # the camera's lateral offset from the centreline, measured from its positions, moves by one lane
        offsets = []
        for frame in (0, -1):
            s = drive.camera_s[frame]
            foot = drive.road.point(s, 0.0)
            psi = float(drive.road.heading(s))
            delta = drive.poses[frame][[0, 2], 3] - foot
            offsets.append(delta[0] * math.cos(psi) - delta[1] * math.sin(psi))
        assert abs(offsets[1] - offsets[0] - (plan.lane_to - plan.lane_from)) < 0.35, (index, offsets)


def constant_velocity_ate5(poses):
    guess = odometry_metrics.constant_velocity_poses(len(poses))
    return float(odometry_metrics.snippet_ates(poses, guess, 5).mean())


def test_constant_velocity_is_a_poor_guess_on_wild_drives():
    """Scored like eval_odometry's baseline: ATE-5 of constant velocity on 12 drives, original vs wild."""
    original = [constant_velocity_ate5(camera_drive(1001, i, 10.0, 60).poses) for i in range(12)]
    wild = [constant_velocity_ate5(camera_drive(1001, i, 10.0, 60, path=paths.PathRanges()).poses) for i in range(12)]
    assert np.mean(wild) > 2.0 * np.mean(original), (np.mean(wild), np.mean(original))
    assert np.median(wild) > 1.5 * np.median(original)


def test_camera_drive_gives_the_scene_poses():
    drive = camera_drive(9, 1, 15.0, 20, path=paths.PathRanges())
    scene = build_scene(9, 1, 64, 32, intrinsics_matrix(40, 40, 31.5, 15.5), 15.0, 20, path=paths.PathRanges())
    np.testing.assert_array_equal(drive.poses, scene.poses)
    assert (
        camera_drive(9, 1, 15.0, 20).poses.tobytes()
        == build_scene(9, 1, 64, 32, intrinsics_matrix(40, 40, 31.5, 15.5), 15.0, 20).poses.tobytes()
    )


@pytest.fixture(scope="module")
def wild_scene():
    K = intrinsics_matrix(110.0, 110.0, 95.5, 31.0)
    return build_scene(1001, 0, 192, 64, K, 10.0, 60, path=paths.PathRanges())


def test_wild_road_has_no_holes_and_no_building_on_it(wild_scene):
    scene = wild_scene
    raster, x0, z0, cell = scene.ground_raster
    start, length, _ = scene.road.turns[0]
    s = np.linspace(scene.camera_s[0], start + length + 30.0, 500)
    xz = scene.road.point_grid(s, np.linspace(-24.0, 24.0, 241))
    cells = raster[np.round((xz[..., 1] - z0) / cell).astype(int), np.round((xz[..., 0] - x0) / cell).astype(int)]
    assert np.all(np.isfinite(cells))  # every ground cell near the road knows its road coordinates
    centre = scene.road.point(np.arange(s[0] - 30.0, s[-1] + 200.0, 0.1), 0.0)
    w = scene.road.half_width
    solid = np.isin(
        scene.static.material, [textures.FACADE_BRICK, textures.FACADE_PLASTER, textures.FACADE_SHOP, textures.WALL]
    )
    camera_xz = scene.poses[:, [0, 2], 3]
    for index in np.flatnonzero(solid):
        outline = footprint_points(
            scene.static.center[index, [0, 2]],
            scene.static.yaw[index],
            scene.static.half[index, 0],
            scene.static.half[index, 2],
            spacing=0.5,
        )
        distance = np.sqrt(((outline[:, None] - centre[None]) ** 2).sum(-1)).min()
        assert distance > w + 3.0 - 0.1, (index, distance)  # off the road and its sidewalk
    # the camera is never inside any box
    for index in range(len(scene.static)):
        c, s_ = math.cos(scene.static.yaw[index]), math.sin(scene.static.yaw[index])
        rel = camera_xz - scene.static.center[index, [0, 2]]
        local = np.stack([c * rel[:, 0] - s_ * rel[:, 1], s_ * rel[:, 0] + c * rel[:, 1]], 1)
        assert np.all(np.any(np.abs(local) > scene.static.half[index, [0, 2]], axis=1)), index


def test_wild_turn_renders_consistently_with_its_poses(wild_scene):
    """Mid-turn, frame t+1 warped into frame t with the true pose, depth and K matches on static pixels."""
    scene = wild_scene
    start, length, _ = scene.road.turns[0]
    inside = np.flatnonzero(
        (scene.camera_s > start + 0.3 * length)
        & (scene.camera_s < start + 0.7 * length)
        & (np.r_[np.linalg.norm(np.diff(scene.poses[:, [0, 2], 3], axis=0), axis=1), 0] > 0.3)
    )
    t = int(inside[len(inside) // 2])
    yaw_step = abs(wrap(yaw_of(scene.poses[t + 1]) - yaw_of(scene.poses[t])))
    assert yaw_step > 0.01  # the camera really turns between the two frames
    frames = {f: render_frame(scene, f, 2) for f in (t, t + 1)}
    error, wrong_error, static, static_wrong = static_warp_errors(scene, frames, t)
    assert static.mean() > 0.4
    good, bad = error[static].mean(), wrong_error[static_wrong].mean()
    assert good < 0.03 and good < 0.5 * bad, (good, bad)


def test_wild_world_is_deterministic_per_seed(tmp_path):
    first = run(wild_job("kitti_raw", tmp_path / "a", seed=4, sequences=2, path="wild"), progress=False)
    second = run(wild_job("kitti_raw", tmp_path / "b", seed=4, sequences=2, path="wild"), progress=False)
    other = run(wild_job("kitti_raw", tmp_path / "c", seed=5, sequences=2, path="wild"), progress=False)
    assert tree_digest(first) == tree_digest(second) != tree_digest(other)
    record = json.loads((first / "synthetic.json").read_text())
    assert record["path"] == "wild" and [s["sequence"] for s in record["sequences"]] == [0, 1]
    assert all(20.0 <= abs(s["turn_deg"]) <= 90.0 for s in record["sequences"])


@pytest.mark.slow
def test_wild_world_bytes_do_not_depend_on_the_worker_count(tmp_path):
    one = run(wild_job("video", tmp_path / "one", seed=8, sequences=2, path="wild", frames=6), progress=False)
    two = run(
        wild_job("video", tmp_path / "two", seed=8, sequences=2, path="wild", frames=6, workers=2), progress=False
    )
    assert tree_digest(one) == tree_digest(two)


def test_tall_sky_continues_the_clouds_above_the_backdrop_for_wide_angle_cameras():
    """A 90-degree camera pitched up sees above the backdrop's 160 m top: clipped, that part repeats the tile's
    top row (each image column one colour, vertical streaks); with ``tall_sky`` the clouds go on."""
    K = intrinsics_matrix(48.0, 48.0, 47.5, 31.5)  # 96 x 64, 90 degrees wide
    spreads = {}
    for tall in (False, True):
        scene = build_scene(2, 0, 96, 64, K, 10.0, 1, tall_sky=tall)
        pose = scene.poses[0].copy()
        pose[:3, :3] = pose[:3, :3] @ np.array(
            [[1, 0, 0], [0, math.cos(0.6), -math.sin(0.6)], [0, math.sin(0.6), math.cos(0.6)]]
        )  # look 34 degrees up
        scene.poses[0] = pose
        frame = render_frame(scene, 0, 1, include_movers=False)
        x, y = np.meshgrid(np.arange(96), np.arange(64))
        rays = np.stack([x, y, np.ones_like(x)], -1) @ np.linalg.inv(K).T
        height = -(pose[1, 3] + frame.depth * (rays @ pose[1, :3]))  # metres above the road
        above = height > textures.BACKDROP_HEIGHT + 5.0
        assert above.sum() > 200
        grey = frame.image.mean(-1)
        spreads[tall] = np.mean([grey[above[:, c], c].std() for c in range(96) if above[:, c].sum() >= 5])
    assert spreads[True] > 3.0 * spreads[False], spreads  # measured 8.2 vs 1.8 grey levels
    assert not build_scene(2, 0, 96, 64, K, 10.0, 1).tall_sky  # the original world: as before
    assert build_scene(2, 0, 96, 64, K, 10.0, 2, path=paths.PathRanges()).tall_sky


@pytest.mark.parametrize("frames", [1, 2])
def test_very_short_wild_drives_are_well_formed(frames):
    drive = camera_drive(1, 0, 10.0, frames, path=paths.PathRanges())
    assert np.all(np.diff(drive.plan.knot_t) > 0) and np.all(np.isfinite(drive.poses))


@pytest.mark.slow
def test_preprocessing_reads_each_kitti_drives_own_camera(tmp_path):
    """One date folder per camera: the project's KITTI raw source gives every drive's records its own K."""
    from formats import struct2depth
    from tests.pipelines.helpers import preprocess

    job = wild_job("kitti_raw", tmp_path / "world", seed=21, sequences=2, frames=3)
    run(job, progress=False)
    preprocess(
        "kitti_raw",
        job.output,
        tmp_path / "records",
        width=64,
        height=32,
        segmenter="ground_truth",
        kitti_raw={"exclude_eigen_test_scenes": False},
    )
    entries = sorted(
        struct2depth.read_list(tmp_path / "records" / "train.txt")
        + struct2depth.read_list(tmp_path / "records" / "val.txt")
    )
    assert [folder for folder, _ in entries] == [
        f"{layouts.kitti_raw_date(i, True)}_drive_{i + 1:04d}_sync_02" for i in range(2)
    ]
    seen = []
    for sequence, (folder, record_id) in enumerate(entries):
        camera = generate.sequence_camera(job, sequence)
        _, _, intrinsics = struct2depth.read_record(tmp_path / "records", folder, record_id)
        expected = scale_intrinsics(camera.intrinsics, 64 / camera.width, 32 / camera.height)
        np.testing.assert_allclose(intrinsics, expected, rtol=1e-5)
        seen.append(intrinsics)
    assert not np.allclose(seen[0], seen[1])
