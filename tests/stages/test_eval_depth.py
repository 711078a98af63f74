import json

import cv2
import numpy as np
import pytest

from evaluation import depth_evaluation
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
    document = eval_depth.main([f"--data_dir={world}", "--batch_size=3", f"--metrics_file={metrics_file}",
                                f"--plots_dir={plots}", "--num_images=2"], predictor=predictor)
    assert json.loads(metrics_file.read_text()) == document
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

    document = eval_depth.main([f"--data_dir={world}", f"--metrics_file={tmp_path / 'd.json'}",
                                f"--plots_dir={tmp_path / 'p'}", "--num_images=0"], predictor=ConstantPredictor())
    for name, value in document["model"].items():
        assert value == pytest.approx(document["constant_baseline"][name]), name
    assert document["abs_rel_over_constant"] == pytest.approx(1.0)


def test_scaling_none_and_flip_flag(world, tmp_path):
    predictor = FakePredictor(image_size=(32, 96), depth_scale=0.37)
    document = eval_depth.main([f"--data_dir={world}", "--scaling=none", "--noflip_augment", "--frame_stride=2",
                                f"--metrics_file={tmp_path / 'd.json'}", f"--plots_dir={tmp_path / 'p'}"],
                               predictor=predictor)
    assert document["num_images"] == 4
    assert document["model"]["abs_rel"] > 0.5  # 0.37x too near without median scaling
    assert not any(flip for _, flip in predictor.depth_calls)


def test_missing_ground_truth_and_bad_dataset_are_clear_errors(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="no KITTI-raw-layout drive"):
        depth_evaluation.synthetic_samples(tmp_path)
    with pytest.raises(ValueError, match="dataset"):
        depth_evaluation.build_samples({"dataset": "nyu", "data_dir": str(world)})


def test_kitti_eigen_dataset_on_the_real_mini_sample(real_data, tmp_path):
    split = tmp_path / "mini_split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_sfnd_sync 0000000000 l\n"
                     "2011_09_26/2011_09_26_drive_sfnd_sync 0000000005 l\n")
    samples = depth_evaluation.kitti_eigen_samples(real_data / "kitti_raw_mini", split)
    assert [sample.name for sample in samples] == ["2011_09_26_drive_sfnd_sync/0000000000",
                                                   "2011_09_26_drive_sfnd_sync/0000000005"]
    result = depth_evaluation.evaluate(samples, FakePredictor(image_size=(64, 224)), batch_size=2, num_images=1,
                                       images_dir=tmp_path / "images")
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
    for folder, name, writer in (("disparity", f"{stem}_disparity.png", lambda p: cv2.imwrite(str(p), encoded)),
                                 ("leftImg8bit", f"{stem}_leftImg8bit.png",
                                  lambda p: cv2.imwrite(str(p), np.clip(2.0 / depth * 255, 0, 255).astype(np.uint8)
                                                        [:, :, None].repeat(3, axis=2))),
                                 ("camera", f"{stem}_camera.json",
                                  lambda p: p.write_text(json.dumps({"extrinsic": {"baseline": baseline},
                                                                     "intrinsic": {"fx": fx}})))):
        path = tmp_path / folder / split / city / name
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
    gt = depth_evaluation.cityscapes_depth(tmp_path / "disparity" / split / city / f"{stem}_disparity.png",
                                           tmp_path / "camera" / split / city / f"{stem}_camera.json")
    assert np.all(gt[0] == 0)
    np.testing.assert_allclose(gt[1:], depth[1:], rtol=1e-3)  # 256-step disparity quantisation
    (sample,) = depth_evaluation.cityscapes_samples(tmp_path, split, crop_box=(2, 18, 4, 36))
    assert sample.crop_box == (2, 18, 4, 36) and sample.load_ground_truth().shape == (16, 32)
    result = depth_evaluation.evaluate([sample], FakePredictor(image_size=(8, 16)), crop="none", num_images=0)
    assert result["model"]["abs_rel"] < 0.05 < result["constant_baseline"]["abs_rel"]
