import json

import cv2
import numpy as np
import pytest

from evaluation import depth_evaluation, headline
from evaluation.depth_evaluation import DepthEvalConfig
from formats import groundtruth
from stages import eval_depth
from tests.evaluation.fakes import FakePredictor, make_kitti_raw_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_test")
    make_kitti_raw_world(root, num_drives=2, num_frames=4)
    return root


def test_eval_depth_end_to_end_with_constant_baseline(world, tmp_path):
    predictor = FakePredictor(image_size=(32, 96))
    metrics_file, plots = tmp_path / "metrics" / "depth.json", tmp_path / "plots" / "depth"
    document = eval_depth.main(
        [
            f"--data_dir={world}",
            "--batch_size=3",
            f"--metrics_file={metrics_file}",
            f"--plots_dir={plots}",
            "--num_images=2",
        ],
        predictor=predictor,
    )
    # dvc metrics show: a compact headline; the full document beside it in details/
    assert json.loads(metrics_file.read_text()) == headline.depth(document)
    assert json.loads((metrics_file.parent / "details" / "depth.json").read_text()) == document
    assert len(json.loads(metrics_file.read_text())) <= 12
    assert document["num_images"] == 8 and document["dataset"] == "synthetic"
    # batches of 3, 3, 2 at the model's size, with the release's flip option passed through
    assert [shape for shape, _ in predictor.depth_calls] == [(3, 32, 96, 3), (3, 32, 96, 3), (2, 32, 96, 3)]
    assert all(flip for _, flip in predictor.depth_calls)
    model, baseline = document["model"], document["constant_baseline"]
    assert set(model) == set(baseline) == {"abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"}
    # the fake sees the depth (up to resizing blur), the constant guess does not
    assert model["abs_rel"] < 0.5 * baseline["abs_rel"]
    assert model["a1"] > baseline["a1"]
    assert document["abs_rel_over_constant"] == pytest.approx(model["abs_rel"] / baseline["abs_rel"])
    assert document["protocol"]["image_size"] == [32, 96]
    table = (plots / "error_by_distance.csv").read_text().splitlines()
    assert table[0] == "distance_m,count,abs_rel_model,abs_rel_constant,rmse_model,rmse_constant"
    assert len(table) > 3
    per_image = (plots / "per_image.csv").read_text().splitlines()
    assert len(per_image) == 9 and per_image[1].startswith("0,2011_09_26_drive_0001_sync/0000000000,")
    pngs = sorted((plots / "images").glob("*.png"))
    assert len(pngs) == 2
    panel = cv2.imread(str(pngs[0]))
    assert panel.shape == (3 * 90, 300, 3)


def test_constant_baseline_scores_the_median_and_matches_a_constant_model(world, tmp_path):
    class ConstantPredictor(FakePredictor):
        def predict_depth(self, images, flip_augment=True):
            return np.full(images.shape[:3], 7.0, np.float32)

    document = eval_depth.main(
        [
            f"--data_dir={world}",
            f"--metrics_file={tmp_path / 'd.json'}",
            f"--plots_dir={tmp_path / 'p'}",
            "--num_images=0",
        ],
        predictor=ConstantPredictor(),
    )
    for name, value in document["model"].items():
        assert value == pytest.approx(document["constant_baseline"][name]), name
    assert document["abs_rel_over_constant"] == pytest.approx(1.0)


def test_scaling_none_and_flip_flag(world, tmp_path):
    predictor = FakePredictor(image_size=(32, 96), depth_scale=0.37)
    document = eval_depth.main(
        [
            f"--data_dir={world}",
            "--scaling=none",
            "--noflip_augment",
            "--frame_stride=2",
            f"--metrics_file={tmp_path / 'd.json'}",
            f"--plots_dir={tmp_path / 'p'}",
        ],
        predictor=predictor,
    )
    assert document["num_images"] == 4
    assert document["model"]["abs_rel"] > 0.5  # 0.37x too near without median scaling
    assert not any(flip for _, flip in predictor.depth_calls)


def test_missing_ground_truth_and_bad_dataset_are_clear_errors(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="no KITTI-raw-layout drive"):
        depth_evaluation.synthetic_samples(tmp_path)
    with pytest.raises(ValueError, match="dataset"):
        depth_evaluation.build_samples(DepthEvalConfig(dataset="nyu", data_dir=str(world)))


