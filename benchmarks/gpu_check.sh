#!/usr/bin/env bash
# One prepared check of the GPU path, for the day a CUDA machine is available (fits in 10 minutes):
#   1. installs the project with its GPU extra (tensorflow[and-cuda]) into a separate venv
#      ($WILDDEPTH_GPU_VENV, default /tmp/wilddepth-gpu-venv; the CPU .venv is not touched) and checks that
#      TensorFlow sees the GPU;
#   2. runs the test suite's fast tier (-m "not slow") on it;
#   3. trains 300 steps at 416x128 with the release's widths (depth and motion 1.0), batch $BATCH (default 4),
#      in float32 and in mixed precision (bfloat16), interleaved in one process (benchmarks/train_step.py
#      --compare_precision: 3 rounds of 100 steps each), and prints steps/s, examples/s and peak GPU memory for
#      each, the ratio to the bare networks' forward+backward, and the bfloat16 / float32 step-time ratio.
#
#   bash benchmarks/gpu_check.sh              # on the CUDA machine, from anywhere
#   bash benchmarks/gpu_check.sh --dry-run    # CPU: no install, no GPU; fast infra tests; 32x64, tiny widths, 2 steps
#
# Each phase runs under `timeout` with its share of the 600 s budget (install 240 s, tests 150 s, training the
# rest); a phase that runs out is reported and the script goes on to the next one. Exit status: 0 when every
# phase passed, else the number of failed phases (2 without a GPU outside --dry-run).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac
budget=600
start=$SECONDS
failed=0
left() { echo $(( budget - (SECONDS - start) )); }
phase() {  # phase NAME SECONDS COMMAND...: run with a time limit, report, count failures
  local name="$1" limit="$2"; shift 2
  local remaining; remaining="$(left)"
  [ "$limit" -gt "$remaining" ] && limit="$remaining"
  if [ "$limit" -le 10 ]; then echo "== $name: NOT RUN (budget spent)"; failed=$((failed + 1)); return; fi
  echo "== $name (limit ${limit} s)"
  local began=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
  local code=$?
  if [ "$code" -eq 0 ]; then echo "== $name: passed in $((SECONDS - began)) s"
  elif [ "$code" -eq 124 ]; then echo "== $name: TIMED OUT after $limit s"; failed=$((failed + 1))
  else echo "== $name: FAILED (exit $code) after $((SECONDS - began)) s"; failed=$((failed + 1)); fi
}

if [ "$dry_run" = 1 ]; then
  python="$root/.venv/bin/python"
  size=32x64; widths=(--set depth_network_width=0.25 --set motion_network_width=0.25); steps=2; repeats=1
  tests=(tests/infra -m "not slow")
else
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L; then
    echo "gpu_check: no CUDA GPU here (nvidia-smi missing or failing); use --dry-run on a CPU" >&2
    exit 2
  fi
  venv="${WILDDEPTH_GPU_VENV:-/tmp/wilddepth-gpu-venv}"
  python="$venv/bin/python"
  export venv python root
  phase "install the GPU extra" 240 bash -c '
    set -e
    [ -x "$python" ] || "${WILDDEPTH_PYTHON:-python3}" -m venv "$venv"
    "$python" -m pip install -q --upgrade pip
    "$python" -m pip install -q -e "$root[gpu,test]"
    "$python" -c "import tensorflow as tf; gpus = tf.config.list_physical_devices(\"GPU\"); print(\"TensorFlow\", tf.__version__, gpus); assert gpus, \"TensorFlow sees no GPU\""'
  size=128x416; widths=(--set depth_network_width=1.0 --set motion_network_width=1.0); steps=100; repeats=3
  tests=(tests -m "not slow" -x)
fi
export TF_CPP_MIN_LOG_LEVEL=2
phase "test suite (${tests[*]})" 150 "$python" -m pytest -q -p no:cacheprovider "${tests[@]}"
phase "train ${size} float32 vs mixed precision, $((steps * repeats)) steps each" 600 \
  "$python" benchmarks/train_step.py --compare_precision --sizes "$size" --batch_size "${BATCH:-4}" \
  --steps "$steps" --repeats "$repeats" "${widths[@]}"
echo "== gpu_check: $failed phase(s) failed, $((SECONDS - start)) s in all"
exit "$failed"
