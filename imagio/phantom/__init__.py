"""The digital patient: a deterministic synthetic contrast CT with its reference labels.

``generate(spacing, seed)`` returns a `Phantom`: the CT (HU, portal-venous phase, blur and
noise), the label map named per ``imagio.anatomy``, and the exact generating geometry
(lesions, airway tree, ribs) that the tests use as ground truth. It is the embedded default
case of ``imagio demo``. Coordinates are RAS mm on an axis-aligned grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .assemble import (  # noqa: F401  (re-exported)
    CORTEX_MM, LUNG_LOBES, RIBS, AirwayBranch, Lesion, Phantom, _airway_tree, _ball_only, _ct_from_labels,
    _inside, _label_names, _place, _vessel_tree, finish, SMALL_AIRWAY_WALLS,
)
from . import trees
from .raster import Grid, capsules
from .torso import (
    Painter, paint_body, paint_great_vessels, paint_ribs, paint_spine,
    paint_thorax_abdomen,
)


ANATOMIES = ("cylinder", "realistic")


def generate(spacing: float = 1.5, seed: int = 0, n_liver_tumors: int = 2, n_lung_nodules: int = 3,
             airway_generations: int = 8, *, anatomy: str = "realistic", sex: str = "male", size: float = 1.0,
             arms: str = "down", phase: str = "portal_venous", airway_variant: str = "normal",
             small_airway_walls: str = "floor") -> Phantom:
    """Generate the digital patient at ``spacing`` mm (isotropic). Deterministic for ``seed``.

    ``anatomy``: "realistic" (default; ``phantom.realistic``: shaped torso, rib course, lobes,
    chambers, abdominal organs, anatomical bronchi) or "cylinder" (the original geometric phantom:
    round body, circular ribs, box lungs; kept for unit tests of geometry). Only the realistic anatomy uses ``sex`` ("male" |
    "female"), ``size`` (0.8-1.25, lengths relative to a 175 cm reference man), ``arms`` ("down" |
    "up"), ``phase`` (contrast: "native" | "arterial" | "portal_venous") and ``airway_variant``
    (``phantom.bronchi.AIRWAY_VARIANTS``). ``small_airway_walls``: "floor" (default: every airway
    wall voxel at the wall's HU, a wall at least 1 mm thick, several times a small airway's own) or
    "partial_volume" (each wall voxel holds the share of it the anatomical wall, 25 % of the lumen
    radius, fills: `assemble.airway_wall_share`; the labels are the same). Raises ValueError for
    values out of range."""
    if not 0.5 <= spacing <= 4.0:
        raise ValueError("phantom spacing must be within 0.5-4 mm")
    if anatomy not in ANATOMIES:
        raise ValueError(f"unknown phantom anatomy {anatomy!r}; one of {ANATOMIES}")
    if small_airway_walls not in SMALL_AIRWAY_WALLS:
        raise ValueError(f"unknown small_airway_walls {small_airway_walls!r}; one of {SMALL_AIRWAY_WALLS}")
    if anatomy == "realistic":
        from .realistic import generate_realistic
        return generate_realistic(spacing, seed, n_liver_tumors, n_lung_nodules, airway_generations,
                                  sex=sex, size=size, arms=arms, phase=phase, airway_variant=airway_variant,
                                  small_airway_walls=small_airway_walls)
    rng = np.random.default_rng(seed)
    g = Grid((-185.0, -130.0, 0.0), (185.0, 125.0, 335.0), spacing)
    names = _label_names(n_liver_tumors, n_lung_nodules)
    p = Painter(g, names)
    geometry: dict = {}
    r = paint_body(p)
    paint_thorax_abdomen(p, r)
    del r
    paint_great_vessels(p)
    paint_spine(p)
    paint_ribs(p, geometry)
    # vessels: pulmonary trees from the hila, portal tree from the porta hepatis, hepatic veins to the IVC
    lung = LUNG_LOBES
    pulm = []
    for sx in (1.0, -1.0):
        roots = [((sx * 45, -8, 212), (sx * 62, -12, 240), 5.0), ((sx * 45, -8, 212), (sx * 62, -18, 185), 5.5),
                 ((sx * 45, 4, 210), (sx * 60, 28, 200), 4.5)]
        pulm += _vessel_tree(p, rng, roots, lung, 6, 0.9)
    capsules(g, p.labels, trees.segments(pulm), p.v("lung_vessels"), min_radius=0.7 * spacing)
    portal = _vessel_tree(p, rng, [((35, 10, 110), (72, 5, 122), 6.0), ((35, 10, 110), (5, 30, 128), 5.5)],
                          ["liver"], 5, 1.2)
    capsules(g, p.labels, trees.segments(portal), p.v("portal_vein"), min_radius=0.7 * spacing)
    hepatic = _vessel_tree(p, rng, [((25, -25, 165), (90, -20, 150), 6.0), ((25, -25, 165), (55, 30, 150), 5.5),
                                    ((25, -25, 165), (-10, 35, 160), 5.0)], ["liver", "inferior_vena_cava"], 4, 1.2)
    capsules(g, p.labels, trees.segments(hepatic), p.v("hepatic_vein"), min_radius=0.7 * spacing)
    tree = _airway_tree(p, rng, airway_generations)
    params = dict(n_liver_tumors=n_liver_tumors, n_lung_nodules=n_lung_nodules,
                  airway_generations=airway_generations)
    geometry["fissures"] = {"oblique_z_of_y": "z = 210 - 0.8 y (mm)", "horizontal_z": 215.0}
    return finish(p, names, rng, tree, n_liver_tumors, n_lung_nodules, spacing, seed, params, geometry,
                  small_airway_walls=small_airway_walls)


def save(ph: Phantom, out_dir) -> list[Path]:
    """Write ct.nii.gz, labels.seg.nrrd, labels.nii.gz (+ .labels.json) and phantom.json."""
    from .. import io
    from ..outputs import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [io.write_image(ph.ct, out / "ct.nii.gz"),
             io.write_labels(ph.labels, out / "labels.seg.nrrd"),
             io.write_labels(ph.labels, out / "labels.nii.gz")]
    write_text(out / "phantom.json", json.dumps(ph.to_json(), indent=1))
    paths.append(out / "phantom.json")
    return paths
