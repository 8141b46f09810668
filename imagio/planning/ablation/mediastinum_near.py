"""How close a lung tumour's ablation zones come to the mediastinum (a warning's figure).

A lung ablation zone within ``nearby_structures_mm`` (10 mm) of the mediastinum is a high-risk
location (CIRSE standards of practice on thermal ablation of lung tumours, Venturini M et al.,
Cardiovasc Intervent Radiol 2020: heart, great vessels, hilum, oesophagus, trachea). On a CT
without contrast the mediastinum's vessels, the azygos vein and the oesophagus are soft tissue
that no rule-based label names (new-user trial 47 M3: lung1's zone came 1.5 mm from unlabelled
paraoesophageal soft tissue and only the vertebra 3.6 mm away was warned). The mediastinum is
`planning.mediastinum.Mediastinum`'s region (per axial plane: inside the convex hull of the lungs,
not lung, not bone, not further behind the vertebral bodies' front than ITMIG's visceral
compartment), its labelled structures left out (they are named by their labels) and its voxels
below fat's HU (a lung's partial-volume edge); its distance
to the zones is measured on the CT grid: the Euclidean distance
(``edt``, physical spacing) from the voxels of the zones (voxel centre inside an ellipsoid) to
the nearest voxel of the region (the target tumour's voxels left out), in mm, 0 when they
overlap.
"""

from __future__ import annotations

import numpy as np

MEDIASTINUM_NAME = "mediastinum (unlabelled soft tissue)"


def zones_of(d: dict) -> list:
    """The `zones.Ellipsoid` s of a `ProbePlan.to_dict` (``zones``: centre_ras, axis, length_mm,
    diameter_mm; RAS mm)."""
    from .zones import Ellipsoid

    return [Ellipsoid(np.asarray(z["centre_ras"], float), np.asarray(z["axis"], float),
                      0.5 * float(z["length_mm"]), 0.5 * float(z["diameter_mm"])) for z in d.get("zones", [])]


def mediastinum_distance_mm(problem, ells, near_mm: float, med=None) -> float | None:
    """Distance (mm) from the union of ``ells`` (RAS ellipsoids) to the mediastinal region of
    ``problem``'s label map (`Mediastinum`, ``med`` reused when given), or None when the region
    lies farther than ``near_mm`` or is not in the box (no lungs labelled), or the labels hold one
lung only (`mediastinum.one_lung_side`: no region between two lungs)."""
    import edt

    from ..mediastinum import Mediastinum
    from .zones import bounds, box_of, rasterize

    if not ells:
        return None
    ct = problem.ct
    lo_ras, hi_ras = bounds(ells)
    lo, hi = box_of(ct.ijk_to_ras, ct.shape, lo_ras - near_mm, hi_ras + near_mm)
    if np.any(hi <= lo):
        return None
    from ..mediastinum import one_lung_side

    if one_lung_side(problem.labels.labels.values()) is not None:   # one lung: no region between them
        return None
    med = Mediastinum(problem) if med is None else med
    shape = tuple(int(b - a) for a, b in zip(lo, hi))
    shift = np.eye(4)
    shift[:3, 3] = lo[::-1]                              # box ijk -> grid ijk (ijk = kji reversed)
    zone = rasterize(ells, ct.ijk_to_ras @ shift, shape)
    if not zone.any():
        return None
    region = np.zeros(shape, bool)
    ax = med.axis
    other = [a for a in range(3) if a != ax]
    for k in range(int(lo[ax]), int(hi[ax])):   # one axial plane at a time (cached by Mediastinum)
        plane = med.plane(k)[lo[other[0]]:hi[other[0]], lo[other[1]]:hi[other[1]]]
        idx = [slice(None)] * 3
        idx[ax] = k - int(lo[ax])
        region[tuple(idx)] = plane
    # unlabelled soft tissue only: a labelled structure there (heart, aorta, the tumour itself,
    # which lies inside the lungs' hull and is not lung) is named by its own label (review 41 M1)
    lab = problem.labels.array[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
    named = [v for v, n in problem.labels.labels.items() if n not in ("body", "unlabelled")]
    region &= ~np.isin(lab, named) if named else True
    # tissue, fat included (adipose -190..-30 HU, lesion.json fat_min_hu), not the partial-volume
    # edge of a lung left out of its label (new-user trial 48 L1: the nearest "mediastinum" voxel
    # read -326 HU)
    from ...limits import FAT_MIN_HU

    region &= ct.array[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))] >= FAT_MIN_HU
    if not region.any():
        return None
    d = edt.edt(~zone, anisotropy=tuple(float(s) for s in ct.spacing_kji), black_border=False)
    dmin = float(d[region].min())
    return dmin if dmin <= near_mm else None


def add_mediastinum_to_zones(problem, abl: dict, near_mm: float) -> None:
    """For a tumour in the lung, put the mediastinum's distance (when within ``near_mm``) into
    each zone set's ``coverage.structures_near_mm`` of ``abl`` (`ablation_for_plan`'s dict) under
    ``MEDIASTINUM_NAME``, for `commands.zone_doubts` to warn."""
    from ..mediastinum import Mediastinum

    sets = list(abl.get("single_probe", []))
    if isinstance(abl.get("multi_probe"), dict) and abl["multi_probe"].get("zones"):
        sets.append(abl["multi_probe"])
    med = None
    for d in sets:
        cov = d.get("coverage")
        if not isinstance(cov, dict):
            continue
        med = Mediastinum(problem) if med is None else med
        dist = mediastinum_distance_mm(problem, zones_of(d), near_mm, med)
        if dist is not None:
            cov.setdefault("structures_near_mm", {})[MEDIASTINUM_NAME] = round(dist, 1)
