"""The CT table (couch top) under the patient, for the table-side rule.

The patient lies on the couch top; the table (couch top, its foam / carbon-fibre base with air
gaps, metal rails) is a separate object below the patient, not part of the body. The planner's
`skin.outer_skin` body takes in every object connected to the patient through air enclosed in
the axial slice, so a table base reaching the edge of the image makes that body (and its
deepest skin) reach the image edge. Here the patient is the body's tissue (> ``air_hu``) with
thin attachments cut by a morphological opening (radius ``open_mm``, in-plane; the couch top is
a shell of a few mm, so an opening detaches it as in `imagio.segmentation.body.body_mask`),
and the couch top is, per column parallel to the table direction ``d``, the first dense
non-patient voxel beyond the patient's last voxel (in columns beside the patient: the first
dense object, e.g. a curved couch's rising side or an arm resting on the couch). A point of the
needle outside the skin deeper than its column's surface is in or under the table
(`TableSurface.below`); in columns without any object the patient's deepest skin stands for a
flat couch top (the patient rests on it). When fewer than
``MIN_COVER`` of the patient's columns show such an object (table outside the field of view,
or removed by the reconstruction), the table is not located and the plan warns that the hub's
clearance from the table was not checked. ``OPEN_MM`` and ``MIN_COVER`` are
``planning_defaults.json`` ``table`` (with their sources).

Cost: the patient and the objects (`patient_and_objects`) do not depend on the direction or
the target; `locate_table_cached` keeps them per case (`case_key`: the grid, the body and data
masks and the CT's tissue mask, ``CT > air_hu``, the only things of the CT they read: a second
target, another patient position or a lesion painted into the tissue reuses them) and each
direction's surface per problem.

Sources: the patient lies on the couch top, and the needle hub and the part of the needle
left outside the skin cannot pass through it (Gupta et al., J Vasc Interv Radiol 2010;21:969,
CT-guided percutaneous biopsy: patient positioning so that the entry faces up or sideways);
couch tops are carbon-fibre shells a few mm thick over a foam core (Olch et al., Med Phys
2014;41:061501, AAPM TG-176).

Arrays: masks bool [k, j, i] on the CT grid; positions RAS mm. Vectorised (per-column
reductions by sorting), no Python loop over voxels.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import numpy as np

from ..volume import index_dtype, index_list
from .problem import load_defaults

_TABLE = load_defaults()["table"]
OPEN_MM = float(_TABLE["open_mm"])        # opening radius that detaches the couch top (as segmentation.body)
MIN_COVER = float(_TABLE["min_cover"])    # fraction of the patient's columns that must show the table


def in_slice_angle_deg(normal_ras, direction) -> np.ndarray:
    """Degrees per normal: the angle between the outward skin normal's part in the axial plane
    (normal to world S, the patient's long axis) and the couch direction's part in that plane;
    NaN where either part is zero (it faces nothing in the slice). ``normal_ras`` (n, 3): RAS unit
    vectors (`candidates.normals_at`); ``direction`` (3,): RAS, from the patient towards the couch
    (`problem.POSITIONS`)."""
    n = np.asarray(normal_ras, float).reshape(-1, 3)
    d = np.asarray(direction, float).reshape(3)
    dn = float(np.hypot(d[0], d[1]))
    inplane = np.hypot(n[:, 0], n[:, 1])
    out = np.full(len(n), np.nan)
    ok = inplane > 0.0
    if dn == 0.0 or not ok.any():
        return out
    cos = (n[ok, :2] @ (d[:2] / dn)) / inplane[ok]
    out[ok] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def faces_couch_in_slice(normal_ras, direction, max_deg: float) -> np.ndarray:
    """Bool per entry: its outward skin normal's part in the axial plane points within
    ``max_deg`` of the couch direction's part in that plane (`in_slice_angle_deg`; a zero
    in-plane part faces nothing). ``normal_ras`` (n, 3): outward skin normals (RAS unit
    vectors, `candidates.normals_at`); ``direction`` (3,): RAS, from the patient towards the
    couch (`problem.POSITIONS`); ``max_deg``: the table-side angle
    (``constraints.table_exclusion_deg``; 0 or less: nothing). The first half of
    `on_couch_side_of_outline`."""
    ang = in_slice_angle_deg(normal_ras, direction)
    if max_deg <= 0:
        return np.zeros(len(ang), bool)
    with np.errstate(invalid="ignore"):
        return ang < float(max_deg)


def normal_uncertainty_deg(spacing_mm, sigma_mm: float) -> float:
    """Degrees: how far the outward skin normal (`candidates.normals_at`: the gradient of the body
    mask smoothed by a Gaussian of ``sigma_mm``) may tilt from the skin's true normal on a grid of
    ``spacing_mm`` (3 voxel sides, mm). Geometry: the mask places the skin only to within the
    voxel it crosses, half the largest voxel side h either way; the smoothing weighs the surface
    over about two sigmas either side of the entry (95 % of a Gaussian's weight); two surface
    points that far apart, each off by h/2 in opposite directions, tilt the plane through them by
    arctan(h / (4 sigma)): 7 deg on a 1 mm grid, 11 at 1.5 mm, 21 at 3 mm, 32 at 5 mm (sigma
    2 mm). New-user trial 83 #2: on a 3 mm grid, entries 51-62 deg from the couch side measured
    by independent normals (2-6 mm smoothing) passed or failed the 60 deg rule at random."""
    h = float(np.max(np.asarray(spacing_mm, float)))
    return float(np.degrees(np.arctan(h / (4.0 * float(sigma_mm)))))


def angle_uncertainty_deg(grid, sigma_mm: float, normal_ras, direction_ras) -> float:
    """Degrees: how far the angle between the outward skin normal ``normal_ras`` (RAS unit (3,))
    and the direction ``direction_ras`` (RAS unit (3,)) may be off on ``grid`` (a `Volume`: its
    voxel sides and axes), by `normal_uncertainty_deg`'s geometry applied per grid axis: the
    normal tilts by up to h_a / (4 sigma) (rad) towards array axis a of voxel side h_a, and the
    angle moves by the part of that tilt along the angle's own gradient (d - (n.d) n) over
    sin(angle). Only the voxel sides that move the angle count: an angle between two directions
    in the axial plane is resolved by the in-plane pixels, not by 5 mm slices (new-user trial 86
    L4: lung2's 0.63 x 0.63 x 5 mm grid gave +-32 deg from the slice thickness, and all five
    proposals, 61-66 deg from the couch side and stable within 2 deg over three smoothings, were
    warned). At most `normal_uncertainty_deg` (the largest side), 90 deg when the angle is 0 or 180."""
    n = np.asarray(normal_ras, float)
    d = np.asarray(direction_ras, float)
    n, d = n / np.linalg.norm(n), d / np.linalg.norm(d)
    cos = float(np.clip(n @ d, -1.0, 1.0))
    sin = float(np.sqrt(max(1.0 - cos * cos, 0.0)))
    g = d - cos * n
    axes = np.asarray(grid.direction, float)            # columns: the i, j, k axes' RAS directions
    h = np.asarray(grid.spacing, float)                  # (i, j, k) voxel sides, mm
    tilt = (g @ axes) * h / (4.0 * float(sigma_mm))      # d(cos) per axis
    dcos = float(np.sqrt(np.sum(tilt ** 2)))
    if sin <= 1e-9:
        return 90.0
    return float(min(np.degrees(np.arctan(dcos / sin)), normal_uncertainty_deg(h, sigma_mm)))


def table_band_words(problem, entry_ras, normal_ras, direction=None) -> str | None:
    """The words (None when none) for an entry (``entry_ras``, RAS mm (3,)) the table-side rule
    admitted while its outward skin normal (``normal_ras``, RAS unit (3,)) lies within the normal's
    uncertainty (`normal_uncertainty_deg`) of the rule's limit (``constraints.table_exclusion_deg``,
    planning_defaults.json with its source) from the couch side ``direction`` (RAS, patient to
    couch; the plan's position's when None): the 3D angle from the couch side, and, when no couch
    is found under the patient, the angle in the entry's axial slice for an entry on its slice's
    couch-side outline (`on_couch_side_of_outline` with the limit widened by the uncertainty). The
    rule still admits such an entry (the normal may as well err the other way); it is not said
    silently. None when the rule is off or there is no skin model."""
    c = problem.constraints
    if problem.skin is None or "table_side" in c.disabled_rules or c.table_exclusion_deg <= 0:
        return None
    from .distance_maps import NORMAL_SIGMA_MM

    lim = float(c.table_exclusion_deg)
    d = np.asarray(c.table_direction if direction is None else direction, float)
    nrm = np.asarray(normal_ras, float).reshape(1, 3)
    e = np.asarray(entry_ras, float).reshape(1, 3)
    ang = float(np.degrees(np.arccos(np.clip(nrm[0] @ d, -1.0, 1.0))))
    band = angle_uncertainty_deg(problem.ct, NORMAL_SIGMA_MM, nrm[0], d)
    how = None
    if lim <= ang < lim + band:
        how = f"its skin normal is {ang:.0f} deg from the couch side"
    elif not locate_table_cached(problem, d).located:
        a2 = float(in_slice_angle_deg(nrm, d)[0])
        if np.isfinite(a2):
            dp = np.array([d[0], d[1], 0.0]) / np.hypot(d[0], d[1])
            band = angle_uncertainty_deg(problem.ct, NORMAL_SIGMA_MM, np.array([nrm[0, 0], nrm[0, 1], 0.0]), dp)
            if lim <= a2 < lim + band and on_couch_side_of_outline(problem.ct, problem.skin.body, e, nrm, d,
                                                                    lim + band)[0]:
                how = (f"its skin normal is {a2:.0f} deg from the couch side in its axial slice, at the body's "
                       "couch-side edge there (no couch in view)")
    if how is None:
        return None
    sp = "x".join(f"{v:g}" for v in np.round(np.asarray(problem.ct.spacing, float), 2))
    return (f"{how}, within the normal's uncertainty on this grid (+-{band:.0f} deg: {sp} mm voxels, "
            f"skin normal smoothed over {NORMAL_SIGMA_MM:g} mm) of the {lim:g} deg table-side limit "
            "(planning_defaults.json table_exclusion_deg): admitted, but it may face the couch the patient lies on")


def table_band_warnings(problem, n: int, entry_ras, normal_ras) -> list[str]:
    """The warning (a list of at most one line) for proposal ``n`` whose entry may face the couch
    (`table_band_words` in the plan's position)."""
    how = table_band_words(problem, entry_ras, normal_ras)
    return [f"proposal {n}: {how}; check on the images that the entry is reachable in this position"] if how else []


def on_couch_side_of_outline(ct, body, entry_ras, normal_ras, direction, max_deg: float) -> np.ndarray:
    """Bool per entry: its skin lies on the side of the body's outline that faces the couch, in
    its axial slice (the plane normal to world S, the patient's long axis, through the entry).

    ``ct``: the CT `Volume` (its grid); ``body``: the planner's body mask on that grid (bool
    [k, j, i] or `skin.PackedMask`); ``entry_ras``, ``normal_ras`` (n, 3): entries (RAS mm) and
    their outward skin normals (RAS unit vectors, `candidates.normals_at`); ``direction`` (3,):
    RAS, from the patient towards the couch (`problem.POSITIONS`: posterior when supine,
    anterior when prone, the down side when lateral); ``max_deg``: the table-side angle
    (planning_defaults.json ``constraints.table_exclusion_deg``, with its source).

    Two tests, both on the slice: (1) the outline's outward normal there, the skin normal's part
    in the axial plane (`faces_couch_in_slice`), points within ``max_deg`` of the couch side;
    (2) the entry is on that outline: walking from it towards the couch within its slice, the
    body ends within two of the voxel's largest sides (``2 * max(ct.spacing)``, sampled every
    half smallest side, nearest voxel; beyond the image counts as leaving). (2) keeps skin that
    faces head or feet (a shoulder's top, the flat end of a phantom), whose in-plane part is
    short and noisy, unless it lies at its slice's couch-side edge. Two voxels hold the
    staircase of a thick-slice scan: a skin voxel whose face towards head or feet meets the air
    lies, on a slope 45 degrees or steeper from the axial plane, within one slice step of its own
    slice's outline, and the in-plane voxels and the smoothing add up to about one more (trial
    81's case at 5 mm: the upper back's skin 4.25-6.75 mm inside its slices' posterior edge).

    Why the slice: a patient lies on the couch along its whole length, so the couch lies along
    ``direction`` in every axial slice and the skin on the couch side of each slice's outline
    is the skin the patient lies on (the back when supine), whatever its slope along the body.
    The smoothed 3D normal tilts towards head or feet where the outline narrows (the upper back
    rising to the neck at the thoracic inlet, the end of a thick-slice scan) and can leave the
    60 degree cone of `scoring.against_table` while the skin still faces the couch (fresh-user
    trial 81: a supine plan's best entry on the upper back at the thoracic inlet of a cropped
    chest CTA at 5 mm, no couch in view, 62 degrees from posterior in 3D, 6 in its slice, 3 mm
    inside its slice's posterior edge). Used where the couch is not found
    (`TableSurface.located` False); where it is, the couch found judges the needle.
    Sources: the patient is positioned so that the entry faces up or sideways (Gupta S et al.,
    Quality improvement guidelines for percutaneous needle biopsy, J Vasc Interv Radiol
    2010;21:969-975, the table-side rule's source); a supine patient's back, a prone patient's
    front and a decubitus patient's down side rest on the couch and its pads (Olch AJ et al.,
    Med Phys 2014;41:061501, AAPM TG-176). Vectorised over entries and samples; no error
    raised."""
    e = np.asarray(entry_ras, float).reshape(-1, 3)
    out = faces_couch_in_slice(normal_ras, direction, max_deg)
    rows = np.flatnonzero(out)
    if not len(rows):
        return out
    d = np.asarray(direction, float).reshape(3)
    dp = np.array([d[0], d[1], 0.0]) / float(np.hypot(d[0], d[1]))
    sp = np.asarray(ct.spacing, float)
    step = 0.5 * float(sp.min())
    s = np.arange(1, int(np.floor(2.0 * float(sp.max()) / step + 1e-6)) + 1) * step   # (m,) mm, up to two voxels
    pts = (e[rows, None, :] + s[None, :, None] * dp).reshape(-1, 3)
    kji = np.rint(ct.world_to_kji(pts)).astype(np.int64)
    inside = np.all((kji >= 0) & (kji < np.asarray(ct.shape)), axis=1)
    b = np.zeros(len(pts), bool)
    if inside.any():
        b[inside] = np.asarray(body[tuple(kji[inside].T)], bool)
    out[rows] = (~b.reshape(len(rows), len(s))).any(axis=1)                  # the body ends on the way
    return out


@dataclass(frozen=True)
class TableSurface:
    """The table top along a direction ``d`` (RAS unit vector from the patient to the table).

    ``deepest_mm``: the patient's deepest skin along ``d`` (where the patient rests on a flat
    couch top); ``located``: False when no table was found under the patient; ``cover``: the
    fraction of the patient's columns that showed it; ``keys``/``tops``: per column (sorted
    integer keys of `_columns`) the first dense non-patient surface beyond the patient."""

    deepest_mm: float
    located: bool
    cover: float
    direction: np.ndarray = field(repr=False)
    bin_mm: float = 1.0
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    tops: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def below(self, ras: np.ndarray) -> np.ndarray:
        """Bool per point ``ras`` (n, 3): at or below the table surface of its column (the
        column's own couch top where one was found, else the patient's deepest skin: a flat
        couch top under a patient resting on it)."""
        s, lim = self.depth(ras)
        return s > lim

    def depth(self, ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point ``ras`` (n, 3) RAS mm: (its coordinate along ``direction``, mm; the table
        surface of its column along it, mm: the column's own couch top where one was found (the
        centre of its first non-patient dense voxel), else the patient's deepest skin). A point
        is below the table (`below`) when the first exceeds the second."""
        ras = np.asarray(ras, float).reshape(-1, 3)
        s, u, v = _column_uv(ras, self.direction, self.bin_mm)
        grid, u0, v0 = self._grid()
        lim = np.full(len(ras), self.deepest_mm)
        if grid.size:   # the column's surface, read from a dense (u, v) table (NaN: no column)
            iu, iv = u - u0, v - v0
            ok = (iu >= 0) & (iu < grid.shape[0]) & (iv >= 0) & (iv < grid.shape[1])
            top = grid[iu[ok], iv[ok]]
            has = ~np.isnan(top)
            sel = np.flatnonzero(ok)[has]
            lim[sel] = top[has]
        return s, lim

    def _grid(self):
        """(tops as a dense float array over the columns' (u, v) range, NaN where no column;
        u0, v0): the same values as ``keys``/``tops`` (built once, kept on the object)."""
        g = self.__dict__.get("_dense")
        if g is None:
            if len(self.keys):
                u = self.keys >> 32
                v = (self.keys & 0xFFFFFFFF).astype(np.int64)
                v = np.where(v >= 1 << 31, v - (1 << 32), v)   # back to the signed v of `_columns`
                u0, v0 = int(u.min()), int(v.min())
                grid = np.full((int(u.max()) - u0 + 1, int(v.max()) - v0 + 1), np.nan)
                grid[u - u0, v - v0] = self.tops
            else:
                grid, u0, v0 = np.zeros((0, 0)), 0, 0
            g = (grid, u0, v0)
            object.__setattr__(self, "_dense", g)
        return g

    def warning(self, position: str, max_deg: float | None = None) -> str | None:
        """The plan's warning when no table was located (None when it was): what the table-side
        rule then judges (the shaft's axis outside the skin against the deepest skin, or an
        object's surface in its column; with ``max_deg``, the table-side angle, the entries on
        the couch side of the body's outline, `on_couch_side_of_outline`) and what it does not (the
        hub, the clearances; `scoring.table_steps`, `findings.couch_judged`)."""
        if self.located:
            return None
        from .problem import TABLE_SIDE

        side = (f"; entries on the {TABLE_SIDE.get(position, 'couch')} side of the body's outline (outward skin "
                f"normal within {max_deg:g} deg of the couch side in its axial slice, whatever its slope along "
                f"the body) were excluded instead: check on the images that the entry is reachable in this "
                f"position" if max_deg else "")
        return (f"table not found under the patient in the image ({position}; {100 * self.cover:.0f}% of "
                f"the patient's columns show an object beyond the skin): the hub and the needle's clearance "
                f"from the table were not checked; the needle part outside the skin was only kept from going "
                f"deeper towards the table than the patient's deepest skin (or an object found in its column)"
                + side)


def _planes(m, k0: int, k1: int) -> np.ndarray:
    """The planes [k0, k1) of a mask [k, j, i] (a bool array or a `skin.PackedMask`: only
    those planes unpacked) as a new bool array (the caller may write into it)."""
    if hasattr(m, "planes"):
        return m.planes(k0, k1)
    return np.array(m[k0:k1], bool)


def _step(shape) -> int:
    """Planes per slab of the slab-wise passes here (`skin.SLAB` voxels, at least one plane)."""
    from .skin import SLAB

    return max(1, SLAB // max(1, int(shape[1]) * int(shape[2])))


def patient_box(body, margin_mm: float, spacing_kji):
    """Slices of the bounding box of ``body`` (bool [k, j, i] or `skin.PackedMask`, read a
    slab of planes at a time: no unpacked copy) grown as `segmentation.common.bbox_slices`
    grows it (``margin_mm`` and one voxel more per side, within the array); None when empty.
    Every face of the box inside the image lies at least one voxel beyond ``body``."""
    from .skin import mask_extent

    shape = tuple(int(n) for n in body.shape)
    ext = mask_extent(body)   # (a cached case's packed body: its box computed once)
    if ext is None:
        return None
    out = []
    for ax in range(3):
        m = int(np.ceil(margin_mm / float(spacing_kji[ax]))) + 1
        out.append(slice(max(int(ext[0][ax]) - m, 0), min(int(ext[1][ax]) + m, shape[ax])))
    return tuple(out)


def _tissue_in_box(ct, body, air_hu: float, box, out: np.ndarray | None = None) -> np.ndarray:
    """``body & (CT > air_hu)`` on the box ``box`` (slices of `patient_box`), built a slab of
    planes at a time (no volume-sized temporary); with ``out`` (bool, the box's shape) ANDed
    into it instead (``out &= tissue``) and returned."""
    shape = tuple(s.stop - s.start for s in box)
    make = out is None
    if make:
        out = np.empty(shape, bool)
    step = _step(shape)
    for a in range(0, shape[0], step):
        b = min(a + step, shape[0])
        k0, k1 = box[0].start + a, box[0].start + b
        t = _planes(body, k0, k1)[:, box[1], box[2]]
        t &= ct.array[k0:k1, box[1], box[2]] > air_hu
        if make:
            out[a:b] = t
        else:
            out[a:b] &= t
    return out


def _patient_in_box(ct, body, air_hu: float, open_mm: float, box) -> np.ndarray:
    """`patient_mask` on the box ``box`` (`patient_box` of ``body``): bool, the box's shape. The
    same voxels as the whole-volume mask there (the patient lies in the body, so nowhere else):
    the ball erosion reads the box's faces inside the image as background (they lie beyond the
    body: `patient_box`) and its faces on the image border as the border, as on the volume;
    the dilation and the components do not leave the patient's box. The tissue mask is built
    twice (for the erosion, then for the dilation's AND) instead of held through the erosion
    and the labelling (one box-sized mask fewer at the peak). The grown core ANDed with the
    tissue is one 6-connected piece when every offset of the 1.05 ``open_mm`` ball outside the
    ``open_mm`` ball steps into it (`ballmorph.ring_steps_into_ball`, proof there; every grid
    tried at 3 mm): then its largest component, itself, is not labelled (issue 20: one slab
    labelling pass of the patient's box less: the 1 mm phantom's couch search 2.73 -> 2.10 CPU-s)."""
    from ..segmentation.ballmorph import dilate_ball, erode_ball, ring_steps_into_ball

    sk = np.asarray(ct.spacing_kji, float)
    tissue = _tissue_in_box(ct, body, air_hu, box)
    core = erode_ball(tissue, open_mm, sk)
    del tissue
    core = _largest_in_box(core, in_place=True)
    if not core.any():
        return _largest_in_box(_tissue_in_box(ct, body, air_hu, box), in_place=True)
    grown = dilate_ball(core, open_mm * 1.05, sk)
    del core
    _tissue_in_box(ct, body, air_hu, box, out=grown)
    if ring_steps_into_ball(open_mm, open_mm * 1.05, sk):   # one 6-connected piece already (issue 20)
        return grown
    return _largest_in_box(grown, in_place=True)


def patient_mask(ct, body, air_hu: float, open_mm: float = OPEN_MM) -> np.ndarray:
    """The patient's tissue (bool [k, j, i]): voxels of ``body`` (bool [k, j, i] or
    `skin.PackedMask`) above ``air_hu``, opened by ``open_mm`` (erosion, largest component,
    dilation back within the tissue) so that the thin couch top and the table under it fall
    off. The erosion and dilation are `imagio.segmentation.ballmorph`'s (the same voxels as
    `segmentation.common.erode_mm` / `dilate_mm`, without their volume-sized float distance
    maps); the largest components are taken on the masks' bounding boxes (the same
    components). Computed on the body's box (`_patient_in_box`: the same voxels)."""
    out = np.zeros(tuple(ct.shape), bool)
    box = patient_box(body, 0.0, ct.spacing_kji)
    if box is not None:
        out[box] = _patient_in_box(ct, body, air_hu, open_mm, box)
    return out


