"""The README's test command (scripts/test.sh) runs every tier and reports each, even after a failure."""

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(command, **env):
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, **env}, timeout=600
    )


def test_sourcing_env_keeps_the_callers_error_handling():
    result = _run("set +e; source scripts/env.sh; false; echo still-running")
    assert result.returncode == 0, result.stderr
    assert "still-running" in result.stdout


def test_failing_main_tier_still_reports_every_tier(tmp_path):
    failing = tmp_path / "test_fails.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    result = _run(f"bash scripts/test.sh {failing} -p no:cacheprovider -q", WILDDEPTH_DETECTRON2="0")
    assert result.returncode == 1
    tail = result.stdout[result.stdout.index("== test tiers ==") :]
    assert "main suite: FAILED (exit 1)" in tail
    assert "lint (ruff): passed" in tail
    assert "Detectron2 tier (WILDDEPTH_DETECTRON2=0): NOT RUN" in tail


def test_no_tests_collected_is_a_failure(tmp_path):
    empty = tmp_path / "test_nothing.py"
    empty.write_text("X = 1\n")
    result = _run(f"bash scripts/test.sh {empty} -p no:cacheprovider -q", WILDDEPTH_DETECTRON2="0")
    assert result.returncode == 1
    assert "main suite: FAILED: pytest collected no tests" in result.stdout
