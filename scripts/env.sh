#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment .venv from the exact lock file.
# Sourced by scripts/repro.sh and scripts/test.sh; safe to run again (it only reinstalls when the lock changes).
# It runs with -euo pipefail and then restores the caller's shell options, so a script that sources it keeps
# its own error handling (scripts/test.sh runs every tier even when one fails).
_wilddepth_caller_options="$(set +o)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$root/requirements/lock-cpu.txt"
python="${WILDDEPTH_PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "[env] creating $root/.venv with $($python --version)"
  "$python" -m venv "$root/.venv"
fi
stamp="$root/.venv/.wilddepth-lock.sha256"
want="$(cat "$lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing locked dependencies (requirements/lock-cpu.txt)"
  "$root/.venv/bin/python" -m pip install -q --upgrade pip
  "$root/.venv/bin/python" -m pip install -q -r "$lock"
  "$root/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root"
  echo "$want" > "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
eval "$_wilddepth_caller_options"
unset _wilddepth_caller_options