def _largest_in_box(mask: np.ndarray, in_place: bool = False) -> np.ndarray:
    """`segmentation.common.largest_component` (6-connected; ties: the lowest cc3d label, i.e.
    the component whose first voxel comes first in C order) computed on the mask's bounding box
    (components never leave it, and the crop keeps the voxels' raster order) and slab by slab
    (`skin._largest_by_slab`: the same components and tie rule as one cc3d pass, tested; one
    labelling pass), so that no label array of the whole box (4 bytes per voxel:
    240 MiB on the 1 mm phantom's patient) is held. ``in_place``: written into ``mask`` (bool,
    C order) and returned, for a caller done with it (no second mask of the image's size)."""
    from ..segmentation.common import bbox_slices, largest_component
    from . import skin

    sl = bbox_slices(mask)
    out = mask if in_place else np.zeros(mask.shape, bool)
    if sl is None:
        return out
    sub = mask[sl]
    if sub.size <= skin.SLAB:   # one slab: one pass (two slab passes would hold more)
        out[sl] = largest_component(sub)
        return out
    make = lambda k0, k1: sub[k0:k1]   # noqa: E731  (slices of the box, copied per slab)
    if in_place:
        skin._largest_by_slab(make, sub.shape[0], out=sub)
    else:
        out[sl] = skin._largest_by_slab(make, sub.shape[0])
    return out


