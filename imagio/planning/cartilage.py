"""Costal cartilage the label map lacks (new-user trial 51 M5): ``imagio segment``'s rule-based
labels may hold no costal cartilage ("costal cartilages not segmented ... treat the anterior
chest wall between ribs and sternum as forbidden"), and a plan on them then proposed tracks
through 8.7 and 6.2 mm of (true) cartilage with no word.

`costal_zone_run` finds where a track runs through the region the cartilages occupy: chest-wall
tissue (before the track reaches the lung, not bone) with the sternum medial to it (along rays,
level or rising) and a rib of the anterior half lateral to it (in a box that reaches below the
sample: a cartilage rising medially from its rib's end lies on axial rows without rib bone,
new-user trial H3), each within ``warnings.costal_cartilage_reach_mm`` of
planning_defaults.json (Gray's Anatomy: the cartilages join ribs 1-10 to the sternum), and, in the
sample's axial plane, medial of the ribs' anterior ends: no rib of the anterior half between it and
the sternum, and where the plane holds ribs, some lateral of it and none of those far in front of
it (new-user trial 101 F4: lateral, axillary chest wall was warned as the cartilages'). The plan
warns per proposal (`costal_warnings`) instead of forbidding the region: it is an estimate from
the bones, a parasternal approach through an intercostal space is sound, and the operator sees
the cartilage on the CT (planning_defaults.json ``sources`` says so). Whether a track meets
cartilage is told by `imagio segment`'s own rule on the voxels the track covers
(`costal_crossing`: `bones.cartilage_level`, `bones.thin_dense_on_rib`; new-user trial 103
F4.2: the CT read interpolated along the track at 75 HU said "near" where the segmenter's own
cartilage voxels lay), so the warning says "through", "near", or "cannot be told" where the CT
cannot tell (a contrast CT, a covered voxel touching the rule's cartilage, a partly missed label;
new-user trial 54 M1: the warning could not tell a track through a cartilage from one beside it).
RAS mm.
"""

from __future__ import annotations

import weakref

import numpy as np

STEP_MM = 1.0   # sampling step along the track and along each search ray
GRID_MM = 2.0   # cell of the world-aligned grid the rib box search counts on (`_BoxCount`)
_REGIONS: dict = {}   # id(label map) -> (weak reference to it, content digest, its `_Region`)
_RULES: dict = {}     # id(problem) -> (weak references to it and its CT, its labels' digest, `rule_inputs`)


def _fans() -> tuple[dict, np.ndarray]:
    """(the rib box, the medial search rays): planning_defaults.json
    ``warnings.costal_cartilage_fans`` (anatomy and source there). The rib box: ``lateral``,
    ``anterior``, ``superior`` ranges (lo, hi) in units of the reach, relative to the sample, R
    away from the sternum; the rays: unit (R away from the sternum, A, S)."""
    from .problem import load_defaults

    f = load_defaults()["warnings"]["costal_cartilage_fans"]
    m = np.asarray(f["medial"], float)
    return {k: tuple(map(float, f["rib_box"][k])) for k in ("lateral", "anterior", "superior")}, \
        m / np.linalg.norm(m, axis=1, keepdims=True)


def has_costal_cartilage(names) -> bool:
    """Whether a label name holds costal cartilage (TotalSegmentator ``costal_cartilages``)."""
    return any("costal_cartilage" in n for n in names)


