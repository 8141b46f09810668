"""Warned findings that the label map cannot resolve, per path, and the rule that ranks paths
with them last.

Findings (new-user trial 2, A and B; trial 26), each warned per proposal:

- **mediastinum**: the path crosses at least ``warnings.mediastinum_unlabelled_mm`` of
  mediastinal soft tissue (`mediastinum.Mediastinum`, with the base of the neck around the
  trachea: new-user trial 100 F5, thyroid and carotid sheath) while no heart or great vessel is
  labelled within needle reach: the great vessels are there but not seen on a CT without
  contrast (lung1: the best path ran through the right paratracheal space);
- **unimaged needle**: the needle part outside the skin (entry -> hub's end: the needle's unused
  length, away from the target, then its hub, axis and rim; trial 65 M2: hubs alone beyond the image) leaves the image through a face where the body is cut
  (`skin.Truncation`), or enters padding inside the array beyond such a side (a reformat's
  fill, a scanner's outside-the-circle value, their blended rims): what it would meet there
  (an arm, the rest of the trunk) is not imaged (lung1: all 87 mm of the needle outside the
  skin beyond the cut right side); past the array or in the padding where the body is not cut
  it is said, not ranked (`Findings.unimaged_note`; trial 67);
- **tissue outside the skin**: that needle part runs through at least
  ``warnings.tissue_outside_skin_mm`` of another body part: tissue outside the patient's outline
  (an arm beside the trunk, left out of the outline: new-user trial 26), or tissue met again
  after the needle left the skin into air (an arm joined to the trunk in the outline: trial 60).
- **outside clearance**: that needle part, up to the end of its hub, passes nearer than the
  clearance kept inside the body (needle radius + placement uncertainty; along the hub, the hub's
  radius + placement uncertainty: planning_defaults.json ``needle.hub_*``) to such tissue (an arm
  beside the axis, a fold of the body) without its axis meeting it (new-user
  trial 61 M2: the phantom's arm 2-3 mm beside the best lateral proposal, 44 mm past the skin).

- **couch clearance**: that needle part, up to the end of its hub, passes nearer than that
  clearance to the couch top the patient lies on (`couch_clearance`; the table-side rule's
  couch, `table.locate_table_cached`): a thin shell that `outside_clearance` leaves out. A hub
  inside the couch (its axis or rim) is a table-side violation (`scoring.table_steps`); this
  warns the clearance band round it.

- **transdiaphragmatic**: a path to a lung target runs at least ``transdiaphragmatic.min_mm``
  below the lung base before it reaches the lung (`diaphragm`): through the diaphragm, the
  peritoneum and the liver (right) or the spleen, stomach or colon (left) under it (new-user
  trial 92 H1: on the chest CTA with the default structure set the best path to a left-base
  target ran 40 mm through the unlabelled spleen while intercostal paths existed).

- **beyond the tip**: the needle continued past the target for ``needle.beyond_tip_mm`` (a core
  needle's throw + placement uncertainty), its clearance cylinder included, meets a structure the needle must not enter
  (role forbidden or margin; the target and labelled bone excepted) or unlabelled dense tissue (`density.
  DenseTissue`: a contrast-filled vessel no label covers): firing the needle from the target
  reaches it (new-user trial 53, H3: the best path's line met the unlabelled descending aorta
  9.5 mm past a paravertebral target).

Rule (``warnings.sources.findings_ranked_last`` in planning_defaults.json): a feasible path with
a finding is ranked after every feasible path without one, and a path with a finding inside the
patient (``INSIDE_FINDINGS``) after every path whose findings concern only the needle's part
outside the skin (`finding_rank`, `proposals.propose`'s ``defer``); its score and feasibility
are unchanged. All arrays per path; positions RAS mm,
lengths mm; vectorised over paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .problem import load_defaults

RANKING_RULE = ("a path with a warned finding the label map cannot resolve (mediastinal soft tissue crossed "
                "while no great vessel is labelled; needle outside the skin, or its hub, running beyond the image where the "
                "body is cut, or through or within its clearance of another body part's tissue, an arm, or within its clearance of the couch top; a structure the needle "
                "must not enter, or unlabelled dense tissue, within a core needle's throw past the target; a path to a lung "
                "target running below the lung base, through the diaphragm) is "
                "ranked after every "
                "feasible path without one, and a path with one inside the patient (mediastinum, transdiaphragmatic, past "
                "the tip) after "
                "every path whose findings concern only the needle's part outside the skin; scores and feasibility "
                "unchanged")


def _outside_samples(problem, e, t, length_mm, hub: bool = False):
    """The needle part outside the skin of each path (entry ``e`` + the needle's unused length,
    away from the target ``t``; (paths, 3) RAS mm), then with ``hub`` its hub
    (``needle.hub_length_mm``, the extent `outside_clearance` checks), sampled every <= 1 mm:
    (unused length (paths,) mm, mm from the entry (paths, n), RAS points (paths * n, 3)); the
    samples run from the entry to the unused length's end, or with ``hub`` to the hub's end."""
    u = (e - t) / np.maximum(np.linalg.norm(e - t, axis=1), 1e-9)[:, None]
    rest = np.maximum(problem.needle.length_mm - np.asarray(length_mm, float).reshape(-1), 0.0)
    top = rest + (float(problem.needle.hub_length_mm) if hub else 0.0)
    n = max(2, int(np.ceil(top.max(initial=0.0))) + 1)
    s = np.linspace(0.0, 1.0, n)[None, :] * top[:, None]                    # (paths, n) mm from the entry
    return rest, s, (e[:, None, :] + s[..., None] * u[:, None, :]).reshape(-1, 3)


UNIMAGED_RIM_DIRS = 8   # directions round the hub's rim that `unimaged_needle` samples


def unimaged_needle(problem, entry_ras, target_ras, length_mm) -> tuple[np.ndarray, list, np.ndarray, np.ndarray, np.ndarray]:
    """Per path ((n, 3) RAS mm entries and targets, (n,) path lengths mm): mm of the needle part
    outside the skin, hub included (entry + the needle's unused length, away from the target,
    then ``needle.hub_length_mm``: the extent `outside_clearance` checks; along the hub its axis
    and ``UNIMAGED_RIM_DIRS`` points on its rim, radius ``needle.hub_diameter_mm`` / 2), that is
    not imaged, from the first sample not imaged to the hub's end, 0 when none; the side name
    (None when none); mm past the entry where it leaves the image (within 1/32 of a sample; nan
    when none); whether that is on the hub (bool: the shaft's axis ends inside the image, only
    the hub, or its rim, leaves it); whether the body is cut there (bool). Sampled every <= 1 mm.
    RAS mm. (New-user trial 65 M2: on lung1 two proposals' shafts ended inside the image and
    their hubs ran 12-13 mm past its cut right face, unwarned: an arm there is not seen. Trial 66
    L3: an 8 mm hub's side crossed the face by 3.5 mm while its axis stayed inside.)

    Not imaged, where the body is cut (``cut`` True; checked first, so a needle beyond a cut side
    is reported so even when it left the image through another side first): beyond a face of the
    array that cuts the body (`skin.Truncation`), or in padding inside the array (a reformat's
    fill outside the source slab, a scanner's outside-the-reconstruction-circle value:
    `padding_core`, the voxels of the padding value itself, nearest voxel) whose side is that of
    the nearest data voxel next to it (`skin.PaddingEdge`) and is cut, or beyond a cut side's own
    edge along that side's direction (`skin.PaddingEdge.beyond_side`: the corner beyond the
    source box, as beyond the array's face on the axial original). So an oblique reformat of an
    axial scan flags the needles its axial original flags (new-user trial 16, M1), and by the
    same length: the edge of the measured data is where the padding value begins, not the edge
    of the data region `padding.data_mask` keeps for segmenting (two voxels short of it: the
    rim where a resampler may blend the fill into the data). Physics: a resampler writes its
    fill value at each output voxel whose centre maps outside the source's field of view
    (SimpleITK and Slicer: beyond the source's outer voxel faces, the axial original's array
    faces) and blends data with the fill, if at all, only within one source voxel of that edge,
    half on each side of it; so the exact-fill region's border, read at the nearest output voxel,
    lies within half an output voxel (plus half a source voxel for a blending resampler) of the
    true edge, as the array face of the axial original does. The old rim counted up to two
    output voxels of measured data as not imaged (new-user trials 109/110: lung1 and its
    0.8 x 0.8 x 2.5 mm reformat tilted 10/8 degrees, the same entries measured 0.1 -> 2.1,
    0.7 -> 2.4, 3.3 -> 5.1 mm; the axial best path's hub, 0.7 mm inside the image, got "5 mm
    beyond the image" on the reformat and was ranked after a path with 70 mm of lung).

    Else (``cut`` False): beyond any face of the array, or in its padding (the padding value
    itself, outside the scanner's reconstruction circle or a reformat's fill: `padding_core`,
    without the blended rim the cut test counts), whatever
    the body does there (trial 67: the best proposal's hub ran into the -32768 padding and past
    the array with no note; an arm lying there would not be seen); its side is the face's, or the
    nearest data edge's."""
    from ..directions import DIRECTIONS, side_of
    from .skin import padding_inside

    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    gone = np.zeros(len(e))
    at = np.full(len(e), np.nan)
    hub = np.zeros(len(e), bool)
    cut_at = np.zeros(len(e), bool)
    sides: list = [None] * len(e)
    if problem.skin is None or not len(e):
        return gone, sides, at, hub, cut_at
    cut = {tr.side for tr in problem.skin.truncations}
    ct = problem.ct
    rest, s, _ = _outside_samples(problem, e, t, length_mm, hub=True)
    top = s[:, -1]                                                            # (paths,) the hub's end
    n = s.shape[1]
    hi = np.asarray(ct.shape) - 0.5
    faces = [(ax, sgn, side_of(ct.direction[:, 2 - ax] * sgn)) for ax in range(3) for sgn in (1.0, -1.0)]
    is_cut = np.array([f[2] in cut for f in faces])
    names = [f[2] for f in faces] + [d[0] for d in DIRECTIONS]   # side code -> name
    edge = problem.skin.padding_edge
    pad_cut = np.array([d[0] in cut for d in DIRECTIONS])
    data = problem.skin.data
    core = padding_core(problem) if edge is not None else None  # the padding itself, without its rim
    # padding inside the array (the array's outer voxel layer left to its faces): the padding
    # value itself, not the blended rim `data_mask` adds (grid-independent: see above)
    pin = padding_inside(data) & core if edge is not None else None   # no fill value: no padding inside
    u = (e - t) / np.maximum(np.linalg.norm(e - t, axis=1), 1e-9)[:, None]   # outward
    v1, v2 = _across(u)
    ring = _ring(UNIMAGED_RIM_DIRS, (0.5 * float(problem.needle.hub_diameter_mm),))   # (P, 2) mm, the axis first
    # the codes lie in [-1 - len(names), len(names)): int8 holds them (every sample of every path
    # and rim point at once: 1 byte, not 8; issue 20: 2335 paths on the 1 mm phantom, ~30 MiB of
    # the first plan's traced peak)
    code_type = np.int8 if len(names) < 120 else np.int64

    def codes_at(rows, mm):
        """(len(rows), m, P) `side_code` at ``mm`` (rows, m) past the entry: of the axis (P 0)
        and, on the hub (past the unused length), of its rim (P 1..; -1 on the shaft)."""
        axis = e[rows, None, :] + mm[..., None] * u[rows, None, :]            # (r, m, 3)
        out = np.full((*mm.shape, len(ring)), -1, code_type)
        out[..., 0] = side_code(axis.reshape(-1, 3)).reshape(mm.shape)
        ri, si = np.nonzero(mm >= rest[rows, None])                           # hub samples
        if len(ri):
            g = rows[ri]
            off = ring[None, 1:, 0, None] * v1[g, None, :] + ring[None, 1:, 1, None] * v2[g, None, :]
            rim = axis[ri, si][:, None, :] + off                              # (h, P - 1, 3)
            out[ri, si, 1:] = side_code(rim.reshape(-1, 3)).reshape(len(ri), -1)
        return out

    def side_code(pts):
        """(N,) per RAS point (N, 3): index into ``names`` of the side it lies beyond where the
        body is cut (>= 0), else - 2 - that index where it is not imaged though the body is not
        cut there, -1 when imaged."""
        kji = ct.world_to_kji(pts)
        code = np.full(len(pts), -1, np.int64)
        other = np.full(len(pts), -1, np.int64)
        for f, (ax, sgn, _) in enumerate(faces):
            out = (kji[:, ax] >= hi[ax]) if sgn > 0 else (kji[:, ax] <= -0.5)
            if is_cut[f]:
                code[out & (code < 0)] = f
            other[out & (other < 0)] = f
        idx, ok = _voxels(kji, ct.shape)
        nodata = np.zeros(len(idx), bool)     # the padding value itself
        if edge is not None:   # padding inside the array (its value, not its blended rim), beyond a cut side
            nodata[ok] = core[tuple(idx[ok].T)]
            pad = np.zeros(len(idx), bool)
            sel = ok & (code < 0)
            pad[sel] = pin[tuple(idx[sel].T)]
            c = np.asarray(edge.side_codes_at(pts[pad]), np.int64)
            code[np.flatnonzero(pad)[pad_cut[c]]] = len(faces) + c[pad_cut[c]]
            rest_pad = np.flatnonzero(pad & (code < 0))      # also beyond a cut side it is not nearest
            if pad_cut.any():
                b = edge.beyond_side(pts[rest_pad], np.flatnonzero(pad_cut).tolist())
                code[rest_pad[b >= 0]] = len(faces) + b[b >= 0]
            nd = np.flatnonzero(nodata & (other < 0))
            other[nd] = len(faces) + np.asarray(edge.side_codes_at(pts[nd]), np.int64)
        # code where >= 0, else -2 - other (other is -1 or a face: -2 - (-1) is the -1 of
        # "imaged"), written into ``other`` (no int64 temporaries of every point)
        np.subtract(-2, other, out=other)
        np.copyto(other, code, where=code >= 0)
        return other

    code = codes_at(np.arange(len(e)), s)                                    # (paths, n, P)
    done = np.zeros(len(e), bool)
    for want_cut in (True, False):
        hit = (code >= 0).any(2) if want_cut else (code != -1).any(2)          # (paths, n)
        rows = np.flatnonzero(hit.any(1) & ~done)
        if not len(rows):
            continue
        done[rows] = True
        first = np.argmax(hit[rows], axis=1)                                  # first sample not imaged
        # where it leaves, within 1/32 of a sample: the last sample before it to it, finely
        lo = s[rows, np.maximum(first - 1, 0)]
        fine = lo[:, None] + np.linspace(0.0, 1.0, 33)[None, :] * (s[rows, first] - lo)[:, None]   # (h, 33) mm
        c = codes_at(rows, fine)                                              # (h, 33, P)
        good = (c >= 0) if want_cut else (c != -1)
        k = np.argmax(good.any(2), axis=1)                                    # the bracket's end is beyond
        h = np.arange(len(rows))
        at[rows] = fine[h, k]
        gone[rows] = top[rows] - at[rows]
        hub[rows] = at[rows] >= rest[rows]                                    # the rim counts from the hub's start
        cut_at[rows] = want_cut
        pick = c[h, k][h, np.argmax(good[h, k], axis=1)]                       # the first point beyond
        for r, cc in zip(rows.tolist(), pick.tolist()):                        # names only
            sides[r] = names[cc if cc >= 0 else -2 - cc]
    return gone, sides, at, hub, cut_at


def padding_core(problem) -> np.ndarray:
    """Bool [k, j, i]: the voxels holding the CT's padding value (`padding.padding_mask`: outside
    the scanner's reconstruction circle, a reformat's fill), without the blended rim and outer
    layer `padding.data_mask` adds; computed once per skin model (kept on it)."""
    model = problem.skin
    got = model.__dict__.get("padding_core")
    if got is None:
        from ..padding import padding_mask

        got = np.asarray(padding_mask(problem.ct)[0], bool)
        model.__dict__["padding_core"] = got
    return got


def unimaged_text(problem, mm: float, side: str, at_mm: float, hub: bool, cut: bool = True) -> str:
    """The words of an `unimaged_needle` finding (no proposal number): ``mm`` of the needle
    outside the skin and its hub run beyond the image at its ``side`` from ``at_mm`` past the
    entry (``hub``: only the hub, the shaft ends inside the image), where the body is cut (``cut``:
    the `skin.Truncation` there) or, the body not cut there, outside the scanned field (past
    the array or in the padding outside the reconstruction circle)."""
    part = "of its hub" if hub else "of the needle outside the skin (and its hub)"
    if cut:
        where = next((tr.where for tr in (problem.skin.truncations if problem.skin else []) if tr.side == side), "")
        how = f"where the body is cut ({where})"
    else:
        how = "outside the scanned field (past the image's edge or outside the scanner's reconstruction circle)"
    return (f"{mm:.0f} mm {part} run beyond the image at its {side} side from {at_mm:.0f} mm past the entry, "
            f"{how}: what lies there (an arm, the rest of the trunk) is not imaged "
            "and not checked; check it on the scout or a wider field of view, or prefer another proposal")


def tissue_outside_skin(problem, entry_ras, target_ras, length_mm) -> np.ndarray:
    """Per path (n,): mm of the needle part outside the skin (entry + the needle's unused length,
    away from the target) that lies in tissue (CT above the body threshold, -500 HU) of another
    body part: tissue outside the patient's outline (``problem.body``; from one voxel diagonal
    beyond the entry), most often an arm the outline leaves out, or tissue that the needle meets
    again after it has left the skin into air, whatever the outline holds (new-user trial 60 H1:
    the phantom's arm, joined to the trunk at the shoulder and so inside the outline, took 61-78
    mm of the best lateral proposals' needle and hub, unwarned). The part outside the skin must
    lie in air: tissue beyond an air gap is a collision, whether an arm, a breast or a fold of
    the patient's own body. Sampled every <= 1 mm on the CT (nearest voxel); points beyond the
    image count nothing (`unimaged_needle` says those). RAS mm."""
    from ..segmentation.common import BODY_HU

    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    out = np.zeros(len(e))
    if not len(e) or problem.body is None:
        return out
    ct = problem.ct
    diag = float(np.linalg.norm(ct.spacing))
    rest, s, ras = _outside_samples(problem, e, t, length_mm)
    n = s.shape[1]
    step = rest / (n - 1)
    idx, ok = _voxels(ct.world_to_kji(ras), ct.shape)
    dense = np.zeros(len(idx), bool)     # tissue (above the body threshold)
    air = np.zeros(len(idx), bool)       # in the image and below it
    outline = np.zeros(len(idx), bool)
    k, j, i = idx[ok].T
    dense[ok] = ct.array[k, j, i] > BODY_HU
    air[ok] = ~dense[ok]
    outline[ok] = problem.body[k, j, i]
    dense, air, outline = (x.reshape(len(e), n) for x in (dense, air, outline))
    after_air = np.cumsum(air, axis=1) > 0          # the needle has left the skin into air
    tissue = dense & ((~outline & (s > diag)) | after_air)
    return tissue.sum(1) * step


OUTSIDE_CHUNK = 1 << 18   # probe samples per chunk of `outside_clearance` (bounds its temporaries)


def _ring(n_dirs: int, fractions) -> np.ndarray:
    """(P, 2) probe offsets across the axis in units of the clearance radius: the axis, then
    ``n_dirs`` directions on a ring at each of ``fractions``."""
    a = np.arange(n_dirs) * (2 * np.pi / n_dirs)
    return np.concatenate([[[0.0, 0.0]], *[f * np.stack([np.cos(a), np.sin(a)], 1) for f in fractions]])


def _index_step(ct, d: np.ndarray) -> np.ndarray:
    """(n, 3) RAS displacements (mm) ``d`` as (n, 3) displacements in ``ct``'s index space
    (k, j, i; float): the affine's linear part, without its origin."""
    return ct.world_to_kji(d) - ct.world_to_kji(np.zeros((1, 3)))[0]


def _unit_dirs() -> np.ndarray:
    """(26, 3) unit vectors towards the 26 neighbours of a voxel (RAS directions)."""
    d = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)], float)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _across(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v1, v2): (n, 3) unit vectors across the unit axes ``u`` (n, 3), orthogonal to them and to
    each other (v1 = u x (x or y axis, whichever is farther from u), v2 = u x v1)."""
    helper = np.where(np.abs(u[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    v1 = np.cross(u, helper)
    v1 /= np.linalg.norm(v1, axis=1, keepdims=True)
    return v1, np.cross(u, v1)


class ProbeCylinders:
    """Probe points on lines parallel to each path's axis (the needle's clearance cylinder).

    Per path (n of them): ``origin`` (n, 3) RAS mm and unit axis ``u`` (n, 3) RAS; the points are
    origin + s u + radius (ring[p, 0] v1 + ring[p, 1] v2) (v1, v2: `_across`) for the samples
    ``s`` along the axis (mm; (S,) shared or (n, S) per path) and the probes ``ring`` ((P, 2)
    offsets across it in units of ``radius``: a scalar or (n, S) mm per sample). ``ct``: the
    points in its index space (k, j, i; float, the affine applied to origin and directions)
    instead of RAS. Iterated in chunks of whole paths of about ``chunk_samples`` points
    (`chunks`; each path's points are the same for any chunk)."""

    def __init__(self, origin, u, s, ring, radius=1.0, ct=None, chunk_samples: int = OUTSIDE_CHUNK):
        origin, u = np.asarray(origin, float), np.asarray(u, float)
        self.n = len(origin)
        self.s = np.broadcast_to(np.asarray(s, float), (self.n, np.shape(s)[-1]))
        self.radius = np.broadcast_to(np.asarray(radius, float), self.s.shape)
        self._unit = bool(np.all(np.asarray(radius) == 1.0))
        self.ring = np.asarray(ring, float)
        self.v1, self.v2 = _across(u)
        if ct is None:
            self._o, self._a, self._b, self._c = origin, u, self.v1, self.v2
        else:
            self._o, self._a = ct.world_to_kji(origin), _index_step(ct, u)
            self._b, self._c = _index_step(ct, self.v1), _index_step(ct, self.v2)
        self.step = max(1, int(chunk_samples) // max(1, self.s.shape[1] * len(self.ring)))

    def points(self, sl: slice) -> np.ndarray:
        """(m, S, P, 3) float: the points of the paths ``sl``."""
        ring = self.ring
        off = (ring[None, None, :, 0, None] * self._b[sl, None, None, :]
               + ring[None, None, :, 1, None] * self._c[sl, None, None, :])             # (m, 1, P, 3)
        if not self._unit:   # (x 1.0 is exact: left out, the offsets broadcast over the samples)
            off = off * self.radius[sl, :, None, None]
        return self._o[sl, None, None, :] + self.s[sl, :, None, None] * self._a[sl, None, None, :] + off

    def chunks(self):
        """Yields (slice of paths, `points` of them)."""
        for lo in range(0, self.n, self.step):
            sl = slice(lo, min(self.n, lo + self.step))
            yield sl, self.points(sl)


def _voxels(points: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """(nearest voxel indices (..., 3) int64, in the array (...,) bool) of index-space points
    (..., 3) on a grid of ``shape``."""
    points = np.asarray(points)
    kji = np.empty(points.shape, np.int64)
    p, k = points.reshape(-1, points.shape[-1]), kji.reshape(-1, points.shape[-1])
    for a in range(0, len(p), VOXELS_CHUNK):   # (the same casts as rint(points).astype(int64),
        k[a:a + VOXELS_CHUNK] = np.rint(p[a:a + VOXELS_CHUNK])   # without its float64 copy)
    return kji, np.all((kji >= 0) & (kji < np.asarray(shape)), axis=-1)


VOXELS_CHUNK = 1 << 16   # points per rounding step of `_voxels` (issue 20: its float64 copy of
                         # every point set the first plan's traced peak on the 1 mm phantom)


def _thick(problem, kji: np.ndarray, chunk_samples: int = 1 << 18) -> np.ndarray:
    """Bool per voxel ``kji`` ((h, 3) int, CT grid): the voxel lies in an object of tissue (CT
    above the body threshold, in the data) at least as thick as the thinnest body part the
    needle part outside the skin is checked against: a ball of radius 0.8 x half of
    ``warnings.tissue_outside_skin_mm`` (4 mm) fits in the tissue with its centre half that
    length (5 mm) from the voxel, towards one of 26 directions or at the voxel itself (the
    opening of the tissue by that ball, tested locally: each ball sampled at its centre and 26
    points at its radius, nearest voxel). 0.8: the 26 directions lie within
    about 27 degrees of any surface normal, so a ball 5 mm deep in a flat surface along the
    nearest of them keeps ~4.5 mm from it. Gowns, blankets, sheets, ECG electrodes and the
    couch's shell are thinner (tissue_outside_skin_mm's source; on the chest CTA, a 2-3 mm
    object 3-5 mm in front of the anterior chest wall, an electrode or clothing, met 29 of 1157
    feasible paths); an arm (70 mm or more across) or a trunk is not."""
    from ..segmentation.common import BODY_HU

    kji = np.asarray(kji, np.int64).reshape(-1, 3)
    out = np.zeros(len(kji), bool)
    if not len(kji):
        return out
    ct = problem.ct
    rho = 0.5 * float(load_defaults()["warnings"]["tissue_outside_skin_mm"])
    dirs = _unit_dirs()
    centres = np.concatenate([np.zeros((1, 3)), rho * dirs])                          # (27, 3) mm
    ball = 0.8 * rho * np.concatenate([np.zeros((1, 3)), dirs])                      # (27, 3) mm
    off = _index_step(ct, (centres[:, None, :] + ball[None, :, :]).reshape(-1, 3)).reshape(len(centres), len(ball), 3)
    shape = np.asarray(ct.shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    flat_ct = np.asarray(ct.array).reshape(-1)
    data = None if problem.skin is None else problem.skin.data
    nc, nb = off.shape[:2]
    # "any centre whose every ball point is tissue", a centre at a time over the voxels not yet
    # found thick, a ball point at a time over those whose points so far were all tissue: a voxel
    # leaves at its first centre that holds, a (voxel, centre) at its first point that is not
    # tissue. The same points and nearest voxels as testing all 27 x 27 (`_voxels`, per axis);
    # almost every voxel the planner tests is thin, and falls at a ball's first points.
    # ``chunk_samples`` voxels at a time (each step's temporaries: a few int64 per voxel)
    for lo in range(0, len(kji), max(1, int(chunk_samples))):
        todo = np.arange(lo, min(len(kji), lo + max(1, int(chunk_samples))))
        for c in range(nc):
            v = todo
            for b in range(nb):
                flat = np.zeros(len(v), np.int64)
                inb = np.ones(len(v), bool)
                for ax in range(3):
                    q = np.rint(kji[v, ax] + off[c, b, ax]).astype(np.int64)
                    inb &= (q >= 0) & (q < shape[ax])
                    flat += q * strides[ax]
                flat = flat[inb]
                tis = flat_ct[flat] > BODY_HU
                if data is not None:
                    tis &= _mask_at(data, flat)
                keep = np.zeros(len(v), bool)
                keep[inb] = tis
                v = v[keep]
                if not len(v):
                    break
            out[v] = True
            todo = todo[~out[todo]]
            if not len(todo):
                break
    return out


def _first_thick(problem, group: np.ndarray, kji: np.ndarray) -> np.ndarray:
    """Per group (path) of candidate voxels ``kji`` ((h, 3) int, CT grid; ``group`` (h,) sorted
    group ids, each group's candidates in order of preference): the index of its first candidate
    in an object thick enough to be a body part (`_thick`), -1 when none is. Every candidate of
    a group is tested until one is found (no limit on how many thin ones come first: a sheet
    or an electrode lying nearer than an arm does not hide it), in rounds of ranks 0, 1, 2-3,
    4-7, ... (each round vectorised over the groups still open, each voxel tested once a round)."""
    h = len(group)
    if not h:
        return np.zeros(0, np.int64)
    start = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    count = np.diff(np.r_[start, h])
    gid = np.repeat(np.arange(len(start)), count)
    rank = np.arange(h) - start[gid]
    first = np.full(len(start), -1, np.int64)
    shape = np.asarray(problem.ct.shape, np.int64)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    lo, width = 0, 1
    while lo < int(count.max()):
        sel = np.flatnonzero((rank >= lo) & (rank < lo + width) & (first[gid] < 0))
        if len(sel):
            flat, back = np.unique(np.asarray(kji[sel], np.int64) @ strides, return_inverse=True)
            ok = _thick(problem, np.stack(np.unravel_index(flat, tuple(shape)), 1))[back.reshape(-1)]
            hit = sel[ok]                                   # ascending: each group's first is its first hit
            g, i = np.unique(gid[hit], return_index=True)
            first[g] = hit[i]
        if (first >= 0).all():
            break
        lo, width = lo + width, 2 * width
    return first


def _mask_at(mask, flat: np.ndarray) -> np.ndarray:
    """Bool values of a mask [k, j, i] (a bool array or a `skin.PackedMask`) at flat C-order
    indices ``flat`` (int64, in range)."""
    bits = getattr(mask, "bits", None)
    if bits is not None:
        return ((bits[flat >> 3] >> (7 - (flat & 7)).astype(np.uint8)) & 1).astype(bool)
    return np.asarray(mask).reshape(-1)[flat]


def _outside_near(problem, e, t, rest, ring, step, chunk_samples):
    """Nearest tissue of another body part within the clearance of the needle part outside the
    skin, per path (the work of `outside_clearance`, for one probe pattern).

    Probe lines parallel to the axis (`ProbeCylinders`; ``ring``: (P, 2) offsets in units of the
    clearance radius: the shaft's `Needle.widening_mm` up to the hub, `Needle.hub_clearance_mm`
    along the hub), sampled every ``step`` mm from the entry (``e``) to the hub's end (``rest``:
    (n,) mm of the needle outside the skin, then ``needle.hub_length_mm``), away from the target
    ``t``. A probe counts when its voxel (nearest) holds tissue (CT above the body threshold, in
    the data, not padding) of another body part: outside the patient's outline, or met on its
    own probe line after that line has run through air for at least a voxel diagonal (the rule
    of `tissue_outside_skin`, on every line of the cylinder: the entry's own skin, where a probe
    line leaves it through the voxels' staircase, is not another body part); either only beyond
    r tan(``constraints.max_skin_angle_deg``) + a voxel diagonal from the entry (r: the
    clearance radius there), where a flat skin at the steepest allowed angle has left the
    cylinder (the chest CTA's irregular skin beside lateral entries touched the cylinder 3 mm
    past them). A counting voxel whose centre lies nearer the axis than the clearance there +
    half the smallest voxel side is a candidate; the nearest (then first along the axis)
    candidate in an object thick enough to be a body part (`_first_thick`: not a sheet, an
    electrode, the couch's shell) is reported. Returns per path: distance mm (centre distance -
    half the smallest voxel side, floored at 0; inf: none), mm past the entry (nan), on the hub
    (bool), inside the outline (bool)."""
    from ..segmentation.common import BODY_HU

    n = len(e)
    dist = np.full(n, np.inf)
    at = np.full(n, np.nan)
    hub = np.zeros(n, bool)
    inside = np.zeros(n, bool)
    ct, ndl = problem.ct, problem.needle
    diag = float(np.linalg.norm(ct.spacing))
    half = 0.5 * float(min(ct.spacing))
    w_shaft, w_hub, hub_len = float(ndl.widening_mm), float(ndl.hub_clearance_mm), float(ndl.hub_length_mm)
    u = (e - t) / np.maximum(np.linalg.norm(e - t, axis=1), 1e-9)[:, None]   # outward, RAS
    top = rest + hub_len                                                     # (n,) mm
    s = np.arange(int(np.ceil(float(top.max(initial=0.0)) / step)) + 1) * step   # (S,) mm from the entry
    rad = np.where(s[None, :] < rest[:, None], w_shaft, w_hub)               # (n, S) clearance radius
    cyl = ProbeCylinders(e, u, s, ring, rad, ct, chunk_samples)
    shape = np.asarray(ct.shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    flat_ct = np.asarray(ct.array).reshape(-1)
    data = None if problem.skin is None else problem.skin.data
    body = problem.body
    gap = int(np.ceil(diag / step))                                          # samples of air before
    slope = float(np.tan(np.radians(min(float(problem.constraints.max_skin_angle_deg), 80.0))))
    cand = []                                                                # per chunk: the candidates
    for sl, pts in cyl.chunks():           # chunks of paths: bounded memory
        kji, inb = _voxels(pts, shape)                                       # (m, S, P, 3), (m, S, P)
        del pts
        inb &= (s[None, :] <= top[sl, None] + 1e-9)[:, :, None]
        flat = kji[inb] @ strides
        d = flat_ct[flat] > BODY_HU
        ok = np.ones(len(flat), bool) if data is None else _mask_at(data, flat)
        dense = np.zeros(inb.shape, bool)
        air = np.zeros(inb.shape, bool)
        dense[inb] = d & ok
        air[inb] = ~d & ok
        # air seen on this probe line at least ``gap`` samples before
        seen = np.cumsum(air, axis=1, dtype=np.int32) > 0
        count = np.zeros_like(dense)
        if gap < len(s):
            count[:, gap:] = dense[:, gap:] & seen[:, :-gap]
        if body is not None:   # tissue outside the outline, beyond a voxel diagonal from the entry
            far = dense & ~count
            count[far] = ~_mask_at(body, kji[far] @ strides)
        # the entry's own skin: a flat skin at the steepest allowed angle leaves the cylinder
        # (radius r) r tan(angle) past the entry; a voxel diagonal more for the staircase
        count &= (s[None, :] > rad[sl] * slope + diag)[:, :, None]
        r = np.nonzero(count)[0]
        if not len(r):
            continue
        vk = kji[count]
        wv = ct.kji_to_world(vk.astype(float)) - e[sl][r]                     # voxel centres, RAS, from the entry
        uu = u[sl][r]
        along = np.einsum("ij,ij->i", wv, uu)
        dd = np.linalg.norm(wv - along[:, None] * uu, axis=1) - half
        on_hub = along >= rest[sl][r]
        near = dd < np.where(on_hub, w_hub, w_shaft)
        cand.append((r[near] + sl.start, np.maximum(dd[near], 0.0), along[near], on_hub[near], vk[near]))
    if not cand:
        return dist, at, hub, inside
    r, dd, along, on_hub, vk = (np.concatenate(x) for x in zip(*cand))
    order = np.lexsort((along, dd, r))                                       # per path: nearest, then first
    r, dd, along, on_hub, vk = r[order], dd[order], along[order], on_hub[order], vk[order]
    first = _first_thick(problem, r, vk)                                     # a body part, not a sheet
    head = first[first >= 0]
    rows = r[head]
    dist[rows], at[rows], hub[rows] = dd[head], np.clip(along[head], 0.0, None), on_hub[head]
    if body is not None:
        inside[rows] = _mask_at(body, vk[head] @ strides)
    return dist, at, hub, inside


def outside_clearance(problem, entry_ras, target_ras, length_mm, refine: bool = True,
                      chunk_samples: int = OUTSIDE_CHUNK):
    """The needle part outside the skin, hub included, against tissue of another body part.

    Per path ((n, 3) RAS mm entries and targets, (n,) path lengths mm): the needle's unused
    length (``needle.length_mm`` - path length) away from the target, then the hub
    (``needle.hub_length_mm``), must keep the clearance the plan applies inside the body, the
    needle's radius + placement uncertainty (`Needle.widening_mm`; along the hub its radius +
    placement uncertainty, `Needle.hub_clearance_mm`), from tissue of another body part (an arm
    beside the trunk, a fold of the body: tissue outside the patient's outline, or met again
    after air; `_outside_near`) (new-user trial 61 M2: an arm 2-3 mm beside a lateral
    proposal's axis, 44 mm past the skin, was not warned; the axis alone, `tissue_outside_skin`,
    never met it). The couch top, a thin shell, is `couch_clearance`'s.

    Returns per path (n,): the clearance mm (the distance from the axis to the nearest such
    tissue voxel's centre less half the smallest voxel side, the planner's convention for
    distances to voxelised structures, floored at 0; inf when none lies within the clearance),
    mm past the entry along the axis where it is (nan when none), whether it lies along the hub
    (bool), and whether that tissue is inside the patient's outline (bool: met again after air).
    Found with 17 probes (the axis and 16 directions at the clearance radius: an object reaching
    into the cylinder crosses its surface) every smallest voxel side; ``refine``: the paths found
    are probed again with 97 probes (32 directions at 1/3, 2/3 and 1 of the radius, a superset)
    every half of it, for a closer distance (the planner refines only the paths it reports).
    Vectorised over paths, samples and probes, in chunks of about ``chunk_samples`` probe samples
    (each path judged on its own). Points beyond the image meet nothing (`unimaged_needle` says
    those)."""
    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    rest = np.maximum(problem.needle.length_mm - np.asarray(length_mm, float).reshape(-1), 0.0)
    hmin = float(min(problem.ct.spacing))
    out = _outside_near(problem, e, t, rest, _ring(16, (1.0,)), hmin, chunk_samples)
    rows = np.flatnonzero(np.isfinite(out[0]))
    if refine and len(rows):
        fine = _outside_near(problem, e[rows], t[rows], rest[rows], _ring(32, (1 / 3, 2 / 3, 1.0)),
                             0.5 * hmin, chunk_samples)
        better = fine[0] < out[0][rows]
        for a, b in zip(out, fine):
            a[rows[better]] = b[better]
    return out


def couch_judged(problem) -> bool:
    """Whether `couch_clearance` judges the needle against the couch (plan.json ``couch_checked``):
    the table-side rule applies (not disabled, ``table_exclusion_deg`` > 0), there is a skin model,
    and a couch was found under the patient in the planned position (`table.TableSurface.located`).
    Without one the surface would be whatever lies first along the table direction beside the
    patient (trial 65 H1: in a lateral position the rims of the scan's own supine couch, every
    proposal flagged at 0 mm); `planner.table_warnings` says the clearance was not checked, and
    plan.json tells a proposal's null (clear) from not checked (trial 66 L)."""
    c = problem.constraints
    if problem.skin is None or "table_side" in c.disabled_rules or c.table_exclusion_deg <= 0:
        return False
    from .table import locate_table_cached

    return bool(locate_table_cached(problem, c.table_direction).located)


def couch_clearance(problem, entry_ras, target_ras, length_mm,
                    chunk_samples: int = OUTSIDE_CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The needle part outside the skin, hub included, against the couch top under the patient.

    Per path ((n, 3) RAS mm entries and targets, (n,) path lengths mm): the needle's unused
    length away from the target, then the hub (``needle.hub_length_mm``), must keep the
    clearance the plan applies inside the body (`Needle.widening_mm`; along the hub
    `Needle.hub_clearance_mm`) from the couch top: the table the patient lies on in the
    planned position (``constraints.table_direction``), as the table-side rule finds it
    (`table.locate_table_cached`: per column along that direction the first dense non-patient
    voxel beyond the patient, else the patient's deepest skin). The table-side rule
    (`scoring.against_table`) excludes a needle whose axis, or whose hub (axis or rim,
    `scoring.table_steps`), reaches below that surface, so a feasible path reads more than 0 mm
    here; this says how near the shaft's and the hub's clearance cylinders come to it (a hub
    that would lie in or under the couch: 0 mm). The couch's shell is too
    thin to count as a body part for `outside_clearance` (its `_thick` test), so without this a
    lateral-posterior needle's hub could be planned into the couch (Gupta et al., J Vasc Interv
    Radiol 2010;21:969: the patient lies on the couch and the hub cannot pass through it).

    Distance at each axis sample (every smallest voxel side from the entry, the hub's end
    included): where the cross-section of the cylinder (a disc normal to the axis) meets the
    surface, from the axis, in mm: for the axis column's surface taken flat (normal to the table
    direction), its depth below the axis / sin(angle between axis and table direction) (0 when
    the axis is at or below it); and for each of 16 probes on the ring at the clearance radius
    that lies at or below its own column's surface (a curved couch's rising side, an object on
    the couch), where a flat surface at that depth crosses the probe's radius (the radius when
    the probe does not descend). Less half the smallest voxel side (the planner's convention:
    the surface is a voxel centre), floored at 0; reported where under the clearance there.
    Returns per path (n,): the nearest such distance mm (inf: clear, or not judged: the
    table-side rule is off, ``table_side`` disabled or ``table_exclusion_deg`` 0, no table was
    found under the patient, ``TableSurface.located`` False, or no skin model; the plan's
    warnings say so, `planner.table_warnings`), mm past the
    entry where it is (nan; the first of equal distances), whether along the hub (bool).
    Vectorised over paths, samples and probes (`ProbeCylinders`, chunks of about
    ``chunk_samples`` points)."""
    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    n = len(e)
    dist, at, hub = np.full(n, np.inf), np.full(n, np.nan), np.zeros(n, bool)
    c, ndl = problem.constraints, problem.needle
    if not n or not couch_judged(problem):
        return dist, at, hub
    from .table import locate_table_cached

    surf = locate_table_cached(problem, c.table_direction)
    d = np.asarray(surf.direction, float)
    half = 0.5 * float(min(problem.ct.spacing))
    rest = np.maximum(ndl.length_mm - np.asarray(length_mm, float).reshape(-1), 0.0)
    top = rest + float(ndl.hub_length_mm)
    n_s = int(np.ceil(float(top.max()) / float(min(problem.ct.spacing)))) + 1
    s = np.linspace(0.0, 1.0, n_s)[None, :] * top[:, None]                  # (n, S) mm, the hub's end included
    rad = np.where(s < rest[:, None], float(ndl.widening_mm), float(ndl.hub_clearance_mm))
    u = (e - t) / np.maximum(np.linalg.norm(e - t, axis=1), 1e-9)[:, None]   # outward, RAS
    ring = _ring(16, (1.0,))
    sin = np.sqrt(np.clip(1.0 - (u @ d) ** 2, 0.0, None))                   # (n,) the disc's descent rate
    # no surface lies nearer the patient than ``high`` along the table direction: a sample whose
    # probes all stay above it (axis depth + clearance radius + half a voxel) is clear unread
    grid = surf._grid()[0]
    high = min(float(surf.deepest_mm), float(np.nanmin(grid)) if np.isfinite(grid).any() else np.inf)
    reach = (e @ d)[:, None] + s * (u @ d)[:, None] + rad + half                # (n, S) deepest a probe gets
    todo = np.flatnonzero((reach > high - 1e-6).any(axis=1))
    if not len(todo):
        return dist, at, hub
    e, u, s, rad, rest, sin = e[todo], u[todo], s[todo], rad[todo], rest[todo], sin[todo]
    cyl = ProbeCylinders(e, u, s, ring, rad, None, chunk_samples)
    rate = ring[None, 1:, 0] * (cyl.v1 @ d)[:, None] + ring[None, 1:, 1] * (cyl.v2 @ d)[:, None]   # (n, 16)
    for sl, pts in cyl.chunks():
        m = pts.shape[0]
        depth, lim = (x.reshape(m, n_s, len(ring)) for x in surf.depth(pts.reshape(-1, 3)))
        gap = lim[..., 0] - depth[..., 0]                                    # (m, S) surface below the axis
        sn = sin[sl, None]
        tt = np.where(gap <= 0.0, 0.0, np.where(sn > 1e-6, gap / np.maximum(sn, 1e-6), np.inf))
        r = rad[sl][..., None]
        rt = rate[sl, None, :]
        cross = np.where(rt > 1e-6, (lim[..., 1:] - depth[..., :1]) / np.maximum(rt, 1e-6), r)
        ring_t = np.where(depth[..., 1:] > lim[..., 1:], np.clip(cross, 0.0, r), np.inf).min(axis=2)
        dd = np.minimum(tt, ring_t) - half                                   # (m, S)
        dd = np.where(dd < rad[sl], np.maximum(dd, 0.0), np.inf)
        k = np.argmin(dd, axis=1)                                            # the first of the nearest
        rows = np.arange(m)
        best = dd[rows, k]
        hit = np.isfinite(best)
        idx = todo[sl.start + np.flatnonzero(hit)]
        dist[idx], at[idx] = best[hit], s[sl][rows, k][hit]
        hub[idx] = at[idx] >= rest[sl][hit]
    return dist, at, hub


BEYOND_CHUNK = 1 << 18   # probe samples per chunk of `beyond_tip` (bounds its temporaries)


def beyond_tip(problem, entry_ras, target_ras, dense=None, chunk_samples: int = BEYOND_CHUNK) -> tuple[np.ndarray, list]:
    """Per path ((n, 3) RAS mm entries and targets): mm past the target, along the needle's axis
    continued, of the first sample whose needle cylinder (radius ``needle.widening_mm``: the
    needle's radius + placement uncertainty, the clearance every structure gets on the path) meets
    a structure the needle must not enter (role forbidden or margin; the target lesion and
    labelled bone excepted: bone stops a fired needle, the hazard past the tip is bleeding and
    perforation) or, when ``dense`` (`density.DenseTissue`) is given, its unlabelled blocking
    dense tissue; inf when none lies within ``problem.needle.beyond_tip_mm`` (none is checked at
    0). And per path what it meets (a structure name, "unlabelled dense tissue (... HU)", or
    None). Samples every half of the smallest voxel side along the axis, each with 24 probes on
    two rings across it (16 directions at the clearance, 8 at half of it) (nearest voxel;
    new-user trial 54 H1: the axis alone missed an aorta 1.5-2.6 mm beside it and a structure's
    corner between samples); samples beyond the image meet nothing. Vectorised over paths,
    samples and probes (`ProbeCylinders`), in chunks of whole paths of about ``chunk_samples``
    probe samples (each path is judged on its own: the same result for any chunk; issue 20: 2M
    samples a chunk held ~200 MiB of float64/int64 temporaries, the first plan's peak on the
    1 mm phantom, 2^18 hold ~26 MiB)."""
    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    n = len(e)
    dist = np.full(n, np.inf)
    what: list = [None] * n
    reach = float(problem.needle.beyond_tip_mm)
    if n == 0 or reach <= 0:
        return dist, what
    ct, lab = problem.ct, problem.labels.array
    step = 0.5 * float(min(ct.spacing))
    s = np.minimum(np.arange(1, int(np.ceil(reach / step)) + 1) * step, reach)
    u = (t - e) / np.maximum(np.linalg.norm(t - e, axis=1), 1e-9)[:, None]
    w = float(problem.needle.widening_mm)
    ring = np.concatenate([[[0.0, 0.0]], *[r * np.stack([np.cos(a), np.sin(a)], 1) for r, a in (
        (0.5 * w, np.arange(8) * (np.pi / 4)), (w, np.arange(16) * (np.pi / 8)))]])   # mm
    names = {sp.value: sp.name for sp in problem.structures}
    hard = np.zeros(max(int(lab.max()), max(names, default=0)) + 1, bool)
    # labelled bone stops a fired needle: its hazard is bleeding and perforation
    hard[[sp.value for sp in problem.hard_structures(bone=False)]] = True
    use_dense = dense is not None
    for sl, pts in ProbeCylinders(t, u, s, ring, 1.0, ct, chunk_samples).chunks():   # chunks of paths
        kji, inb = _voxels(pts, lab.shape)                                   # (m, len(s), P, 3)
        code = np.zeros(inb.shape, np.int64)
        code[inb] = lab[tuple(kji[inb].T)]
        hit = hard[np.minimum(code, len(hard) - 1)] & (code < len(hard))
        dhit = np.zeros(inb.shape, bool)
        if use_dense:
            dhit = dense.blocking_at(kji.reshape(-1, 3)).reshape(inb.shape) & inb
        anyhit = (hit | dhit).any(2)                                            # (m, len(s))
        rows = np.flatnonzero(anyhit.any(1))
        if not len(rows):
            continue
        first = np.argmax(anyhit[rows], axis=1)
        for r, f in zip(rows.tolist(), first.tolist()):            # names only (the hit rows)
            dist[sl.start + r] = float(s[f])
            q = int(np.argmax(hit[r, f]))
            if hit[r, f].any():
                what[sl.start + r] = names.get(int(code[r, f, q]), f"label {int(code[r, f, q])}")
            else:
                kk = tuple(kji[r, f, int(np.argmax(dhit[r, f]))])
                what[sl.start + r] = f"unlabelled dense tissue ({float(ct.array[kk]):.0f} HU)"
    return dist, what


@dataclass
class Findings:
    """The findings of some paths of a score table (rows), computed once."""

    mediastinum_checked: bool = False          # False: a great vessel is labelled (or no lung): not judged
    mediastinum_mm: dict = field(default_factory=dict)       # row -> mm
    mediastinum_uncut: dict = field(default_factory=dict)    # row -> bool (no vertebral body in a plane)
    mediastinum_neck_mm: dict = field(default_factory=dict)  # row -> mm of it at the neck base (around the trachea)
    unimaged_mm: dict = field(default_factory=dict)          # row -> mm
    unimaged_side: dict = field(default_factory=dict)        # row -> side name or None
    unimaged_at_mm: dict = field(default_factory=dict)       # row -> mm past the entry where it leaves (nan: none)
    unimaged_hub: dict = field(default_factory=dict)         # row -> only the hub leaves the image
    unimaged_cut: dict = field(default_factory=dict)         # row -> the body is cut where it leaves
    outside_tissue_mm: dict = field(default_factory=dict)    # row -> mm of tissue outside the outline
    one_lung: str | None = None                               # 'left'/'right': a one-lung label map
    mediastinum: object = None                                # the `mediastinum.Mediastinum` judged (None: not judged)
    beyond_mm: dict = field(default_factory=dict)             # row -> mm past the target of what it meets (inf: none)
    beyond_what: dict = field(default_factory=dict)           # row -> what it meets past the target (None: none)
    near_mm: dict = field(default_factory=dict)               # row -> clearance of the part outside the skin (inf: clear)
    near_at_mm: dict = field(default_factory=dict)            # row -> mm past the entry where it is (nan: clear)
    near_hub: dict = field(default_factory=dict)              # row -> it is along the hub
    near_inside: dict = field(default_factory=dict)           # row -> that tissue is inside the patient's outline
    near_refined: set = field(default_factory=set)            # rows whose near_* were refined (`refine_near`)
    couch_mm: dict = field(default_factory=dict)              # row -> clearance from the couch top (inf: clear)
    couch_at_mm: dict = field(default_factory=dict)           # row -> mm past the entry where it is (nan: clear)
    couch_hub: dict = field(default_factory=dict)             # row -> it is along the hub
    diaphragm_mm: dict = field(default_factory=dict)          # row -> mm below the lung base before the lung
    diaphragm_side: dict = field(default_factory=dict)        # row -> side code of that lung (diaphragm.SIDES)
    diaphragm_from_mm: dict = field(default_factory=dict)     # row -> where that part starts, mm from the entry
    diaphragm_to_mm: dict = field(default_factory=dict)       # row -> where it ends

    def unimaged_note(self, row: int) -> bool:
        """Whether ``row``'s needle or hub runs outside the scanned field (past the array or in the
        padding) where the body is not cut: said (warning, plan.json ``unimaged`` with
        ``body_cut`` false) but not ranked last: what lies beyond a side that does not cut the
        body is most often air, and the ranking rule is kept for what the body continues into."""
        return self.unimaged_mm.get(row, 0.0) > 0.0 and not self.unimaged_cut.get(row, True)

    def flagged(self, row: int, couch: bool = True) -> list[str]:
        """Names of the findings of ``row`` ('mediastinum', 'unimaged_needle', 'tissue_outside_skin',
        'outside_clearance' (only when not 'tissue_outside_skin': the same tissue, nearer than the
        clearance), 'couch_clearance', 'beyond_tip', 'transdiaphragmatic'). ``couch`` False: without 'couch_clearance'
        (it was judged against the planned position's couch only: comparisons between patient
        positions leave it out)."""
        lim = load_defaults()["warnings"]["mediastinum_unlabelled_mm"]
        out = []
        if self.mediastinum_checked and self.mediastinum_mm.get(row, 0.0) >= lim:
            out.append("mediastinum")
        if self.unimaged_mm.get(row, 0.0) > 0.0 and self.unimaged_cut.get(row, True):
            # outside the scanned field where the body is not cut: a note (`unimaged_note`), not ranked
            out.append("unimaged_needle")
        if self.outside_tissue_mm.get(row, 0.0) >= load_defaults()["warnings"]["tissue_outside_skin_mm"]:
            out.append("tissue_outside_skin")
        elif np.isfinite(self.near_mm.get(row, np.inf)):
            out.append("outside_clearance")
        if couch and np.isfinite(self.couch_mm.get(row, np.inf)):
            out.append("couch_clearance")
        if np.isfinite(self.beyond_mm.get(row, np.inf)):
            out.append("beyond_tip")
        if self.diaphragm_mm.get(row, 0.0) >= float(load_defaults()["transdiaphragmatic"]["min_mm"]):
            out.append("transdiaphragmatic")
        return out


def path_findings(problem, table, rows, present: set, vessels_labelled: bool, med=None, dense=None,
                  couch: bool = True) -> Findings:
    """`Findings` of the score table's ``rows`` (indices). ``present``: names of the structures
    within needle reach; ``vessels_labelled``: a heart or great vessel is among them (then the
    mediastinum finding is not judged). ``med``: a `mediastinum.Mediastinum` of this problem to
    reuse (its planes are cached). ``dense``: the problem's `density.DenseTissue` (its unlabelled
    dense tissue counts for `beyond_tip`; None: labels only). ``couch`` False: `couch_clearance`
    not computed (its dicts left empty: for `Findings.flagged` with ``couch=False``)."""
    from .mediastinum import Mediastinum, one_lung_side

    rows = np.asarray(rows, np.int64)
    f = Findings()
    f.one_lung = one_lung_side(present)
    if not vessels_labelled:
        med = med or Mediastinum(problem)
        f.mediastinum_checked = len(med.lung_values) > 0
        f.mediastinum = med
        mm, uncut, neck = med.runs(table.entry_ras[rows], table.target_ras[rows])
        f.mediastinum_mm = dict(zip(rows.tolist(), mm.tolist()))
        f.mediastinum_neck_mm = dict(zip(rows.tolist(), neck.tolist()))
        f.mediastinum_uncut = dict(zip(rows.tolist(), uncut.tolist()))
    _diaphragm(problem, table, rows, f)
    gone, sides, uat, uhub, ucut = unimaged_needle(problem, table.entry_ras[rows], table.target_ras[rows],
                                             table.length_mm[rows])
    f.unimaged_mm = dict(zip(rows.tolist(), gone.tolist()))
    f.unimaged_side = dict(zip(rows.tolist(), sides))
    f.unimaged_at_mm = dict(zip(rows.tolist(), uat.tolist()))
    f.unimaged_hub = dict(zip(rows.tolist(), uhub.tolist()))
    f.unimaged_cut = dict(zip(rows.tolist(), ucut.tolist()))
    f.outside_tissue_mm = dict(zip(rows.tolist(), tissue_outside_skin(
        problem, table.entry_ras[rows], table.target_ras[rows], table.length_mm[rows]).tolist()))
    near, at, hub, inside = outside_clearance(problem, table.entry_ras[rows], table.target_ras[rows],
                                              table.length_mm[rows], refine=False)   # `refine_near`: reported rows
    f.near_mm = dict(zip(rows.tolist(), near.tolist()))
    f.near_at_mm = dict(zip(rows.tolist(), at.tolist()))
    f.near_hub = dict(zip(rows.tolist(), hub.tolist()))
    f.near_inside = dict(zip(rows.tolist(), inside.tolist()))
    if not couch:
        return _beyond(problem, table, rows, dense, f)
    cmm, cat, chub = couch_clearance(problem, table.entry_ras[rows], table.target_ras[rows], table.length_mm[rows])
    f.couch_mm = dict(zip(rows.tolist(), cmm.tolist()))
    f.couch_at_mm = dict(zip(rows.tolist(), cat.tolist()))
    f.couch_hub = dict(zip(rows.tolist(), chub.tolist()))
    return _beyond(problem, table, rows, dense, f)


def _diaphragm(problem, table, rows, f: Findings) -> None:
    """Fill ``f``'s transdiaphragmatic dicts for ``rows`` of a lung target (`diaphragm.crossings`);
    left empty for any other target."""
    from .diaphragm import crossings

    if not len(rows) or not problem.target.in_lung:   # `problem.target_in_lung`
        return
    mm, side, a, b = crossings(problem, table.entry_ras[rows], table.target_ras[rows])
    r = rows.tolist()
    f.diaphragm_mm, f.diaphragm_side = dict(zip(r, mm.tolist())), dict(zip(r, side.tolist()))
    f.diaphragm_from_mm, f.diaphragm_to_mm = dict(zip(r, a.tolist())), dict(zip(r, b.tolist()))


def _beyond(problem, table, rows, dense, f: Findings) -> Findings:
    """``f`` with `beyond_tip` of ``rows`` (the last finding of `path_findings`)."""
    dist, what = beyond_tip(problem, table.entry_ras[rows], table.target_ras[rows], dense)
    f.beyond_mm = dict(zip(rows.tolist(), dist.tolist()))
    f.beyond_what = dict(zip(rows.tolist(), what))
    return f


def near_text(problem, mm: float, at_mm: float, hub: bool, inside: bool) -> str:
    """The words of an `outside_clearance` finding (no proposal number): the needle part outside
    the skin (or its hub) passes ``mm`` from tissue of another body part, ``at_mm`` past the entry
    (``inside``: that tissue is inside the patient's outline, met again after air)."""
    ndl = problem.needle
    lim = ndl.hub_clearance_mm if hub else ndl.widening_mm
    what = ("tissue met again beyond air (another body part: an arm or a fold of the body?)" if inside
            else "tissue outside the patient's outline (an arm, another body part, the couch?)")
    return (f"the {'hub' if hub else 'needle outside the skin'} passes {mm:.1f} mm from {what} at {at_mm:.0f} mm "
            f"past the entry, within its {lim:.2f} mm clearance ({'hub' if hub else 'needle'} radius + placement "
            "uncertainty, as inside the body): the needle or its hub may not fit there in this position; check on "
            "the images, move the arm or prefer another path")


def couch_text(problem, mm: float, at_mm: float, hub: bool) -> str:
    """The words of a `couch_clearance` finding (no proposal number): the needle part outside the
    skin (or its hub) passes ``mm`` from the couch top, ``at_mm`` past the entry (0 mm: its axis
    at or below the couch top's surface)."""
    ndl, pos = problem.needle, problem.constraints.patient_position
    part = "hub" if hub else "needle outside the skin"
    lim = ndl.hub_clearance_mm if hub else ndl.widening_mm
    how = (f"reaches the couch top (its axis at or below it, {pos})" if mm <= 0 else
           f"passes {mm:.1f} mm from the couch top ({pos})")
    return (f"the {part} {how} at {at_mm:.0f} mm past the entry, within its {lim:.2f} mm clearance "
            f"({part.split()[0]} radius + placement uncertainty, as inside the body): the "
            f"{'hub cannot be placed there' if hub else 'needle cannot be placed there'} with the patient lying on the couch; "
            "prefer another path or patient position")


def refine_near(problem, table, findings: Findings, rows) -> None:
    """Refine (`outside_clearance` with ``refine``) the clearance of the needle part outside the
    skin of ``rows`` of the score table that ``findings`` found near tissue, in place: the
    distance and place said in their warnings (the ranking only needs whether)."""
    rows = np.asarray([r for r in rows if np.isfinite(findings.near_mm.get(int(r), np.inf))
                       and int(r) not in findings.near_refined], np.int64)
    if not len(rows):
        return
    findings.near_refined.update(rows.tolist())
    near, at, hub, inside = outside_clearance(problem, table.entry_ras[rows], table.target_ras[rows],
                                              table.length_mm[rows], refine=True)
    for r, a, b, c, d in zip(rows.tolist(), near.tolist(), at.tolist(), hub.tolist(), inside.tolist()):
        if np.isfinite(a):
            findings.near_mm[r], findings.near_at_mm[r], findings.near_hub[r], findings.near_inside[r] = a, b, c, d


# findings of what the needle meets inside the patient (unseen great vessels, a structure past the
# tip); the others concern the needle's part outside the skin and its hub, which the operator sees
# at the patient before the needle goes in
INSIDE_FINDINGS = ("mediastinum", "beyond_tip", "transdiaphragmatic")


def finding_rank(names) -> int:
    """The rank of a path's findings (``names``, `Findings.flagged`) in the ranking rule: 0 none,
    1 only findings of the needle's part outside the skin (checked at the patient), 2 one inside
    the patient (``INSIDE_FINDINGS``), 3 both. Paths are ranked by it before their score: new-user
    trial 89 M2, on lung1's crops every path had an unimaged needle, so the mediastinal paths
    (great vessels not seen on a CT without contrast) ranked first by score, ahead of a chest-wall
    path whose only finding was outside the patient."""
    inside = any(n in INSIDE_FINDINGS for n in names)
    outside = any(n not in INSIDE_FINDINGS for n in names)
    return 2 * int(inside) + int(outside)


def held_back_better(names, score, first_score) -> bool:
    """True for a proposal (its finding ``names``, `Findings.flagged`, and ``score``) that the
    ranking rule put after proposal 1 (score ``first_score``, no finding) only for findings of the
    needle's part outside the skin (`finding_rank` 1) while it scores better (lower): the trade
    the plan's warning (`planner.deferred_better_warning`) and the report's table
    (`report.shown_proposals`) show (new-user trials 88 M1, 89 M2)."""
    return finding_rank(names) == 1 and score < first_score


def deferred(findings: Findings, n: int) -> np.ndarray:
    """Int (n,) over the table's rows: each row's `finding_rank` (0: no finding); rows are ranked
    by it before their score (`proposals.propose`'s ``defer``)."""
    out = np.zeros(n, np.int8)
    rows = set(findings.mediastinum_mm) | set(findings.unimaged_mm) | set(findings.outside_tissue_mm) \
        | set(findings.beyond_mm) | set(findings.near_mm) | set(findings.couch_mm) | set(findings.diaphragm_mm)
    for r in rows:
        out[r] = finding_rank(findings.flagged(r))
    return out
