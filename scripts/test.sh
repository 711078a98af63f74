#!/usr/bin/env bash
# The test command: set up .venv if needed, run the whole test suite (unit and slow end-to-end tiers), then the
# Detectron2 tier in its own environment (.venv-detectron2, installed by scripts/install_detectron2.sh).
#   bash scripts/test.sh                      # everything
#   bash scripts/test.sh -m "not slow"        # extra arguments go to the main pytest run (fast tier only, ...)
#   WILDDEPTH_DETECTRON2=0 bash scripts/test.sh   # skip installing/running the Detectron2 tier
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh" || exit 1
cd "$root"

python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "ERROR: pytest collected no tests. The suite lives in tests/; a run that tests nothing is a failure." >&2
  exit 1
fi

# The Detectron2 tier needs torch, which never enters the main .venv (TensorFlow and this torch build cannot
# share a process). Its install is a ~5 GB download from PyPI; a failed install is reported loudly and
# leaves the main tier's verdict as it is, since it is an optional extra, not the project's code.
if [ "${WILDDEPTH_DETECTRON2:-1}" != "0" ]; then
  if bash scripts/install_detectron2.sh; then
    .venv-detectron2/bin/python -m pytest -m detectron2 tests/pipelines -p no:cacheprovider
    d2_status=$?
    if [ "$d2_status" -ne 0 ]; then
      echo "ERROR: the Detectron2 test tier failed (exit $d2_status)." >&2
      [ "$status" -eq 0 ] && status=$d2_status
    fi
  else
    echo "WARNING: Detectron2 could not be installed (see above); the Detectron2 test tier did NOT run." >&2
  fi
fi
exit "$status"
