"""Make the ``detectron2-cdo`` 0.5 sdist installable and importable with today's toolchain.

Usage: python patch_sdist.py SOURCE_DIR. Each edit is an exact string replacement; a replacement whose
original text is missing fails loudly (a different sdist needs re-checking, not silent half-patching).
Already-patched files are left as they are, so the script can run twice.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (file, original text, replacement, why)
EDITS = [
    (
        "setup.py",
        "ext_modules=get_extensions(),",
        "ext_modules=[],",
        "the sdist carries no C++ sources; detectron2/_C.py (ours) stands in for the extension",
    ),
    (
        "setup.py",
        'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
        'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},',
        "the sdist keeps the configs inside the package; upstream's glob looks for a top-level configs/",
    ),
    ("setup.py", '"black==21.4b2",', "", "a formatter pinned to 2021, only used to pretty-print lazy configs"),
    (
        "detectron2/data/transforms/transform.py",
        "interp=Image.LINEAR",
        "interp=Image.BILINEAR",
        "Pillow 10 removed Image.LINEAR (an alias of BILINEAR); the default argument fails at import",
    ),
    (
        "detectron2/model_zoo/model_zoo.py",
        "import pkg_resources\n",
        "from importlib import resources as _resources\n",
        "setuptools >= 81 no longer ships pkg_resources",
    ),
    (
        "detectron2/model_zoo/model_zoo.py",
        'cfg_file = pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',
        'cfg_file = str(_resources.files("detectron2.model_zoo").joinpath("configs", config_path))',
        "same: resolve packaged configs with importlib.resources",
    ),
]


def patch(source: Path) -> None:
    for relative, original, replacement, why in EDITS:
        path = source / relative
        text = path.read_text()
        if original in text:
            path.write_text(text.replace(original, replacement))
            print(f"[patch] {relative}: {why}")
        elif (replacement in text) if replacement else True:
            print(f"[patch] {relative}: already patched")
        else:
            sys.exit(f"[patch] {relative}: expected text not found ({original[:60]!r}); unknown sdist version")
    shutil.copyfile(HERE / "_C.py", source / "detectron2" / "_C.py")
    print("[patch] detectron2/_C.py: stand-in for the compiled ops")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    patch(Path(sys.argv[1]))
