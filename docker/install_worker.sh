#!/usr/bin/env bash
# Install the Detectron2 masker into the Python of a Beam SDK worker image (run by docker/Dockerfile).
#
#   bash docker/install_worker.sh            # install into $PYTHON (default: python), from the repository root
#   bash docker/install_worker.sh --dry-run  # print the commands only
#
# Same pins as scripts/install_detectron2.sh (read from it, so the two cannot drift apart) and the same
# offline-friendly Detectron2 build (PyPI sdist detectron2-cdo patched by scripts/detectron2/patch_sdist.py,
# scripts/detectron2/_C.py for the compiled ops). Differences: no overlay venv (the image's Python is the
# worker's), no TensorFlow (the lock's TensorFlow is not installed), and Beam stays the image's own.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

pin() {  # pin NAME: the value of NAME=... in scripts/install_detectron2.sh
  local value
  value="$(sed -n "s/^$1=\(.*\)$/\1/p" "$root/scripts/install_detectron2.sh" | head -n1)"
  [ -n "$value" ] || { echo "install_worker: $1 not found in scripts/install_detectron2.sh" >&2; exit 2; }
  echo "$value"
}
locked() {  # locked NAME: NAME==version from requirements/lock-cpu.txt (case-insensitive)
  local line
  line="$(grep -i -m1 "^$1==" "$root/requirements/lock-cpu.txt" || true)"
  [ -n "$line" ] || { echo "install_worker: $1 not pinned in requirements/lock-cpu.txt" >&2; exit 2; }
  echo "$line"
}
TORCH_VERSION="$(pin TORCH_VERSION)"
TORCHVISION_VERSION="$(pin TORCHVISION_VERSION)"
D2_SDIST="$(pin D2_SDIST)"
# The project's runtime dependencies (pyproject.toml) except Beam and NumPy, which the SDK image pins.
deps=("$(locked opencv-python-headless)" "$(locked pyyaml)" "$(locked tqdm)" "$(locked scikit-image)")

run() {
  echo "+ $*"
  [ "$dry_run" = 1 ] || "$@"
}
run "$python" -m pip install --no-cache-dir "${deps[@]}"
run "$python" -m pip install --no-cache-dir --no-deps "$root"
run "$python" -m pip install --no-cache-dir "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
run "$python" -m pip install --no-cache-dir -r "$root/scripts/detectron2/requirements.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run "$python" -m pip download -q --no-deps --no-binary :all: "$D2_SDIST" -d "$work"
if [ "$dry_run" = 1 ]; then
  echo "+ tar xzf $work/detectron2_cdo-*.tar.gz; $python scripts/detectron2/patch_sdist.py <src>; pip install --no-deps <src>"
  exit 0
fi
tar xzf "$work"/detectron2_cdo-*.tar.gz -C "$work"
src="$(echo "$work"/detectron2_cdo-*/)"
run "$python" "$root/scripts/detectron2/patch_sdist.py" "$src"
run "$python" -m pip install --no-cache-dir --no-deps --no-build-isolation "$src"
# The same check as scripts/install_detectron2.sh, plus: the worker must not see TensorFlow.
(cd /tmp && "$python" - <<'PY'
import importlib.util
import torch, torchvision, detectron2
from detectron2 import model_zoo
from detectron2.config import get_cfg
import apache_beam, pipelines.detectron2_masker  # the installed project, importable by the worker harness
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow must not be in the masking worker"
boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
assert torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
get_cfg().merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
print(f"[worker] ok: beam {apache_beam.__version__}, torch {torch.__version__}, detectron2 {detectron2.__version__}")
PY
)
