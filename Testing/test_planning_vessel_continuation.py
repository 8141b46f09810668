"""An unlabelled contrast-filled branch of a labelled vessel gets the vessel's clearance.

New-user trial 90 (HIGH 1): on the chest CTA the best-ranked path to a left upper lobe target ran
3.1 mm from the unlabelled left common carotid artery (contrast-filled, joined to the labelled
aortic arch): unlabelled dense tissue was kept out only by the needle radius + placement
uncertainty (2.65 mm), a labelled great vessel by its 5 mm margin + 2.65 mm.

The scene (defined in RAS mm, so every grid holds the same patient): a block of soft tissue in
air, a labelled contrast-filled aorta far from the target, and an unlabelled contrast-filled
branch leaving it that runs craniocaudally 8 mm beside the straight anterior path to the target
(radius 3 mm: 5 mm from the path's axis, beyond the needle's 2.65 mm, within the aorta's
7.65 mm). The old planner ranked first a path within 7.65 mm of the branch (this file fails on
it); every proposal must now keep the aorta's clearance from the branch's dense voxels,
measured here independently (exact distance from the entry-target segment to the voxel centres
minus half the smallest voxel side, the verifier's convention).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from conftest import block_in_air, rotation
from synthetic_ct import _seg_dist
from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Needle
from imagio.volume import Volume

DENSE_HU = 250.0          # planning_defaults.json ct_density.dense_min_hu
HALF = np.array([80.0, 60.0, 70.0])   # the body block's half sides (x, y, z), mm
AORTA = ((40.0, -30.0, -70.0), (40.0, -30.0, 70.0), 10.0)   # centreline ends, radius (mm)
BRANCH = [((40.0, -30.0, -35.0), (-8.0, 30.0, -35.0)), ((-8.0, 30.0, -35.0), (-8.0, 30.0, 40.0))]
BRANCH_R = 3.0
TARGET = np.array([0.0, 0.0, 0.0])


def scene(spacing=(2.0, 2.0, 2.0), direction=None, aorta_hu=330.0, seed=0):
    """(CT, labels {1: body, 2: aorta}, truth mask of the branch), all [k, j, i] on one grid of
    ``spacing`` (mm, i j k) along ``direction`` (3 x 3, columns the i j k axes in RAS)."""
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    extent = 2.0 * HALF + 30.0
    shape = tuple(int(n) for n in np.ceil(np.abs(d.T) @ extent / np.asarray(spacing, float)))
    ref, (x, y, z), body = block_in_air(spacing, shape, d, HALF)
    p = np.stack([x, y, z], -1)
    aorta = _seg_dist(p, *AORTA[:2]) <= AORTA[2]
    branch = np.zeros_like(aorta)
    for a, b in BRANCH:
        branch |= _seg_dist(p, a, b) <= BRANCH_R
    branch &= ~aorta & body
    ct = np.full(body.shape, -1000.0)
    ct[body] = 40.0
    ct[aorta] = aorta_hu
    ct[branch] = 300.0          # the trial's carotid: 307 HU mean
    sigma = 0.8 / np.asarray(ref.spacing_kji, float)   # ~1 mm point spread (partial volume)
    ct = ndimage.gaussian_filter(ct, sigma) + np.random.default_rng(seed).normal(0.0, 10.0, ct.shape)
    lab = np.zeros(body.shape, np.uint8)
    lab[body] = 1
    lab[aorta] = 2
    ctv = Volume(np.clip(np.rint(ct), -1024, 3071).astype(np.int16), ref.ijk_to_ras, "scene")
    return ctv, Volume(lab, ref.ijk_to_ras, "labels", labels={1: "body", 2: "aorta"}), branch


def _plan(ct, lab, tmp_path, name, target=TARGET):
    # the throw past the tip is not checked: it is not what this file tests
    prob = PlanningProblem.build(ct, lab, target, needle=Needle(beyond_tip_mm=0.0))
    result = plan(prob)
    doc = json.loads(result.write_json(tmp_path / f"{name}.json").read_text())
    return prob, result, doc


def _gaps(ct, voxels, doc):
    """Per proposal: exact distance (mm) from its entry-target segment to the centres of
    ``voxels`` (bool [k, j, i]) minus half the smallest voxel side."""
    tree = cKDTree(ct.kji_to_world(np.argwhere(voxels).astype(float)))
    half = 0.5 * float(min(ct.spacing))
    out = []
    for p in doc["proposals"]:
        e, t = np.asarray(p["entry_ras"], float), np.asarray(p["target_ras"], float)
        f = np.linspace(0.0, 1.0, int(np.ceil(np.linalg.norm(t - e) / 0.05)) + 1)[:, None]
        out.append(float(tree.query(e + f * (t - e))[0].min()) - half)
    return out


GRIDS = {
    "axial_2mm": ((2.0, 2.0, 2.0), None),
    "oblique_flipped_anisotropic": ((1.6, 2.0, 2.6), rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, -1.0])),
}


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_unlabelled_branch_of_a_labelled_vessel_keeps_the_vessel_clearance(tmp_path, grid):
    spacing, direction = GRIDS[grid]
    ct, lab, branch = scene(spacing, direction)
    prob, result, doc = _plan(ct, lab, tmp_path, grid)
    assert result.feasible, result.report
    dense = branch & (ct.array > DENSE_HU)
    assert dense.sum() * ct.voxel_volume_ml > 1.0          # the branch reads as contrast (the scene holds)
    aorta = next(s for s in prob.structures if s.name == "aorta")
    need = aorta.margin_mm + prob.needle.widening_mm        # 5 + 2.65 mm
    gaps = _gaps(ct, dense, doc)
    assert min(gaps) >= need - 0.05, (gaps, need)           # 0.05 mm: this check's sampling
    # the branch is named as the aorta's unlabelled continuation: its dense voxels, nothing else
    cont = doc["rules"]["vessel_continuation"]["aorta_continuation"]
    assert cont["of"] == "aorta" and cont["margin_mm"] == aorta.margin_mm
    mine = prob.labels.array == cont["value"]
    # most of it: the rim next to the aorta stays its partial volume, and where the 2 mm grid's
    # blurred edge leaves a dense lumen measured under 3 mm the calibre rule leaves it to the
    # density check (0.89 and 0.98 of the dense voxels on these grids)
    assert mine[dense].mean() > 0.8, mine[dense].mean()
    near = ndimage.binary_dilation(branch, np.ones((3, 3, 3), bool))
    assert not (mine & ~near).any()
    assert any("continuous with the labelled aorta" in w and "aorta_continuation" in w for w in doc["warnings"])


def test_dense_tissue_beside_an_unenhanced_vessel_is_not_its_lumen(tmp_path):
    """The same scene with the aorta unenhanced (40 HU, a native CT): the dense branch touching
    it is not the aorta's lumen (a calcification or bone beside it): no continuation; the CT
    density check keeps it out by the needle's clearance, as before."""
    ct, lab, branch = scene(aorta_hu=40.0)
    prob, result, doc = _plan(ct, lab, tmp_path, "native")
    assert "vessel_continuation" not in doc["rules"]
    assert not any(s.name.endswith("_continuation") for s in prob.structures)
    dense = branch & (ct.array > DENSE_HU)
    assert min(_gaps(ct, dense, doc)) >= prob.needle.widening_mm - 0.05


