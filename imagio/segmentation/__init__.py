"""Segmentation: rule-based segmenters (no model weights) and one-click lesion segmentation.

Kept light on import (no torch): the entry points are loaded on first use.
``segment(ct, structures, progress) -> Volume``, ``segment_demo(ct, progress) -> Volume``,
``segment_lesion(ct, point_ras, ...) -> (mask, measurements)``, ``skin_surface(body) -> vtkPolyData``.
"""

_LAZY = {
    "segment": "rules", "segment_masks": "rules", "segment_demo": "rules", "STRUCTURES": "rules",
    "segment_lesion": "lesion", "skin_surface": "body", "body_mask": "body",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
