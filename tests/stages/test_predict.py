"""``python -m stages.predict``: footage in, depth out.

Fast tier: the pure pieces (back-projection and PLY by hand, 16-bit depth PNG), the output-folder safety rules
and a folder with a truncated PNG (a fake model, so no TensorFlow). Slow tier: the real dash-cam clip through
a real (initialised, saved) checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import cv2
import numpy as np
import pytest

from formats import pointcloud
from formats.depth_image import decode_depth_png, depth_to_uint16, encode_depth_png
from stages import common, predict

HEIGHT, WIDTH = 64, 96


# --- pure pieces ---------------------------------------------------------------------------------------


def test_backprojection_of_a_known_depth_by_hand(tmp_path):
    intrinsics = np.array([[2.0, 0.0, 1.0], [0.0, 4.0, 0.5], [0.0, 0.0, 1.0]])
    depth = np.array([[2.0, 1.0, 0.0], [8.0, 3.0, 4.0]])
    points = pointcloud.backproject(depth, intrinsics)
    # X = (i - cx) z / fx, Y = (j - cy) z / fy, Z = z, pixel (i, j) = (column, row)
    np.testing.assert_allclose(points[0, 0], [(0 - 1) * 2 / 2, (0 - 0.5) * 2 / 4, 2])  # (-1, -0.25, 2)
    np.testing.assert_allclose(points[0, 1], [0.0, -0.125, 1.0])
    np.testing.assert_allclose(points[1, 0], [-4.0, 1.0, 8.0])
    np.testing.assert_allclose(points[1, 2], [2.0, 0.5, 4.0])
    colours = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    kept, kept_colours = pointcloud.valid_points(points, colours, depth)
    assert kept.shape == (5, 3), "the zero-depth pixel is left out"
    path = tmp_path / "cloud.ply"
    pointcloud.write_ply(path, kept, kept_colours)
    read_points, read_colours = pointcloud.read_ply(path)
    np.testing.assert_allclose(read_points, kept, rtol=1e-6)
    np.testing.assert_array_equal(read_colours, kept_colours)
    assert b"element vertex 5" in path.read_bytes()[:300]


def test_depth_png_scale_invalid_and_clipping():
    depth = np.array([[0.5, 300.0, np.nan], [-1.0, 1.0 / 1024, 12.34]])
    values, clipped = depth_to_uint16(depth)
    np.testing.assert_array_equal(values, [[128, 65535, 0], [0, 1, round(12.34 * 256)]])
    assert values.dtype == np.uint16 and clipped == 2  # 300 above 255.996, 1/1024 below 1/256
    data, _ = encode_depth_png(depth)
    decoded = decode_depth_png(data)
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, values / 256.0)


# --- a fake model: no TensorFlow in the fast tier --------------------------------------------------------


@dataclasses.dataclass
class FakeConfig:
    img_height: int = HEIGHT
    img_width: int = WIDTH
    learn_intrinsics: bool = False


class FakeModel:
    """Depth = 1 + mean colour; each pair moves 1 unit forward; K of an (untrained) head."""

    image_size = (HEIGHT, WIDTH)
    checkpoint_path = "fake/model-1"

    def __init__(self, learn_intrinsics=False):
        self.config = FakeConfig(learn_intrinsics=learn_intrinsics)
        self.intrinsics_source = "learned" if learn_intrinsics else "given"  # as InferenceModel.intrinsics_source

    def predict_depth(self, images, flip_augment=True):
        return 1.0 + np.asarray(images).mean(axis=-1)

    def predict_egomotion(self, image_a, image_b, flip_augment=False):
        count = len(image_a)
        intrinsics = np.tile([[50.0, 0, 47.5], [0, 50.0, 31.5], [0, 0, 1]], (count, 1, 1))
        return np.tile(np.eye(3), (count, 1, 1)), np.tile([0.0, 0.0, 1.0], (count, 1)), intrinsics


def frame_folder(folder, count=6, truncated=3, size=(120, 80)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        ok, data = cv2.imencode(".png", image)
        data = data.tobytes()
        (folder / f"frame{index:03d}.png").write_bytes(data[:100] if index == truncated else data)
    return folder


def run(argv, model):
    return common.run_stage(lambda args: predict.main(args, model=model), argv, name="predict")


def test_a_truncated_frame_is_a_dead_letter_not_fatal(tmp_path, capsys):
    frames = frame_folder(tmp_path / "frames")
    output = tmp_path / "out"
    code = run(
        [
            f"--input={frames}",
            f"--output={output}",
            "--checkpoint_path=fake",
            "--quiet",
            "--batch_size=2",
            "--point_cloud_frames=1,9",
        ],
        FakeModel(),
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((output / "manifest.json").read_text())
    entry = manifest["inputs"][0]
    assert (entry["frames"], entry["dead_letters"]) == (5, 1)
    assert manifest["counts"] == {"inputs": 1, "frames": 5, "dead_letters": 1, "inputs_without_frames": 0}
    assert manifest["dead_letter_reasons"] == {"unreadable_frame": 1}
    letters = [json.loads(line) for line in (output / "dead_letters.jsonl").read_text().splitlines()]
    assert len(letters) == 1 and letters[0]["frame"].endswith("frame003.png")
    assert letters[0]["reason"].startswith("unreadable_frame")
    sequence = output / "frames"
    rows = list(csv.DictReader((sequence / "frames.csv").open()))
    assert [row["frame"].rsplit("/", 1)[-1] for row in rows] == [f"frame{i:03d}.png" for i in (0, 1, 2, 4, 5)]
    assert [float(row["timestamp_s"]) for row in rows] == [0.0, 0.1, 0.2, 0.4, 0.5]  # index / image_folder.fps
    assert sorted(path.name for path in (sequence / "depth").iterdir()) == [f"{i:06d}.npy" for i in range(5)]
    depth = np.load(sequence / "depth" / "000004.npy")
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    png = cv2.imread(str(sequence / "depth_png" / "000004.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(png, np.rint(depth * 256).astype(np.uint16))
    assert cv2.imread(str(sequence / "depth_color" / "000000.png")).shape == (HEIGHT, WIDTH, 3)
    poses = np.loadtxt(sequence / "poses_kitti.txt").reshape(-1, 3, 4)
    np.testing.assert_allclose(poses[:, 2, 3], [0, 1, 2, 3, 4])  # one unit forward per pair, 5 frames
    tum = np.loadtxt(sequence / "poses_tum.txt")
    np.testing.assert_allclose(tum[:, 0], [0.0, 0.1, 0.2, 0.4, 0.5])
    intrinsics = json.loads((sequence / "intrinsics.json").read_text())
    assert intrinsics["source"] == "guessed" and intrinsics["learned"] is None, "an untrained head is not learned"
    # the guess at native 120x80 (fx = width), resized exactly to 96x64: fx = 120 * 0.8
    np.testing.assert_allclose(np.array(intrinsics["K_native"])[0], [120.0, 0.0, 59.5], atol=1e-9)
    assert entry["point_clouds"] == 1 and entry["point_cloud_frames_missing"] == [9]
    points, _ = pointcloud.read_ply(sequence / "pointcloud" / "000001.ply")
    expected = pointcloud.backproject(np.load(sequence / "depth" / "000001.npy"), np.array(intrinsics["K"]))
    np.testing.assert_allclose(points, expected.reshape(-1, 3), rtol=1e-6)
    capture = cv2.VideoCapture(str(sequence / "preview.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 2 * WIDTH
    capture.release()
    listed = set((output / "outputs.txt").read_text().split())
    assert "frames/depth/000004.npy" in listed and "manifest.json" in listed
    assert not [path for path in output.rglob(".tmp-*")]


def test_learned_intrinsics_are_reported_only_for_a_trained_head(tmp_path):
    frames = frame_folder(tmp_path / "frames", truncated=-1)
    output = tmp_path / "out"
    assert (
        run(
            [f"--input={frames}", f"--output={output}", "--checkpoint_path=fake", "--quiet"],
            FakeModel(learn_intrinsics=True),
        )
        == 0
    )
    intrinsics = json.loads((output / "frames" / "intrinsics.json").read_text())
    assert intrinsics["source"] == "learned" and intrinsics["learned"]["num_pairs"] == 5
    np.testing.assert_allclose(intrinsics["K"], [[50, 0, 47.5], [0, 50, 31.5], [0, 0, 1]])
    # back to the native 120x80 frames: fx * 1.25, cx = 1.25 (47.5 + 0.5) - 0.5
    np.testing.assert_allclose(np.array(intrinsics["K_native"])[0], [62.5, 0.0, 59.5])


def test_tied_focal_aspect_reports_fy_from_fx_and_the_reader_aspect(tmp_path):
    frames = frame_folder(tmp_path / "frames", truncated=-1, size=(120, 60))
    output = tmp_path / "out"
    model = FakeModel(learn_intrinsics=True)
    model.focal_aspect = "records"
    assert run([f"--input={frames}", f"--output={output}", "--checkpoint_path=fake", "--quiet"], model) == 0
    intrinsics = json.loads((output / "frames" / "intrinsics.json").read_text())
    reader = np.array(intrinsics["reader"]["K"])
    aspect = (HEIGHT / 60) / (WIDTH / 120)  # the guess has square native pixels: the resize's aspect (4/3)
    assert reader[1, 1] / reader[0, 0] == pytest.approx(aspect)
    np.testing.assert_allclose(intrinsics["K"], [[50, 0, 47.5], [0, 50 * aspect, 31.5], [0, 0, 1]])
    assert intrinsics["source"] == "learned" and "focal_aspect" in intrinsics["learned"]["fy"]


def test_given_intrinsics_file_is_used_and_a_missing_one_fails(tmp_path, capsys):
    frames = frame_folder(tmp_path / "frames", truncated=-1)
    calibration = tmp_path / "cam.txt"
    calibration.write_text("100,0,59.5,0,100,39.5,0,0,1\n")
    output = tmp_path / "out"
    assert (
        run(
            [
                f"--input={frames}",
                f"--output={output}",
                "--checkpoint_path=fake",
                "--quiet",
                f"--intrinsics={calibration}",
            ],
            FakeModel(),
        )
        == 0
    )
    intrinsics = json.loads((output / "frames" / "intrinsics.json").read_text())
    assert intrinsics["source"] == "given" and intrinsics["reader"]["file"] == str(calibration)
    np.testing.assert_allclose(np.array(intrinsics["K"])[0], [80.0, 0.0, 47.5])  # 100 * 96/120, exact centre
    capsys.readouterr()
    code = run(
        [
            f"--input={frames}",
            f"--output={tmp_path / 'out2'}",
            "--checkpoint_path=fake",
            "--quiet",
            f"--intrinsics={tmp_path / 'missing.txt'}",
        ],
        FakeModel(),
    )
    err = capsys.readouterr().err
    assert code == 2 and "missing.txt not found" in err and "Traceback" not in err
    assert not (tmp_path / "out2").exists()


# --- output folder rules -------------------------------------------------------------------------------


def test_foreign_folder_and_the_input_are_never_written(tmp_path, capsys):
    frames = frame_folder(tmp_path / "frames", truncated=-1)
    before = {path: path.read_bytes() for path in frames.iterdir()}
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (foreign, "did not write"),
        (frames, "inside the input"),
        (frames / "depth", "inside the input"),
        (tmp_path, "lies inside the output folder"),
    ]
    for output, message in cases:
        code = run([f"--input={frames}", f"--output={output}", "--checkpoint_path=fake", "--quiet"], FakeModel())
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(foreign.iterdir()) == [foreign / "notes.txt"]
    assert {path: path.read_bytes() for path in frames.iterdir()} == before
    assert not (frames / "depth").exists()


def test_output_inside_a_folder_of_videos_is_refused(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(b"not a video")
    code = run(
        [f"--input={videos}", f"--output={videos / 'predictions'}", "--checkpoint_path=fake", "--quiet"], FakeModel()
    )
    assert code == 2 and "inside the input" in capsys.readouterr().err
    assert sorted(path.name for path in videos.iterdir()) == ["clip.mp4"]


def test_rerun_into_its_own_output_removes_only_its_own_stale_files(tmp_path):
    frames = frame_folder(tmp_path / "frames", truncated=-1)
    output = tmp_path / "out"
    assert run([f"--input={frames}", f"--output={output}", "--checkpoint_path=fake", "--quiet"], FakeModel()) == 0
    assert (output / "frames" / "depth" / "000005.npy").is_file()
    (output / "frames" / "my_notes.txt").write_text("keep me")
    (frames / "frame005.png").unlink()
    assert run([f"--input={frames}", f"--output={output}", "--checkpoint_path=fake", "--quiet"], FakeModel()) == 0
    assert not (output / "frames" / "depth" / "000005.npy").exists(), "stale output of the earlier run"
    assert (output / "frames" / "depth" / "000004.npy").is_file()
    assert (output / "frames" / "my_notes.txt").read_text() == "keep me"


def test_no_readable_frame_exits_2_with_the_dead_letters_written(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = run([f"--input={folder}", f"--output={tmp_path / 'out'}", "--checkpoint_path=fake", "--quiet"], FakeModel())
    err = capsys.readouterr().err
    assert code == 2 and "no frame could be predicted" in err
    assert "unreadable_frame" in (tmp_path / "out" / "dead_letters.jsonl").read_text()
    code = run(
        [f"--input={tmp_path / 'nothing*.mp4'}", f"--output={tmp_path / 'out3'}", "--checkpoint_path=fake", "--quiet"],
        FakeModel(),
    )
    assert code == 2 and "no video or image frames found" in capsys.readouterr().err


# --- the real dash-cam clip through a real checkpoint --------------------------------------------------


def video_timestamps(path):
    """Seconds from the first frame of every frame, by CAP_PROP_POS_MSEC after each grab."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    times = []
    while capture.grab():
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    capture.release()
    return np.array(times) - times[0]