TRIAL90_TARGET = np.array([-39.3, 156.7, 760.7])     # a left upper lobe point of the chest CTA
TRIAL90_CAROTID = np.array([-15.3, 174.7, 772.7])    # a voxel of its unlabelled left common carotid


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_upper_lobe_paths_keep_the_great_vessel_clearance_from_the_carotid(shared_data, tmp_path):
    """New-user trial 90 (HIGH 1), the chest CTA segmented as the trial did (body, bones, lungs,
    airways, vessels): the left common carotid artery is not in great_vessels (the arch's
    thinner branches are left out); the trial's best path to a left upper lobe target ran 3.9 mm
    from its voxel centres (before this rule: 3.1 mm from them less half a voxel). Independently here:
    the carotid is the face-connected component of unlabelled (or body) voxels above 250 HU
    holding the trial's carotid voxel (2-4 mL, joined to great_vessels); every proposal keeps
    great_vessels' margin + the needle's radius and placement uncertainty from its voxel centres."""
    from imagio import io
    from imagio.segmentation.rules import segment

    f = shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if not f.exists():
        pytest.skip("chest CTA not available")
    ct = io.read_image(f)
    seg = segment(ct, ("body", "bones", "lungs", "airways", "vessels"))
    inv = {n: v for v, n in seg.labels.items()}
    free = (np.asarray(ct.array) > DENSE_HU) & np.isin(seg.array, [0, inv["body"]])
    comp, _ = ndimage.label(free)
    c = comp[tuple(ct.nearest_kji(TRIAL90_CAROTID[None])[0])]
    assert c
    carotid = comp == c
    del comp, free
    assert 1.5 < carotid.sum() * ct.voxel_volume_ml < 4.0, carotid.sum() * ct.voxel_volume_ml
    gv = seg.array == inv["great_vessels"]
    assert (ndimage.binary_dilation(carotid, np.ones((3, 3, 3), bool)) & gv).any()   # joined to the arch
    prob, result, doc = _plan(ct, seg, tmp_path, "cta", TRIAL90_TARGET)
    if not result.feasible:
        # since the section calibre (calibre115) 82 of 124 mL of this CTA's lung vessels read >= 3 mm
        # and the target has no path ("1.9 mm to lung_vessels"): the plan must say so (open item: the
        # 3 mm project default against an unbiased calibre; a 5 mm split is no fix, it also lets this
        # path pass 2.7 mm from the carotid, whose continuation keeps the needle's clearance only
        # where its lumen reads under the split)
        near_miss = result.report.get("best_near_miss") or {}
        assert any("lung_vessels" in d for d in near_miss.get("details", [])), result.report
        return
    need = next(s.margin_mm for s in prob.structures if s.name == "great_vessels") + prob.needle.widening_mm
    gaps = _gaps(ct, carotid, doc)
    assert min(gaps) >= need - 0.05, (gaps, need)
    assert doc["rules"]["vessel_continuation"]["great_vessels_continuation"]["of"] == "great_vessels"


