"""Apache Beam pipelines: raw footage -> Struct2depth training records.

Never import TensorFlow here (or from anything imported here): masking workers load torch for
Detectron2, and importing TensorFlow before torch crashes that process.
"""