def _object_indices(ct, pat: np.ndarray, box, data, air_hu: float, open_mm: float, dtype) -> np.ndarray:
    """Array indices [k, j, i] (n, 3) ``dtype``, C order, of the voxels of `other_objects`, the
    patient given on a box: ``pat`` (bool, the shape of ``box``; no patient voxel outside it)
    where ``box`` holds the patient's box grown by ``2 * open_mm`` (`patient_box` with that
    margin), so that every voxel within ``2 * open_mm`` of the patient lies in it (the
    dilation's own box, `segmentation.ballmorph.dilate_ball`). ``data``: bool [k, j, i] or
    `skin.PackedMask`. The non-patient dense data voxels are labelled a slab of planes at a time
    (`skin._slab_components`, 26-connected: the same components as one cc3d pass), each slab
    built when labelled; per slab the labels of its voxels are read (which components hold a
    far voxel) and kept only at those voxels, in C order (no label array of the volume); a
    second pass rebuilds each slab and lists its voxels of the kept components."""
    from ..segmentation.ballmorph import dilate_ball
    from .skin import _slab_components

    shape = tuple(int(n) for n in ct.shape)
    near = dilate_ball(pat, 2.0 * open_mm, np.asarray(ct.spacing_kji, float))
    near = np.packbits(near, axis=-1)   # 1 bit per voxel of the box
    (bk, bj, bi) = box
    ni_box = bi.stop - bi.start

    def other(k0, k1):   # the non-patient dense data voxels of planes [k0, k1)
        m = _planes(data, k0, k1)
        m &= ct.array[k0:k1] > air_hu
        a, b = max(k0, bk.start), min(k1, bk.stop)
        if a < b:
            m[a - k0:b - k0, bj, bi] &= ~pat[a - bk.start:b - bk.start]
        return m

    far_nodes, vals = [], []

    def visit(t, k0, cc):   # per slab: the labels holding a far voxel; the labels of its voxels
        k1 = k0 + cc.shape[0]
        far = cc > 0
        vals.append(cc[far].astype(np.min_scalar_type(int(cc.max(initial=0)))))
        a, b = max(k0, bk.start), min(k1, bk.stop)
        if a < b:
            nb = np.unpackbits(near[a - bk.start:b - bk.start], axis=-1, count=ni_box).view(bool)
            far[a - k0:b - k0, bj, bi] &= ~nb
        far_nodes.append(np.unique(cc[far]))

    _, corners, offs, comp, _ = _slab_components(other, shape[0], keep=False, connectivity=26,
                                                 count=False, visit=visit)
    del near
    keep = np.zeros(len(comp), bool)   # per component: holds a far voxel
    for t, f in enumerate(far_nodes):
        keep[comp[f.astype(np.int64) - 1 + offs[t]]] = True
    parts = []
    for t in range(len(vals)):
        k0, k1 = int(corners[t]), int(corners[t + 1])
        lut = keep[comp[offs[t]:offs[t + 1]]]
        sel = lut[vals[t].astype(np.int64) - 1]
        vals[t] = None
        if sel.any():
            idx = index_list(other(k0, k1), dtype)[sel]
            idx[:, 0] += k0
            parts.append(idx)
    return np.concatenate(parts) if parts else np.zeros((0, 3), dtype)