class _Region:
    """What `costal_zone_run` reads of a label map once (review 43 L2: the whole map was scanned
    for every proposal): look-up tables of sternum (or "bone"), rib and lung values, the ribs'
    coronal centre A (RAS mm), and whether costal cartilage is labelled with voxels."""

    def __init__(self, labels):
        names = labels.labels
        self.lut_n = max(names, default=0) + 1
        self.is_st, self.is_rib, self.is_lung = (np.zeros(self.lut_n, bool) for _ in range(3))
        # where unlabelled cartilage can lie: no label, or only the body outline (soft_tissue's
        # ``outline_names``: the rule-based segmentation paints the body so)
        from .soft_tissue import limits

        outline = set(limits()["outline_names"])
        self.is_open = np.zeros(self.lut_n, bool)
        self.is_open[0] = True
        sternum = any("sternum" in n for n in names.values())
        for v, n in names.items():
            # no sternum label: the rule-based segmentation's "bone" holds it (with the other bones)
            self.is_st[v] = "sternum" in n if sternum else n == "bone"
            self.is_rib[v] = n.startswith("rib")
            self.is_lung[v] = "lung" in n or "lobe" in n
            self.is_open[v] = n in outline
        arr = labels.array
        present = np.zeros(self.lut_n, bool)
        if arr.dtype.kind == "u" and arr.size:   # counted by chunks: no copy of the map's values
            # (issue 20: np.unique of them held 2-3 map-sized temporaries; the same values present)
            from ..segmentation.common import label_counts

            present[:] = label_counts(arr, max(int(arr.max()), self.lut_n - 1))[:self.lut_n] > 0
        else:
            present[np.unique(arr[arr < self.lut_n])] = True
        cart = [v for v, n in names.items() if has_costal_cartilage([n])]
        self.cartilage_labelled = bool(present[cart].any()) if cart else False   # an empty class counts as none
        self.mid_a = None
        self.ribs = None   # `_BoxCount` of the anterior half's rib voxels (RAS mm)
        if self.is_st.any() and (self.is_rib & present).any():
            # the cartilages join the ribs' anterior ends to the sternum: the anterior chest wall, in
            # front of the ribs' coronal centre (review 43 M1: without a sternum label the medial
            # "bone" holds the scapulae too, and posterior tracks between a rib and a scapula were warned)
            # (the rib values' voxels by `volume.values_mask`: a look-up table for 8- and 16-bit
            # maps, no map-sized temporaries beside its mask; their indices by `volume.index_list`,
            # small integers built slab by slab; issue 20: the same voxels in the same order)
            # (listed on the rib voxels' bounding box, shifted: the same indices in the same C order
            # without a pass over the whole mask; speed25)
            from ..segmentation.common import bbox_slices
            from ..volume import index_dtype, index_list, values_mask

            m = values_mask(arr, np.flatnonzero(self.is_rib))
            box = bbox_slices(m)
            ribs = index_list(m[box], index_dtype(arr.shape))
            ribs += np.array([b.start for b in box], ribs.dtype)
            del m
            self.mid_a = float(labels.kji_to_world(ribs.mean(axis=0, keepdims=True).astype(float))[0][1])
            xyz = labels.kji_to_world(ribs.astype(float))
            self.ribs = _BoxCount(xyz[xyz[:, 1] > self.mid_a])