def test_kitti_eigen_dataset_on_the_real_mini_sample(real_data, tmp_path):
    split = tmp_path / "mini_split.txt"
    split.write_text(
        "2011_09_26/2011_09_26_drive_sfnd_sync 0000000000 l\n2011_09_26/2011_09_26_drive_sfnd_sync 0000000005 l\n"
    )
    samples = depth_evaluation.kitti_eigen_samples(real_data / "kitti_raw_mini", split)
    assert [sample.name for sample in samples] == [
        "2011_09_26_drive_sfnd_sync/0000000000",
        "2011_09_26_drive_sfnd_sync/0000000005",
    ]
    result = depth_evaluation.evaluate(
        samples,
        FakePredictor(image_size=(64, 224)),
        DepthEvalConfig(batch_size=2, num_images=1),
        images_dir=tmp_path / "images",
    )
    assert 0 < result["constant_baseline"]["abs_rel"] < 1
    assert len(list((tmp_path / "images").glob("*.png"))) == 1
    # the shipped 697-frame list is the default; without the data every file is reported missing
    with pytest.raises(FileNotFoundError, match="1394 files of the test list are missing"):
        depth_evaluation.kitti_eigen_samples(tmp_path)


def test_cityscapes_ground_truth_from_disparity_and_crop(tmp_path):
    split, city, stem = "test", "berlin", "berlin_000000_000019"
    depth = np.full((20, 40), 10.0)
    depth[12:, :] = 5.0
    baseline, fx = 0.2, 500.0
    encoded = np.round(baseline * fx / depth * 256.0 + 1.0).astype(np.uint16)  # p = 256 d + 1
    encoded[0, :] = 0  # invalid
    for folder, name, writer in (
        ("disparity", f"{stem}_disparity.png", lambda p: cv2.imwrite(str(p), encoded)),
        (
            "leftImg8bit",
            f"{stem}_leftImg8bit.png",
            lambda p: cv2.imwrite(
                str(p), np.clip(2.0 / depth * 255, 0, 255).astype(np.uint8)[:, :, None].repeat(3, axis=2)
            ),
        ),
        (
            "camera",
            f"{stem}_camera.json",
            lambda p: p.write_text(json.dumps({"extrinsic": {"baseline": baseline}, "intrinsic": {"fx": fx}})),
        ),
    ):
        path = tmp_path / folder / split / city / name
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
    gt = depth_evaluation.cityscapes_depth(
        tmp_path / "disparity" / split / city / f"{stem}_disparity.png",
        tmp_path / "camera" / split / city / f"{stem}_camera.json",
    )
    assert np.all(gt[0] == 0)
    np.testing.assert_allclose(gt[1:], depth[1:], rtol=1e-3)  # 256-step disparity quantisation
    (sample,) = depth_evaluation.cityscapes_samples(tmp_path, split, crop_box=(2, 18, 4, 36))
    assert sample.crop_box == (2, 18, 4, 36) and sample.load_ground_truth().shape == (16, 32)
    result = depth_evaluation.evaluate(
        [sample], FakePredictor(image_size=(8, 16)), DepthEvalConfig(crop="none", num_images=0)
    )
    assert result["model"]["abs_rel"] < 0.05 < result["constant_baseline"]["abs_rel"]


# --- regions: moving-object pixels (the synthetic world's ground-truth masks) and static pixels ---------------


def _masked_world(root, first_drive_mask):
    """The fake world with the first drive's masks replaced by ``first_drive_mask`` (the other drive: none)."""
    make_kitti_raw_world(root, num_drives=2, num_frames=4)
    drive = root / "2011_09_26" / "2011_09_26_drive_0001_sync"
    for k in range(4):
        groundtruth.write_frame(
            drive / "groundtruth", k, np.load(drive / "groundtruth" / "depth" / f"{k:010d}.npy"), first_drive_mask
        )
    return root


