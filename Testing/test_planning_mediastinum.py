"""Mediastinal soft tissue crossed while no great vessel is labelled is warned per proposal.

New-user trial 2 (A): on lung1 (no contrast, no vessel labelled) the best path entered at the
suprasternal notch through the right paratracheal space, where the brachiocephalic trunk and
vein run, with only the generic "no vessels labelled" line. The check here is independent of
`imagio.planning.mediastinum` (which uses the convex hull of the lungs per axial plane): a
sample is mediastinal when, in its own axial row along R, lung lies on both sides of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagio.planning import PlanningProblem, plan
from imagio.planning.synthetic import synthetic_torso

LUNGS = ("lung_lower_lobe_right", "lung_lower_lobe_left", "lung_upper_lobe_right")


def _torso_without_great_vessels(lesion_ras, radius_mm=7.0, name="mediastinal_mass"):
    ct, lab = synthetic_torso(3.0)
    arr = lab.array.copy()
    inv = {n: v for v, n in lab.labels.items()}
    arr[arr == inv["aorta"]] = inv["body"]             # a CT without contrast: no great vessel labelled
    kji = np.stack(np.indices(arr.shape), -1).reshape(-1, 3)
    d = np.linalg.norm(lab.kji_to_world(kji.astype(float)) - np.asarray(lesion_ras, float), axis=1)
    v = max(lab.labels) + 1
    arr.reshape(-1)[d <= radius_mm] = v
    names = {k: n for k, n in lab.labels.items() if n != "aorta"}
    names[v] = name
    return ct, lab.with_array(arr, labels=names)


def _between_lungs_mm(lab, entry, target, tv):
    """mm of the path with lung on both sides along its axial R row (not lung, not the target)."""
    lung = np.isin(lab.array, [v for v, n in lab.labels.items() if n in LUNGS])
    r_axis = int(np.argmax(np.abs(lab.direction[0, ::-1])))
    e, t = np.asarray(entry, float), np.asarray(target, float)
    n = 600
    pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
    kji = np.clip(np.rint(lab.world_to_kji(pts)).astype(int), 0, np.array(lab.shape) - 1)
    hits = 0
    for q in kji:
        if lung[tuple(q)] or lab.array[tuple(q)] == tv:
            continue
        row = np.moveaxis(lung, r_axis, -1)[tuple(np.delete(q, r_axis))]
        i = q[r_axis]
        hits += bool(row[:i].any() and row[i + 1:].any())
    return hits * np.linalg.norm(t - e) / (n - 1)


def _warned(result, n):
    return [w for w in result.warnings if w.startswith(f"proposal {n}: crosses") and "mediastinal" in w]


def test_paths_through_the_mediastinum_are_warned_when_no_great_vessel_is_labelled():
    ct, lab = _torso_without_great_vessels((0.0, 20.0, 70.0))
    tv = max(lab.labels)
    result = plan(PlanningProblem.build(ct, lab, "mediastinal_mass"))
    assert result.feasible
    runs = [_between_lungs_mm(lab, m.entry_ras, m.target_ras, tv) for m in result.proposals]
    assert max(runs) >= 10.0                           # the scene does put paths through it
    for n, mm in enumerate(runs, 1):
        if mm >= 8.0:
            assert _warned(result, n), (n, mm, result.warnings)
        if mm < 1.0:
            assert not _warned(result, n), (n, mm)


def test_lateral_lung_paths_are_not_warned_and_labelled_vessels_silence_it():
    ct, lab = _torso_without_great_vessels((75.0, 0.0, 70.0), radius_mm=6.0, name="lung_nodule")
    result = plan(PlanningProblem.build(ct, lab, "lung_nodule"))
    tv = max(lab.labels)
    for n, m in enumerate(result.proposals, 1):
        if _between_lungs_mm(lab, m.entry_ras, m.target_ras, tv) < 1.0:
            assert not _warned(result, n)
    # with the aorta labelled (a contrast CT) the warning is not given
    ct2, lab2 = synthetic_torso(3.0)
    r2 = plan(PlanningProblem.build(ct2, lab2, "liver_tumor"))
    assert not any("mediastinal soft tissue" in w for w in r2.warnings)


def test_needle_outside_the_skin_leaving_the_image_where_the_body_is_cut_is_warned():
    """New-user trial 2 (B): lung1's best entry lay 1 mm from where the field of view cuts the
    body, and all 87 mm of the needle outside the skin ran beyond the image (an arm may be
    there), with no warning beyond "body truncated ... no entry there". The torso cut at
    A = 84 mm in front of its liver tumour: every proposal whose needle part outside the skin
    (entry plus the needle's unused length, away from the target; computed here) ends beyond
    that face is warned, and none whose hub stays in the image."""
    ct, lab = synthetic_torso(3.0)
    a_axis = int(np.argmax(np.abs(ct.direction[1, ::-1])))
    idx = np.zeros((ct.shape[a_axis], 3))
    idx[:, a_axis] = np.arange(ct.shape[a_axis])
    keep = np.flatnonzero(ct.kji_to_world(idx)[:, 1] <= 84.0)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[a_axis], hi[a_axis] = int(keep.min()), int(keep.max()) + 1
    ct_c, lab_c = ct.crop(lo, hi), lab.crop(lo, hi)
    faces = np.zeros((2, 3))
    faces[:, a_axis] = (-0.5, ct_c.shape[a_axis] - 0.5)     # the two A faces, array index space
    edge_a = float(ct_c.kji_to_world(faces)[:, 1].max())     # the image's anterior boundary (A mm)
    result = plan(PlanningProblem.build(ct_c, lab_c, "liver_tumor"))
    assert result.feasible and any(t.side == "anterior" for t in result.problem.skin.truncations)
    n_out = 0
    for n, m in enumerate(result.proposals, 1):
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        u = (e - t) / np.linalg.norm(e - t)
        hub = e + u * (result.problem.needle.length_mm - m.length_mm)
        said = [w for w in result.warnings if w.startswith(f"proposal {n}:") and "beyond the image at its anterior" in w]
        if hub[1] > edge_a + 1.0:
            n_out += 1
            assert said, (n, hub, edge_a)
        elif np.all(ct_c.contains_world(hub[None])):
            assert not said, (n, hub, edge_a)
    assert n_out > 0
