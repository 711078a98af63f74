"""Re-runs give identical bytes; a killed run followed by a restart ends complete and consistent."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from formats import struct2depth
from pipelines import ownership
from tests.conftest import REPO_ROOT
from tests.pipelines.fixtures import make_kitti_drive
from tests.pipelines.helpers import preprocess, tree_bytes


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    for drive in (1, 3, 4):
        make_kitti_drive(root, "2011_09_26", drive, 12)
    return root


@pytest.fixture(scope="module")
def reference(kitti_root, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("reference")
    preprocess("kitti_raw", kitti_root, output)
    return tree_bytes(output)


def test_rerun_into_the_same_and_a_fresh_folder_gives_identical_bytes(kitti_root, reference, tmp_path):
    assert len([name for name in reference if name.endswith("_cam.txt")]) == 30
    preprocess("kitti_raw", kitti_root, tmp_path)
    assert tree_bytes(tmp_path) == reference
    preprocess("kitti_raw", kitti_root, tmp_path)
    assert tree_bytes(tmp_path) == reference


def test_restart_after_a_crash_leaves_a_complete_consistent_output(kitti_root, reference, tmp_path):
    # The state a run killed half-way leaves: the folder's marker, some complete records, one record
    # without its image, a temporary file, no manifest; plus a record an earlier complete run with other
    # input wrote and listed (its train.txt is still there: lists are replaced only at the end of a run).
    (tmp_path / ownership.MARKER).write_text(ownership.MARKER_TEXT)
    (tmp_path / "train.txt").write_text("2011_09_26_drive_0009_sync_02 0000000001\n")
    for name, data in reference.items():
        if name.startswith("2011_09_26_drive_0001_sync_02/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)
    partial = tmp_path / "2011_09_26_drive_0003_sync_02"
    partial.mkdir()
    (partial / "0000000004-fseg.png").write_bytes(b"half")
    (partial / "0000000004_cam.txt").write_text("1,0,0,0,1,0,0,0,1\n")
    (partial / ".tmp-0000000004.png.abc_1234").write_bytes(b"partial")
    stale = tmp_path / "2011_09_26_drive_0009_sync_02"
    stale.mkdir()
    (stale / "0000000001.png").write_bytes(b"old")
    preprocess("kitti_raw", kitti_root, tmp_path)
    assert tree_bytes(tmp_path) == reference


def test_real_kill_then_restart(kitti_root, reference, tmp_path):
    command = [
        sys.executable,
        "-m",
        "stages.preprocess",
        "--source=kitti_raw",
        f"--input={kitti_root}",
        f"--output={tmp_path}",
        "--width=48",
        "--height=24",
        "--segmenter=none",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None and not list(tmp_path.glob("*/*.png")):
        time.sleep(0.01)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "manifest.json").exists() or process.returncode == 0
    preprocess("kitti_raw", kitti_root, tmp_path)
    assert tree_bytes(tmp_path) == reference
    for folder, record_id in struct2depth.read_list(tmp_path / "train.txt"):
        struct2depth.read_record(tmp_path, folder, record_id)
