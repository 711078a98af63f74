"""Stand-in for Detectron2's compiled ops (``detectron2._C``), installed by scripts/install_detectron2.sh.

The offline install (PyPI sdist ``detectron2-cdo`` 0.5, which ships no C++ sources) has no compiled
extension. Mask R-CNN R50-FPN never calls it: its RoIAlign and NMS come from torchvision. Modules that
import ``_C`` at import time (rotated boxes, deformable convolution, rotated RoIAlign, the fast COCO
evaluator) still import; calling one of their ops raises :class:`MissingCompiledOp` with the fix.
"""

INSTALL_HINT = (
    "this Detectron2 was installed by wilddepth's scripts/install_detectron2.sh without compiled ops: "
    "only models built from torchvision ops (e.g. Mask R-CNN R50-FPN) work. Models with rotated boxes, "
    "deformable convolution or the fast COCO evaluator need the upstream build "
    "(scripts/install_detectron2.sh --upstream, needs GitHub and a C++ compiler)."
)


class MissingCompiledOp(AttributeError):
    """A compiled Detectron2 op was requested but this install has none."""


def __getattr__(name: str):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    raise MissingCompiledOp(f"detectron2._C.{name} is not available: {INSTALL_HINT}")