def other_objects(ct, pat: np.ndarray, data, air_hu: float, open_mm: float = OPEN_MM) -> np.ndarray:
    """Dense objects that are not the patient (bool [k, j, i]): the 26-connected components of
    the data's voxels above ``air_hu`` outside ``pat`` that reach farther than ``2 * open_mm``
    from the patient (a table, an arm, a cushion). Rims that the opening took off the patient
    (edges of the scan's cut faces, skin folds) lie within ``open_mm`` of it and are not
    objects. ``data``: bool [k, j, i] or `skin.PackedMask`. The components are labelled slab by
    slab (`skin._slab_components`: the same components as one cc3d pass, no label array of the
    volume; `_object_indices`); the distance test is `segmentation.ballmorph.dilate_ball` (the
    voxels of `segmentation.common.dilate_mm`)."""
    from ..segmentation.common import bbox_slices

    pat = np.asarray(pat, bool)
    sk = np.asarray(ct.spacing_kji, float)
    box = bbox_slices(pat, 2.0 * open_mm, sk) or tuple(slice(0, 0) for _ in range(3))
    idx = _object_indices(ct, pat[box], box, data, air_hu, open_mm, index_dtype(ct.shape))
    out = np.zeros(tuple(ct.shape), bool)
    out[tuple(idx.T.astype(np.intp))] = True
    return out