class _BoxCount:
    """How many of a point set (RAS mm) lie in axis-aligned RAS boxes, for many boxes at once: a
    summed-area table of the points' counts on a world-aligned grid of ``GRID_MM`` cells, so the
    answer does not depend on the image's direction, flips or spacing. A box is widened to the
    cells it touches (up to one cell, ``GRID_MM``, on each side)."""

    def __init__(self, xyz):
        xyz = np.asarray(xyz, float).reshape(-1, 3)
        self.n = len(xyz)
        if not self.n:
            return
        self.lo = xyz.min(axis=0)
        idx = np.floor((xyz - self.lo) / GRID_MM).astype(np.int64)
        shape = idx.max(axis=0) + 1
        cnt = np.bincount(np.ravel_multi_index(idx.T, shape), minlength=int(np.prod(shape))).reshape(shape)
        sat = np.zeros(tuple(shape + 1), np.int64)
        sat[1:, 1:, 1:] = cnt.cumsum(0).cumsum(1).cumsum(2)
        self.sat, self.shape = sat, shape

    def any_in(self, lo, hi) -> np.ndarray:
        """Bool (n,): whether any point lies in the box [``lo``, ``hi``] ((n, 3) RAS mm each)."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if not self.n:
            return np.zeros(len(lo), bool)
        a = np.clip(np.floor((lo - self.lo) / GRID_MM).astype(np.int64), 0, self.shape)
        b = np.clip(np.floor((hi - self.lo) / GRID_MM).astype(np.int64) + 1, 0, self.shape)
        b = np.maximum(a, b)
        S = self.sat
        tot = (S[b[:, 0], b[:, 1], b[:, 2]] - S[a[:, 0], b[:, 1], b[:, 2]] - S[b[:, 0], a[:, 1], b[:, 2]]
               - S[b[:, 0], b[:, 1], a[:, 2]] + S[a[:, 0], a[:, 1], b[:, 2]] + S[a[:, 0], b[:, 1], a[:, 2]]
               + S[b[:, 0], a[:, 1], a[:, 2]] - S[a[:, 0], a[:, 1], a[:, 2]])
        return tot > 0


def _digest(labels) -> tuple:
    """A fingerprint of what `_Region` reads of ``labels``: its shape, dtype, affine and names,
    and a CRC-32 of its voxel values (review 44 L4: the cache was keyed by the map's identity
    alone, so a map edited in place, e.g. a structure painted or erased in the Slicer module, kept
    the region of its old content). CRC-32: fast (about 0.1 s for 75 M voxels) and it changes with
    any burst edit; the map is the user's, not an adversary's."""
    import zlib

    a = np.ascontiguousarray(labels.array)
    return (a.shape, str(a.dtype), np.asarray(labels.ijk_to_ras, float).tobytes(), tuple(sorted(labels.labels.items())),
            zlib.crc32(memoryview(a).cast("B")))


def _region(labels) -> "_Region | None":
    """The label map's `_Region` (built once per content of the map: keyed by the map's identity
    and checked by its content digest, `_digest`), or None without a sternum/bone and ribs."""
    ref, dig, reg = _REGIONS.get(id(labels), (None, None, None))
    now = _digest(labels)
    if ref is None or ref() is not labels or dig != now:   # (a Volume is unhashable: keyed by id)
        reg = _Region(labels)
        _REGIONS[id(labels)] = (weakref.ref(labels, lambda _r, k=id(labels): _REGIONS.pop(k, None)), now, reg)
    return reg if reg.mid_a is not None or reg.cartilage_labelled else None


def region_of(labels, memo: dict | None = None) -> "_Region | None":
    """`_region` of ``labels``, kept under ``"region"`` in ``memo`` (a dict the caller keeps over
    the proposals of one warnings pass, when the map cannot change in between): the map's content
    digest is taken once per pass instead of once per proposal and rule (issue 20: ten CRC-32
    passes over the 1 mm phantom's 73 M voxels per plan). Without ``memo``, `_region`."""
    if memo is None:
        return _region(labels)
    if "region" not in memo:
        memo["region"] = _region(labels)
    return memo["region"]


def _zone_samples(labels, entry_ras, target_ras, reach_mm: float, target_value: int = 0, reg=None):
    """(track samples (n, 3) RAS mm, bool (n,) in the costal-cartilage region, bool (n,) where
    unlabelled cartilage may lie: no bone, in front of the ribs' coronal centre, unlabelled or only
    the body outline) of the chest-wall part of the track entry -> target as `costal_zone_run`
    reads it, or None (no region, no wall samples). ``reg``: the map's `_Region` when the caller
    has it (`_region`)."""
    reg = _region(labels) if reg is None else reg
    if reg is None or reg.mid_a is None:
        return None
    is_st, is_rib, is_lung, lut_n, mid_a = reg.is_st, reg.is_rib, reg.is_lung, reg.lut_n, reg.mid_a
    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    L = float(np.linalg.norm(t - e))
    if L <= 0:
        return None
    P = e + np.arange(0.0, L, STEP_MM)[:, None] * (t - e) / L
    v = np.minimum(labels.sample(P, order=0, fill=0).astype(np.int64), lut_n - 1)
    stop = is_lung[v] | ((v == target_value) & (target_value > 0))
    n_wall = int(np.argmax(stop)) if stop.any() else len(P)
    P, v = P[:n_wall], v[:n_wall]
    if not len(P):
        return None
    s = np.arange(STEP_MM, reach_mm + STEP_MM, STEP_MM)
    box, medial = _fans()

    def sternum_r(side):   # R distance (mm) to the first sternum voxel along a medial ray (inf: none)
        best = np.full(len(P), np.inf)
        for d in medial:   # (unit rays: a hit at s mm along one lies s * |R| mm medially)
            Q = P[:, None, :] + s[:, None] * np.array([side * d[0], d[1], d[2]])[None, :]
            q = np.minimum(labels.sample(Q.reshape(-1, 3), order=0, fill=0).astype(np.int64), lut_n - 1)
            hit = is_st[q].reshape(len(P), len(s))
            best = np.minimum(best, np.where(hit.any(axis=1), s[np.argmax(hit, axis=1)] * abs(d[0]), np.inf))
        return best

    def rib_beside(side):   # a rib voxel of the anterior half in the rib box (side-relative R)
        r = sorted(side * reach_mm * np.asarray(box["lateral"]))
        lo = P + [r[0], reach_mm * box["anterior"][0], reach_mm * box["superior"][0]]
        hi = P + [r[1], reach_mm * box["anterior"][1], reach_mm * box["superior"][1]]
        return reg.ribs.any_in(lo, hi)

    # the sample's axial plane: a slab of one voxel's extent along S either side (whatever the grid's
    # direction), so a thick-slice grid's plane holds its own slice's ribs and an oblique grid's the
    # ribs of both sides at the same level (half of it missed one side's rib 4 mm away on the phantom)
    half_s = float(np.abs(np.asarray(labels.ijk_to_ras, float)[2, :3]).sum())

    wide = 10.0 * reach_mm   # (a box edge beyond any rib: any A, any R on one side)

    def rib_in_plane(side, r0, r1, a0=-wide):   # a rib voxel of the anterior half in the sample's axial
        # plane, side-relative R from ``r0`` to ``r1`` mm ((n,) each) of the sample, A from ``a0`` mm of it
        ends = np.sort(np.stack([side * r0, side * r1], axis=1), axis=1)
        lo = P + np.c_[ends[:, 0], np.full(len(P), a0), np.full(len(P), -half_s)]
        hi = P + np.c_[ends[:, 1], np.full(len(P), wide), np.full(len(P), half_s)]
        return reg.ribs.any_in(lo, hi)

    def medial_of_rib_ends(side, dist):   # the sample is medial of the ribs' anterior ends (the most anterior
        # and medial points of their arcs) in its axial plane: the sternum ``dist`` mm medially (finite);
        # no rib of the plane between them; if the plane holds ribs, some lie lateral of it (else it is
        # lateral of the arcs, and the medial "bone" a clavicle, humerus or scapula) and none of those
        # more than the rib box's ``anterior`` reach in front of it (else it lies behind the rib ends
        # that come forward medially, inside or lateral of the arcs). A plane without ribs (a cartilage
        # rising medially above its rib's end, trial H3) leaves it to the rib box
        fin = np.isfinite(dist)
        near = np.where(fin, dist, 0.0)
        zero, out = np.zeros(len(P)), np.full(len(P), wide)
        lateral = rib_in_plane(side, zero, out)
        ribs_here = lateral | rib_in_plane(side, -out, zero)
        between_ = (near > GRID_MM) & rib_in_plane(side, -near, np.full(len(P), -GRID_MM))
        in_front = rib_in_plane(side, zero, out, reach_mm * box["anterior"][1] + GRID_MM)
        return fin & (lateral | ~ribs_here) & ~between_ & ~in_front

    # a rib on one side and the sternum on the other, either way along R (review 43 L2: the side was
    # judged from the ribs' mean R, which lies off the midline when the view cuts the chest, e.g. a
    # hemithorax crop, and then pointed medially). The rib is searched in a box, not along rays
    # (trial H3: thin rays missed the ribs, and a cartilage rising medially lies on axial rows
    # that hold no rib bone, above its rib's end). The cartilages join the ribs' anterior ends to
    # the sternum (Gray's), so the region ends at those ends: no rib of the anterior half lies
    # between the sample and the sternum in its axial plane (new-user trial 101 F4: the box, which
    # reaches 100 mm below where the chest is wider, found ribs lateral of axillary samples, and
    # 47-69 mm of lateral chest wall was warned as "between the ribs and the sternum")
    between = np.zeros(len(P), bool)
    for side in (1.0, -1.0):
        dist = sternum_r(side)
        between |= rib_beside(side) & medial_of_rib_ends(side, dist)
    wall = ~is_rib[v] & ~is_st[v] & (P[:, 1] > mid_a)
    return P, between & wall, wall & reg.is_open[v]


def costal_zone_run(labels, entry_ras, target_ras, reach_mm: float, target_value: int = 0):
    """(mm of the track entry -> target in the costal-cartilage region, RAS of its first sample)
    or None. ``labels``: label map (`Volume` with names); the track is sampled every ``STEP_MM``
    up to the first sample in a lung label (name holding "lung" or "lobe"), the target's label
    (``target_value``) or the target; a sample counts when it is no bone (rib, sternum) and the
    sample lies in front of the ribs' coronal centre (the anterior chest wall), the
    sternum (a name holding "sternum"; without one, the rule-based segmentation's "bone", which
    holds it) lies on one side of it along R, within ``reach_mm`` along one of the medial search
    rays (sampled at nearest voxels), and a rib voxel (name starting "rib") in front of the ribs'
    coronal centre on the other, in the rib box (planning_defaults.json
    ``warnings.costal_cartilage_fans``: RAS-aligned, counted on a ``GRID_MM`` grid, so the
    image's direction, flips and spacing do not change it), and the sample lies medial of the
    ribs' anterior ends in its axial plane (a slab of one voxel's extent along S either side): no
    such rib voxel between it and the first sternum voxel of the rays (more than ``GRID_MM``
    medially); if the plane holds such rib voxels, some lie lateral of it and none of those lateral
    more than the rib box's ``anterior`` reach in front of it. Either side may be the
    lateral one, so no midline is assumed (a view may cut the chest). Vectorised over track
    samples and line steps."""
    z = _zone_samples(labels, entry_ras, target_ras, reach_mm, target_value)
    if z is None or not z[1].any():
        return None
    P, inside, _ = z
    return float(inside.sum()) * STEP_MM, [round(float(x), 1) for x in P[int(np.argmax(inside))]]


def segmenter_body(problem) -> np.ndarray:
    """Bool [k, j, i] on the CT's grid: the body as `imagio segment` has it when it reads the
    cartilage: `body.body_mask` of ``problem``'s CT, its rule, with the lungs and airways added
    (`rules.segment_masks`: they are inside the patient; here every labelled voxel). Not the
    label map's outline alone, which has holes where a structure's label was erased, nor the
    planner's own body, grown by the skin's outer layers: it read 75 HU as the cartilage level
    against the segmenter's 74 on lung1; without the lungs, 108 HU against the segmenter's
    lower level on an oblique 0.9 x 1.1 x 2.5 mm re-grid of lung1."""
    from ..segmentation.body import body_mask

    return body_mask(problem.ct) | (problem.labels.array > 0)


def rule_inputs(problem, memo: dict | None = None) -> tuple[np.ndarray, float, str | None]:
    """(the segmenter's body (`segmenter_body`, as a `skin.PackedMask`), the level HU and why density cannot tell cartilage
    on this CT or None: `bones.cartilage_level`, the segmenter's own, on ``problem``'s CT and that
    body). Kept under
    ``"cartilage_rule"`` in ``memo`` (the caller's dict over one pass of proposals), and for each
    problem while its CT is the same object and its label map's content is unchanged (`_digest`):
    a whole-CT body mask and level, read once per problem, not once per track (a warnings pass
    without ``memo``, a dragged track re-scored: 1-3 s each on a 1 mm chest CT)."""
    if memo is not None and "cartilage_rule" in memo:
        return memo["cartilage_rule"]
    from ..segmentation.bones import cartilage_level

    dig = _digest(problem.labels)
    ref, ct_ref, was, out = _RULES.get(id(problem), (None, None, None, None))
    if ref is None or ref() is not problem or ct_ref() is not problem.ct or was != dig:
        from .skin import PackedMask

        body = segmenter_body(problem)
        # kept one bit per voxel while the problem lives (a bool whole-CT mask is ~75 MB on a 1 mm
        # chest CT; `rule_cartilage` reads boxes of it, which `PackedMask` unpacks plane by plane)
        out = (PackedMask(body), *cartilage_level(problem.ct, body))
        _RULES[id(problem)] = (weakref.ref(problem, lambda _r, k=id(problem): _RULES.pop(k, None)),
                               weakref.ref(problem.ct), dig, out)
    if memo is not None:
        memo["cartilage_rule"] = out
    return out


def rule_cartilage(ct, labels, reg, kji, level: float, body, pad_mm: float) -> tuple[np.ndarray, tuple]:
    """(bool mask, its index box): the costal cartilage by `imagio segment`'s own rule
    (`bones.thin_dense_on_rib`: unlabelled (or only the body outline) tissue of ``body`` denser
    than ``level`` HU (`rule_inputs`), in a 26-connected piece with a rib voxel, thin) on the
    box of ``ct``'s grid around the voxels ``kji`` ((n, 3) int array indices), widened by
    ``pad_mm`` mm in every direction (the voxels within ``pad_mm`` of the box, whatever the grid's
    direction: ``pad_mm / spacing`` voxels along each axis). ``labels``: on ``ct``'s grid, with its
    `_Region` ``reg``; ``body`` bool [k, j, i] on that grid. A piece is joined to its rib within the
    box: the cartilages are at most ``warnings.costal_cartilage_reach_mm`` long (planning_defaults.json),
    the pad the caller gives."""
    from ..segmentation.bones import thin_dense_on_rib

    sk = np.asarray(ct.spacing_kji, float)
    pad = np.ceil(pad_mm / sk).astype(np.int64)
    lo = np.maximum(kji.min(axis=0) - pad, 0)
    hi = np.minimum(kji.max(axis=0) + pad + 1, np.asarray(ct.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    v = np.minimum(labels.array[box].astype(np.int64), reg.lut_n - 1)
    cand = reg.is_open[v] & np.asarray(body[box], bool) & (ct.array[box] > level)
    return thin_dense_on_rib(cand, reg.is_rib[v], sk, off_rib=False)[0], box


def costal_crossing(ct, labels, entry_ras, target_ras, reach_mm: float, level: float | None, body,
                    target_value: int = 0, reg=None):
    """What the track entry -> target meets of the costal cartilage where the label map holds
    none: None outside the costal-cartilage region (`costal_zone_run`), else a dict of
    ``zone_mm`` and ``zone_at`` (its length, RAS mm of its first sample), ``through_mm`` and
    ``through_at`` (the length and first point, RAS mm, of the track's chest-wall part, before the
    lung, in voxels that `imagio segment`'s cartilage rule calls cartilage, `rule_cartilage`;
    0 and None when none), ``edge_at`` (RAS mm of the first point in a voxel that touches such a
    voxel (26-neighbours) without being one, or None: the cartilage's edge lies somewhere in that
    voxel, so the CT cannot tell whether the track crosses it), ``peak_hu`` (the highest voxel of
    the chest-wall part that is unlabelled or only the body outline, HU, or None) and ``spacing``
    (the CT's voxel size, mm). The voxels are those the track's line covers (nearest voxel, sampled
    every half the smallest voxel size), read as the segmenter reads them, not interpolated
    (new-user trial 103 F4.2: a track 2.5 mm through the segmenter's own 82-89 HU cartilage voxels
    read 61 HU trilinearly and was said near). ``level``: `rule_inputs`'s (None: the CT cannot tell
    cartilage by density, a contrast CT; then nothing is read as through). ``body``: bool
    [k, j, i] on ``ct``'s grid, as ``labels``. The region is an estimate from the bones and a
    cartilage's edge may lie just outside it, so the whole chest-wall part counts, not only the
    region's. Vectorised over the samples. ``reg``: as `_zone_samples`."""
    z = _zone_samples(labels, entry_ras, target_ras, reach_mm, target_value, reg)
    if z is None or not z[1].any():
        return None
    reg = _region(labels) if reg is None else reg
    P, inside, _ = z
    e = np.asarray(entry_ras, float)
    u = (np.asarray(target_ras, float) - e) / float(np.linalg.norm(np.asarray(target_ras, float) - e))
    sk = np.asarray(ct.spacing_kji, float)
    h = 0.5 * float(sk.min())
    F = e + np.arange(0.0, len(P) * STEP_MM, h)[:, None] * u   # the chest-wall part, finely
    kji = ct.nearest_kji(F)
    ok = ct.in_array(kji)
    F, kji = F[ok], kji[ok]
    at = lambda m: [round(float(x), 1) for x in F[int(np.argmax(m))]] if m.any() else None   # noqa: E731
    out = {"zone_mm": float(inside.sum()) * STEP_MM, "zone_at": [round(float(x), 1) for x in P[int(np.argmax(inside))]],
           "through_mm": 0.0, "through_at": None, "edge_at": None, "peak_hu": None,
           "spacing": [round(float(x), 2) for x in ct.spacing]}
    if not len(kji):
        return out
    v = np.minimum(labels.array[tuple(kji.T)].astype(np.int64), reg.lut_n - 1)
    free = reg.is_open[v]
    if free.any():
        out["peak_hu"] = float(ct.array[tuple(kji[free].T)].max())
    if level is None:
        return out
    cart, box = rule_cartilage(ct, labels, reg, kji, level, body, reach_mm)
    loc = kji - np.array([b.start for b in box])
    on = cart[tuple(loc.T)]
    # a voxel touching the rule's cartilage (26-neighbours, within the box)
    nb = np.zeros(len(loc), bool)
    for d in np.argwhere(np.ones((3, 3, 3), bool)) - 1:
        q = loc + d
        inb = np.all((q >= 0) & (q < np.asarray(cart.shape)), axis=1)
        nb[inb] |= cart[tuple(q[inb].T)]
    out.update(through_mm=float(on.sum()) * h, through_at=at(on), edge_at=at(nb & ~on))
    return out


def _partly_missed(problem) -> str | None:
    """The name of the costal-cartilage label whose file says it may miss part of the cartilages
    (`outline_doubts.missed_record`, written by `imagio segment`; new-user trial 100 F2), else None."""
    from ..outline_doubts import partly_missed

    doubts = getattr(problem, "structure_doubts", None) or {}
    return next((n for n in sorted(doubts) if has_costal_cartilage([n]) and partly_missed(doubts, n) is not None),
                None)


def costal_warnings(problem, n: int, entry_ras, target_ras, memo: dict | None = None) -> list[str]:
    """The warning for proposal ``n`` (1-based) of ``problem`` (`problem.PlanningProblem`) whose
    track entry -> target runs through the costal-cartilage region while the label map holds no
    costal cartilage, or holds one whose file says it may miss part of them (`_partly_missed`);
    [] otherwise. One cartilage test with `imagio segment` (`costal_crossing`: its rule on the
    voxels the track covers; new-user trial 103 F4.2), so the plan never says "not through" where
    the segmenter's rule says cartilage. It says "through" where the track covers a voxel the rule
    calls cartilage; "cannot tell" where the CT cannot tell: a contrast CT (the rule's
    `bones.cartilage_level` says why), a voxel the track covers touches the rule's cartilage (its
    edge lies somewhere in that voxel: on 5 mm slices, anywhere in 5 mm), or the map's cartilage
    is partly missed by that rule; else "near" (beside a cartilage, through an intercostal space;
    new-user trial 54 M1). ``memo``: the caller's dict over one pass of proposals (`region_of`,
    `rule_inputs`: read once)."""
    from .problem import load_defaults

    lab = problem.labels
    reg = region_of(lab, memo)
    missed = _partly_missed(problem)
    if reg is None or (reg.cartilage_labelled and missed is None):
        return []
    d = load_defaults()["warnings"]
    body, level, why = rule_inputs(problem, memo)
    run = costal_crossing(problem.ct, lab, entry_ras, target_ras, float(d["costal_cartilage_reach_mm"]),
                          None if why else level, body, int(problem.target.value or 0), reg)
    if run is None:
        return []
    where = ("the anterior chest wall between the ribs' anterior ends and the sternum, where the costal cartilages "
             "lie, but the "
             + ("label map holds no costal cartilage (not segmented)" if not reg.cartilage_labelled else
                f"label map's {missed} may miss part of them (imagio segment said so: its cartilage label is "
                "partly missed on this grid)"))
    zone = f"{run['zone_mm']:.0f} mm (from {run['zone_at']} RAS mm) in {where}"
    rule = (f"imagio segment's cartilage rule calls cartilage (unlabelled tissue denser than the scan's densest deep "
            f"soft tissue, {level:.0f} HU, joined to a rib, thin; the CT's own voxels)")
    peak = "" if run["peak_hu"] is None else f"; its densest unlabelled voxel reads {run['peak_hu']:.0f} HU"
    grid = " x ".join(f"{x:g}" for x in run["spacing"])
    if run["through_at"] is not None:
        return [f"proposal {n}: the track passes through costal cartilage: {run['through_mm']:.1f} mm of it in voxels "
                f"that {rule} (from {run['through_at']} RAS mm), {zone}; a labelled map forbids it: check it on the "
                "images, or prefer a track through an intercostal space lateral to the rib ends"]
    if why or run["edge_at"] is not None or missed is not None:
        because = (f"density cannot tell cartilage on this CT: {why}" if why else
                   f"it passes through a voxel touching voxels that {rule} (at {run['edge_at']} RAS mm): the "
                   f"cartilage's edge lies somewhere in that voxel ({grid} mm), finer than the CT resolves"
                   if run["edge_at"] is not None else
                   f"it covers no voxel that {rule}, but that rule misses part of the cartilage on this "
                   "grid")
        return [f"proposal {n}: the track runs through the costal-cartilage region and whether it crosses costal "
                f"cartilage cannot be told: {because}{peak}; {zone}: check the track on the images"]
    return [f"proposal {n}: the track runs near costal cartilage, through no voxel that {rule}, nor one touching such a "
            f"voxel{peak}: {zone}: an intercostal space beside a cartilage (a cartilage thinner than the CT's "
            f"{grid} mm voxels may read less than the rule): check the track on the images"]
