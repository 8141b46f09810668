"""Unlabelled dense tissue continuous with a labelled vessel: that vessel's unlabelled continuation.

A label map holds a vessel only as far as its segmenter follows it: the rule-based contrast
blood pool (``great_vessels``) leaves the thinner arch branches out, TotalSegmentator's classes
stop at the common carotid and subclavian origins, a pulmonary or hepatic vessel tree at its
last segmented generation, and veins filled with undiluted contrast (the injection side's
subclavian and brachiocephalic veins) are often unlabelled. On a contrast CT such a vessel is
dense tissue (> ``ct_density.dense_min_hu``, 250 HU: CT-angiographic enhancement, Bae KT,
Radiology 2010;256:32-61) that no structure covers, which the CT density check (`density`)
keeps out of every path only by the needle radius + placement uncertainty, while the labelled
vessel it branches from demands its margin (anatomy.json: 5 mm for the aorta and great
vessels). New-user trial 90 (HIGH 1): on the chest CTA the best-ranked path to a left upper lobe
target ran 3.1 mm from the unlabelled left common carotid artery (a 5.1 mL contrast-filled tube
joined to the labelled aortic arch), while a labelled great vessel at 7.63 mm rejected the
neighbouring entry.

Rule (anatomy: a vessel's lumen is continuous; blood in a branch is the parent's blood and
reads as its contrast): a 26-connected object of the density check's blocking tissue (dense,
in a voxel the check checks: unlabelled or a passable container, `density.checked_values`;
outside the lungs, where contrast-filled pulmonary vessels are graded by calibre instead;
in the body) that touches the dense lumen of a labelled vessel (a voxel of the vessel above
``dense_min_hu`` among the 26 neighbours of one of the object's voxels: the vessel's dense
voxels dilated by one voxel) is that vessel's unlabelled continuation. The vessel itself must
read dense where they meet: blood in a branch is its parent's blood, enhanced alike; dense
tissue beside an unenhanced vessel (a native CT's aorta beside a calcification or a bone) is
not its lumen and stays with the density check. It becomes a structure ``<vessel>_continuation`` with the vessel's role and
margin (the user's ``--role`` of the vessel included), so its clearance, the score's clearance
criterion, the verifier, and the warnings treat it as that vessel, and name it.

- **vessels**: the structures the needle must not enter (`PlanningProblem.hard_structures`:
  role forbidden or margin, the target excepted) whose name is a vessel's
  (`segmentation.vessels.is_vessel_name`). An object touching several takes the one with the
  largest margin (the safe side; equal margins: the one it touches with more voxels).
- **partial volume**: the one-voxel rim of a labelled dense structure (`density.labelled_rim`)
  is that structure's partial volume, not tissue the label map misses; it stays as the density
  check treats it (not relabelled). The rim of a vessel joins an object to the vessel (a branch
  whose first voxel is the parent's blurred edge); the rim of another labelled dense structure
  (a bone) does not join: a bone's blurred cortex touching both a vessel and an unlabelled
  dense object does not make that object a vessel.
- **size**: an object of fewer relabelled voxels than `density.min_object_voxels` (a 3 mm ball)
  is noise or sub-resolution calcification: left to the density check.
- **calibre**: the margin belongs to a lumen of at least ``vessel_calibre.hard_min_diameter_mm``
  (3 mm: the smallest vessel the planner keeps out; `problem.large_lumen`, the calibre split's one
  definition, measured on the vessel, its continuation and the rim between them together);
  thinner parts of a continuation (an intercostal artery off the aorta, a peripheral pulmonary
  branch outside the lung label) keep the density check's needle clearance, as before (never
  less), and the warning gives their mL. New-user trial 90's carotid (about 6 mm) is whole; the
  chest CTA's thin contrast branches beside a deep lung target are not given a margin that the
  calibre split would not give them as labelled lung vessels.
- **target**: the object holding the target point (the user aims into it) and the target
  lesion's one-voxel rim are the target's own tissue (`density` module doc): never relabelled.
- **extent**: within the box of the needle's reach + ``problem.CALIBRE_BOX_EXTRA_MM`` around the target (the
  planning maps' crop and halo lie within it); an object whose only contact with a vessel lies
  outside it stays dense tissue (kept out by the needle's clearance, as before).

Tissue in contact with a vessel wall that is not lumen (a wall calcification; unlabelled bone
touching a vessel when the bones are not segmented) is kept at the vessel's margin too: the
safe side, said in the warning as a possibility.

Cached per case (one entry, exact key of what it reads: the CT's values, the labels in the box,
the structures, the body mask, the target), as the planning maps are (`distance_maps.precompute`).
Positions RAS mm, HU; arrays [k, j, i]. Vectorised: ``cc3d`` connected components, 26 gathers
of neighbour labels over the dense voxels' index list.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume, index_dtype, index_list, reach_box

SUFFIX = "_continuation"

_CACHE: dict = {}   # one entry: exact key of `find`'s inputs -> (patch or None, summary)


def forget_cached_continuations() -> None:
    """Drop `find`'s cached result (a caller done with the case frees its memory)."""
    _CACHE.clear()