def _boundary_indices(pat: np.ndarray, box, dtype) -> np.ndarray:
    """Array indices [k, j, i] (n, 3) ``dtype``, C order, of the voxels of ``pat`` (bool, on the
    box ``box``, no voxel on a box face inside the image) with a face neighbour outside it
    (``pat & ~erode6(pat)``, outside the image not being the patient), a slab of planes at a
    time with one plane of each neighbouring slab (the same voxels as one pass)."""
    from .skin import erode6

    n = pat.shape[0]
    step = _step(pat.shape)
    off = np.array([s.start for s in box], dtype)
    parts = []
    for k0 in range(0, n, step):
        k1 = min(k0 + step, n)
        a, b = max(k0 - 1, 0), min(k1 + 1, n)
        sub = pat[a:b]
        edge = sub & ~erode6(sub)
        idx = index_list(edge[k0 - a:k1 - a], dtype)
        idx[:, 0] += k0
        parts.append(idx + off)
    return np.concatenate(parts) if parts else np.zeros((0, 3), dtype)


def patient_and_objects(ct, body, data, air_hu: float) -> tuple:
    """Array indices [k, j, i] (n, 3; int16 where the grid allows, else int32) of the patient's
    boundary voxels (`patient_mask`) and of the voxels of `other_objects`: small arrays, what
    `locate_table` needs for every direction. Kept as indices, not as RAS positions (float64:
    4x the memory, 69 MiB on the 1 mm phantom, held by the cache for the whole plan):
    `locate_table` converts them (`voxel_ras`) a chunk at a time. ``body``, ``data``: bool
    [k, j, i] or `skin.PackedMask` (read a slab of planes at a time, never unpacked whole).
    The patient is computed on the body's box grown by ``2 * OPEN_MM`` (`_patient_in_box`, the
    objects' distance test `_object_indices` there), the boundary and the objects listed slab
    by slab: no mask of the image's size (issue 20: the couch search's traced peak on the 1 mm
    phantom was 331 MiB, body and data unpacked and five volume-sized masks)."""
    dt = index_dtype(ct.shape)
    box = patient_box(body, 2.0 * OPEN_MM, ct.spacing_kji)
    if box is None:
        return np.zeros((0, 3), dt), np.zeros((0, 3), dt)
    pat = _patient_in_box(ct, body, air_hu, OPEN_MM, box)
    obj = _object_indices(ct, pat, box, data, air_hu, OPEN_MM, dt)
    return _boundary_indices(pat, box, dt), obj


