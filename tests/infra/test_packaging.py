"""Dataflow readiness, offline: the package Beam ships to workers installs and works without the repository.

With ``--setup_file ./setup.py`` Beam's stager builds a source distribution of the project
(``Stager._build_setup_package``: ``python -m build --sdist`` if ``build`` is installed, else
``python setup.py sdist``) and every worker ``pip install``s it. This test does the same offline:

1. copies the repository's tracked files (``git ls-files``) into a temporary folder, so nothing is
   written into the working tree and no untracked file can leak into the package;
2. builds the sdist there with Beam's own stager function;
3. creates a fresh virtual environment and installs the sdist into it with ``--no-deps --no-index``;
   third-party packages (Beam, OpenCV, NumPy) come from the project's ``.venv`` through a ``.pth`` line
   naming its site-packages directory. A plain path line is not processed as a site directory, so the
   ``.venv``'s editable-install hook (which would put the repository on ``sys.path``) does not run;
4. in that environment, started isolated (``-I``) from a folder outside the repository, checks that
   ``pipelines``, ``formats``, ``stages`` resolve to the installed copy and that no ``sys.path`` entry is
   the repository; that the package data (``pipelines/data/*.txt``) is installed; then builds the
   preprocessing graph for the DataflowRunner (``--dry_run=True``: translated to the job request, never
   submitted) and runs the same pipeline on Beam's local runner over three tiny frames, which unpickles
   and executes every DoFn from the installed code, as a worker does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

PACKAGES = ("formats", "synthetic", "pipelines", "model", "evaluation", "stages")


def copy_tracked_tree(destination: Path) -> None:
    """The working-tree content of every git-tracked file (a clean checkout of the current state)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def build_worker_sdist(tmp_path: Path) -> Path:
    """Build the sdist exactly as Beam's stager does for ``--setup_file``; returns the .tar.gz."""
    from apache_beam.runners.portability.stager import Stager

    tree = tmp_path / "checkout"
    copy_tracked_tree(tree)
    out = tmp_path / "sdist"
    out.mkdir()
    return Path(Stager._build_setup_package(str(tree / "setup.py"), str(out)))


def make_clean_venv(tmp_path: Path) -> Path:
    """A new venv whose only view of the project's .venv is a plain site-packages path line (no .pth hooks)."""
    venv = tmp_path / "worker-venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]  # this interpreter's (the project .venv's) site-packages
    assert Path(deps).resolve() != Path(site).resolve()
    (Path(site) / "_wilddepth_third_party.pth").write_text(deps + "\n")
    return python


def clean_env() -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


CHECK_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    repo, site, frames_dir, out_dir, tmp_dir = (Path(a) for a in sys.argv[1:6])
    import formats, pipelines, stages, pipelines.preprocess
    for module in (formats, pipelines, stages, pipelines.preprocess):
        origin = Path(module.__file__).resolve()
        assert origin.is_relative_to(site.resolve()), f"{module.__name__} imported from {origin}, not {site}"
    on_path = [p for p in sys.path if p and Path(p).resolve() == repo.resolve()]
    assert not on_path, f"the repository is on sys.path: {on_path}"
    data = sorted(p.name for p in (Path(pipelines.__file__).parent / "data").iterdir())
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    assert not bad, f"pipelines imported {bad}"

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from pipelines.config import PreprocessConfig
    from pipelines.preprocess import build, read_manifest, run

    config = PreprocessConfig.from_mapping({"source": "image_folder", "input": "gs://bucket/frames",
                                 "output": "gs://bucket/records", "segmenter": "none"}, section="preprocess")
    pipeline = beam.Pipeline(options=PipelineOptions([
        "--runner=DataflowRunner", "--project=demo-project", "--region=europe-west1",
        f"--temp_location=gs://bucket/tmp", "--dry_run=True"]))
    build(pipeline, config)
    job = pipeline.run().job
    names = sorted(t.unique_name for t in job.proto_pipeline.components.transforms.values() if "/" not in t.unique_name)

    local = PreprocessConfig.from_mapping({"source": "image_folder", "input": str(frames_dir), "output": str(out_dir),
                                "segmenter": "none", "width": 32, "height": 16, "val_fraction": 0.0,
                                "static_threshold": 0}, section="preprocess")
    run(local, ["--runner=DirectRunner", "--direct_num_workers=1", f"--temp_location={tmp_dir}"])
    print(json.dumps({"data": data, "transforms": names, "job": bool(job.proto.name),
                      "counts": read_manifest(str(out_dir))["counts"],
                      "records": sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.png"))}))
""")


def write_frames(folder: Path, count: int = 3) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = (rng.random((48, 96, 3)) * 255).astype(np.uint8)
    for index in range(count):
        cv2.imwrite(str(folder / f"{index:06d}.png"), np.roll(base, 3 * index, axis=1))


def test_worker_package_installs_and_builds_the_pipeline_without_the_repository(tmp_path):
    sdist = build_worker_sdist(tmp_path)
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    top = members[0].split("/")[0]
    shipped = {name.split("/")[1] for name in members if name.count("/") >= 2}
    assert set(PACKAGES) <= shipped, f"packages missing from the sdist: {set(PACKAGES) - shipped}"
    assert f"{top}/pipelines/data/eigen_test_scenes.txt" in members
    assert not any(name.startswith(f"{top}/tests/") for name in members), "tests must not ship to workers"

    python = make_clean_venv(tmp_path)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", str(sdist)],
        check=True,
        env=clean_env(),
        cwd=tmp_path,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    frames = tmp_path / "frames" / "clip"
    write_frames(frames)
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run(
        [
            str(python),
            "-I",
            str(script),
            str(REPO_ROOT),
            site,
            str(frames.parent),
            str(tmp_path / "records"),
            str(tmp_path / "beam_tmp"),
        ],
        cwd=work,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["data"] == sorted(p.name for p in (REPO_ROOT / "pipelines" / "data").iterdir())
    assert report["job"]
    assert {"Read", "Mask", "WriteRecords", "Finalize"} <= set(report["transforms"])
    assert report["records"] == ["clip/0000000001-fseg.png", "clip/0000000001.png"], report
