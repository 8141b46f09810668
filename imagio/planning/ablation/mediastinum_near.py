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
below fat's HU (a lung's partial-volume edge). It is added to the tumour's
`coverage.AblationContext` as a named region (`AblationContext.add_region`), so its distance to
the zones is measured as every label's is (nearby structures, half-voxel convention) in plan.json
and in the Slicer module's live coverage alike (review 41 L4).
"""

from __future__ import annotations

import numpy as np

MEDIASTINUM_NAME = "mediastinum (unlabelled soft tissue)"


def mediastinum_region(problem, lo, hi, med=None) -> np.ndarray:
    """Bool mask on the label map's box ``lo:hi`` ([k, j, i], hi exclusive) of the unlabelled
    mediastinum of ``problem`` (a `PlanningProblem`: ct, labels, target): `Mediastinum`'s region
    (``med`` reused when given) less the labelled structures (the target tumour, which lies inside
    the lungs' hull, included) and less the voxels below fat's HU; all False when the labels hold
    one lung only (`mediastinum.one_lung_side`: no region between two lungs)."""
    from ...limits import FAT_MIN_HU
    from ..mediastinum import Mediastinum, one_lung_side

    lo, hi = np.asarray(lo, int), np.asarray(hi, int)
    shape = tuple(int(b - a) for a, b in zip(lo, hi))
    region = np.zeros(shape, bool)
    if one_lung_side(problem.labels.labels.values()) is not None or min(shape) <= 0:
        return region
    med = Mediastinum(problem) if med is None else med
    ax = med.axis
    other = [a for a in range(3) if a != ax]
    for k in range(int(lo[ax]), int(hi[ax])):   # one axial plane at a time (cached by Mediastinum)
        idx = [slice(None)] * 3
        idx[ax] = k - int(lo[ax])
        region[tuple(idx)] = med.plane(k)[lo[other[0]]:hi[other[0]], lo[other[1]]:hi[other[1]]]
    # the lungs' convex hull runs along their convex walls too, where it takes in the voxels of the
    # chest wall that the discretised wall leaves under it (less than a voxel deep; every wall on an
    # oblique grid): an in-plane opening by one voxel keeps the mediastinum, tens of mm wide between
    # the lungs (its junction lines, 1-2 mm of pleura and fat, hold no organ: Gray's Anatomy)
    from scipy import ndimage

    se = np.ones((3, 3, 3), bool)
    se[tuple(slice(None) if a != ax else [0, 2] for a in range(3))] = False
    # on the box grown by its own edge planes in-plane, so the box's sides do not erode the region
    # there (review 42 L2)
    pad = [(0, 0) if a == ax else (1, 1) for a in range(3)]
    region = ndimage.binary_opening(np.pad(region, pad, mode="edge"), structure=se)[
        tuple(slice(None) if a == ax else slice(1, -1) for a in range(3))]
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    # unlabelled soft tissue only: a labelled structure there (heart, aorta, the tumour itself)
    # is named by its own label (review 41 M1)
    named = [v for v, n in problem.labels.labels.items() if n not in ("body", "unlabelled")]
    if named:
        region &= ~np.isin(problem.labels.array[box], named)
    # tissue, fat included (adipose -190..-30 HU, lesion.json fat_min_hu), not the partial-volume
    # edge of a lung left out of its label (new-user trial 48 L1: the nearest "mediastinum" voxel
    # read -326 HU)
    region &= problem.ct.array[box] >= FAT_MIN_HU
    return region


def add_mediastinum(ctx, problem) -> bool:
    """Add the unlabelled mediastinum of ``problem`` to ``ctx`` (`AblationContext` of its target,
    on the same label grid) as the region ``MEDIASTINUM_NAME``, for a tumour in the lung
    (`problem.Target.in_lung`); whether it was added. `commands.zone_doubts` then warns of it
    within ``nearby_structures_mm`` (ablation_criteria.json lung_warn_structures)."""
    from ..mediastinum import Mediastinum, one_lung_side

    if not bool(getattr(problem.target, "in_lung", False)) or problem.labels.shape != ctx.labels.shape \
            or not np.allclose(problem.labels.ijk_to_ras, ctx.labels.ijk_to_ras, atol=1e-4):
        return False   # another grid (a second series, a resampled copy): the region is read by index (review 42 M3)
    if ctx.tumour_name != getattr(problem.target, "name", None) and ctx.tumour_value != getattr(problem.target, "value", None):
        return False   # another tumour than the plan's lung target: its host is not known to be the lung
    if one_lung_side(problem.labels.labels.values()) is not None:
        return False
    med = Mediastinum(problem)
    ctx.add_region(MEDIASTINUM_NAME, lambda lo, hi: mediastinum_region(problem, lo, hi, med))
    return True