CHUNK = 1 << 16   # points per chunk of `locate_table` (bounds its float64 temporaries)


def voxel_ras(ct, kji: np.ndarray, chunk: int = CHUNK):
    """Yields the RAS positions (m, 3) float64 of the array indices ``kji`` (n, 3), ``chunk``
    rows at a time, the last chunk taking the rest (between ``chunk`` and ``2 * chunk`` rows;
    all rows in one chunk when n < 2 * chunk): ``ct.kji_to_world`` of each chunk. BLAS may round
    a row's 3-term products differently in a very short call or in a call's last few rows, so
    the chunks keep every row's position modulo ``chunk`` and the same last rows as one call
    (the same values as one call on all rows: tested)."""
    a, n = 0, len(kji)
    while a < n:
        b = n if n - a < 2 * chunk else a + chunk
        yield ct.kji_to_world(kji[a:b])
        a = b


def voxel_positions(ct, kji: np.ndarray) -> np.ndarray:
    """RAS positions (n, 3) float64 of the array indices ``kji`` (n, 3, any integer type):
    ``ct.kji_to_world`` of all rows, filled a chunk at a time (`voxel_ras`: the same values as
    one call) into one array, so that no int64 or float64 copy of the whole list is made
    besides the result."""
    out = np.empty((len(kji), 3))
    a = 0
    for ras in voxel_ras(ct, kji):
        out[a:a + len(ras)] = ras
        a += len(ras)
    return out


def _plane_axes(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e1, e2): the unit axes of the plane normal to ``d`` (3,) that `_column_uv` bins in, made
    once per direction (`_plane_axes_of`: `against_table` asks for them at every step along every
    needle; np.cross of two 3-vectors costs more than the binning itself). Read-only arrays."""
    return _plane_axes_of(np.asarray(d, float).tobytes())


@functools.lru_cache(maxsize=64)   # a handful of directions per case (table below, prone, ...)
def _plane_axes_of(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = np.frombuffer(key, float)
    e1 = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    e1.flags.writeable = e2.flags.writeable = False
    return e1, e2


def _column_uv(ras: np.ndarray, d: np.ndarray, bin_mm: float):
    """(along-d coordinate, integer column coordinates u, v) of RAS points ``ras`` (n, 3):
    square bins of ``bin_mm`` in the plane normal to ``d``."""
    e1, e2 = _plane_axes(d)
    u = np.floor(ras @ e1 / bin_mm).astype(np.int64)
    v = np.floor(ras @ e2 / bin_mm).astype(np.int64)
    return ras @ d, u, v


def _columns(ras: np.ndarray, d: np.ndarray, bin_mm: float):
    """(along-d coordinate, integer column key) of RAS points ``ras`` (n, 3)."""
    s, u, v = _column_uv(ras, d, bin_mm)
    return s, _key_of(u, v)


def _column_extreme(parts, ufunc) -> tuple:
    """(sorted unique column keys, per key the ``ufunc`` (np.maximum / np.minimum) reduction of
    the values) over ``parts``, an iterable of (values (m,), keys (m,) int64) chunks: each chunk
    reduced per key, then the chunks' results (the same extremes as one reduction of all points,
    whatever the chunks)."""
    ks, vs = [], []
    for v, k in parts:
        u, inv = np.unique(k, return_inverse=True)
        e = np.full(len(u), -np.inf if ufunc is np.maximum else np.inf)
        ufunc.at(e, inv, v)
        ks.append(u)
        vs.append(e)
    if not ks:
        return np.zeros(0, np.int64), np.zeros(0)
    u, inv = np.unique(np.concatenate(ks), return_inverse=True)
    e = np.full(len(u), -np.inf if ufunc is np.maximum else np.inf)
    ufunc.at(e, inv, np.concatenate(vs))
    return u, e


def _key_of(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The integer column key of `_columns` for column coordinates ``u``, ``v`` (int64)."""
    return (u << 32) ^ (v & 0xFFFFFFFF)


