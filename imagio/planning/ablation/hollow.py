"""Keeping hollow viscera out of the ablation zone while planning, as an interventional
radiologist does: choose the probe's position along its path and the device's setting so that
the zone covers tumour + the minimal ablative margin without bowel, stomach or gallbladder
(``no_hollow_viscus`` of ablation_criteria.json, sources there: Mulier 2002, Kong 2009, Kondo
2006, CIRSE 2020), and say plainly when no such zone exists (then hydrodissection / artificial
ascites, another path or another modality).

`hollow_points`: the analysis-grid voxel centres of hollow viscera near the tumour (RAS mm),
the same voxels `coverage.AblationContext.evaluate` counts for the criterion.
`spare.spare_hollow_viscus` uses them for one probe on one path; `multiprobe.plan_multiprobe`
to drop the candidate zones that would take one in (a hard constraint of the cover when the
cover stays feasible). Every choice is confirmed by ``ctx.evaluate`` (the criterion itself);
the point tests only choose what to evaluate.
"""

from __future__ import annotations

import numpy as np

from .criteria import is_hollow_viscus


def hollow_points(ctx, reach_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, names, dist): the centres (RAS mm, (n, 3)) of the analysis-grid voxels of ``ctx`` (an
    `coverage.AblationContext`) labelled a hollow viscus (`criteria.is_hollow_viscus`) outside
    the tumour and at most ``reach_mm`` from it (its signed distance map), and each one's label
    name (str (n,)) and distance from the tumour (mm (n,), its signed distance map): the voxels `criteria.hollow_viscus_criterion` counts in a zone (the tumour's
    own voxels and label left out, as ``evaluate`` leaves them). Vectorised."""
    names = ctx.names
    vals = [int(v) for v, n in names.items()
            if v and int(v) != ctx.tumour_value and is_hollow_viscus(n)]
    if not vals:
        return np.zeros((0, 3)), np.zeros(0, dtype=object), np.zeros(0)
    fl = ctx.fine_labels
    m = np.isin(fl, vals) & ~ctx.tumour & (ctx.tumour_sdf <= float(reach_mm))
    kji = np.argwhere(m)
    lv = fl[m]
    return (ctx.grid.kji_to_ras(kji.astype(float)), np.array([names[int(v)] for v in lv], dtype=object),
            ctx.tumour_sdf[m].astype(float))


def within_margin_text(ctx, margin_mm: float) -> str:
    """"<name> (<mm> from the tumour), ... lie(s) within tumour + <margin> mm: no zone covering it can
    keep it out" for the hollow viscera (`hollow_points`) closer to the tumour than ``margin_mm``
    less half the analysis grid's largest voxel side (the nearest voxel centre of each, by the
    tumour's signed distance map, mm: clearly inside the shell a met minimal ablative margin puts
    in the zone); "" when none is. When it is not "", no zone set meets both the margin and
    ``no_hollow_viscus``, so the planner searches no zone keeping them out."""
    _, hn, dist = hollow_points(ctx, margin_mm - 0.5 * float(np.max(ctx.grid.spacing_kji)))
    if not len(hn):
        return ""
    near = {n: float(dist[hn == n].min()) for n in sorted(set(hn))}
    what = ", ".join(f"{n} ({max(d, 0.0):.1f} mm from the tumour)" for n, d in sorted(near.items(), key=lambda kv: kv[1]))
    return (f"{what} {'lies' if len(near) == 1 else 'lie'} within tumour + {margin_mm:g} mm: no zone covering it can "
            f"keep {'it' if len(near) == 1 else 'them'} out")


def names_text(names) -> str:
    """The names, sorted, once each, comma-separated ("a hollow viscus" when none)."""
    names = sorted(set(str(n) for n in names))
    return ", ".join(names) if names else "a hollow viscus"
