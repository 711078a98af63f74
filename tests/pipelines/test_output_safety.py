"""Preprocessing never destroys what it did not write (issue 10, items 1, 2 and 10).

Every case here deleted or overwrote user data, or exited 0 on an empty result, before the output
ownership rules of ``pipelines/ownership.py``. Fast tier on purpose: these are safety rules.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from formats import atomic, struct2depth
from pipelines import ownership
from tests.conftest import REPO_ROOT
from tests.pipelines.fixtures import frame_image, make_kitti_drive, make_video, write_png
from tests.pipelines.helpers import preprocess, tree_bytes

DATE = "2011_09_26"


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    make_kitti_drive(root, DATE, 1, 6)
    make_kitti_drive(root, DATE, 3, 5)
    return root


@pytest.fixture(scope="module")
def earlier_output(kitti_root, tmp_path_factory) -> Path:
    """A complete output of an earlier run (drives 1 and 3); tests copy it before changing it."""
    output = tmp_path_factory.mktemp("earlier") / "out"
    preprocess("kitti_raw", kitti_root, output)
    return output


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "out"
    shutil.copytree(folder, target)
    return target


def image_folder(root: Path, frames: int = 8) -> Path:
    for k in range(frames):
        write_png(root / f"{k:010d}.png", frame_image(k))
    return root


# --- item 1: files wilddepth did not write are never deleted ------------------------------------------


def test_output_equal_to_input_is_refused_and_the_frames_survive(tmp_path):
    frames = image_folder(tmp_path / "frames")
    before = tree_bytes(frames)
    with pytest.raises(ownership.OutputFolderError, match="overlaps the input"):
        preprocess("image_folder", frames, frames)
    assert tree_bytes(frames) == before


def test_output_inside_a_kitti_input_is_refused(kitti_root, tmp_path):
    root = tmp_path / "kitti"
    shutil.copytree(kitti_root, root)
    before = tree_bytes(root)
    image_02 = root / DATE / f"{DATE}_drive_0001_sync" / "image_02"
    for output in (image_02, image_02 / "records"):
        with pytest.raises(ownership.OutputFolderError):
            preprocess("kitti_raw", root, output)
    assert tree_bytes(root) == before


def test_output_that_holds_the_input_video_is_refused(tmp_path):
    make_video(tmp_path / "clip.avi", 12, fourcc="MJPG")
    (tmp_path / ownership.MARKER).write_text(ownership.MARKER_TEXT)  # even a folder marked as an output
    with pytest.raises(ownership.OutputFolderError, match="overlaps the input"):
        preprocess("video", tmp_path / "clip.avi", tmp_path)
    assert (tmp_path / "clip.avi").stat().st_size > 0


def test_a_foreign_non_empty_folder_is_refused_untouched(kitti_root, tmp_path):
    output = tmp_path / "mine"
    (output / "2011_09_26_drive_0001_sync_02").mkdir(parents=True)
    (output / "2011_09_26_drive_0001_sync_02" / "0000000042.png").write_bytes(b"my picture")
    (output / ".tmp-my-notes.txt").write_text("notes")
    before = tree_bytes(output)
    with pytest.raises(ownership.OutputFolderError, match="not a wilddepth output"):
        preprocess("kitti_raw", kitti_root, output)
    assert tree_bytes(output) == before


def test_rerun_keeps_user_files_and_prunes_only_listed_records(kitti_root, earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    drive1 = output / f"{DATE}_drive_0001_sync_02"
    drive3 = output / f"{DATE}_drive_0003_sync_02"
    user_files = {
        drive1 / "0000000042.png": b"the user's own frame",  # record-like name, never listed
        drive1 / "0000000042_cam.txt": b"1,0,0,0,1,0,0,0,1\n",
        output / ".tmp-my-notes.txt": b"notes",  # .tmp- but not our temporary
        drive3 / ".tmp-notes.txt.abcdefgh": b"notes",  # our pattern, not our file name
        output / "sub" / ".tmp-0000000001.png.abcd1234": b"not a folder we own",
    }
    for path, data in user_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    own_leftover = drive1 / ".tmp-0000000002.png.k3j_x9z0"  # a killed run's temporary
    own_leftover.write_bytes(b"partial")
    listed = set(struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt"))
    assert (f"{DATE}_drive_0003_sync_02", "0000000002") in listed

    only_drive1 = tmp_path / "input_1"
    shutil.copytree(kitti_root / DATE / f"{DATE}_drive_0001_sync", only_drive1 / DATE / f"{DATE}_drive_0001_sync")
    shutil.copy(kitti_root / DATE / "calib_cam_to_cam.txt", only_drive1 / DATE)
    manifest = preprocess("kitti_raw", only_drive1, output)

    for path, data in user_files.items():
        assert path.read_bytes() == data, path
    assert not own_leftover.exists()
    # drive 3's records were listed by the earlier run and not written again: removed, with their files only
    assert not list(drive3.glob("0000000*"))
    assert (drive3 / ".tmp-notes.txt.abcdefgh").exists()
    assert manifest["counts"]["triplets_written"] == 4
    records = struct2depth.read_list(output / "train.txt") + struct2depth.read_list(output / "val.txt")
    assert sorted(records) == [(f"{DATE}_drive_0001_sync_02", f"{k:010d}") for k in (1, 2, 3, 4)]


def test_an_emptied_sequence_folder_is_removed_but_one_with_user_files_stays(kitti_root, earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    only_drive1 = tmp_path / "input_1"
    shutil.copytree(kitti_root / DATE / f"{DATE}_drive_0001_sync", only_drive1 / DATE / f"{DATE}_drive_0001_sync")
    shutil.copy(kitti_root / DATE / "calib_cam_to_cam.txt", only_drive1 / DATE)
    preprocess("kitti_raw", only_drive1, output)
    assert not (output / f"{DATE}_drive_0003_sync_02").exists()


def test_legacy_output_with_a_wilddepth_manifest_is_adopted(kitti_root, earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    (output / ownership.MARKER).unlink()  # written by a version before the marker existed
    before = tree_bytes(output)
    preprocess("kitti_raw", kitti_root, output)
    assert tree_bytes(output) == dict(before, **{ownership.MARKER: ownership.MARKER_TEXT.encode()})


def test_own_temporaries_are_recognised_by_name_only():
    assert atomic.temporary_target(".tmp-0000000001.png.ab_c1234") == "0000000001.png"
    assert atomic.temporary_target(".tmp-my-notes.txt") is None
    assert atomic.temporary_target(".tmp-0000000001.png.abc123") is None


# --- item 2: no input or no record fails and leaves the earlier output as it was ----------------------


def test_mistyped_input_fails_and_leaves_the_earlier_output(kitti_root, earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    before = tree_bytes(output)
    with pytest.raises(ownership.NoInputError, match="no such folder"):
        preprocess("kitti_raw", str(kitti_root)[:-1], output)
    assert tree_bytes(output) == before


def test_input_without_frames_fails_and_leaves_the_earlier_output(earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    before = tree_bytes(output)
    (tmp_path / "empty_kitti").mkdir()
    with pytest.raises(ownership.NoRecordsError, match="no record written.*no_input 1.*earlier output was left"):
        preprocess("kitti_raw", tmp_path / "empty_kitti", output)
    assert tree_bytes(output) == before


def test_all_frames_rejected_fails_and_leaves_the_earlier_output(earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    before = tree_bytes(output)
    root = tmp_path / "bad_kitti"
    drive = make_kitti_drive(root, DATE, 1, 4)
    for path in (drive / "image_02" / "data").glob("*.png"):
        path.write_bytes(b"not an image")
    with pytest.raises(ownership.NoRecordsError, match="unreadable_frame 4"):
        preprocess("kitti_raw", root, output)
    assert tree_bytes(output) == before


@pytest.mark.parametrize("pattern", ["*.mp4", "missing.mp4"])
def test_video_input_that_matches_nothing_fails(tmp_path, pattern):
    (tmp_path / "videos").mkdir()
    with pytest.raises(ownership.NoInputError):
        preprocess("video", tmp_path / "videos" / pattern, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- item 10: an unwritable output is found before any work --------------------------------------------


def _make_unwritable(folder: Path):
    """chmod for ordinary users; root ignores modes, so the immutable attribute there (skip if unsupported)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder unwritable")
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_unwritable_output_is_refused_before_decoding(kitti_root, tmp_path, monkeypatch):
    output = tmp_path / "locked"
    output.mkdir()
    undo = _make_unwritable(output)
    import pipelines.preprocess as preprocess_module

    def no_work(*_args, **_kwargs):
        raise AssertionError("the pipeline was built although the output is not writable")

    monkeypatch.setattr(preprocess_module, "build", no_work)
    try:
        with pytest.raises(ownership.OutputFolderError, match="not writable"):
            preprocess("kitti_raw", kitti_root, output)
    finally:
        undo()
    assert list(output.iterdir()) == []


