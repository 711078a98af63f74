#!/usr/bin/env bash
# Install Detectron2 (and torch) for the `--segmenter detectron2` masker, keeping the main .venv torch-free.
#
#   bash scripts/install_detectron2.sh              # offline-friendly build into .venv-detectron2 (PyPI only)
#   bash scripts/install_detectron2.sh --upstream   # the official build from GitHub (needs GitHub + a C++ compiler)
#   bash scripts/install_detectron2.sh --venv PATH  # another target environment (e.g. .venv itself)
#
# The default target .venv-detectron2 is an overlay: its own site-packages (torch, torchvision, detectron2,
# fvcore, ...) come first and the main .venv's packages (Beam, OpenCV, the project) are visible through a
# .pth file, so `.venv-detectron2/bin/python -m stages.preprocess --segmenter detectron2` works, while the
# main .venv, where TensorFlow runs, never sees torch (importing TensorFlow before this torch segfaults).
#
# Offline fallback (no GitHub): torch 2.13.0 + torchvision 0.28.0 from PyPI (the default builds; they run on
# CPU, the CPU-only torch wheel has no matching torchvision), the PyPI sdist detectron2-cdo 0.5 (Detectron2's
# Python code without C++ sources), patched by scripts/detectron2/patch_sdist.py, with
# scripts/detectron2/_C.py standing in for the compiled ops that Mask R-CNN R50-FPN never calls.
# Idempotent: a second run only checks the install. Model weights are never downloaded: pass your own.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$root/scripts/detectron2"
venv="$root/.venv-detectron2"
upstream=0
while [ $# -gt 0 ]; do
  case "$1" in
    --upstream) upstream=1 ;;
    --venv) venv="$(realpath -m "$2")"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
start=$SECONDS
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
D2_SDIST=detectron2-cdo==0.5

# The main environment (Beam, OpenCV, the project) first.
( source "$root/scripts/env.sh" )
main_site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

if [ ! -x "$venv/bin/python" ]; then
  echo "[detectron2] creating $venv"
  base_python="$("$root/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
  "$base_python" -m venv "$venv"
fi
py="$venv/bin/python"
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ "$site" != "$main_site" ]; then
  echo '*' > "$venv/.gitignore"
  echo "import site; site.addsitedir('$main_site')" > "$site/_wilddepth_main_venv.pth"
fi

check() {
  (cd /tmp && "$py" - <<'PY'
import torch, torchvision, detectron2
from detectron2 import model_zoo
from detectron2.config import get_cfg
boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
assert torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
get_cfg().merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
print(f"[detectron2] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, detectron2 {detectron2.__version__}")
PY
  )
}

if check 2>/dev/null; then
  echo "[detectron2] already installed in $venv ($((SECONDS - start)) s)"
  exit 0
fi

# Torch and torchvision from PyPI itself: --isolated skips this machine's local CPU-only torch wheel, whose
# build no torchvision wheel matches (torchvision's ops would fail to load).
pypi=(--isolated)
[ -n "${PIP_CERT:-}" ] && pypi+=(--cert "$PIP_CERT")
echo "[detectron2] installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
"$py" -m pip "${pypi[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

if [ "$upstream" = 1 ]; then
  echo "[detectron2] building the official Detectron2 from GitHub"
  "$py" -m pip install -q --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'
else
  "$py" -m pip install -q -r "$here/requirements.txt"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  "$py" -m pip download -q --no-deps --no-binary :all: "$D2_SDIST" -d "$work"
  tar xzf "$work"/detectron2_cdo-*.tar.gz -C "$work"
  src="$(echo "$work"/detectron2_cdo-*/)"
  "$py" "$here/patch_sdist.py" "$src"
  "$py" -m pip install -q --no-deps --no-build-isolation "$src"
fi
check
echo "[detectron2] installed in $venv in $((SECONDS - start)) s"
echo "[detectron2] run the masker with: $venv/bin/python -m stages.preprocess --segmenter detectron2 --detectron2.weights=/path/model_final.pkl"