def continuation_name(vessel: str) -> str:
    """The structure name of ``vessel``'s unlabelled continuation (great_vessels ->
    great_vessels_continuation)."""
    return f"{vessel}{SUFFIX}"


def continuation_base(name: str) -> str | None:
    """The vessel whose unlabelled continuation the structure ``name`` is
    (`continuation_name`), or None for any other name."""
    from ..segmentation.vessels import is_vessel_name

    if not str(name).endswith(SUFFIX):
        return None
    base = str(name)[:-len(SUFFIX)]
    return base if base and is_vessel_name(base) else None


def vessel_specs(problem) -> list:
    """The labelled vessels a continuation may belong to: `PlanningProblem.hard_structures`
    (forbidden or margin, the target excepted) named as vessels, not themselves a continuation."""
    from ..segmentation.vessels import is_vessel_name

    return [s for s in problem.hard_structures()
            if is_vessel_name(s.name) and continuation_base(s.name) is None]


def _key(problem, ct_token, sl, parents, checked, lungs) -> tuple:
    """Exact key of what `find` reads (module doc)."""
    import hashlib

    from ..caching import content_token, mask_digest

    h = hashlib.blake2b(digest_size=16)
    a = np.ascontiguousarray(problem.labels.array[sl])
    h.update(str(a.dtype).encode())
    h.update(a.view(np.uint8).reshape(-1))
    body = None if problem.body is None else mask_digest(np.asarray(problem.body[sl], bool))
    tv = int(problem.target.value)
    return (problem.ct.shape, problem.ct.ijk_to_ras.tobytes(), tuple((s.start, s.stop) for s in sl),
            ct_token if ct_token is not None else content_token(problem.ct.array[sl]), h.hexdigest(), body,
            tuple((s.name, int(s.value), s.role, float(s.margin_mm)) for s in parents),
            checked.tobytes(), tuple(lungs), tv, int(problem.exempt_value),
            tuple(np.round(np.asarray(problem.target.point_ras, float), 6)))


def find(problem, ct_token=None):
    """(patch, summary) of the unlabelled continuations of the problem's labelled vessels
    (module doc): ``patch`` a `problem.CalibreSplit` (label names with the new
    ``<vessel>_continuation`` structures, the voxels each takes, its largest value) or None when
    there is none; ``summary`` {continuation name: {"of": vessel, "ml", "mean_hu", "peak_hu",
    "objects", "margin_mm", "role"}}. ``problem``: a built `PlanningProblem` (its labels on the
    CT grid, its body mask, the target organ it enters: the density check's checked voxels);
    ``ct_token``: `caching.content_token` of its CT when the caller has it (else the box's CT
    is hashed for the cache key). Cached (module doc); the problem is not modified."""
    from .density import checked_values, dense_min_hu
    from .problem import CALIBRE_BOX_EXTRA_MM, LUNG_CONTENTS, LUNG_PARENCHYMA

    parents = vessel_specs(problem)
    if not parents:
        return None, {}
    ct, labels = problem.ct, problem.labels
    lo, hi = reach_box(ct, problem.target.point_ras, problem.needle.length_mm + CALIBRE_BOX_EXTRA_MM)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    checked = checked_values(problem)
    lungs = sorted(v for v, n in labels.labels.items() if n in LUNG_PARENCHYMA or n.startswith(LUNG_CONTENTS))
    key = _key(problem, ct_token, sl, parents, checked, lungs)
    if key in _CACHE:
        return _CACHE[key]
    _CACHE.clear()
    out = _find(problem, sl, parents, checked, lungs, float(dense_min_hu()))
    _CACHE[key] = out
    return out


