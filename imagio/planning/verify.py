"""Independent re-check of needle paths: a proposal is feasible only if this agrees.

It shares no code with the scorer (`scoring`, `distance_maps`): it reads the full-resolution
label map, the body and the outer-skin masks of the problem directly, samples each path densely
(every ``step_voxels`` = 0.25 of the smallest voxel size) and measures clearances as exact
Euclidean distances from the samples to the boundary voxel centres of each structure
(`scipy.spatial.cKDTree`), minus half the smallest voxel size (the voxelised boundary, the same
convention as the distance maps). Checked for every path:

- the entry lies on the outer skin (a skin voxel within one voxel diagonal);
- the path stays inside the body (no air around the patient crossed, no padding);
- the length is within the needle's usable length;
- no forbidden structure is crossed anywhere (the target lesion itself excepted);
- every forbidden and margin structure keeps ``margin + needle radius + placement uncertainty``
  from every sample, inside the target's organ too;
- at least ``min_liver_parenchyma_mm`` of liver before a liver lesion (when that rule applies);
- pleural crossings within the limit and no fissure crossed (when forbidden), counted on the
  dense label samples (lobes and lung contents) rather than on the scorer's closed lung mask;
- the CT itself (`density.DenseTissue`): no unlabelled dense tissue (bone, calcification,
  contrast-filled vessel, metal: > 250 HU that no structure covers) crossed or within the
  needle radius + placement uncertainty; contrast-like tissue crossed inside the lungs is a note.

Positions RAS mm; lengths mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..anatomy import is_liver
from .problem import PlanningProblem

STEP_VOXELS = 0.25
BONE_STEP_VOXELS = 0.05   # the target-bone run check (`Verifier._bone_run`)


@dataclass
class Verification:
    """Outcome of the re-check of one path: ``ok`` and one line per failed check."""

    ok: bool
    problems: list = field(default_factory=list)
    min_slack_mm: float = float("inf")     # min over structures of clearance - margin - widening
    binding: str | None = None             # structure giving min_slack_mm
    notes: list = field(default_factory=list)   # doubts that do not reject the path (warnings)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": list(self.problems), "notes": list(self.notes),
                "min_slack_mm": None if not np.isfinite(self.min_slack_mm) else round(float(self.min_slack_mm), 3),
                "binding": self.binding}


def boundary_voxels(sub: np.ndarray, vals, dtype, slab_voxels: int | None = None) -> np.ndarray:
    """Array indices (n, 3, ``dtype``, C order) of the voxels of the label array ``sub`` whose
    value is in ``vals`` and that have a face neighbour of another value inside ``sub`` (the
    array's faces are no boundary). Computed a slab of whole slices at a time (about
    ``slab_voxels``, default `volume.INDEX_SLAB`), comparing each slab's first and last slice
    with the slices beyond it, so no mask of the whole array is made: the same voxels as
    ``np.argwhere(np.isin(sub, vals) & edge)`` with ``edge`` from ``np.diff(sub, axis) != 0``
    on each axis."""
    from ..volume import INDEX_SLAB, index_list, values_mask

    nk = sub.shape[0]
    step = max(1, (INDEX_SLAB if slab_voxels is None else int(slab_voxels)) // max(1, int(np.prod(sub.shape[1:]))))
    parts = []
    for k0 in range(0, nk, step):
        k1 = min(k0 + step, nk)
        s = sub[k0:k1]
        e = np.zeros(s.shape, bool)
        for ax in range(3):
            lo_sl = [slice(None)] * 3
            hi_sl = [slice(None)] * 3
            lo_sl[ax] = slice(0, -1)
            hi_sl[ax] = slice(1, None)
            d = s[tuple(hi_sl)] != s[tuple(lo_sl)]   # = np.diff(s, axis=ax) != 0, without its array
            e[tuple(lo_sl)] |= d
            e[tuple(hi_sl)] |= d
        if k0 > 0:      # the neighbours across the slab's faces
            e[0] |= sub[k0] != sub[k0 - 1]
        if k1 < nk:
            e[-1] |= sub[k1 - 1] != sub[k1]
        e &= values_mask(s, vals)
        idx = index_list(e, dtype)
        idx[:, 0] += k0
        parts.append(idx)
    return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros((0, 3), dtype))


class Verifier:
    """Re-checks paths of one problem (structure boundaries indexed once, lazily)."""

    def __init__(self, problem: PlanningProblem):
        self.p = problem
        self.ct = problem.ct
        self.lab = problem.labels.array
        self.half = 0.5 * float(min(self.ct.spacing))
        self.widen = float(problem.needle.widening_mm)
        ex = problem.exempt_value
        self.hard = {s.value: s for s in problem.hard_structures()}
        self.forbidden = np.zeros(int(self.lab.max()) + 1, bool)
        for s in problem.structures:
            if s.role == "forbidden" and s.value != ex and s.value < len(self.forbidden):
                self.forbidden[s.value] = True
        self._trees = None
        self._dense = None
        self._lung_tree = None

    @property
    def dense(self):
        """`density.DenseTissue` of this problem (built on first use)."""
        if self._dense is None:
            from .density import DenseTissue

            self._dense = DenseTissue(self.p)
        return self._dense

    def _build(self):
        """cKDTree of the boundary voxel centres (RAS) of each hard structure within needle reach."""
        from scipy.spatial import cKDTree

        from ..volume import index_dtype, reach_box
        from .table import voxel_positions

        reach = self.p.needle.length_mm + max(s.margin_mm for s in self.hard.values()) + 10.0 \
            if self.hard else 0.0
        lo, hi = reach_box(self.ct, self.p.target.point_ras, reach)
        sub = self.lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        vals = np.array(sorted(self.hard), dtype=sub.dtype) if self.hard else np.zeros(0, sub.dtype)
        # int16 indices (`index_list`) of the boundary, a slab at a time (`boundary_voxels`), and
        # positions a chunk at a time (`table.voxel_positions`: the values of one call): no box-sized
        # masks and no int64 / float64 copies of the whole list
        kji = boundary_voxels(sub, vals, index_dtype(self.ct.shape))
        v = sub[tuple(kji.T)]
        kji += lo.astype(kji.dtype)
        ras = voxel_positions(self.ct, kji)
        del kji
        self._trees = {}
        order = np.argsort(v, kind="stable")
        v, ras = v[order], ras[order]
        cuts = np.flatnonzero(np.diff(v)) + 1
        for part_v, part in zip(np.split(v, cuts), np.split(ras, cuts)):
            if len(part_v):
                self._trees[int(part_v[0])] = cKDTree(part)

    def verify(self, entry_ras, target_ras=None) -> Verification:
        """Re-check the straight path ``entry_ras`` -> ``target_ras`` (default: the target)."""
        p = self.p
        e = np.asarray(entry_ras, float).reshape(3)
        t = np.asarray(p.target.point_ras if target_ras is None else target_ras, float).reshape(3)
        problems = []
        length = float(np.linalg.norm(t - e))
        if length > p.needle.length_mm + 1e-6:
            problems.append(f"length {length:.1f} mm > needle {p.needle.length_mm:.0f} mm")
        step = STEP_VOXELS * float(min(self.ct.spacing))
        n = max(2, int(np.ceil(length / step)) + 1)
        pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
        kji = self.ct.nearest_kji(pts)
        shp = np.asarray(self.ct.shape)
        inside = self.ct.in_array(kji)
        if not inside.all():
            problems.append("path leaves the image")
            kji = np.clip(kji, 0, shp - 1)
        idx = tuple(kji.T)
        # entry on the outer skin: a skin voxel within one voxel diagonal of the entry
        diag = float(np.linalg.norm(self.ct.spacing))
        k0 = self.ct.nearest_kji(e[None])[0]
        r = np.ceil(diag / np.asarray(self.ct.spacing_kji)).astype(int)
        a, b = np.maximum(k0 - r, 0), np.minimum(k0 + r + 1, shp)
        box = p.skin.skin[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        if box.any():
            sk = self.ct.kji_to_world((np.argwhere(box) + a).astype(float))
            on_skin = float(np.min(np.linalg.norm(sk - e, axis=1))) <= diag
        else:
            on_skin = False
        if not on_skin:
            problems.append(f"entry {np.round(e, 1).tolist()} is not on the outer skin")
        # inside the body after the entry voxel
        away = np.linalg.norm(pts - e, axis=1) > diag
        out = away & ~p.body[idx]
        if out.any():
            q = pts[np.argmax(out)]
            problems.append(f"path leaves the body at {np.round(q, 1).tolist()} (air or outside the scan)")
        # forbidden crossings
        lab = self.lab[idx]
        hit = self.forbidden[np.minimum(lab, len(self.forbidden) - 1)] & (lab < len(self.forbidden))
        if hit.any():
            names = sorted({p.labels.labels.get(int(v), str(int(v))) for v in np.unique(lab[hit])})
            problems.append(f"crosses forbidden {', '.join(names)}")
        # clearances
        if self._trees is None:
            self._build()
        best, binding = float("inf"), None
        for v, tree in self._trees.items():
            s = self.hard[v]
            bound = s.margin_mm + self.widen + self.half + 1.0
            d, _ = tree.query(pts, distance_upper_bound=bound)
            dmin = float(np.min(d))
            if not np.isfinite(dmin):
                continue
            slack = dmin - self.half - s.margin_mm - self.widen
            if slack < best:
                best, binding = slack, s.name
            if slack < -1e-6:
                problems.append(f"{dmin - self.half:.2f} mm from {s.name} < margin {s.margin_mm:g} + "
                                f"needle/uncertainty {self.widen:.2f} mm")
        # liver parenchyma before a liver lesion
        c = p.constraints
        if (is_liver(p.target.organ) and c.min_liver_parenchyma_mm > 0
                and "liver_parenchyma" not in c.disabled_rules):
            liver = [v for v, nme in p.labels.labels.items() if is_liver(nme)]
            ex = p.exempt_value
            first = np.argmax(lab == ex) if ex and (lab == ex).any() else n
            mm = float(np.isin(lab[:first], liver).sum()) * length / (n - 1)
            if mm + 1e-6 < c.min_liver_parenchyma_mm - step:
                problems.append(f"{mm:.1f} mm of liver before the lesion < {c.min_liver_parenchyma_mm:g} mm")
        notes = self._bone_run(e, t, length, problems)
        tissue = getattr(p.target, "tissue", None)   # a point's solid island in the lung (`target_tissue`)
        island = tissue.contains(kji) if tissue is not None and tissue.enclosed else None
        problems += self._lung_checks(lab, diag / step, island)
        problems += self._shaft_grazes_lung(pts, lab, diag, island)
        dense, dnotes = self.dense.check(pts, e)
        problems += dense
        notes += dnotes
        return Verification(not problems, problems, best, binding, notes)

    def _bone_run(self, e: np.ndarray, t: np.ndarray, length: float, problems: list) -> list[str]:
        """Target point in bone (`problem.target_bone_run`): the samples in the target bone piece
        must be one final run ending at the target (bone biopsy: the bone is entered once;
        leaving it and re-entering crosses a canal, foramen or joint space); appends the problem,
        returns the note with the mm in bone. Sampled every ``BONE_STEP_VOXELS`` of the finest
        spacing (nearest voxel), finer than the other checks: a path that cuts a corner of the
        bone 10 mm before entering it touched it there (CTA vertebra, a 0.25 mm graze that the
        0.25-voxel samples missed)."""
        from .problem import target_bone_run

        bv = target_bone_run(self.p)
        if not bv:
            return []
        n = max(2, int(np.ceil(length / (BONE_STEP_VOXELS * float(min(self.ct.spacing))))) + 1)
        smm = length / (n - 1)
        pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
        kji = self.ct.nearest_kji(pts, clip=True)
        lab = self.lab[tuple(kji.T)]
        inb = np.isin(lab, bv)
        if not inb.any():
            return []
        name = self.p.rules_extra["target_bone"]["structure"]
        first = int(np.argmax(inb))
        if not inb[first:].all():
            gap = float((~inb[first:]).sum()) * smm
            problems.append(f"leaves {name} and re-enters it ({gap:.1f} mm outside the bone between "
                            "two bone runs: a canal, foramen or joint space): bone only as the last "
                            "part of the path")
        return [f"{float((lab == bv[0]).sum()) * smm:.1f} mm of the path inside {name} (bone) before the target"]

    def _lung_parts(self) -> tuple[list, list]:
        """(label values of the lung parenchyma, of the lung contents: vessels, airways inside
        it; `problem.LUNG_PARENCHYMA` / `LUNG_CONTENTS`), new lists per call."""
        from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA

        names = self.p.labels.labels
        return ([v for v, nm in names.items() if nm in LUNG_PARENCHYMA],
                [v for v, nm in names.items() if nm.startswith(LUNG_CONTENTS)])

    def _lung_boundary(self, lung_values):
        """cKDTree of the boundary voxel centres (RAS) of the union of ``lung_values`` within
        needle reach (built on first use; None when there is none)."""
        if self._lung_tree is None:
            from scipy.spatial import cKDTree

            from ..volume import index_dtype, reach_box, values_mask
            from .table import voxel_positions

            lo, hi = reach_box(self.ct, self.p.target.point_ras, self.p.needle.length_mm + 10.0)
            # (`values_mask`: np.isin's voxels without its int64 copy of the box, issue 20: the
            # first plan's peak, +108 MiB on the 1 mm phantom)
            sub = values_mask(self.lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], lung_values).view(np.uint8)
            kji = boundary_voxels(sub, np.array([1], np.uint8), index_dtype(self.ct.shape))
            kji += lo.astype(kji.dtype)
            self._lung_tree = cKDTree(voxel_positions(self.ct, kji)) if len(kji) else False
        return self._lung_tree or None

    def _shaft_grazes_lung(self, pts: np.ndarray, lab: np.ndarray, diag: float,
                           island: np.ndarray | None = None) -> list[str]:
        """A needle whose shaft (radius + placement uncertainty, ``needle.widening_mm``) comes
        within reach of the lung and leaves it again before the target grazes the lung: it would
        cross the visceral pleura there, twice, unseen by the axis count of `_lung_checks`
        (new-user trial 16: a lung2 proposal 0.4 mm from lung_left, 7 of 16 points of the
        needle's outline in the lung, reported as 0 mm of lung and 0 pleural crossings; trial
        17: a CTA path whose axis dipped 0.25 mm into the lung, a run too short to count, with
        8 mm of its outline in the lung). Judged at the axis samples ``pts`` (entry first, RAS
        mm) by the exact distance to the lung's boundary voxel centres minus half the smallest
        voxel (the verifier's convention for clearances). A contact that lasts to the target (a
        target in or beside the lung) is not a graze; the first voxel diagonal after the entry
        is not judged (skin partial volume). Returns the problem line, or []."""
        p, c = self.p, self.p.constraints
        if "pleural_crossings" in c.disabled_rules or c.max_pleural_crossings >= 2 or len(pts) < 3:
            return []
        lobes, contents = self._lung_parts()
        lung = lobes + contents
        if not lung or self.widen <= 0:
            return []
        if p.target.value and p.target.in_lung and island is None:
            lung.append(p.target.value)
        tree = self._lung_boundary(lung)
        if tree is None:
            return []
        d, _ = tree.query(pts, distance_upper_bound=self.widen + self.half + 1.0)
        touch = (d - self.half <= self.widen) | np.isin(lab, lung)
        if island is not None:   # the target's solid island in the lung is inside the pleura
            touch |= island
        touch &= np.linalg.norm(pts - pts[0], axis=1) > diag
        if not touch.any():
            return []
        change = np.flatnonzero(np.diff(touch.astype(np.int8))) + 1
        bounds = np.concatenate([[0], change, [len(touch)]])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            # a contact that ends before the target, whatever the axis does inside it: an axis
            # dip shorter than `_lung_checks`' minimum run is no crossing there (trial 17)
            if touch[lo] and hi < len(touch):
                depth = float(np.linalg.norm(pts[lo] - pts[0]))
                return [f"the needle's shaft (radius + placement uncertainty {self.widen:.2f} mm) grazes the lung "
                        f"{depth:.0f}-{float(np.linalg.norm(pts[hi - 1] - pts[0])):.0f} mm from the entry and leaves "
                        f"it before the target: it would cross the pleura there (2 pleural crossings > "
                        f"{c.max_pleural_crossings})"]
        return []

    def _lung_checks(self, lab: np.ndarray, min_run: float, island: np.ndarray | None = None) -> list[str]:
        """Pleural and fissure crossings counted on the dense label samples ``lab`` (entry
        first): the pleura is crossed where the path enters or leaves the lung (lobes, lung
        contents, a lung target), ignoring excursions shorter than ``min_run`` samples (one voxel
        diagonal: label noise at the pleura); a fissure where the lobe label changes inside the
        lung."""
        p, c = self.p, self.p.constraints
        lobes, inner = self._lung_parts()
        if not lobes:
            return []
        if p.target.value and p.target.in_lung and island is None:
            inner.append(p.target.value)
        in_lung = np.isin(lab, lobes + inner)
        if island is not None:   # a point target's solid island in the lung (`target_tissue`)
            in_lung |= island
        # runs of equal membership; drop short runs (merge them into their neighbours)
        change = np.flatnonzero(np.diff(in_lung.astype(np.int8))) + 1
        bounds = np.concatenate([[0], change, [len(lab)]])
        runs = np.diff(bounds)
        vals = in_lung[bounds[:-1]]
        keep = (runs >= min_run) | (np.arange(len(runs)) == 0) | (np.arange(len(runs)) == len(runs) - 1)
        v = vals[keep]
        crossings = int(np.count_nonzero(v[1:] != v[:-1]))
        out = []
        if "pleural_crossings" not in c.disabled_rules and crossings > c.max_pleural_crossings:
            out.append(f"{crossings} pleural crossings > {c.max_pleural_crossings}")
        if c.fissure_crossing == "forbid" and "fissure" not in c.disabled_rules and len(lobes) > 1:
            lobe = lab[np.isin(lab, lobes)]
            lruns = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(lobe)) + 1, [len(lobe)]]))
            lv = lobe[np.concatenate([[0], np.flatnonzero(np.diff(lobe)) + 1])] if len(lobe) else lobe
            lv = lv[lruns >= min_run] if len(lv) else lv
            if np.count_nonzero(lv[1:] != lv[:-1]):
                out.append("crosses a fissure (lobe label changes along the path)")
        return out