def test_continuations_are_cached_per_case():
    """Built again from a new copy of the same CT (the Slicer module and IMAGIO Web read it anew
    for every plan), the problem reuses the continuations found (the cached result object), with
    the same labels; a CT whose branch no longer reads as contrast is a new case (never stale)."""
    from imagio.planning import continuation

    ct, lab, branch = scene()
    continuation.forget_cached_continuations()
    p1 = PlanningProblem.build(ct, lab, TARGET)
    assert len(continuation._CACHE) == 1
    first = next(iter(continuation._CACHE.values()))
    assert first[0] is not None
    p2 = PlanningProblem.build(ct.with_array(ct.array.copy()), lab, TARGET)
    assert next(iter(continuation._CACHE.values())) is first
    assert np.array_equal(p1.labels.array, p2.labels.array)
    assert p2.rules_extra["vessel_continuation"] == p1.rules_extra["vessel_continuation"]
    faint = ct.array.copy()
    faint[branch] = 120      # a branch below angiographic density: not dense tissue at all
    p3 = PlanningProblem.build(ct.with_array(faint), lab, TARGET)
    assert next(iter(continuation._CACHE.values())) is not first
    assert "vessel_continuation" not in p3.rules_extra


def test_a_bone_between_does_not_make_dense_tissue_a_vessel():
    """An unlabelled dense blob (600 HU: a calcification) on the far side of a labelled rib (1500
    HU) that touches the enhanced aorta is joined to the aorta only through the rib's blurred
    edge (its partial volume): it is not the aorta's continuation (the CT density check keeps it);
    the same blob touching the aorta's lumen is (a positive control: the rule is not idle here)."""
    ref, (x, y, z), body = block_in_air((2.0, 2.0, 2.0), (70, 60, 60), np.eye(3), (60.0, 50.0, 50.0))
    p = np.stack([x, y, z], -1)
    aorta = _seg_dist(p, (0.0, -20.0, -50.0), (0.0, -20.0, 50.0)) <= 8.0
    rib = (x >= 8.0) & (x <= 30.0) & (np.abs(y + 20.0) <= 4.0) & (np.abs(z) <= 40.0) & ~aorta
    beyond = np.linalg.norm(p - np.array([33.5, -20.0, 0.0]), axis=-1) <= 3.5
    touching = np.linalg.norm(p - np.array([0.0, -8.0, 0.0]), axis=-1) <= 3.5
    ct = np.where(body, 40.0, -1000.0)
    ct[aorta], ct[rib], ct[beyond | touching] = 330.0, 1500.0, 600.0
    # ~1.6 mm point spread: the rib's cortex blurs its one-voxel edge above 250 HU (its partial volume)
    ct = ndimage.gaussian_filter(ct, 0.8) + np.random.default_rng(1).normal(0.0, 10.0, ct.shape)
    lab = np.where(body, 1, 0).astype(np.uint8)
    lab[aorta], lab[rib] = 2, 3
    ctv = Volume(np.clip(np.rint(ct), -1024, 3071).astype(np.int16), ref.ijk_to_ras, "rib scene")
    prob = PlanningProblem.build(ctv, Volume(lab, ref.ijk_to_ras, "labels", labels={1: "body", 2: "aorta", 3: "ribs"}),
                                 np.array([-30.0, 20.0, 0.0]), registration_checked=True)   # made from this CT
    cont = prob.rules_extra["vessel_continuation"]["aorta_continuation"]
    mine = prob.labels.array == cont["value"]
    core = ctv.array > 450       # the blobs' cores (the aorta reads 330 HU)
    assert mine[touching & core].mean() > 0.9
    assert not mine[beyond].any()
    assert not (mine & ~ndimage.binary_dilation(touching, np.ones((3, 3, 3), bool))).any()
