"""Unlabelled tissue of intermediate density along a needle path: denser than soft tissue, below
the CT density check's dense tissue (review of new-user trial H3, medium: the density check,
`density`, only looks above ``ct_density.dense_min_hu`` (250 HU), so calcification, cartilage
and contrast-filled vessels of 130-250 HU that no structure covers were crossed silently).

Definitions (numbers in imagio/data/planning_defaults.json ``ct_density``, with sources):

- **intermediate tissue**: a path sample whose CT value (trilinear) is at least
  ``calcification_min_hu`` (130 HU, the Agatston calcification threshold) and below
  ``dense_min_hu`` (250 HU, which `density` keeps out of every path), in a voxel the density
  check checks (`density.checked_values`: unlabelled, or a passable container such as body,
  muscle or fat, whose label does not decide the needle's fate) but not in a lung (inside the
  lungs `planner.solid_runs_in_lung` reads the solid tissue) nor in an organ of
  ``unlabelled_organ.organs`` (the liver, passable, enhances to about 130 HU with contrast), and
  in the body (``problem.body``, as the density check: the table reads about 150 HU).
  Muscle (40-60 HU), blood and organs without contrast, fat and lung lie below it.
- **partial volume of labelled dense structures**: a sample whose nearest voxel has a
  26-neighbour labelled with a structure the check does not check reading above
  ``calcification_min_hu`` and at least as much as the sample is that structure's blurred edge
  (`density.labelled_rim`, the rule the density check uses for its own threshold) and is not
  counted: a path may run beside a labelled rib within its clearance.
- **run**: consecutive intermediate samples (every ``STEP_MM``), beyond the first voxel diagonal
  after the entry (skin partial volume, as the density check) and not the run that reaches the
  target (its own tissue), at least ``vessel_calibre.hard_min_diameter_mm`` (3 mm: the smallest
  object the density check counts, the smallest vessel the planner keeps out) long.

A run is warned per proposal (`intermediate_warnings`), never forbidden: which of calcification,
cartilage, an enhanced vessel or bone at partial volume it is cannot be told from the HU alone.

RAS mm, HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP_MM = 0.5   # sampling step along the path


@dataclass
class IntermediateRun:
    """One run of unlabelled intermediate-density tissue along a path (module doc)."""

    length_mm: float
    from_mm: float        # along the path, from the skin entry
    peak_hu: float        # highest trilinear sample
    middle_ras: list


def calcification_min_hu() -> float:
    """HU from which unlabelled tissue is reported as possibly calcified or enhanced (module doc)."""
    from .density import density_limits

    return float(density_limits()["calcification_min_hu"])


def intermediate_runs(problem, entry_ras, target_ras) -> list[IntermediateRun]:
    """The runs (module doc) of the segment ``entry_ras`` -> ``target_ras`` (RAS mm, (3,)) of
    ``problem`` (`problem.PlanningProblem`: its CT and label map on one grid, any orientation and
    spacing). [] for a zero-length segment. Vectorised over the samples."""
    from .along import path_samples
    from .density import checked_values, dense_min_hu, labelled_rim
    from .problem import load_defaults
    from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA
    from .soft_tissue import limits

    e, t = np.asarray(entry_ras, float).reshape(3), np.asarray(target_ras, float).reshape(3)
    if float(np.linalg.norm(t - e)) <= 0:
        return []
    ct, lab = problem.ct, problem.labels
    lo_hu, hi_hu = calcification_min_hu(), dense_min_hu()
    min_mm = float(load_defaults()["vessel_calibre"]["hard_min_diameter_mm"])
    s, pts = path_samples(e, t, STEP_MM)
    inside = ct.contains_world(pts)
    hu = np.full(len(s), -1000.0)
    hu[inside] = ct.sample(pts[inside], order=1)
    open_ = checked_values(problem).copy()
    organs = {c for cs in limits()["organs"].values() for c in cs}
    for val, name in lab.labels.items():
        if name in LUNG_PARENCHYMA or name.startswith(LUNG_CONTENTS) or name in organs:
            open_[int(val)] = False
    v = np.asarray(lab.sample(pts, order=0, fill=0), np.int64)
    unl = open_[np.minimum(v, len(open_) - 1)] & (v < len(open_))
    tv = int(problem.target.value or 0)
    hit = inside & unl & (hu >= lo_hu) & (hu < hi_hu) & ~((v == tv) & (tv > 0))
    hit &= s > float(np.linalg.norm(ct.spacing))   # the skin's partial volume (the density check's)
    if not hit.any():
        return []
    idx = np.flatnonzero(hit)
    kji = ct.nearest_kji(pts[idx], clip=True)
    keep = ~labelled_rim(ct.array, lab.array, kji, open_, lo_hu)
    if problem.body is not None:   # in the patient (the density check's rule): not the table, not a cushion
        keep &= problem.body[tuple(kji.T)]
    hit[idx] = keep
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    if runs and runs[-1][1] == len(s):   # the run that reaches the target: its own tissue
        runs = runs[:-1]
    out = []
    for a, b in runs:
        if (b - a) * STEP_MM >= min_mm:
            out.append(IntermediateRun(length_mm=(b - a) * STEP_MM, from_mm=float(s[a]), peak_hu=float(hu[a:b].max()),
                                       middle_ras=np.round(pts[(a + b - 1) // 2], 1).tolist()))
    return out


def intermediate_warnings(problem, n: int, entry_ras, target_ras) -> list[str]:
    """One line per `intermediate_runs` run of proposal ``n`` (1-based): how much, how dense,
    where, what it may be, what to do."""
    from .density import dense_min_hu

    lo = calcification_min_hu()
    return [f"proposal {n}: crosses {r.length_mm:.1f} mm of unlabelled tissue at {lo:g}-{dense_min_hu():g} HU (peak "
            f"{r.peak_hu:.0f} HU; from {r.from_mm:.0f} mm along the path from the skin entry, middle at "
            f"{r.middle_ras} RAS mm): denser than muscle or unenhanced organ, below the bone/contrast density the "
            f"plan keeps out: calcification (>= {lo:g} HU, e.g. a calcified node), cartilage, a contrast-filled "
            "vessel or bone at partial volume that no structure of the label map covers; check it on the images"
            for r in intermediate_runs(problem, entry_ras, target_ras)]
