"""Running the pipeline in tests: one in-process worker, small frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

from pipelines.config import PreprocessConfig
from pipelines.preprocess import run

TEST_BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def preprocess(source: str, input_path, output, **params):
    """Run the whole pipeline; returns the manifest."""
    values = {
        "source": source,
        "input": str(input_path),
        "output": str(output),
        "width": 48,
        "height": 24,
        "segmenter": "none",
    }
    values.update(params)
    run(PreprocessConfig.from_mapping(values), TEST_BEAM_ARGS)
    return json.loads((Path(output) / "manifest.json").read_text())


def tree_bytes(root) -> Dict[str, bytes]:
    """{relative path: bytes} of every file under ``root``."""
    root = Path(root)
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def dead_letters(output):
    return [json.loads(line) for line in (Path(output) / "dead_letter.jsonl").read_text().splitlines()]