@pytest.mark.slow
def test_predict_on_the_real_dashcam_clip(real_data, tmp_path):
    from model.checkpoints import make_checkpoint, write_model_config
    from model.config import ModelConfig
    from model.depth_motion_model import DepthMotionModel
    from model.inference import InferenceModel

    config = ModelConfig(
        img_height=HEIGHT, img_width=WIDTH, depth_network_width=0.25, motion_network_width=0.25, learn_intrinsics=False
    )
    checkpoint = tmp_path / "ckpt"
    write_model_config(checkpoint, config)
    make_checkpoint(DepthMotionModel(config)).save(str(checkpoint / "model"))
    clip = real_data / "video" / "dashcam_highway.mp4"
    output = tmp_path / "out"
    manifest = predict.main(
        [
            f"--checkpoint_path={checkpoint}",
            f"--input={clip}",
            f"--output={output}",
            "--video.fps=2",
            "--batch_size=4",
            "--point_cloud_frames=0",
            "--save_disparity",
            "--quiet",
        ]
    )
    assert manifest["checkpoint"].endswith("model-1") and manifest["counts"]["dead_letters"] == 0
    entry = manifest["inputs"][0]
    sequence = output / "dashcam_highway"
    # 8.8 s at 2 frames/s: targets 0, 0.5, ..., 8.5 s -> 18 frames
    assert entry["frames"] == entry["poses"] == 18
    tum = np.loadtxt(sequence / "poses_tum.txt")
    native = video_timestamps(clip)
    assert len(native) == 221
    assert all(np.min(np.abs(native - t)) < 1e-6 for t in tum[:, 0]), "TUM times are the video's own timestamps"
    assert tum[0, 0] == 0.0 and np.all(np.abs(np.diff(tum[:, 0]) - 0.5) <= 0.04 + 1e-9)
    np.testing.assert_allclose(tum[1, 0], 0.52)  # first frame at or after 0.5 s of a 25 fps clip
    assert len(np.loadtxt(sequence / "poses_kitti.txt")) == 18
    for folder, suffix in (("depth", ".npy"), ("depth_png", ".png"), ("depth_color", ".png"), ("disparity", ".npy")):
        assert len(list((sequence / folder).glob("*" + suffix))) == 18
    depth = np.load(sequence / "depth" / "000017.npy")
    assert depth.shape == (HEIGHT, WIDTH) and np.all(depth > 0)
    np.testing.assert_allclose(np.load(sequence / "disparity" / "000017.npy"), 1.0 / depth, rtol=1e-6)
    frames = (
        np.stack(
            [
                cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
                for image in [_frame_at(clip, 0)]
            ]
        ).astype(np.float32)
        / 255.0
    )
    np.testing.assert_allclose(
        np.load(sequence / "depth" / "000000.npy"),
        InferenceModel.from_checkpoint(checkpoint).predict_depth(frames)[0],
        rtol=1e-4,
    )
    intrinsics = json.loads((sequence / "intrinsics.json").read_text())
    assert intrinsics["source"] == "guessed" and intrinsics["learned"] is None
    assert intrinsics["native_image_size"] == [540, 960]
    points, colours = pointcloud.read_ply(sequence / "pointcloud" / "000000.ply")
    assert points.shape == (HEIGHT * WIDTH, 3) and colours.dtype == np.uint8
    capture = cv2.VideoCapture(str(sequence / "preview.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 18
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    assert size == (2 * WIDTH, HEIGHT)
    capture.release()
    assert cv2.imread(str(sequence / "trajectory.png")) is not None


def _frame_at(path, number):
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for _ in range(number + 1):
        ok, image = capture.read()
    capture.release()
    assert ok
    return image


# --- inputs and the trajectory plot --------------------------------------------------------------------


def test_inputs_from_folders_globs_and_errors(tmp_path):
    from pipelines import footage

    a = frame_folder(tmp_path / "drive a", count=3, truncated=-1)
    frame_folder(tmp_path / "b", count=2, truncated=-1)
    inputs, letters = footage.find_inputs(str(a))
    safe_a = inputs[0].name  # preprocessing's safe sequence name for "drive a"
    assert safe_a.startswith("drive_a") and " " not in safe_a
    assert [(item.kind, len(item.files)) for item in inputs] == [("image_folder", 3)] and letters == []
    inputs, _ = footage.find_inputs(str(tmp_path / "*" / "frame00[01].png"))
    assert [(item.name, [p.rsplit("/", 1)[-1] for p in item.files]) for item in inputs] == [
        ("b", ["frame000.png", "frame001.png"]),
        (safe_a, ["frame000.png", "frame001.png"]),
    ]
    (tmp_path / "b" / "timestamps.txt").write_text("0.0\n0.1\n")
    footage.find_inputs(str(tmp_path / "b" / "*.png"))  # all of the folder's images: fine
    with pytest.raises(ValueError, match="selects 1 of the 2 images"):
        footage.find_inputs(str(tmp_path / "b" / "frame001.png"))
    inputs, _ = footage.find_inputs(str(tmp_path / "*"))  # a glob of folders: each folder
    assert sorted(item.name for item in inputs) == ["b", safe_a]
    (a / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="both image files and other files"):
        footage.find_inputs(str(a / "*"))
    with pytest.raises(FileNotFoundError, match="no video or image frames"):
        footage.find_inputs(str(tmp_path / "missing" / "*.mp4"))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(b"")
    inputs, _ = footage.find_inputs(str(videos))  # a folder of videos
    assert [(item.kind, item.name) for item in inputs] == [("video", "clip")]


def test_an_empty_video_is_a_dead_letter(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "empty.mp4").write_bytes(b"")
    code = run(
        [f"--input={videos / '*.mp4'}", f"--output={tmp_path / 'out'}", "--checkpoint_path=fake", "--quiet"],
        FakeModel(),
    )
    assert code == 2 and "no frame could be predicted" in capsys.readouterr().err
    letters = (tmp_path / "out" / "dead_letters.jsonl").read_text()
    assert "corrupt_video" in letters and "empty.mp4" in letters


def test_trajectory_top_view_puts_start_and_end_where_the_path_goes():
    from evaluation.trajectory_plot import top_view

    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 2, 3] = [0.0, 5.0, 10.0]  # straight ahead along z: bottom to top, centred in x
    image = top_view(poses, size=200, margin=20)
    start, end = image[180, 100], image[20, 100]
    assert tuple(start) == (0, 160, 0) and tuple(end) == (0, 0, 220)  # BGR: green start, red end
    with pytest.raises(ValueError):
        top_view(np.zeros((0, 4, 4)))


def test_a_long_video_streams_through_a_bounded_queue(tmp_path, monkeypatch):
    """The reader runs at most the queue (2 batches) and one frame ahead of the networks."""
    from pipelines import footage
    from pipelines.records import Frame

    produced = {"count": 0}
    intrinsics = np.array([[96.0, 0, 47.5], [0, 96.0, 31.5], [0, 0, 1]])

    def long_stream(item, config):
        for number in range(200):
            produced["count"] += 1
            yield Frame(
                source="video",
                sequence=item.name,
                index=number,
                frame_id=f"long.mp4@{number}",
                timestamp=number / 10.0,
                image=np.full((HEIGHT, WIDTH, 3), number % 250, np.uint8),
                intrinsics=intrinsics,
                raw_index=number,
                native_size=(WIDTH, HEIGHT),
            )

    monkeypatch.setattr(footage, "stream_frames", long_stream)
    monkeypatch.setattr(
        footage,
        "find_inputs",
        lambda pattern: ([footage.FootageInput("video", "long", str(tmp_path / "long.mp4"))], []),
    )

    class Watching(FakeModel):
        seen = lead = 0

        def predict_depth(self, images, flip_augment=True):
            self.seen += len(images)
            self.lead = max(self.lead, produced["count"] - self.seen)
            return super().predict_depth(images, flip_augment)

    model = Watching()
    assert (
        run(
            [
                f"--input={tmp_path / 'long.mp4'}",
                f"--output={tmp_path / 'out'}",
                "--checkpoint_path=fake",
                "--quiet",
                "--batch_size=4",
                "--nopreview_video",
            ],
            model,
        )
        == 0
    )
    assert model.seen == 200 and 0 < model.lead <= 2 * 4 + 1
    assert len(np.loadtxt(tmp_path / "out" / "long" / "poses_kitti.txt")) == 200


# --- the typed predict section ----------------------------------------------------------------------------------


def test_config_is_params_yaml_and_coerces_yaml_strings():
    paths = {"checkpoint_path": "c", "input": "i", "output": "o"}  # null in params.yaml: given on the command line
    config = predict.PredictConfig.from_mapping({**common.load_params("predict"), **paths}, section="predict")
    assert config == predict.PredictConfig(**paths)
    assert config.video.fps == 10.0 and config.image_folder.stride == 1 and config.point_cloud_frames == ()
    typed = predict.PredictConfig.from_mapping(
        {"checkpoint_path": "c", "input": "i", "output": "o", "video": {"fps": "1e1"}, "point_cloud_frames": "9,0,9"}
    )
    assert typed.video.fps == 10.0 and typed.point_cloud_frames == (0, 9)  # sorted, once each
    assert typed.parameters()["point_cloud_frames"] == [0, 9] and "input" not in typed.parameters()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--accumulation=sum"], "predict.accumulation: must be one of compose, dfv"),
        (["--point_cloud_frames=3,-1"], "predict.point_cloud_frames: must be >= 0"),
        (["--batch_size=0"], "predict.batch_size: must be >= 1"),
        (["--video.fps=0"], "predict.video.fps: must be > 0"),
        (["--checkpoint_path=null"], "predict.checkpoint_path: --checkpoint_path is required"),
    ],
)
def test_bad_parameters_are_named_and_exit_2(tmp_path, capsys, argv, message):
    base = [f"--input={tmp_path}", f"--output={tmp_path / 'out'}", "--checkpoint_path=fake", "--quiet"]
    assert run(base + argv, FakeModel()) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_key_of_the_section_is_named(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("predict:\n  batch_size: 8\n  video:\n    fsp: 3\n")
    assert run(["--params", str(params)], FakeModel()) == 2
    assert "predict.video: unknown key(s) 'fsp'" in capsys.readouterr().err


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--image_folder.stride INT every n-th image of a frame folder (default: 1)" in text
    assert "--point_cloud_frames A,B,... output frame indices written as coloured .ply point clouds" in text
    assert "(default: (none))" in text


def test_writer_publishes_a_batch_of_frames_together_and_nothing_on_error(tmp_path):
    writer = predict.Writer(tmp_path)
    with writer.batch():
        writer.bytes("v/depth/000000.npy", b"a")
        writer.text("v/depth/000001.txt", "b")
        assert not (tmp_path / "v" / "depth" / "000000.npy").exists()  # not visible before the batch ends
    assert (tmp_path / "v" / "depth" / "000000.npy").read_bytes() == b"a"
    assert sorted(p.name for p in (tmp_path / "v" / "depth").iterdir()) == ["000000.npy", "000001.txt"]
    with pytest.raises(RuntimeError):
        with writer.batch():
            writer.bytes("v/depth/000002.npy", b"c")
            raise RuntimeError("encoder failed")
    assert sorted(p.name for p in (tmp_path / "v" / "depth").iterdir()) == ["000000.npy", "000001.txt"]
    writer.bytes("v/manifest.json", b"{}")  # outside a batch: written at once
    assert (tmp_path / "v" / "manifest.json").read_bytes() == b"{}"
    writer.close()