def index_bounds(kji_sets) -> tuple | None:
    """(lo, hi): float (3,) the least and greatest array index along k, j, i over the voxels of
    the index arrays ``kji_sets`` ((n, 3) each); None when there is no voxel. It does not depend
    on a direction: `locate_table_cached` takes it once per case for `_uv_box` (issue 20: each of
    the four patient positions reduced the couch's point lists again, 0.34 CPU-s on the 1 mm
    phantom)."""
    boxes = [(k.min(axis=0).astype(float), k.max(axis=0).astype(float)) for k in kji_sets if len(k)]
    if not boxes:
        return None
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _uv_box(ct, kji_sets, d: np.ndarray, bin_mm: float, bounds: tuple | None = None) -> tuple | None:
    """(u0, nu, v0, nv): a range of `_column_uv`'s column coordinates holding every voxel of the
    index arrays ``kji_sets`` ((n, 3) each), from the RAS corners of their index boxes (u and v
    are linear in the indices: their extremes lie at the corners) widened by one bin on each
    side against rounding; None when there is no voxel. Every chunk is checked against it
    (`locate_table`). ``bounds``: `index_bounds` of ``kji_sets`` when the caller has it (the
    same range)."""
    b = index_bounds(kji_sets) if bounds is None else bounds
    if b is None:
        return None
    lo, hi = b
    corners = np.array([[(lo, hi)[c >> a & 1][a] for a in range(3)] for c in range(8)])
    _, u, v = _column_uv(ct.kji_to_world(corners), d, bin_mm)
    u0, v0 = int(u.min()) - 1, int(v.min()) - 1
    return u0, int(u.max()) + 2 - u0, v0, int(v.max()) + 2 - v0


class _OutOfBox(Exception):
    """A chunk's columns fall outside `_uv_box`'s range (not expected; the sorted path then runs)."""


