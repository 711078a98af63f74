"""The Dataflow command lines of docs/preprocessing.md and docs/masking.md, dry-run offline; the worker image recipe.

For every ``python -m stages.preprocess ... --runner DataflowRunner ...`` line in a fenced block of those pages
(backslash continuations joined; placeholders BUCKET, PROJECT, REGISTRY, TAG made concrete; ``--dry_run=True``
added), this checks:
- the stage's own flag parser accepts it and the pipeline config is valid;
- every flag the stage passes on to Beam is a registered Beam option (Beam drops unknown ones with a warning);
- the graph builds and Beam's DataflowRunner translates it into the job request without submitting it;
- the request carries what the command asked for: the SDK container image (in the pipeline's environment),
  experiments, service options and machine type (in the job environment that Beam's Dataflow client
  builds from the same options after staging, which a dry run skips; built here with the same class).
For ``--segmenter detectron2`` the construction-time check of torch/Detectron2/weights is replaced by a recorder
(that check runs again inside the worker container; the weights path is a path in the image).
Not checked: bucket access, credentials, quotas, the image's existence, a run on Dataflow.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.config import PreprocessConfig
from pipelines.preprocess import build
from stages.common import parse_stage_args
from stages.preprocess import beam_arguments
from tests.conftest import REPO_ROOT

DOCS = ("docs/preprocessing.md", "docs/masking.md")
PLACEHOLDERS = {
    "BUCKET": "demo-bucket",
    "PROJECT": "demo-project",
    "REGISTRY": "europe-docker.pkg.dev/demo/images",
    "TAG": "v1",
}


def dataflow_commands(text: str):
    """Every ``python -m stages.preprocess`` command with ``DataflowRunner`` inside a fenced code block."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("python -m stages.preprocess") and "DataflowRunner" in line:
                commands.append(line)
    return commands


def concrete(command: str):
    for name, value in PLACEHOLDERS.items():
        command = re.sub(rf"\b{name}\b", value, command)
    argv = shlex.split(command)[3:]
    return [
        str(REPO_ROOT / "setup.py") if a == "./setup.py" else a.replace("=./setup.py", f"={REPO_ROOT}/setup.py")
        for a in argv
    ] + ["--dry_run=True"]


def flag_names(arguments):
    return {a.split("=", 1)[0][2:] for a in arguments if a.startswith("--")}


ALL_COMMANDS = [(doc, command) for doc in DOCS for command in dataflow_commands((REPO_ROOT / doc).read_text())]


def test_each_page_has_a_dataflow_command():
    pages = {doc for doc, _ in ALL_COMMANDS}
    assert pages == set(DOCS), f"no DataflowRunner command line found in {set(DOCS) - pages}"


def test_command_extraction_joins_continuations_and_ignores_prose():
    text = (
        "prose python -m stages.preprocess --runner DataflowRunner\n```\npython -m stages.preprocess --a 1 \\\n"
        "  --runner DataflowRunner\npython -m stages.preprocess --local\n```\n"
    )
    assert dataflow_commands(text) == ["python -m stages.preprocess --a 1 --runner DataflowRunner"]


@pytest.mark.slow
@pytest.mark.parametrize("doc,command", ALL_COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(ALL_COMMANDS)])
def test_documented_dataflow_command_dry_runs(doc, command, monkeypatch):
    argv = concrete(command)
    params, _, unknown = parse_stage_args(
        "preprocess", "dry run", argv, allow_unknown=True, configs=(PreprocessConfig,)
    )
    config = PreprocessConfig.from_mapping(params, section="preprocess")
    arguments = beam_arguments(config.beam.to_mapping(), unknown)
    assert not any(a.startswith("--direct_") for a in arguments), arguments

    options = PipelineOptions(arguments)
    known = set(options.get_all_options())  # registered options only (unknown ones are dropped)
    assert flag_names(arguments) <= known, f"not Beam options: {flag_names(arguments) - known}"

    checked = []
    if config.segmenter == "detectron2":
        import pipelines.detectron2_masker as masker

        monkeypatch.setattr(masker, "check_installed", checked.append)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config)
    job = pipeline.run().job  # --dry_run: translated, never submitted

    assert job.proto.name
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"Read", "Mask", "WriteRecords", "Finalize"} <= names
    (environment,) = job.proto_pipeline.components.environments.values()
    payload = environment.payload.decode("latin-1")
    all_options = options.get_all_options()
    if all_options.get("sdk_container_image"):
        assert all_options["sdk_container_image"] in payload
    # The job's environment as the Dataflow client builds it after staging (which a dry run skips).
    from apache_beam.runners.dataflow.internal import apiclient

    environment_request = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version="0",
        proto_pipeline_staged_url=f"{all_options['temp_location']}/pipeline.pb",
        proto_pipeline=job.proto_pipeline,
    ).proto
    request = str(environment_request)
    if all_options.get("machine_type"):
        assert all_options["machine_type"] in request
    for experiment in all_options.get("experiments") or []:
        assert experiment in request, experiment
    for service_option in all_options.get("dataflow_service_options") or []:
        assert service_option in request, service_option
    if config.segmenter == "detectron2":
        (options_seen,) = checked
        assert options_seen.weights.startswith("/opt/wilddepth/weights/"), "weights must be a path in the image"
        assert "RunInference" in " ".join(names)
        if "worker_accelerator" in request:
            assert options_seen.device == "cuda"


def test_worker_image_matches_the_lock_and_copies_existing_files():
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    lock = (REPO_ROOT / "requirements" / "lock-cpu.txt").read_text()
    beam_version = re.search(r"^apache-beam==(\S+)$", lock, flags=re.M).group(1)
    base = re.search(r"^FROM apache/beam_python(\d+\.\d+)_sdk:(\S+)$", dockerfile, flags=re.M)
    assert base, "the image must start from Beam's Python SDK image"
    assert base.group(2) == beam_version
    lock_python = re.search(r"the lock file was made on (\d+\.\d+)", (REPO_ROOT / "README.md").read_text())
    assert lock_python, "README.md states which Python the lock was made on"
    assert base.group(1) == lock_python.group(1)
    for source in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.M):
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    for doc in DOCS:
        assert f"apache/beam_python{base.group(1)}_sdk:{beam_version}" in (REPO_ROOT / doc).read_text(), doc


def test_worker_install_script_uses_the_pins_of_install_detectron2():
    script = (REPO_ROOT / "scripts" / "install_detectron2.sh").read_text()
    pins = dict(re.findall(r"^(TORCH_VERSION|TORCHVISION_VERSION|D2_SDIST)=(\S+)$", script, flags=re.M))
    assert len(pins) == 3, pins
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "docker" / "install_worker.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = result.stdout
    assert f"torch=={pins['TORCH_VERSION']}" in printed and f"torchvision=={pins['TORCHVISION_VERSION']}" in printed
    assert pins["D2_SDIST"] in printed
    lock = (REPO_ROOT / "requirements" / "lock-cpu.txt").read_text()
    opencv = re.search(r"^opencv-python-headless==\S+$", lock, flags=re.M).group(0)
    assert opencv in printed
    assert "tensorflow" not in printed.lower() and "apache-beam" not in printed.lower()
