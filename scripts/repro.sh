#!/usr/bin/env bash
# The main job: set up .venv if needed, then `dvc repro` the whole chain on the built-in synthetic world
# (synthesize -> preprocess -> train -> eval_depth -> eval_odometry). Extra arguments go to `dvc repro`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
dvc repro "$@"
dvc metrics show
