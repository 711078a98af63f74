"""Pure file formats and camera conventions shared by every part of wilddepth.

Nothing here imports TensorFlow or Apache Beam: Beam workers (which may load torch for Detectron2) and the
TensorFlow model both read and write through these functions.

Conventions (see also ``docs/architecture.md`` of the team):
- Camera axes: x right, y down, z forward (KITTI / OpenCV).
- Pixel coordinates: the centre of pixel (column i, row j) is at (x, y) = (i, j); the image spans
  [-0.5, W - 0.5] x [-0.5, H - 0.5]. Intrinsics K map camera points to these coordinates.
- Poses on disk: camera-to-world, row-major 3x4 per line.
"""
