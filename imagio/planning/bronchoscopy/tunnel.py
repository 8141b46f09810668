"""Transparenchymal tunnel: a straight path from a reachable airway wall to the lesion through
lung parenchyma, clear of vessels by a margin, never crossing the pleura.

Two independent vessel checks: the vessel mask (labelled, or segmented from the CT by the caller)
and, when the CT is given, the CT density itself: unlabelled dense objects (> 250 HU, the
planner's one definition, `imagio.planning.density.dense_objects`: iodinated contrast at
angiographic density >= 250 HU, Bae KT, Radiology 2010;256:32-61, calcification or bone) must
clear the tunnel by the same margin. A clearance that was not measured is None ("not checked"),
never infinite.

Every reachable centreline point within reach of the lesion is a candidate start; the tunnel
leaves the airway wall towards the lesion centre. All candidates are sampled together (numpy,
[candidates x samples]) on the lung, lesion and vessel-distance maps. RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ...volume import Volume
from ..distance_maps import reach_box
from .route import Target, load_scopes
from .tree import AirwayTree

STEP_MM = 0.5
AXIS_STEPS = 4  # centreline points back along the airway to take its axis


@dataclass
class Tunnel:
    start_ras: np.ndarray            # on the airway wall
    end_ras: np.ndarray              # where the tunnel enters the lesion
    airway_point_id: int
    length_mm: float
    min_vessel_clearance_mm: float | None   # None: no vessel mask, not checked
    angle_to_airway_deg: float
    branch_id: int
    min_dense_clearance_mm: float | None = None   # to unlabelled CT-dense tissue; None: CT not read
    clearance_cap_mm: float = np.inf   # clearances are measured up to this (the search box's margin)

    def to_dict(self) -> dict:
        def mm(v):   # None: not checked; beyond the cap: the cap (nothing closer within the box searched)
            return None if v is None or np.isnan(v) else round(float(min(v, self.clearance_cap_mm)), 2)

        return {"start_ras": [round(float(c), 2) for c in self.start_ras],
                "end_ras": [round(float(c), 2) for c in self.end_ras],
                "length_mm": round(self.length_mm, 2),
                "min_vessel_clearance_mm": mm(self.min_vessel_clearance_mm),
                "min_dense_tissue_clearance_mm": mm(self.min_dense_clearance_mm),
                "clearances_measured_up_to_mm": round(float(self.clearance_cap_mm), 2),
                "angle_to_airway_deg": round(self.angle_to_airway_deg, 1), "branch_id": self.branch_id}


class NoTunnel(InputError):
    """No straight tunnel satisfies the constraints; the message counts what excluded the candidates."""


def plan_tunnels(tree: AirwayTree, target: Target, lung: Volume, vessels: np.ndarray | None,
                 reachable: np.ndarray, margin_mm: float | None = None, max_length_mm: float | None = None,
                 max_angle_deg: float | None = None, n_best: int = 5, ct: Volume | None = None,
                 others: np.ndarray | None = None, labels: Volume | None = None) -> list[Tunnel]:
    """Ranked tunnels (shortest first among those clearing vessels by ``margin_mm``).

    ``lung``: mask Volume of the lungs (any lobes), the tunnel's only allowed medium besides the
    lesion; ``vessels``: mask on ``lung``'s grid (None: no vessel mask: the tunnels'
    ``min_vessel_clearance_mm`` is None, not checked; the caller must say so);
    ``reachable``: [N] bool, centreline points the scope reaches; ``ct``: the CT in HU (any
    grid): unlabelled dense objects (`density.dense_objects`, the target lesion and its one-voxel
    rim excepted) must clear every tunnel by ``margin_mm`` too (distance to their voxel centres
    minus half the smallest voxel, the verifier's convention); ``others``: mask on ``lung``'s grid
    of the lesions that are not the target (`other_lesions`), which every tunnel clears by
    ``margin_mm`` as well (measured to their voxel centres less half the voxel diagonal: the
    outline as drawn lies up to that far beyond them); ``labels``: the label Volume on ``lung``'s
    grid (the structures) by whose names a refusal says what a tunnel crosses outside the lung
    and which vessel label it passes too close to, with the mm (new-user trial 62 M1: a bronchial
    wall labelled 'body' was reported as "crosses the pleura"); None: unnamed. Raises NoTunnel."""
    import edt

    cfg = load_scopes()["tunnel"]
    margin = float(cfg["vessel_margin_mm"] if margin_mm is None else margin_mm)
    max_len = float(cfg["max_length_mm"] if max_length_mm is None else max_length_mm)
    max_ang = float(cfg["max_angle_to_airway_deg"] if max_angle_deg is None else max_angle_deg)
    aim = target.centre
    d_aim = np.linalg.norm(tree.points - aim, axis=1)
    reach_r = max_len + float(np.linalg.norm(target.surface - aim, axis=1).max())
    cand = np.flatnonzero(reachable & (tree.branch_of >= 0) & (d_aim - tree.radius <= reach_r))
    if not len(cand):
        raise NoTunnel(f"no reachable airway lies within {max_len:g} mm of the lesion; "
                       "try a thinner scope or a longer tunnel limit")
    # maps cropped around the lesion
    lo, hi = reach_box(lung, aim, reach_r + margin + 5)
    sub = lung.crop(lo, hi)
    lung_m = sub.array > 0
    les = target.mask.resample_like(sub, order=0).array > 0 if target.mask is not None else np.zeros_like(lung_m)
    if vessels is not None:
        v = np.asarray(vessels, bool)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        vdist = edt.edt(~v, anisotropy=tuple(float(s) for s in sub.spacing_kji), black_border=False) \
            if v.any() else np.full(v.shape, np.inf, np.float32)
    u = aim - tree.points[cand]
    dist_c = np.linalg.norm(u, axis=1)
    u /= dist_c[:, None]
    start = tree.points[cand] + tree.radius[cand, None] * u
    span = dist_c - tree.radius[cand]
    n_s = int(np.ceil(span.max() / STEP_MM)) + 1
    t = np.arange(n_s) * STEP_MM                                     # [S]
    pts = start[:, None, :] + t[None, :, None] * u[:, None, :]       # [C, S, 3]
    valid = t[None, :] <= span[:, None]
    flat = pts.reshape(-1, 3)
    in_les = (sub.with_array(les.astype(np.uint8)).sample(flat, order=0) > 0).reshape(valid.shape) & valid
    if target.mask is None:  # a point target: the tunnel ends at the point
        in_les = valid & (t[None, :] >= span[:, None] - STEP_MM)
    hits = in_les.any(axis=1)
    first = np.where(hits, in_les.argmax(axis=1), n_s)
    before = valid & (np.arange(n_s)[None, :] < first[:, None])
    in_lung = (sub.with_array(lung_m.astype(np.uint8)).sample(flat, order=0) > 0).reshape(valid.shape)
    # the first millimetre leaves the airway through its wall: the wall is not lung parenchyma
    # (a label map without an airway_wall label)
    wall_skip = t[None, :] < 1.5
    outside = before & ~in_lung & ~wall_skip
    leaves_lung = outside.any(axis=1)
    same_grid = labels is not None and labels.same_grid(lung)
    lab = sub.with_array(np.ascontiguousarray(labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]),
                         labels=labels.labels) if same_grid else None
    if vessels is not None:
        clear = sub.with_array(vdist.astype(np.float32)).sample(flat, order=1, fill=np.inf).reshape(valid.shape)
        along = np.where(before, clear, np.inf)
        clearance = along.min(axis=1)
    else:
        along = None
        clearance = np.full(len(cand), np.nan)   # not checked (nan fails no comparison: the caller warns)
    other_clear = np.full(len(cand), np.inf)
    if others is not None:
        o = np.asarray(others, bool)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if o.any():
            # to voxel centres less half the voxel diagonal: the lesion's outline lies up to that
            # far beyond them, and the map is read by trilinear interpolation between samples
            odist = edt.edt(~o, anisotropy=tuple(float(s) for s in sub.spacing_kji), black_border=False) \
                - 0.5 * float(np.linalg.norm(sub.spacing))
            od = sub.with_array(odist.astype(np.float32)).sample(flat, order=1, fill=np.inf).reshape(valid.shape)
            other_clear = np.where(before, od, np.inf).min(axis=1)
    dense_clear = np.full(len(cand), np.nan)
    if ct is not None:
        dclear = _dense_distance(ct, target, aim, reach_r + margin + 5)
        if dclear is not None:
            d = dclear.sample(flat, order=1, fill=np.inf).reshape(valid.shape)
            dense_clear = np.where(before, d, np.inf).min(axis=1)
        else:
            dense_clear = np.full(len(cand), np.inf)
    length = first * STEP_MM
    back = cand.copy()  # the airway axis: from a few centreline points proximal (vectorised)
    for _ in range(AXIS_STEPS):
        back = np.where(tree.parent[back] >= 0, tree.parent[back], back)
    ax = tree.points[cand] - tree.points[back]
    axes = ax / np.maximum(np.linalg.norm(ax, axis=1, keepdims=True), 1e-9)
    angle = np.degrees(np.arccos(np.clip((axes * u).sum(axis=1), -1, 1)))
    reasons = {
        "does not reach the lesion": ~hits,
        f"longer than {max_len:g} mm": hits & (length > max_len),
        **_outside_reasons(outside, flat, lab),
        **_vessel_reasons(clearance < margin, along, margin, flat, lab, vessels, lo, hi, sub),
        f"passes closer than {margin:g} mm to unlabelled dense tissue in the CT (> {_dense_hu():g} HU: a "
        "contrast-filled vessel, calcification or bone)": dense_clear < margin,
        f"turns more than {max_ang:g} deg from the airway": angle > max_ang,
        f"passes closer than {margin:g} mm to another lesion (kept out)": other_clear < margin,
    }
    bad = np.zeros(len(cand), bool)
    for m in reasons.values():
        bad |= m
    good = np.flatnonzero(~bad)
    if not len(good):
        counts = "; ".join(f"{int(m.sum())} {k}" for k, m in reasons.items() if m.any())
        raise NoTunnel(f"no transparenchymal tunnel from {len(cand)} airway points: {counts}")
    worst = np.fmin(clearance, dense_clear)   # nan (not checked) only where both are
    order = good[np.lexsort((-np.minimum(np.nan_to_num(worst[good], nan=0.0), 99), length[good]))]
    cap = margin + 5.0   # every sample lies within reach_r of the aim: the boxes reach this much beyond
    out, used = [], set()
    for i in order:  # one per branch: alternatives from different airways
        b = int(tree.branch_of[cand[i]])
        if b in used:
            continue
        used.add(b)
        out.append(Tunnel(start[i], start[i] + length[i] * u[i], int(cand[i]), float(length[i]),
                          None if np.isnan(clearance[i]) else float(clearance[i]), float(angle[i]), b,
                          None if np.isnan(dense_clear[i]) else float(dense_clear[i]), cap))
        if len(out) == n_best:
            break
    return out


def _outside_reasons(outside: np.ndarray, flat: np.ndarray, lab: Volume | None) -> dict:
    """{reason: bool [C]} for the candidates whose line leaves the lung envelope (``outside``
    [C, S]: samples before the lesion outside it, past the wall skip): by the label of their
    first such sample (``lab`` sampled at ``flat`` [C*S, 3] RAS mm), with the most mm of it on
    one line; without labels one unnamed reason."""
    bad = outside.any(axis=1)
    if not bad.any():
        return {}
    if lab is None:
        return {"leaves the lung labels (pleura, chest wall, mediastinum or tissue not labelled lung)": bad}
    v = np.rint(lab.sample(flat, order=0)).astype(int).reshape(outside.shape)
    first = np.where(bad, outside.argmax(axis=1), 0)
    v0 = v[np.arange(len(v)), first]
    out = {}
    for code in np.unique(v0[bad]):
        who = bad & (v0 == code)
        name = lab.labels.get(int(code), "no label") if code else "no label"
        mm = float((outside[who] & (v[who] == code)).sum(axis=1).max()) * STEP_MM
        what = "crosses the pleura (leaves the lung)" if name == "pleura" else \
            f"leaves the lung labels through '{name}'"
        out[f"{what} (up to {mm:.1f} mm of it on a line)"] = who
    return out


def _vessel_reasons(close: np.ndarray, along: np.ndarray | None, margin: float, flat: np.ndarray,
                    lab: Volume | None, vessels, lo, hi, sub: Volume) -> dict:
    """{reason: bool [C]} for the candidates passing closer than ``margin`` mm to the vessel mask
    (``close`` [C]; ``along`` [C, S]: their clearance at each sample before the lesion, inf
    elsewhere), named by the label (``lab``) of the vessel voxel nearest to each one's closest
    sample, with the smallest clearance (mm)."""
    if not close.any():
        return {}
    if lab is None or vessels is None or along is None:
        return {f"passes closer than {margin:g} mm to a vessel": close}
    from scipy import ndimage

    v = np.asarray(vessels, bool)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    _, idx = ndimage.distance_transform_edt(~v, sampling=sub.spacing_kji, return_indices=True)
    c = np.flatnonzero(close)
    s_min = np.argmin(along[c], axis=1)
    p = flat.reshape(along.shape + (3,))[c, s_min]                      # [c, 3] RAS
    kji = np.clip(sub.nearest_kji(p), 0, np.array(v.shape) - 1)
    vk = idx[:, kji[:, 0], kji[:, 1], kji[:, 2]]                       # [3, c]
    codes = np.asarray(lab.array)[vk[0], vk[1], vk[2]].astype(int)
    out = {}
    for code in np.unique(codes):
        who = np.zeros(len(close), bool)
        who[c[codes == code]] = True
        name = lab.labels.get(int(code), "the vessel mask")
        out[f"passes closer than {margin:g} mm to a vessel ('{name}', down to "
            f"{float(along[who].min()):.1f} mm)"] = who
    return out


def _dense_hu() -> float:
    from ..density import dense_min_hu

    return dense_min_hu()


def _dense_distance(ct: Volume, target: Target, aim: np.ndarray, reach_mm: float) -> Volume | None:
    """Distance map (mm, float32 Volume on a crop of ``ct``'s grid within ``reach_mm`` of ``aim``)
    to the nearest unlabelled dense object (`density.dense_objects`) minus half the smallest voxel;
    the target lesion with its one-voxel rim (a calcified nodule's own partial volume) and the
    object holding a point target are the target's tissue, not obstacles. None when the box holds
    no dense object."""
    import cc3d
    import edt
    from scipy import ndimage

    from ..density import dense_objects

    lo, hi = reach_box(ct, aim, reach_mm)
    box = ct.crop(lo, hi)
    hu = np.asarray(box.array, np.float32)
    checked = None
    if target.mask is not None:
        les = target.mask.resample_like(box, order=0).array > 0
        checked = ~ndimage.binary_dilation(les, np.ones((3, 3, 3), bool))
    dense = dense_objects(hu, ct.voxel_volume_ml, checked)
    if target.mask is None and dense.any():
        kji = box.nearest_kji(np.asarray(aim, float)[None])[0]
        if np.all((kji >= 0) & (kji < dense.shape)) and dense[tuple(kji)]:
            cc = cc3d.connected_components(dense, connectivity=26)
            dense &= cc != cc[tuple(kji)]
    if not dense.any():
        return None
    d = edt.edt(~dense, anisotropy=tuple(float(s) for s in box.spacing_kji), black_border=False)
    return box.with_array(np.maximum(d - 0.5 * float(min(ct.spacing)), 0.0).astype(np.float32))


def other_lesions(labels: Volume, target: Target) -> tuple[np.ndarray | None, list[str]]:
    """(mask [k, j, i] on ``labels``' grid of every lesion that is not the target, or None; their
    names). A lesion is what the needle planner calls one (catalogue role 'target', or a name of
    the field's lesion vocabulary, `imagio.planning.problem.names_a_lesion`); the target's
    own voxels (``target.mask``, the piece aimed at) are left out, so the other pieces of the
    same label count. A tunnel through a second tumour mixes the specimen and can seed the tract
    (planning_defaults ``targets.other_lesion_role``, with its sources)."""
    from ..problem import names_a_lesion

    names = [n for n in labels.labels.values() if names_a_lesion(n)]
    if not names:
        return None, []
    m = labels.mask(*names)
    if target.mask is not None:
        m &= ~(target.mask.resample_like(labels, order=0).array > 0)
    else:   # a point target: the lesion piece holding it is the target
        import cc3d

        kji = labels.nearest_kji(np.asarray(target.centre, float)[None])[0]
        if np.all((kji >= 0) & (kji < m.shape)) and m[tuple(kji)]:
            cc = cc3d.connected_components(m, connectivity=26)
            m &= cc != cc[tuple(kji)]
    if not m.any():
        return None, []
    kept = sorted({labels.labels[int(v)] for v in np.unique(labels.array[m])})
    return m, kept


def lung_envelope(labels):
    """(lung Volume mask [k, j, i] on the labels' grid: lobes/lungs, their vessels, nodules, airways
    and walls; vessel mask or None) from a label map with TotalSegmentator/IMAGIO names; (None,
    None) when it has no lung. The lung envelope tunnels must stay in and targets must lie in."""
    from . import LUNG_PREFIX, VESSEL_NAMES

    names = set(labels.labels.values())
    # lobes, lung vessels and nodules (a nodule is in the lung though it is not aerated)
    inside = [n for n in names if n.startswith(LUNG_PREFIX)] + \
             [n for n in ("airways", "airway_wall", "lung_trachea_bronchia") if n in names]
    lung_names = [n for n in inside if n.startswith(LUNG_PREFIX) and "nodule" not in n]
    if not lung_names:
        return None, None
    lungs = labels.with_array(labels.mask(*inside).astype(np.uint8))
    ves = [n for n in VESSEL_NAMES if n in names]
    return lungs, (labels.mask(*ves) if ves else None)