def locate_table(ct, body: np.ndarray, data: np.ndarray, direction, air_hu: float,
                 masks: tuple | None = None, chunk: int = CHUNK, bounds: tuple | None = None) -> TableSurface:
    """The couch top along ``direction`` (see module doc). ct: CT (HU) `Volume`; body, data: the
    planner's body and data region (bool [k, j, i], `skin.outer_skin`); masks: the voxel
    indices of `patient_and_objects` when already computed (they do not depend on the
    direction). Columns: square bins of the largest voxel spacing in the plane normal to
    ``direction``. The points are converted to RAS and binned ``chunk`` at a time (the per-column
    minima and maxima do not depend on the order: the same surface for any ``chunk``).

    The per-column extremes are reduced into dense arrays over the columns' (u, v) range
    (`_uv_box`; issue 20: no sort of the points' keys, no search of each object point's column,
    about half the CPU time of a direction on the 1 mm phantom) when that range holds no more
    cells than there are points (+ 2^16), else, or should a chunk fall outside it, by sorting
    (`_locate_sorted`, the computation before): the same surface (maxima and minima are exact
    in any order; tested against each other and against all points at once). ``bounds``:
    `index_bounds` of ``masks`` when the caller keeps it (`locate_table_cached`)."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    bin_mm = float(max(ct.spacing))
    pat_kji, obj_kji = masks if masks is not None else patient_and_objects(ct, body, data, air_hu)
    if not len(pat_kji):
        return TableSurface(np.inf, False, 0.0, d, bin_mm)
    box = _uv_box(ct, (pat_kji, obj_kji), d, bin_mm, bounds)
    if box[1] * box[3] <= len(pat_kji) + len(obj_kji) + (1 << 16):
        try:
            return _locate_dense(ct, pat_kji, obj_kji, d, bin_mm, box, chunk)
        except _OutOfBox:
            pass
    return _locate_sorted(ct, pat_kji, obj_kji, d, bin_mm, chunk)


def _locate_dense(ct, pat_kji, obj_kji, d, bin_mm, box, chunk) -> TableSurface:
    """`locate_table`'s surface, the per-column extremes reduced into dense arrays over the
    column range ``box`` (`_uv_box`); raises `_OutOfBox` when a chunk's column lies outside it."""
    u0, nu, v0, nv = box

    def cells(r):
        s, u, v = _column_uv(r, d, bin_mm)
        u -= u0
        v -= v0
        if len(u) and (u.min() < 0 or u.max() >= nu or v.min() < 0 or v.max() >= nv):
            raise _OutOfBox
        return s, u * nv + v

    deep = np.full(nu * nv, -np.inf)   # per column the patient's deepest voxel
    for r in voxel_ras(ct, pat_kji, chunk):
        s, c = cells(r)
        np.maximum.at(deep, c, s)
    top = np.full(nu * nv, np.inf)     # the first object beyond it
    side = np.full(nu * nv, np.inf)    # in columns without the patient: the first object
    for r in voxel_ras(ct, obj_kji, chunk):
        s, c = cells(r)
        dp = deep[c]
        col = dp > -np.inf
        under = col & (s > dp)          # beyond the patient in its column
        np.minimum.at(top, c[under], s[under])
        col = ~col
        np.minimum.at(side, c[col], s[col])
    cp = np.flatnonzero(deep > -np.inf)
    co = np.flatnonzero(side < np.inf)
    tp = top[cp]
    found = np.isfinite(tp)
    all_c = np.concatenate([cp[found], co])
    all_keys = _key_of(all_c // nv + u0, all_c % nv + v0)
    all_tops = np.concatenate([tp[found], side[co]])
    order = np.argsort(all_keys, kind="stable")
    cover = float(found.mean())
    return TableSurface(float(deep[cp].max()), cover >= MIN_COVER, cover, d, bin_mm, all_keys[order],
                        all_tops[order])


def _locate_sorted(ct, pat_kji, obj_kji, d, bin_mm, chunk) -> TableSurface:
    """`locate_table`'s surface by sorting the points' column keys (per chunk, then over the
    chunks' results) and searching each object point's column among the patient's."""
    # per column the patient's deepest voxel: each chunk's column maxima, then the maximum over
    # the chunks (exact: a maximum of maxima)
    keys, deepest = _column_extreme((_columns(r, d, bin_mm) for r in voxel_ras(ct, pat_kji, chunk)), np.maximum)
    top = np.full(len(keys), np.inf)
    okeys, otop = np.zeros(0, np.int64), np.zeros(0)
    if len(obj_kji):
        side = []
        for r in voxel_ras(ct, obj_kji, chunk):
            os_, ok = _columns(r, d, bin_mm)
            pos = np.clip(np.searchsorted(keys, ok), 0, len(keys) - 1)
            col = keys[pos] == ok
            under = col & (os_ > deepest[pos])      # beyond the patient in its column
            np.minimum.at(top, pos[under], os_[under])
            side.append(_column_extreme([(os_[~col], ok[~col])], np.minimum)[::-1])
        # columns beside the patient: the first object along d (a curved couch's rising side)
        okeys, otop = _column_extreme(side, np.minimum)
    found = np.isfinite(top)
    cover = float(found.mean())
    all_keys = np.concatenate([keys[found], okeys])
    all_tops = np.concatenate([top[found], otop])
    order = np.argsort(all_keys, kind="stable")
    low = float(deepest.max())
    located = cover >= MIN_COVER
    return TableSurface(low, located, cover, d, bin_mm, all_keys[order], all_tops[order])


_CACHE: dict = {}   # one case: (grid, air_hu, digests of what the couch search reads) -> its voxel indices
_LOCK = threading.RLock()   # scoring threads ask for the couch at once: one computes it


def forget_cached_table() -> None:
    """Drop the cached patient and object voxel indices (to free them)."""
    _CACHE.clear()


def case_key(ct, body, data, air_hu: float) -> tuple:
    """Key of everything `patient_and_objects` reads: the grid (shape, IJK-to-RAS), ``air_hu``,
    the masks ``body`` and ``data`` (`imagio.caching.mask_digest`) and the CT only through
    ``ct.array > air_hu`` inside ``body`` or ``data`` (`imagio.caching.threshold_digest`): the
    patient is ``body & (CT > air_hu)`` (`patient_mask`), the objects ``data & (CT > air_hu)``
    outside it (`other_objects`); nothing else of the CT is read. So two CTs whose values differ
    only where that mask is the same (a lesion painted with tissue HU into the patient's
    tissue, as the ablation demo's large tumour) share the key, and a CT whose mask differs
    (a voxel of the couch, of the patient's tissue or of a loose object turned to air, or air
    to tissue) does not. Reads the CT once (one comparison and one bit per voxel)."""
    from ..caching import mask_digest, threshold_digest

    return (tuple(ct.shape), np.asarray(ct.ijk_to_ras, float).tobytes(), float(air_hu),
            threshold_digest(ct.array, air_hu, within=(body, data)), mask_digest(body), mask_digest(data))


def case_masks(ct, body: np.ndarray, data, air_hu: float) -> tuple:
    """`patient_and_objects`, cached per case: keyed by what it reads (`case_key`: the grid and
    the voxels' values of ``body``, ``data`` and ``ct.array > air_hu`` there), so a second
    target or patient position on the same case, or a CT that differs only where the couch
    search cannot see it (a lesion painted into the tissue), reuses them; a CT edited in place
    gets a new key too. Thread-safe: the scoring threads' chunks ask for it at once; one
    computes, the others wait for its result (without the lock each thread ran its own couch
    search)."""
    return _case(ct, body, data, air_hu)[0]


def _case(ct, body, data, air_hu: float) -> tuple:
    """(`patient_and_objects`, {direction key: `TableSurface`}, their `index_bounds`) of the case
    (`case_masks`)."""
    with _LOCK:
        key = case_key(ct, body, data, air_hu)
        hit = _CACHE.get(key)
        if hit is None:
            masks = patient_and_objects(ct, body, data, air_hu)
            hit = (masks, {}, index_bounds(masks))
            _CACHE.clear()
            _CACHE[key] = hit
    return hit


def locate_table_cached(problem, direction) -> TableSurface:
    """`locate_table` for ``problem`` (its CT and cached skin model) and ``direction``, cached
    per case (`case_masks`: the points and each direction's surface, shared by every problem
    on the same case) and on ``problem`` (the case's key is computed once per problem).
    Thread-safe (one computation per direction when scoring threads ask at once)."""
    from .skin import AIR_HU

    key = tuple(np.round(np.asarray(direction, float), 6))
    with _LOCK:
        case = problem.__dict__.get("_table_case")
        if case is None:
            sk = problem.skin
            case = _case(problem.ct, sk.body, sk.data, AIR_HU)
            problem.__dict__["_table_case"] = case
        masks, planes, bounds = case
        if key not in planes:
            sk = problem.skin
            planes[key] = locate_table(problem.ct, sk.body, sk.data, direction, AIR_HU, masks,   # data unread
                                       bounds=bounds)
        return planes[key]