def test_output_under_a_file_is_refused(kitti_root, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ownership.OutputFolderError, match="cannot be created"):
        preprocess("kitti_raw", kitti_root, tmp_path / "file" / "out")


# --- the stage: one line, exit 2 -------------------------------------------------------------------------


def test_stage_reports_user_errors_in_one_line_with_exit_2(tmp_path):
    frames = image_folder(tmp_path / "frames", 3)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.preprocess",
            "--source=image_folder",
            f"--input={frames}",
            f"--output={frames}",
            "--direct_running_mode=in_memory",
            "--direct_num_workers=1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("preprocess: error:")]
    assert len(errors) == 1 and "overlaps the input" in errors[0]
    assert "Traceback" not in result.stderr
    assert len(list(frames.iterdir())) == 3


def test_frames_but_no_triplet_fails_and_leaves_the_earlier_output(earlier_output, tmp_path):
    output = copy_of(earlier_output, tmp_path)
    before = tree_bytes(output)
    make_kitti_drive(tmp_path / "short_kitti", DATE, 1, 2)  # two frames: decoded, but no triplet
    with pytest.raises(ownership.NoRecordsError, match="2 frames read"):
        preprocess("kitti_raw", tmp_path / "short_kitti", output)
    assert tree_bytes(output) == before


def test_failed_first_run_leaves_no_trace_but_keeps_a_users_empty_folder(tmp_path):
    (tmp_path / "empty_kitti").mkdir()
    with pytest.raises(ownership.NoRecordsError, match="nothing was written"):
        preprocess("kitti_raw", tmp_path / "empty_kitti", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "users_empty").mkdir()
    with pytest.raises(ownership.NoRecordsError):
        preprocess("kitti_raw", tmp_path / "empty_kitti", tmp_path / "users_empty")
    assert (tmp_path / "users_empty").is_dir() and not list((tmp_path / "users_empty").iterdir())


def test_list_lines_never_lead_outside_the_output(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "0000000001.png").write_bytes(b"keep")
    (output / "etc").mkdir()
    (output / "train.txt").write_text("../victim 0000000001\n/abs 0000000001\n.. 0000000001\nok 12\na b 0000000001\n")
    assert ownership.listed_records(str(output)) == set()
    assert ownership.prune_records(str(output), {("../victim", "0000000001"), ("..", "0000000001")}, set()) == 0
    assert (victim / "0000000001.png").read_bytes() == b"keep"
