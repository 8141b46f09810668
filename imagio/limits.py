"""Limits the image reader applies, read once from ``imagio/data/input_limits.json`` (each with
its reason and source there)."""

from __future__ import annotations

import json
from importlib import resources

AIR_HU = -1000.0  # air, by definition of the Hounsfield scale

LIMITS: dict = json.loads(resources.files("imagio.data").joinpath("input_limits.json").read_text(encoding="utf-8"))
MAX_GAP_MM = float(LIMITS["max_slice_gap_mm"]["value"])  # widest gap between slices interpolated
TILT_MIN_DEG = float(LIMITS["tilt_detect_deg"]["value"])  # below: rounding of positions, not a tilt
SPACING_TOL = float(LIMITS["slice_spacing_tolerance"]["value"])  # relative: uniform within this
MAX_AGE_YEARS = float(LIMITS["patient_age_years"]["max"])  # the oldest verified human age (input_limits.json)

# HU limits that segmentation and planning share (one definition each)
GAS_MEDIAN_HU = -950.0  # outside air and bowel/stomach gas are nearly pure air (median < -960 HU);
# lung parenchyma is denser (median ~ -850..-750 HU; ~ -900 in severe emphysema; Gevenois 1996)
_AIRWAY: dict = json.loads(resources.files("imagio.data").joinpath("airway_limits.json").read_text(encoding="utf-8"))
AERATED_MAX_HU = float(_AIRWAY["mask_on_air"]["max_median_hu"])  # below: at least half air by partial volume (airway_limits.json)
AIRWAY_MAX_SLICE_MM = float(_AIRWAY["max_slice_mm"]["value"])  # coarser slices: no trustworthy airway tree (airway_limits.json)
AIRWAY_NATIVE_WIDTH_RATIO = float(_AIRWAY["native_width_ratio_max"]["value"])  # noise width / section thickness, native (airway_limits.json)
AIRWAY_RESAMPLED_MIN_MM = float(_AIRWAY["resampled_min_mm"]["value"])  # a noise reading along S above: sections coarser than that (airway_limits.json)
# a point outside both lungs takes the nearer lung's side only when at most this fraction of its distance to the
# other (the bronchoscopic wrong-lung guard, bronchoscopy/side.py; airway_limits.json, with its reasoning)
LUNG_SIDE_NEARER_RATIO = float(_AIRWAY["lung_side_nearer_ratio"]["value"])
_LESION: dict = json.loads(resources.files("imagio.data").joinpath("lesion.json").read_text(encoding="utf-8"))
GROUND_GLASS_MIN_HU = float(_LESION["ground_glass_min_hu"]["value"])  # ground glass's lower bound (lesion.json, Hansell 2008)
# a CT's noise reading a resolution along S this many times its spacing was interpolated from
# thicker sections (`segmentation.resolution.resolution_along_s`; lesion.json, with its measurements)
RESAMPLED_SECTIONS_RATIO = float(_LESION["resampled_sections_ratio"]["value"])
FAT_MIN_HU = float(_LESION["fat_min_hu"]["value"])  # adipose tissue's HU band (lesion.json, with its source)
FAT_MAX_HU = float(_LESION["fat_max_hu"]["value"])