def _find(problem, sl, parents, checked, lungs, dense_hu: float):
    """`find` without the cache, in the box ``sl`` of the CT grid."""
    import cc3d

    from ..segmentation.vessels import edt_for_diameter
    from .density import min_object_voxels, neighbour_reads, rim_term
    from .problem import CalibreSplit, large_lumen, load_defaults

    ct, labels = problem.ct, problem.labels
    hu_box, lab_box = ct.array[sl], labels.array[sl]
    lo = np.array([s.start for s in sl])
    it = index_dtype(ct.shape)
    kji = index_list(hu_box > dense_hu, it)
    labv = lab_box[tuple(kji.T)]
    n = len(checked)
    ok = (labv < n) & checked[np.minimum(labv, n - 1)] & ~np.isin(labv, lungs)
    if problem.body is not None:
        ok &= np.asarray(problem.body[sl], bool)[tuple(kji.T)]
    kji = kji[ok]
    if not len(kji):
        return None, {}
    # label value -> rank of the vessel (largest margin last), 0 for any other value
    nv = max(n, max(int(s.value) for s in parents) + 1)
    order = sorted(parents, key=lambda s: (float(s.margin_mm), -int(s.value)))
    rank = np.zeros(nv, np.int32)
    for r, s in enumerate(order, 1):
        rank[int(s.value)] = r
    is_vessel = rank > 0
    # partial volume: the rim of a vessel joins (it is the vessel's blurred edge), the rim of
    # another labelled dense structure (bone) neither joins nor is relabelled (module doc)
    chk = np.ones(nv, bool)
    chk[:n] = checked
    chk_vessel, chk_other = chk | ~is_vessel, chk | is_vessel
    # the target lesion's one-voxel rim is the target's own tissue (`density` module doc)
    tv = int(problem.exempt_value)
    spec = next((s for s in problem.structures if s.value == problem.target.value), None)
    lesion = problem.target.value if problem.target.value and (
        problem.target.value == tv or (spec is not None and spec.role == "target")) else 0
    # touching: a dense voxel of a vessel among the 26 neighbours (the vessel's dense voxels
    # dilated by one voxel: an enhanced lumen continues into an enhanced lumen; dense tissue
    # beside an unenhanced vessel is not its lumen): per dense voxel the rank of the best vessel
    # touched, and whether it touches the lesion. The two rims (`labelled_rim`'s rule,
    # `rim_term`) read the same 26 neighbours: one gather per offset for the three (issue 20)
    shape = np.array(lab_box.shape)
    own = hu_box[tuple(kji.T)]
    rim_vessel = np.zeros(len(kji), bool)
    rim_other = np.zeros(len(kji), bool)
    best = np.zeros(len(kji), np.int32)
    at_lesion = np.zeros(len(kji), bool)
    for inb, v, h in neighbour_reads(hu_box, lab_box, kji):
        rim_vessel |= rim_term(inb, v, h, own, chk_vessel, dense_hu)
        rim_other |= rim_term(inb, v, h, own, chk_other, dense_hu)
        v = v.astype(np.int64)
        r = np.where(inb & (v < nv) & (h > dense_hu), rank[np.minimum(v, nv - 1)], 0)
        np.maximum(best, r, out=best)
        if lesion:
            at_lesion |= inb & (v == lesion)
    if lesion:
        at_lesion |= lab_box[tuple(kji.T)] == lesion
    del own
    join = ~rim_other | rim_vessel
    rim = rim_vessel | rim_other
    keep = join & ~at_lesion
    kji, best, rim = kji[keep], best[keep], rim[keep]
    if not len(kji) or not best.any():
        return None, {}
    # 26-connected objects of the joining dense voxels, in their bounding box
    blo = kji.min(0).astype(np.int64)
    loc = kji.astype(np.int64) - blo
    mask = np.zeros(tuple(loc.max(0) + 1), bool)
    mask[tuple(loc.T)] = True
    cc, ncomp = cc3d.connected_components(mask, connectivity=26, return_N=True)
    del mask
    comp = cc[tuple(loc.T)].astype(np.int64)
    # the object holding the target point is the target's own tissue
    tk = ct.nearest_kji(np.asarray(problem.target.point_ras, float)[None])[0] - lo - blo
    tcomp = int(cc[tuple(tk)]) if np.all((tk >= 0) & (tk < cc.shape)) else 0
    del cc
    parent = np.zeros(ncomp + 1, np.int32)
    np.maximum.at(parent, comp, best)
    parent[0] = 0
    if tcomp:
        parent[tcomp] = 0
    ties = _resolve_ties(order, comp, best, parent)   # equal margins: the vessel touched by more voxels
    take = (parent[comp] > 0) & ~rim
    counts = np.bincount(comp[take], minlength=ncomp + 1)
    big = counts >= min_object_voxels(ct.voxel_volume_ml)
    take &= big[comp]
    if not take.any():
        return None, {}
    # calibre: the margin belongs to a lumen of at least the smallest vessel the planner keeps out
    # (``vessel_calibre.hard_min_diameter_mm``), measured on the vessel and its continuation together
    # (with the partial-volume rim between them: lumen too); thinner parts keep the density check
    of = ties[comp]
    thin = np.zeros(len(kji), bool)
    an = tuple(float(x) for x in ct.spacing_kji)
    dmin = float(load_defaults()["vessel_calibre"]["hard_min_diameter_mm"])
    grow = np.ceil((edt_for_diameter(dmin, an) + max(an)) / np.asarray(an)).astype(int) + 1
    for r_ in np.unique(of[take]):
        mem = of == r_
        g = kji[mem].astype(np.int64)
        a = np.maximum(g.min(0) - grow, 0)
        b = np.minimum(g.max(0) + 1 + grow, shape)
        m = lab_box[a[0]:b[0], a[1]:b[1], a[2]:b[2]] == order[r_ - 1].value
        m[tuple((g - a).T)] = True
        large = large_lumen(m, an, dmin)
        sel = take & mem
        thin[sel] = ~large[tuple((kji[sel].astype(np.int64) - a).T)]
    take &= ~thin
    if not take.any():
        return None, {}
    names = dict(labels.labels)
    nxt = int(max(names) if names else 0) + 1
    gidx = kji[take].astype(np.int64) + lo
    which = ties[comp[take]]
    hu_all = np.asarray(ct.array[tuple(gidx.T)], float)
    parts, summary = [], {}
    for r_ in np.unique(which):
        s = order[r_ - 1]
        name = continuation_name(s.name)
        sel = which == r_
        g = gidx[sel]
        a, b = g.min(0), g.max(0) + 1
        box = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
        m = np.zeros(tuple(b - a), bool)
        m[tuple((g - a).T)] = True
        names[nxt] = name
        parts.append((box, m, nxt))
        h = hu_all[sel]
        summary[name] = {"of": s.name, "value": nxt, "ml": round(float(sel.sum()) * ct.voxel_volume_ml, 2),
                         "thinner_ml": round(float((thin & (of == r_)).sum()) * ct.voxel_volume_ml, 2),
                         "hard_min_diameter_mm": dmin,
                         "mean_hu": round(float(h.mean())), "peak_hu": round(float(h.max())),
                         "objects": int(len(np.unique(comp[take][sel]))), "role": s.role,
                         "margin_mm": float(s.margin_mm)}
        nxt += 1
    return CalibreSplit(names, parts, nxt - 1), summary


