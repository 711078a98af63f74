from pathlib import Path

import evaluation

LIST = Path(evaluation.__file__).parent / "eigen_test_files.txt"


def test_eigen_test_list_has_697_frames_over_28_scenes():
    lines = LIST.read_text().splitlines()
    assert len(lines) == 697
    entries = [line.split() for line in lines]
    assert all(len(tokens) == 3 and tokens[2] == "l" and len(tokens[1]) == 10 for tokens in entries)
    scenes = {tokens[0] for tokens in entries}
    assert len(scenes) == 28
    assert all(scene.split("/")[1].startswith(scene.split("/")[0] + "_drive_") for scene in scenes)
    assert len({(tokens[0], tokens[1]) for tokens in entries}) == 697
    assert entries[0] == ["2011_09_26/2011_09_26_drive_0002_sync", "0000000069", "l"]
    assert entries[-1] == ["2011_10_03/2011_10_03_drive_0047_sync", "0000000768", "l"]
