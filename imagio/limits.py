"""Limits the image reader applies, read once from ``imagio/data/input_limits.json`` (each with
its reason and source there)."""

from __future__ import annotations

import json
from importlib import resources

AIR_HU = -1000.0  # air, by definition of the Hounsfield scale

LIMITS: dict = json.loads(resources.files("imagio.data").joinpath("input_limits.json").read_text())
MAX_GAP_MM = float(LIMITS["max_slice_gap_mm"]["value"])  # widest gap between slices interpolated
TILT_MIN_DEG = float(LIMITS["tilt_detect_deg"]["value"])  # below: rounding of positions, not a tilt
SPACING_TOL = float(LIMITS["slice_spacing_tolerance"]["value"])  # relative: uniform within this
