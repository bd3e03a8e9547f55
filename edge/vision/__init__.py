"""Vision: frame sources, Haar detection, tracking, int8 classification, smoothing.

Each stage is a small class the pipeline (:mod:`emopi.edge.pipeline`) calls per frame;
box arithmetic lives once in :mod:`.geometry`.
"""