class WrongOnTheLeftPredictor(FakePredictor):
    """The fake's depth, 3x too far in the left quarter of the first drive's images (frames 0-3), where the test
    puts that drive's object masks."""

    def predict_depth(self, images, flip_augment=True):
        depth = super().predict_depth(images, flip_augment)
        for image, prediction in zip(images, depth):
            if self.frame_index(image) < 4:
                prediction[:, : images.shape[2] // 4] *= 3.0
        return depth


def test_regions_separate_moving_objects_from_static_pixels(tmp_path):
    mask = np.zeros((90, 300), np.uint8)
    mask[:, :75] = 4  # the left quarter, every row (instance id 4)
    world = _masked_world(tmp_path / "world", mask)
    metrics_file = tmp_path / "depth.json"
    document = eval_depth.main(
        [
            f"--data_dir={world}",
            f"--metrics_file={metrics_file}",
            f"--plots_dir={tmp_path / 'plots'}",
            "--num_images=0",
        ],
        predictor=WrongOnTheLeftPredictor(image_size=(32, 96)),
    )
    assert json.loads((metrics_file.parent / "details" / metrics_file.name).read_text()) == document
    assert json.loads(metrics_file.read_text()) == headline.depth(document)
    moving, static = document["regions"]["moving_objects"], document["regions"]["static"]
    # the second drive has no object pixel: skipped and counted, not scored as a perfect 0
    assert (moving["num_images"], moving["num_images_without_pixels"]) == (4, 4)
    assert (static["num_images"], static["num_images_without_pixels"]) == (8, 0)
    # the error lives where the mask is; the whole-image median scale (3/4 static) keeps the static part right
    assert moving["model"]["abs_rel"] > 1.0 and static["model"]["abs_rel"] < 0.2
    assert moving["model"]["abs_rel"] > 5 * static["model"]["abs_rel"]
    plain = depth_evaluation.evaluate(
        depth_evaluation.synthetic_samples(world), FakePredictor(image_size=(32, 96)), DepthEvalConfig(num_images=0)
    )["regions"]
    assert plain["moving_objects"]["model"]["abs_rel"] < 0.2 and plain["static"]["model"]["abs_rel"] < 0.2
    assert document["moving_objects_over_static_abs_rel"] == pytest.approx(
        moving["model"]["abs_rel"] / static["model"]["abs_rel"]
    )
    assert set(moving["model"]) == set(moving["constant_baseline"]) == set(document["model"])
    assert moving["abs_rel_over_constant"] == pytest.approx(
        moving["model"]["abs_rel"] / moving["constant_baseline"]["abs_rel"]
    )
    assert "per image" in document["protocol"]["regions"]["averaging"]
    # per image: the two regions partition the valid pixels; the whole-image numbers are unchanged by regions
    rows = (tmp_path / "plots" / "per_image.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[-6:] == [
        "abs_rel_model_moving_objects",
        "abs_rel_constant_moving_objects",
        "valid_pixels_moving_objects",
        "abs_rel_model_static",
        "abs_rel_constant_static",
        "valid_pixels_static",
    ]
    for line in rows[1:]:
        cells = dict(zip(header, line.split(",")))
        assert int(cells["valid_pixels_moving_objects"]) + int(cells["valid_pixels_static"]) == int(
            cells["valid_pixels"]
        )
        assert (cells["abs_rel_model_moving_objects"] == "") == ("drive_0002" in cells["name"])
    result = depth_evaluation.evaluate(
        depth_evaluation.synthetic_samples(world),
        WrongOnTheLeftPredictor(image_size=(32, 96)),
        DepthEvalConfig(num_images=0),
    )
    assert result["model"] == document["model"]


def test_a_mask_over_everything_makes_the_moving_region_the_whole_image(tmp_path):
    world = _masked_world(tmp_path / "world", np.ones((90, 300), np.uint8))
    samples = [sample for sample in depth_evaluation.synthetic_samples(world) if "drive_0001" in sample.name]
    result = depth_evaluation.evaluate(samples, FakePredictor(image_size=(32, 96)), DepthEvalConfig(num_images=0))
    moving, static = result["regions"]["moving_objects"], result["regions"]["static"]
    for name, value in result["model"].items():
        assert moving["model"][name] == pytest.approx(value), name
        assert moving["constant_baseline"][name] == pytest.approx(result["constant_baseline"][name]), name
    assert static["model"] is None and (static["num_images"], static["num_images_without_pixels"]) == (0, 4)


def test_missing_masks_are_errors_not_a_silent_subset(tmp_path):
    world = _masked_world(tmp_path / "world", np.zeros((90, 300), np.uint8))
    (world / "2011_09_26" / "2011_09_26_drive_0002_sync" / "groundtruth" / "masks" / "0000000003.png").unlink()
    with pytest.raises(FileNotFoundError, match="ground-truth object mask missing"):
        depth_evaluation.synthetic_samples(world)
    samples = depth_evaluation.synthetic_samples(world, frame_stride=2)  # frame 3 is not used: fine
    mixed = samples[:1] + [samples[1]._replace(load_object_mask=None)]
    with pytest.raises(ValueError, match="region metrics need a mask for every image"):
        depth_evaluation.evaluate(mixed, FakePredictor(image_size=(32, 96)), DepthEvalConfig(num_images=0))
    bad = samples[:1] + [samples[1]._replace(load_object_mask=lambda: np.zeros((5, 5), np.uint8))]
    with pytest.raises(ValueError, match="must have the ground truth's size"):
        depth_evaluation.evaluate(bad, FakePredictor(image_size=(32, 96)), DepthEvalConfig(num_images=0))
    with pytest.raises(ValueError, match="object_masks_dir: is for"):
        DepthEvalConfig(dataset="synthetic", data_dir=str(world), object_masks_dir=str(tmp_path))


def test_given_object_masks_for_real_datasets_are_cut_like_the_image(tmp_path):
    masks_dir = tmp_path / "masks"
    image = np.zeros((20, 40, 3), np.uint8)
    sample = depth_evaluation.DepthSample(
        "city/frame_1", tmp_path / "x.png", lambda: np.ones((16, 32)), crop_box=(2, 18, 4, 36)
    )
    with pytest.raises(FileNotFoundError, match="1 of 1 object masks are missing"):
        depth_evaluation.with_object_masks([sample], masks_dir)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[2, 4] = 9
    (masks_dir / "city").mkdir(parents=True)
    cv2.imwrite(str(masks_dir / "city" / "frame_1.png"), mask)
    (with_mask,) = depth_evaluation.with_object_masks([sample], masks_dir)
    loaded = with_mask.load_object_mask()
    assert loaded.shape == (16, 32) and loaded[0, 0] == 9 and loaded.sum() == 9
    assert depth_evaluation.region_names("cityscapes") == ("objects", "background")
    assert depth_evaluation.region_names("synthetic") == ("moving_objects", "static")


def test_stage_exit_codes_for_user_errors(tmp_path, capsys):
    from stages.common import run_stage

    assert run_stage(eval_depth.main, [f"--data_dir={tmp_path}"]) == 2  # no checkpoint
    assert "--checkpoint_path is required" in capsys.readouterr().err
    world = _masked_world(tmp_path / "world", np.zeros((90, 300), np.uint8))
    (world / "2011_09_26" / "2011_09_26_drive_0001_sync" / "groundtruth" / "masks" / "0000000000.png").unlink()
    argv = [f"--data_dir={world}", f"--metrics_file={tmp_path / 'd.json'}", f"--plots_dir={tmp_path / 'p'}"]
    assert run_stage(lambda: eval_depth.main(argv, predictor=FakePredictor(image_size=(32, 96)))) == 2
    error = capsys.readouterr().err
    assert "object mask missing" in error and "Traceback" not in error
    assert not (tmp_path / "d.json").exists()


# --- the typed eval_depth section -------------------------------------------------------------------------------


def test_config_is_params_yaml_and_names_bad_keys(tmp_path, capsys):
    from formats.params import ConfigError
    from stages.common import load_params, run_stage

    assert DepthEvalConfig.from_mapping(load_params("eval_depth"), section="eval_depth") == DepthEvalConfig()
    with pytest.raises(ConfigError, match="eval_depth: unknown key.*'max_dpeth'"):
        DepthEvalConfig.from_mapping({"max_dpeth": 80}, section="eval_depth")
    with pytest.raises(ConfigError) as error:
        DepthEvalConfig.from_mapping({"crop": "eigen", "batch_size": 0}, section="eval_depth")
    assert "eval_depth.crop: must be one of garg, none" in str(error.value)
    assert "eval_depth.batch_size: must be >= 1" in str(error.value)
    with pytest.raises(ConfigError, match="eval_depth.max_depth: must exceed min_depth"):
        DepthEvalConfig.from_mapping({"min_depth": 90.0}, section="eval_depth")
    config = DepthEvalConfig.from_mapping({"min_depth": "1e-3", "max_depth": "8e1", "flip_augment": "no"})
    assert (config.min_depth, config.max_depth, config.flip_augment) == (0.001, 80.0, False)
    params = tmp_path / "params.yaml"
    params.write_text("eval_depth:\n  dataset: synthetic\n  frame_strid: 2\n")
    assert run_stage(eval_depth.main, ["--params", str(params)]) == 2
    assert "'frame_strid'" in capsys.readouterr().err


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit):
        eval_depth.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--distance_bin_m FLOAT bin width of plots/depth/error_by_distance.csv (metres) (default: 5.0)" in text
    assert "--crop {garg,none} evaluation crop (use none for cityscapes) {garg, none} (default: garg)" in text