def _resolve_ties(order, comp, best, parent) -> np.ndarray:
    """Rank of the vessel each object continues (index = object): the largest margin among the
    vessels it touches (``parent``, the largest rank touched); among vessels of that margin, the
    one it touches with the most voxels (then the lower label value: ``order``'s rank)."""
    out = parent.copy()
    margins = np.array([0.0] + [float(s.margin_mm) for s in order])
    touched = best > 0
    if not touched.any():
        return out
    c, r = comp[touched], best[touched]
    # only objects whose best margin is shared by another vessel they touch can differ
    top = margins[parent[c]]
    cand = margins[r] == top
    c, r = c[cand], r[cand]
    pairs, counts = np.unique(np.stack([c, r], 1), axis=0, return_counts=True)
    if len(pairs) == len(np.unique(pairs[:, 0])):
        return out
    # per object: the rank with the most contacts (ties: the higher rank, i.e. the lower value)
    o = np.lexsort((pairs[:, 1], counts, pairs[:, 0]))
    last = np.r_[pairs[o, 0][1:] != pairs[o, 0][:-1], True]
    win = pairs[o][last]
    keep = out[win[:, 0]] > 0
    out[win[keep, 0]] = win[keep, 1]
    return out


def warnings(summary: dict, dense_hu: float, widening_mm: float) -> list[str]:
    """One line per continuation of ``summary`` (`find`): what it is, how much, and the clearance
    it now gets (``widening_mm``: needle radius + placement uncertainty, mm)."""
    out = []
    for name, s in sorted(summary.items()):
        keep = (f"its margin {s['margin_mm']:g} mm + the needle's radius and placement uncertainty {widening_mm:.2f} mm"
                if s["role"] == "margin" else f"{s['role']}: the needle's radius and placement uncertainty "
                f"{widening_mm:.2f} mm")
        out.append(f"{s['ml']:.1f} mL of unlabelled dense tissue (> {dense_hu:g} HU, mean {s['mean_hu']:.0f} HU, peak "
                   f"{s['peak_hu']:.0f} HU; {s['objects']} object(s)) within needle reach is continuous with the "
                   f"labelled {s['of']}: taken as its unlabelled continuation ({name}: a branch beyond the label, a "
                   "vessel the segmenter left out or a contrast-filled vein; possibly a wall calcification or bone in "
                   f"contact with it) and kept out as {s['of']} is ({keep})"
                   + (f"; {s['thinner_ml']:.1f} mL more of it with a lumen under {s['hard_min_diameter_mm']:g} mm keeps "
                      "the needle's clearance only" if s.get("thinner_ml", 0.0) >= 0.05 else "")
                   + "; check the segmentation")
    return out


def apply(problem, given: Volume | None = None, ct_token=None) -> dict:
    """Find the unlabelled continuations of ``problem``'s labelled vessels (`find`) and add them
    to it: its labels relabelled (in place when its array is the planner's own, not ``given``'s,
    the caller's label map; else a copy), one `problem.StructureSpec` per continuation with its
    vessel's role and margin, the summary in ``rules_extra["vessel_continuation"]`` (plan.json
    rules) and one warning per continuation (`warnings`). Returns the summary ({} when none)."""
    from .density import dense_min_hu
    from .problem import StructureSpec

    patch, summary = find(problem, ct_token)
    if patch is None:
        return {}
    lab = problem.labels
    owned = given is None or (lab.array is not given.array and not np.may_share_memory(lab.array, given.array))
    problem.labels = patch.apply(lab, in_place=owned)
    spec = {s.name: s for s in problem.structures}
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["value"]):
        par = spec[s["of"]]
        problem.structures.append(StructureSpec(name, int(s["value"]), par.role, float(par.margin_mm)))
    problem.rules_extra["vessel_continuation"] = summary
    problem.warnings.extend(warnings(summary, float(dense_min_hu()), float(problem.needle.widening_mm)))
    return summary
