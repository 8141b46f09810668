"""CT density along needle paths: dense tissue that no structure of the label map covers.

The planner trusts the label map; a segmentation that misses a rib, a calcification, a
contrast-filled vessel or metal would let a needle through it without a word. This check reads
the CT itself (HU), independently of the labels' correctness, and is part of the independent
re-check (`verify.Verifier`) of every path (single-probe plans, multi-probe ablation, sarcoma
tracts, live re-scoring).

Definitions (numbers in imagio/data/planning_defaults.json ``ct_density``, with sources):

- **dense tissue**: CT > ``dense_min_hu`` (250 HU). At or above the lower limit of
  CT-angiographic arterial enhancement (>= 250 HU; Bae KT, Radiology 2010;256:32-61) and above
  enhanced parenchyma (liver, spleen, pancreas <= ~200 HU in any phase): only bone (cortex,
  even blurred by partial volume: a 1 mm rib cortex at 1.5 mm voxels measures 400-600 HU
  (Prevrhal S et al., Phys Med Biol 1999;44:751-764), calcification, iodinated contrast at
  angiographic density, or metal. The same value is the planner's fallback bone threshold
  (`problem.threshold_bone`, the sarcoma planner's bone from CT): one definition.
- **checked voxels**: inside the body, in no structure whose label already decides the needle's
  fate: unlabelled voxels and passable containers (body, muscle, liver, lungs, unknown names),
  never the target lesion (nor a lesion that holds a target point), the organ the plan enters to
  reach the target, or a structure whose role the user set.
- **objects**: 26-connected components of checked dense voxels of at least the volume of a ball
  of ``vessel_calibre.hard_min_diameter_mm`` (3 mm: the smallest vessel the planner keeps out;
  smaller specks are noise or sub-resolution calcification) and 2 voxels.
- **partial volume of labelled structures**: a checked dense voxel next to (26-neighbour) a
  dense voxel of a labelled structure the check does not check (bone, a contrast vessel), and
  no denser than it, is that structure's partial volume, not tissue the label map misses
  (`labelled_rim`; the fully labelled phantom's muscle around every bone measured 251-493 HU
  in a one-voxel rim, 39 mL within reach of a lung nodule, new-user trial 55). Its volume is
  reported (``labelled_rim_ml``), never warned.
- **target exemption**: dense voxels of the target lesion's one-voxel rim (a calcified target's
  partial volume) and the object holding a target point (the user aims into dense tissue: a
  bone or calcified lesion) are the target's own tissue; the plan says so. The object holding a
  target point may only be the final contiguous run of a path (percutaneous bone biopsy enters
  the bone once; leaving it and re-entering crosses a canal, foramen or gap: CIRSE standards,
  Filippiadis DK et al., Cardiovasc Intervent Radiol 2018;41:1323-1330); a labelled bone holding
  the target point is handled the same way by `problem._enter_target_bone`. A target point in
  unlabelled dense tissue larger than a nodule never reaches this exemption: it may be
  contrast-enhanced blood, and `problem._refuse_blood_pool_target` refuses it (label the bone
  or the lesion).
- **blocking**: objects outside the lungs (bone, calcification, a contrast-filled vessel or
  metal: none may be crossed), and voxels inside the lungs at cortical density (>=
  ``cortical_hu``: calcification or metal). A path is infeasible when a sample lies in a
  blocking voxel or closer to one than the needle radius + placement uncertainty (the clearance
  every labelled forbidden structure gets; exact distance to the voxel centres minus half the
  smallest voxel, the verifier's convention). The first voxel diagonal after the entry is not
  checked (skin partial volume, as the verifier's body check).
- **inside the lungs below cortical density**: contrast-filled pulmonary vessels, which the
  planner grades by calibre when they are labelled (`problem.split_vessels_by_calibre`): a
  crossing is reported as a warning (mm and peak HU), never silently.

Unlabelled tissue of 130-250 HU (calcification, cartilage, a contrast-filled vessel below
angiographic density) is not kept out but warned per proposal: `intermediate`.

A blocking object joined to the enhanced lumen of a labelled vessel is that vessel's unlabelled
continuation (an arch branch, a pulmonary vessel beyond the label, a vein full of contrast): the
problem relabels it ``<vessel>_continuation`` with the vessel's role and margin when it is built
(`continuation`), so it never reaches this check (trial 90: the unlabelled left common carotid
artery kept only the needle's clearance, 3.1 mm from the best path).

The density class in messages: >= ``metal_hu`` metal; >= ``cortical_hu`` bone, calcification or
metal; else bone at partial volume, calcification or a contrast-filled vessel. Above
``cortical_hu`` a contrast CT adds undiluted contrast in a vein of inflow: the superior vena
cava, brachiocephalic or subclavian vein of the injection side reads 1,000-2,000 HU and more
(Bae KT, Radiology 2010;256:32-61), up to the scale's top (the chest CTA's up to 3,261 HU, issue
14), so the metal class names it too. A CT whose phase the label map does not tell
(`problem.contrast_phase`: no vessel labelled) names it as possible "if the CT has contrast".

RAS mm, HU; arrays [k, j, i].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..volume import index_dtype, index_list, reach_box


@lru_cache(maxsize=1)
def density_limits() -> dict:
    """The ``ct_density`` section of planning_defaults.json (HU thresholds with sources)."""
    from ..defaults import load_defaults

    return load_defaults()["ct_density"]


def dense_min_hu() -> float:
    """HU at or above which tissue is bone, calcification, angiographic contrast or metal."""
    return float(density_limits()["dense_min_hu"])


def min_object_voxels(voxel_volume_ml: float) -> int:
    """Smallest dense object counted, in voxels: the volume of a ball of
    ``vessel_calibre.hard_min_diameter_mm`` (the smallest vessel the planner keeps out; smaller
    specks are noise or sub-resolution calcification), at least 2 voxels."""
    from .problem import load_defaults

    vmin = np.pi / 6.0 * float(load_defaults()["vessel_calibre"]["hard_min_diameter_mm"]) ** 3
    return max(2, int(np.ceil(vmin / (voxel_volume_ml * 1000.0))))


def dense_objects(hu: np.ndarray, voxel_volume_ml: float, checked: np.ndarray | None = None) -> np.ndarray:
    """Bool mask [k, j, i] of the dense objects of a CT block ``hu`` (HU): 26-connected
    components of voxels > ``dense_min_hu`` (restricted to ``checked`` when given) of at least
    `min_object_voxels`. The label-free form of `DenseTissue`'s objects (same threshold and size
    rule), for checks that have no label map (the bronchoscopic tunnel, `bronchoscopy.tunnel`)."""
    import cc3d

    dense = np.asarray(hu) > dense_min_hu()
    if checked is not None:
        dense &= checked
    if not dense.any():
        return dense
    return cc3d.dust(dense, threshold=min_object_voxels(voxel_volume_ml), connectivity=26, in_place=False)


UNDILUTED = "undiluted contrast in a vein (superior vena cava, brachiocephalic or subclavian vein)"


def density_class(peak_hu: float, contrast: bool | None = False) -> str:
    """What tissue of peak ``peak_hu`` HU can be, in words. ``contrast``: whether the CT is
    contrast-enhanced (`problem.contrast_phase`: True, False, or None when not known); above
    ``cortical_hu`` a contrast CT adds undiluted contrast in a vein of inflow (module doc), an
    unknown phase adds it as a possibility. Default False: the class by density alone."""
    lim = density_limits()
    if peak_hu >= lim["cortical_hu"]:
        base = "metal" if peak_hu >= lim["metal_hu"] else "bone, calcification or metal"
        if contrast:
            return f"{base}, or {UNDILUTED}: this is a contrast CT"
        if contrast is None:
            return f"{base}, or {UNDILUTED} if the CT has contrast"
        return base
    return "bone at partial volume, calcification or a contrast-filled vessel"


def checked_values(problem, target_point: bool = False) -> np.ndarray:
    """Bool per label value (index = value, covering every value of the label map): voxels of
    that value are checked for dense tissue: unlabelled (0) or in a passable container.

    Default: the density check's checked voxels (module doc): not a structure whose role the user
    set, the organ the plan enters, nor the exempt target. ``target_point=True``: the tissue a
    target point's dense object is counted in (`problem._refuse_blood_pool_target`): every
    passable structure that is not a lesion (`problem.is_lesion`, which counts names the catalogue
    does not know), whatever role the user set; a labelled lesion is how to aim into large dense
    tissue, so it is never part of that object."""
    from .problem import is_lesion

    lab = problem.labels
    n = int(max(lab.labels, default=0)) + 1
    n = max(n, int(lab.array.max()) + 1, max((s.value for s in problem.structures), default=0) + 1)
    ok = np.zeros(n, bool)
    ok[0] = True
    entered = problem.rules_extra.get("target_organ_entered")
    for s in problem.structures:
        if s.role != "passable":
            continue
        if target_point:
            if is_lesion(s.name):
                continue
        elif s.name in problem.roles_overridden or s.name == entered or s.value == problem.exempt_value:
            continue
        ok[s.value] = True
    return ok


RIM_OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                        if (a, b, c) != (0, 0, 0)], np.int64)   # the 26 neighbours of a voxel


def labelled_rim(hu: np.ndarray, lab: np.ndarray, kji: np.ndarray, checked: np.ndarray,
                 dense_hu: float) -> np.ndarray:
    """Bool (n,): which checked dense voxels ``kji`` ((n, 3) indices into the block ``hu`` /
    ``lab`` [k, j, i], HU and label values) are partial volume of a labelled dense structure:
    one of their 26 neighbours is dense (> ``dense_hu``), labelled with a value the density check
    does not check (``checked``, bool per label value, `checked_values`: a structure whose label
    decides the needle's fate: bone, a contrast-filled vessel) and at least as dense as the voxel
    itself. A voxel on a structure's surface holds a mix of it and its surroundings and the
    scanner's point spread blurs the edge over about a voxel (Glover GH, Pelc NJ, Nonlinear
    partial volume artifacts in x-ray computed tomography, Med Phys 1980;7:238-248; a 1 mm rib
    cortex at 1.5 mm voxels: Prevrhal S et al., Phys Med Biol 1999;44:751-764), so whether it is
    labelled is a voxel-level choice; a mix is never denser than its densest part, so a voxel
    denser than every labelled dense neighbour (a calcification beside a contrast vessel) is not
    its partial volume. Unlabelled dense tissue beyond that one voxel (a missed rib, an unlabelled
    aorta) keeps its whole body. Vectorised over the voxels (26 gathers)."""
    kji = np.asarray(kji, np.int64)
    out = np.zeros(len(kji), bool)
    if not len(kji):
        return out
    own = hu[tuple(kji.T)]
    for inb, v, h in neighbour_reads(hu, lab, kji):
        out |= rim_term(inb, v, h, own, checked, dense_hu)
    return out


def neighbour_reads(hu: np.ndarray, lab: np.ndarray, kji: np.ndarray):
    """Yield, for each of the 26 neighbour offsets (`RIM_OFFSETS`, in order), ``(inb, v, h)`` of
    the voxels ``kji`` ((n, 3) indices into the block ``hu`` / ``lab`` [k, j, i]): bool (n,)
    whether the neighbour lies in the block, its label value and its HU (read at the neighbour
    clipped into the block where it does not). One gather of each array per offset, shared by
    the callers that judge several rules on the same neighbours (`continuation`: the two rims
    and the vessels touched; issue 20: it gathered the 26 neighbours three times)."""
    kji = np.asarray(kji, np.int64)
    shape = np.array(hu.shape)
    q = np.empty_like(kji)   # one (n, 3) buffer for the 26 neighbours (n: a few M on a CTA's bones)
    for off in RIM_OFFSETS:
        np.add(kji, off, out=q)
        inb = np.all((q >= 0) & (q < shape), axis=1)
        np.clip(q, 0, shape - 1, out=q)
        idx = tuple(q.T)
        yield inb, lab[idx], hu[idx]


def rim_term(inb, v, h, own, checked: np.ndarray, dense_hu: float) -> np.ndarray:
    """Bool (n,): `labelled_rim`'s rule for one neighbour offset (`neighbour_reads`' ``inb``, ``v``,
    ``h``; ``own``: the voxels' own HU): the neighbour is in the block, dense, at least as dense
    as the voxel and labelled with a value ``checked`` does not check."""
    labelled = (v >= len(checked)) | ~checked[np.minimum(v, len(checked) - 1)]
    return inb & labelled & (h > dense_hu) & (h >= own)


class DenseTissue:
    """The dense objects within needle reach of one problem's target (built once, lazily by
    `verify.Verifier`). ``check(pts, entry)`` re-checks one path's dense samples; ``screen``
    marks many paths at once. ``summary`` says what was found (mL, peak HU)."""

    def __init__(self, problem):
        import cc3d
        from scipy.spatial import cKDTree

        from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA
        from .table import voxel_positions

        p = self.p = problem
        ct = p.ct
        lim = density_limits()
        self.hu = float(lim["dense_min_hu"])
        self.cortical = float(lim["cortical_hu"])
        self.widen = float(p.needle.widening_mm)
        self.half = 0.5 * float(min(ct.spacing))
        self.diag = float(np.linalg.norm(ct.spacing))
        # paths end at the target or, for ablation probes and sarcoma cores, elsewhere in the
        # target lesion: the box covers the needle's reach from any point of the lesion
        tv = p.target.value
        extent = 0.0
        if tv and tv == p.exempt_value:
            lo0, hi0 = reach_box(ct, p.target.point_ras, p.needle.length_mm)
            sub = p.labels.array[lo0[0]:hi0[0], lo0[1]:hi0[1], lo0[2]:hi0[2]] == tv
            if sub.any():
                extent = float(np.max(np.linalg.norm(
                    ct.kji_to_world((np.argwhere(sub)[::7] + lo0).astype(float)) - p.target.point_ras, axis=1)))
        reach = p.needle.length_mm + extent + self.widen + 2.0 * self.diag + 10.0
        lo, hi = reach_box(ct, p.target.point_ras, reach)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        hu_box, lab_box = ct.array[sl], p.labels.array[sl]
        # dense voxels of checked labels in the body, as index lists (a few % of the box)
        # int16 indices (int32 on grids over 32767 voxels), of the whole grid's type: shifted by the
        # box's corner below, they stay in range (`index_list`: no int64 copies of the list)
        it = index_dtype(ct.shape)
        kji = index_list(hu_box > self.hu, it)   # the one definition (`problem.threshold_bone`)
        labv = lab_box[tuple(kji.T)]
        checked = checked_values(p)
        ok = checked[np.minimum(labv, len(checked) - 1)] & (labv < len(checked))
        if p.body is not None:
            ok &= p.body[sl][tuple(kji.T)]
        kji, labv = kji[ok], labv[ok]
        # partial volume of labelled dense structures: their one-voxel rim (module doc)
        rim = labelled_rim(hu_box, lab_box, kji, checked, self.hu)
        self.rim_ml = float(rim.sum()) * ct.voxel_volume_ml
        kji, labv = kji[~rim], labv[~rim]
        self.exempt_ml = 0.0
        # target lesion: its one-voxel rim (partial volume of a calcified lesion) is the target's
        spec = next((s for s in p.structures if s.value == tv), None)
        lesion_value = tv if tv and (tv == p.exempt_value or (spec is not None and spec.role == "target")) else 0
        if lesion_value and len(kji):
            from scipy import ndimage

            les = np.argwhere(lab_box == lesion_value)
            if len(les):
                a, b = np.maximum(les.min(0) - 1, 0), np.minimum(les.max(0) + 2, lab_box.shape)
                rim = ndimage.binary_dilation(lab_box[a[0]:b[0], a[1]:b[1], a[2]:b[2]] == lesion_value,
                                              np.ones((3, 3, 3), bool))
                inr = np.all((kji >= a) & (kji < b), axis=1)
                inr[inr] = rim[tuple((kji[inr] - a).T)]
                self.exempt_ml += float(inr.sum()) * ct.voxel_volume_ml
                kji, labv = kji[~inr], labv[~inr]
        # the dense voxels' bounding box: every array below lives in it
        if len(kji):
            blo, bhi = kji.min(0), kji.max(0) + 1
        else:
            blo, bhi = np.zeros(3, int), np.ones(3, int)
        self.lo = lo + blo
        shape = tuple(bhi - blo)
        loc = kji - blo.astype(it)
        dense = np.zeros(shape, bool)
        dense[tuple(loc.T)] = True
        hu = np.asarray(hu_box[blo[0]:bhi[0], blo[1]:bhi[1], blo[2]:bhi[2]])
        tk = ct.nearest_kji(p.target.point_ras[None])[0] - self.lo
        tin = bool(np.all((tk >= 0) & (tk < shape)))
        min_vox = min_object_voxels(ct.voxel_volume_ml)
        self.min_voxels = min_vox
        cc, n = cc3d.connected_components(dense, connectivity=26, return_N=True)
        del dense
        comp = cc[tuple(loc.T)]
        sizes = np.bincount(comp, minlength=n + 1)
        keep = sizes >= min_vox
        keep[0] = False
        self._tcomp = None   # the dense object holding the target point: exempt as the final run only
        if tin and cc[tuple(tk)] and keep[cc[tuple(tk)]]:   # the target point lies in dense tissue
            c = int(cc[tuple(tk)])
            self.exempt_ml += float(sizes[c]) * ct.voxel_volume_ml
            keep[c] = False
            self._tcomp = cc == c
        obj = keep[comp]
        del cc, comp   # box-sized labels: not held while the boundary and the tree are built
        lung_vals = [v for v, nm in p.labels.labels.items()
                     if nm in LUNG_PARENCHYMA or nm.startswith(LUNG_CONTENTS)]
        in_lung = np.isin(labv, lung_vals)
        vhu = hu[tuple(loc.T)]
        blk = obj & (~in_lung | (vhu >= self.cortical))
        soft = obj & ~blk                        # contrast-like tissue inside the lungs: warned
        self.block = np.zeros(shape, bool)
        self.block[tuple(loc[blk].T)] = True
        self.soft = np.zeros(shape, bool)
        self.soft[tuple(loc[soft].T)] = True
        self.block_ml = float(blk.sum()) * ct.voxel_volume_ml
        self.soft_ml = float(soft.sum()) * ct.voxel_volume_ml
        self.block_peak = float(vhu[blk].max()) if blk.any() else None
        # mL per density class (the class of one voxel is not the class of the whole: summary)
        edges = [self.hu, self.cortical, float(density_limits()["metal_hu"]), np.inf]
        self.block_class_ml = np.histogram(vhu[blk], bins=edges)[0] * ct.voxel_volume_ml
        del kji, loc, labv, obj, in_lung, vhu, blk, soft   # per dense voxel: done with
        lo = self.lo
        self._hu = hu
        # the tree holds the blocking voxels with a face neighbour outside them (the nearest
        # blocking voxel of a point outside is one of those); samples inside are found by lookup
        edge = np.zeros_like(self.block)
        for ax in range(3):
            d = np.diff(self.block, axis=ax)
            lo_sl, hi_sl = [slice(None)] * 3, [slice(None)] * 3
            lo_sl[ax], hi_sl[ax] = slice(0, -1), slice(1, None)
            edge[tuple(lo_sl)] |= d
            edge[tuple(hi_sl)] |= d
            for end in (0, -1):   # the box's faces
                f = [slice(None)] * 3
                f[ax] = end
                edge[tuple(f)] = True
        edge &= self.block
        kji = index_list(edge, it)
        del edge
        # coarse occupancy: cells of at least the clearance reach; a sample whose cell and its
        # neighbours hold no blocking voxel needs no distance query
        reach_vox = (self.widen + self.half) / np.asarray(ct.spacing_kji, float)
        self._cell = np.maximum(1, np.ceil(reach_vox)).astype(int)
        occ = np.zeros(tuple(-(-np.array(self.block.shape) // self._cell)), bool)
        if len(kji):
            occ[tuple((kji // self._cell.astype(it)).T)] = True
            from scipy import ndimage

            occ = ndimage.binary_dilation(occ, np.ones((3, 3, 3), bool))
        self._occ = occ
        self._tree = cKDTree(voxel_positions(ct, kji + self.lo.astype(it))) if len(kji) else None
        self._tree_hu = hu[tuple(kji.T)] if len(kji) else None
        self.target_gap = None   # (clearance mm, HU, RAS) when the target lies within the needle's clearance
        if self._tree is not None:
            d, j = self._tree.query(p.target.point_ras, distance_upper_bound=self.widen + self.half + 1e-6)
            if np.isfinite(d) and d - self.half < self.widen:
                self.target_gap = (max(float(d) - self.half, 0.0), float(self._tree_hu[j]),
                                   np.round(self._tree.data[j], 1).tolist())

    @property
    def contrast(self) -> bool | None:
        """Whether the problem's CT is contrast-enhanced as its labelled vessels tell
        (`problem.contrast_phase`; None when no vessel is labelled), read once, when a message
        first needs it."""
        if not hasattr(self, "_contrast"):
            from .problem import contrast_phase

            self._contrast = contrast_phase(self.p.ct, self.p.labels)
        return self._contrast

    def kind(self, peak_hu: float) -> str:
        """`density_class` of ``peak_hu`` (HU) on this problem's CT (its contrast phase: a vein of
        undiluted contrast is named above ``cortical_hu`` on a contrast CT)."""
        if peak_hu < self.cortical:
            return density_class(peak_hu)
        return density_class(peak_hu, self.contrast)

    # ------------------------------------------------------------------------------------
    def _local(self, kji_nearest: np.ndarray):
        """(inside-the-box bool, local indices clipped) of global nearest-voxel indices (n, 3)."""
        loc = kji_nearest - self.lo
        inb = np.all((loc >= 0) & (loc < self.block.shape), axis=1)
        return inb, np.clip(loc, 0, np.array(self.block.shape) - 1)

    def blocking_at(self, kji_nearest: np.ndarray) -> np.ndarray:
        """Bool (n,): the voxels at global nearest-voxel indices ``kji_nearest`` ((n, 3) int) that
        are unlabelled blocking dense tissue (outside this object's box: False)."""
        inb, loc = self._local(kji_nearest)
        return inb & self.block[tuple(loc.T)]

    def check(self, pts: np.ndarray, entry) -> tuple[list[str], list[str]]:
        """(problems, notes) of one path sampled at ``pts`` ((n, 3) RAS, entry first).
        problems: a blocking object crossed or within the needle's clearance; notes: dense
        contrast-like tissue crossed inside the lungs (mm, peak HU)."""
        ct = self.p.ct
        away = np.linalg.norm(pts - np.asarray(entry, float), axis=1) > self.diag
        q = pts[away]
        if len(q) == 0:
            return [], []
        kji = ct.nearest_kji(q)
        inb, loc = self._local(kji)
        idx = tuple(loc.T)
        step = float(np.linalg.norm(pts[1] - pts[0])) if len(pts) > 1 else 0.0
        problems, notes = [], []
        if self._tree is not None:
            inside = inb & self.block[idx]
            d, j = self._tree.query(q, distance_upper_bound=self.widen + self.half + 1e-6)
            near = np.isfinite(d) & (d - self.half < self.widen)
            if inside.any() or near.any():
                hit = inside | near
                peak = float(max(self._hu[idx][inside].max() if inside.any() else -np.inf,
                                 self._tree_hu[j[near]].max() if near.any() else -np.inf))
                where = np.round(q[np.argmax(hit)], 1).tolist()
                if inside.any():
                    where = np.round(q[np.argmax(inside)], 1).tolist()
                    problems.append(
                        f"crosses {inside.sum() * step:.1f} mm of unlabelled dense tissue (up to {peak:.0f} HU: "
                        f"{self.kind(peak)}) at {where} RAS mm: no structure of the label map covers it; "
                        "segment it or choose another path")
                else:
                    dmin = float(np.min(d[near])) - self.half
                    problems.append(
                        f"{max(dmin, 0.0):.2f} mm from unlabelled dense tissue (up to {peak:.0f} HU: "
                        f"{self.kind(peak)}) at {where} RAS mm < needle/uncertainty {self.widen:.2f} mm")
        if self._tcomp is not None:   # bone biopsy rule (`verify.Verifier._bone_run`): entered once
            tc = inb & self._tcomp[idx]
            if tc.any() and not tc[int(np.argmax(tc)):].all():
                gap = float((~tc[int(np.argmax(tc)):]).sum()) * step
                problems.append(f"leaves the dense tissue holding the target and re-enters it ({gap:.1f} mm "
                                "outside it between two runs: a canal, foramen or gap): it may only be "
                                "the last part of the path")
        soft = inb & self.soft[idx]
        if soft.any():
            peak = float(self._hu[idx][soft].max())
            notes.append(f"crosses {soft.sum() * step:.1f} mm of unlabelled tissue at up to {peak:.0f} HU inside "
                         "the lung (a contrast-filled vessel? lung vessels are not labelled there)")
        return problems, notes

    def screen(self, entry_ras: np.ndarray, target_ras: np.ndarray, step_mm: float,
               every: int = 4) -> np.ndarray:
        """Bool (n,): paths ``entry_ras`` -> ``target_ras`` ((n, 3) RAS mm) that surely fail
        `check`: sampled at every ``every``-th of the verifier's samples (``step_mm`` apart,
        a subset of them, so a path flagged here is rejected by the verifier too), all paths at
        once; a sample in a blocking voxel or within the needle's clearance of one."""
        e = np.asarray(entry_ras, float)
        t = np.broadcast_to(np.asarray(target_ras, float), e.shape)
        n = len(e)
        out = np.zeros(n, bool)
        if n == 0 or self._tree is None:
            return out
        length = np.linalg.norm(t - e, axis=1)
        counts_v = np.maximum(2, np.ceil(length / step_mm).astype(np.int64) + 1)   # the verifier's
        counts = (counts_v - 1) // every + 1
        seg = np.repeat(np.arange(n), counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(int(counts.sum())) - np.repeat(starts, counts)
        frac = (pos * every) / np.repeat(counts_v - 1, counts)
        away = frac * length[seg] > self.diag
        seg, frac = seg[away], frac[away, None]
        ek, tk = self.p.ct.world_to_kji(e), self.p.ct.world_to_kji(t)   # affine: interpolate indices
        kji = np.rint(ek[seg] + frac * (tk - ek)[seg]).astype(np.int64)
        inb, loc = self._local(kji)
        hit = inb & self.block[tuple(loc.T)]
        rest = ~hit & inb & self._occ[tuple((loc // self._cell).T)]
        if rest.any():
            pts = e[seg[rest]] + frac[rest] * (t - e)[seg[rest]]
            d, _ = self._tree.query(pts, distance_upper_bound=self.widen + self.half + 1e-6)
            hit[rest] = np.isfinite(d) & (d - self.half < self.widen)
        out[np.unique(seg[hit])] = True
        return out

    def clearance(self, entry_ras, target_ras, cap_mm: float):
        """Closest unlabelled blocking dense tissue to the path ``entry_ras`` -> ``target_ras``
        (RAS mm), beyond the first voxel diagonal after the entry, as (clearance mm from the
        needle axis, HU, RAS point) with the same half-voxel convention as `check`; None when
        nothing lies within ``cap_mm``. For the plan's summary: the label-based
        ``closest_structure`` does not see this tissue."""
        if self._tree is None:
            return None
        e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
        length = float(np.linalg.norm(t - e))
        n = max(2, int(np.ceil(length / self.half)) + 1)
        pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
        pts = pts[np.linalg.norm(pts - e, axis=1) > self.diag]
        if len(pts) == 0:
            return None
        d, j = self._tree.query(pts, distance_upper_bound=cap_mm + self.half)
        i = int(np.argmin(d))
        if not np.isfinite(d[i]):
            return None
        return (max(float(d[i]) - self.half, 0.0), float(self._tree_hu[j[i]]),
                np.round(self._tree.data[j[i]], 1).tolist())

    def to_dict(self) -> dict:
        """What the CT density check found within reach (plan.json ``independent_check``)."""
        return {"dense_min_hu": self.hu, "cortical_hu": self.cortical, "min_object_voxels": self.min_voxels,
                "unlabelled_dense_ml": round(self.block_ml, 2),
                "unlabelled_dense_peak_hu": None if self.block_peak is None else round(self.block_peak),
                "unlabelled_dense_ml_by_hu": {f"{lo:g}-{hi:g}": round(float(ml), 2) for ml, lo, hi in zip(
                    self.block_class_ml, [self.hu, self.cortical, density_limits()["metal_hu"]],
                    [self.cortical, density_limits()["metal_hu"], np.inf])},
                "lung_contrast_like_ml": round(self.soft_ml, 2), "target_exempt_ml": round(self.exempt_ml, 2),
                "labelled_rim_ml": round(self.rim_ml, 2),
                "target_clearance_mm": None if self.target_gap is None else round(self.target_gap[0], 2)}

    def summary(self) -> list[str]:
        """Warnings (one line each) about the dense tissue within reach: unlabelled blocking
        objects (kept out of every path), contrast-like tissue in the lungs, the target's own."""
        out = []
        if self.block_ml > 0:
            e = [self.hu, self.cortical, float(density_limits()["metal_hu"])]
            parts = [f"{ml:.1f} mL at {lo:g}-{hi:g} HU ({self.kind(lo)})" if hi else
                     f"{ml:.1f} mL at >= {lo:g} HU ({self.kind(lo)})"
                     for ml, lo, hi in zip(self.block_class_ml, e, e[1:] + [None]) if ml >= 0.05]
            out.append(f"{self.block_ml:.1f} mL of unlabelled dense tissue (> {self.hu:g} HU, peak "
                       f"{self.block_peak:.0f} HU) within needle reach: " + (", ".join(parts) or
                       f"all of it below 0.05 mL per class ({self.kind(self.hu)})") +
                       "; the label map misses it; the CT density check keeps every path out of it "
                       "(check the segmentation)")
        if self.target_gap is not None:
            g, h, where = self.target_gap
            out.append(f"the target lies {g:.1f} mm from unlabelled dense tissue ({h:.0f} HU at {where} RAS mm: "
                       f"{self.kind(h)}), closer than the needle radius + placement uncertainty "
                       f"({self.widen:.2f} mm): every path ends too close to it; move the target point, or label that "
                       "tissue (as the lesion if it is the target's own)")
        if self.soft_ml >= 0.05:
            out.append(f"{self.soft_ml:.1f} mL of unlabelled tissue > {self.hu:g} HU inside the lungs (contrast-filled "
                       "vessels?): crossing it is allowed and reported per path")
        if self.exempt_ml >= 0.05:
            out.append(f"{self.exempt_ml:.1f} mL of dense tissue (> {self.hu:g} HU) at the target (calcification or "
                       "bone of the target itself) is not treated as an obstacle")
        return out
