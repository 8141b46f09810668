"""Torch inference engine for nnU-Net v2 model folders (no nnU-Net needed at run time).

Import is cheap: torch is imported inside functions. Entry point: ``predictor.segment_volume``;
class probability maps: ``Engine.segment(volume, return_probabilities=(name, ...))``.
"""

from .predictor import EngineOptions, segment_volume  # noqa: F401
