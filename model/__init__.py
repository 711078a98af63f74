"""TensorFlow 2 model of "Depth from Videos in the Wild": networks, geometry, losses, masks (never imports Beam)."""
