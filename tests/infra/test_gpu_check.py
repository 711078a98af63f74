"""benchmarks/gpu_check.sh on a CPU: syntax, argument handling, the no-GPU refusal, and its --dry-run mode.

The real run needs a CUDA machine (none was available when this was written); ``--dry-run`` exercises the same
phases with the CPU .venv: the fast infra tests and the float32 / mixed-precision comparison at 32x64.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.sh"


def run(*args, timeout=60, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_help_and_unknown_argument():
    result = run("--help")
    assert result.returncode == 0 and "--dry-run" in result.stdout
    result = run("--bogus")
    assert result.returncode == 2 and "unknown argument: --bogus" in result.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_refuses_to_run_without_a_gpu():
    result = run()
    assert result.returncode == 2
    assert "no CUDA GPU here" in result.stderr


@pytest.mark.slow
def test_dry_run_reports_each_phase_and_the_figures():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = run("--dry-run", timeout=900, env=env)
    out = result.stdout
    assert "== test suite (tests/infra -m not slow): passed" in out, out[-3000:]
    assert "float32 vs mixed precision, 2 steps each: passed" in out, out[-3000:]
    assert "  float32 : step " in out and "steps/s" in out and "examples/s" in out and "ratio step/fwd+bwd" in out
    # Mixed precision either trains (and the step-time ratio is printed), or says why it cannot be built, or
    # reports the step whose loss or gradient was not finite (seen on CPU at these tiny widths: docs/training.md).
    assert (
        "bfloat16 / float32 training step time" in out
        or "bfloat16: the trainer cannot be built" in out
        or re.search(r"bfloat16: non-finite loss or gradient at step \d+ \(gradient norm [^)]*\): no timing", out)
    ), out[-3000:]
    assert "depth network alone" in out
    assert result.returncode == 0, out[-3000:]
