#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole test suite (unit and slow end-to-end tiers).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tier only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "ERROR: pytest collected no tests. The suite lives in tests/; a run that tests nothing is a failure." >&2
  exit 1
fi
exit "$status"
