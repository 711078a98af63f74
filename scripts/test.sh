#!/usr/bin/env bash
# The test command: set up .venv if needed, then run every tier and report each, whatever an earlier tier did:
#   1. lint: ruff check and ruff format --check (configured in pyproject.toml);
#   2. the main suite (unit and slow end-to-end tests) in .venv;
#   3. the Detectron2 tier in its own environment (.venv-detectron2, installed by scripts/install_detectron2.sh).
# Exit status: 0 only when every tier that ran passed; the first failing tier's status otherwise.
#   bash scripts/test.sh                          # everything
#   bash scripts/test.sh -m "not slow"            # extra arguments go to the main pytest run (fast tier only, ...)
#   WILDDEPTH_DETECTRON2=0 bash scripts/test.sh   # skip installing/running the Detectron2 tier
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh" || { echo "ERROR: could not set up .venv (scripts/env.sh failed)" >&2; exit 1; }
set +e  # a failing tier must not stop the next one (env.sh restores the caller's options; be explicit anyway)
cd "$root"

declare -a summary=()
status=0
record() {  # record NAME EXIT_STATUS
  local name="$1" code="$2" verdict
  case "$code" in
    0) verdict="passed" ;;
    5) verdict="FAILED: pytest collected no tests (a run that tests nothing is a failure)"; code=1 ;;
    skip) verdict="NOT RUN"; code=0 ;;
    *) verdict="FAILED (exit $code)" ;;
  esac
  summary+=("$name: $verdict")
  if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then status="$code"; fi
}

ruff check . && ruff format --check .
record "lint (ruff)" $?

python -m pytest "$@"
record "main suite" $?

# The Detectron2 tier needs torch, which never enters the main .venv (TensorFlow and this torch build cannot
# share a process). Its install is a ~5 GB download from PyPI; a failed install is reported loudly and
# leaves the verdict to the other tiers, since it is an optional extra, not the project's code.
if [ "${WILDDEPTH_DETECTRON2:-1}" != "0" ]; then
  if bash scripts/install_detectron2.sh; then
    .venv-detectron2/bin/python -m pytest -m detectron2 tests/pipelines -p no:cacheprovider
    record "Detectron2 tier" $?
  else
    echo "WARNING: Detectron2 could not be installed (see above); the Detectron2 test tier did NOT run." >&2
    record "Detectron2 tier (install failed)" skip
  fi
else
  record "Detectron2 tier (WILDDEPTH_DETECTRON2=0)" skip
fi

echo
echo "== test tiers =="
for line in "${summary[@]}"; do echo "  $line"; done
exit "$status"
