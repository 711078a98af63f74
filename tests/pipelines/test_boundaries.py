"""Import boundaries, segmenter plug point, and an offline proof that the graph builds for Dataflow."""

import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.config import PreprocessConfig
from pipelines.masking import GroundTruthMasks, NoMasks, make_segmenter
from pipelines.preprocess import build
from tests.conftest import REPO_ROOT


def test_pipeline_modules_do_not_import_tensorflow():
    code = (
        "import sys, pipelines.preprocess, pipelines.masking, pipelines.youtube8m, stages.preprocess; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_segmenter_names():
    assert isinstance(make_segmenter("none", {}), NoMasks)
    assert isinstance(make_segmenter("ground_truth", {}), GroundTruthMasks)
    with pytest.raises(ValueError, match="unknown segmenter"):
        make_segmenter("sam", {})


def test_detectron2_segmenter_missing_install_gives_a_pointer(monkeypatch):
    monkeypatch.setitem(sys.modules, "pipelines.detectron2_masker", None)  # import of it fails
    with pytest.raises(RuntimeError, match="install_detectron2.sh.*docs/masking.md"):
        make_segmenter("detectron2", {})


@pytest.mark.parametrize("source", ["kitti_raw", "cityscapes", "video", "image_folder"])
def test_graph_builds_and_serialises_for_the_dataflow_runner_without_submitting(source, tmp_path):
    """DataflowRunner with --dry_run: Beam translates the graph to the runner API and the Dataflow job
    request, then returns before any call to Google Cloud (no credentials, no network)."""
    config = PreprocessConfig.from_mapping(
        {"source": source, "input": "gs://bucket/raw", "output": "gs://bucket/records", "segmenter": "ground_truth"}
    )
    options = PipelineOptions(
        [
            "--runner=DataflowRunner",
            "--project=demo-project",
            "--region=europe-west1",
            "--temp_location=gs://bucket/tmp",
            "--dry_run=True",
            f"--setup_file={REPO_ROOT / 'setup.py'}",
        ]
    )
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config)
    result = pipeline.run()
    job = result.job
    names = {transform.unique_name for transform in job.proto_pipeline.components.transforms.values()}
    assert {"Read", "Mask", "GroupSequences", "AssembleTriplets", "WriteRecords", "Finalize"} <= names
    (environment,) = job.proto_pipeline.components.environments.values()
    assert "beam_python" in environment.payload.decode("latin-1")  # the Dataflow SDK container
    assert job.proto.name  # the job request exists
    assert len(job.proto_pipeline.SerializeToString()) > 10_000
