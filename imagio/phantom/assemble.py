"""Parts shared by every phantom anatomy: the result types, tube trees grown inside painted
organs, lesion placement and the CT made from the labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..volume import Volume
from . import trees
from .hu import BLUR_SIGMA_MM, HU, NOISE_SD
from .raster import capsules, ellipsoid
from .torso import VERTEBRAE, Painter, table_mask

CORTEX_MM = 1.6  # cortical shell thickness of ribs and vertebrae (about 1-2 mm in adults)
LUNG_LOBES = ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right"]
RIBS = [f"rib_{s}_{n}" for s in ("left", "right") for n in range(1, 13)]


@dataclass
class Lesion:
    name: str  # label name, e.g. "liver_tumor_1"
    kind: str  # "liver_tumor" | "lung_nodule"
    subtype: str  # "hypodense" | "solid" | "part_solid" | "ground_glass"
    center_ras: np.ndarray  # mm
    radius_mm: float
    organ: str  # "liver" or the lung lobe name
    touches_airway: bool = False  # bronchus sign by construction

    def to_dict(self):
        d = asdict(self)
        d["center_ras"] = [round(float(c), 3) for c in self.center_ras]
        return d


@dataclass
class AirwayBranch:
    id: int
    parent: int  # -1 for the trachea
    generation: int  # 0 trachea, 1 main bronchi, 2 lobar, ...
    start_ras: np.ndarray
    end_ras: np.ndarray
    radius_start_mm: float  # lumen radius
    radius_end_mm: float
    wall_mm: float
    name: str = ""

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.end_ras - self.start_ras))

    def to_dict(self):
        d = asdict(self)
        d["start_ras"] = [round(float(c), 3) for c in self.start_ras]
        d["end_ras"] = [round(float(c), 3) for c in self.end_ras]
        return d


@dataclass
class Phantom:
    ct: Volume
    labels: Volume
    lesions: list[Lesion]
    airway_tree: list[AirwayBranch]
    spacing: float
    seed: int
    params: dict = field(default_factory=dict)
    geometry: dict = field(default_factory=dict)
    # (n, 3) RAS mm: centres of the voxels beyond the open terminal airway ends that a closed
    # wall cap would hold, and (n,) the label each held when the phantom was made (lung or
    # whatever lay there, in ``labels`` and ``ct``); see `placement_labels`
    airway_end_caps_ras: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    airway_end_caps_held: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def lesion(self, name: str) -> Lesion:
        return next(les for les in self.lesions if les.name == name)

    def placement_labels(self) -> np.ndarray:
        """The label array [k, j, i] that lesion placement reads: ``labels.array`` (a copy) with
        the voxels of ``airway_end_caps_ras`` that lie in the grid and still hold the label they
        held when the phantom was made (no lesion painted over them since) set to ``airway_wall``. The
        airway does not end at a terminal branch's end plane: it runs on below CT resolution
        (Weibel 1963; Webb, Radiology 2006;239:322), so a lesion site keeps clear of it there
        as of the drawn wall; the region is the one the closed wall cap painted before the
        ends were opened (issue 17), so the lesion sites drawn from the labels (``finish``,
        ``screening``, ``placement``) are those of the closed-end phantom, for the same seed.
        Unchanged copy when there are no such voxels or no ``airway_wall`` label."""
        arr = self.labels.array.copy()
        wall = next((v for v, n in self.labels.labels.items() if n == "airway_wall"), None)
        pts = np.asarray(self.airway_end_caps_ras, float).reshape(-1, 3)
        if wall is None or not len(pts):
            return arr
        kji = self.labels.nearest_kji(pts)
        inside = np.all((kji >= 0) & (kji < np.asarray(arr.shape)), axis=1)
        idx = tuple(kji[inside].T)
        same = arr[idx] == np.asarray(self.airway_end_caps_held)[inside]
        arr[tuple(kji[inside][same].T)] = wall
        return arr

    def to_json(self) -> dict:
        return {
            "spacing_mm": self.spacing, "seed": self.seed, "params": self.params,
            "coordinate_system": "RAS mm (+x patient right, +y anterior, +z superior)",
            "labels": {str(k): v for k, v in sorted(self.labels.labels.items())},
            "lesions": [les.to_dict() for les in self.lesions],
            "airway_tree": [b.to_dict() for b in self.airway_tree],
            **self.geometry,
        }


def _label_names(n_tumors: int, n_nodules: int) -> list[str]:
    return (["skin", "subcutaneous_fat", "muscle", "body", "diaphragm"] + LUNG_LOBES
            + ["liver", "gallbladder", "spleen", "stomach", "stomach_gas", "kidney_right", "kidney_left",
               "heart", "aorta", "inferior_vena_cava", "esophagus", "portal_vein_and_splenic_vein"]
            + VERTEBRAE + ["spinal_cord"] + RIBS + ["costal_cartilages", "sternum",
                                                    "lung_vessels", "portal_vein", "hepatic_vein",
                                                    "trachea", "airways", "airway_wall"]
            + [f"liver_tumor_{i + 1}" for i in range(n_tumors)]
            + [f"lung_nodule_{i + 1}" for i in range(n_nodules)])


def _inside(p: Painter, names):
    """``fn(points (n, 3) RAS mm) -> bool (n,)``: which points' nearest voxels hold one of the
    labels ``names`` (False outside the grid). The labels are uint8: a 256-entry table of the
    wanted values answers what ``np.isin`` answered, without its per-call set-up (2 against 19 us
    a call: ~0.1 CPU-s over the ~6,000 calls of one phantom's trees, issue 20)."""
    wanted = np.zeros(np.iinfo(p.labels.dtype).max + 1, bool)
    wanted[[p.v(n) for n in names]] = True
    g = p.g

    def fn(pts):
        idx = np.rint((np.asarray(pts) - g.lo) / g.spacing).astype(int)
        ok = np.all((idx >= 0) & (idx < g.shape_xyz), axis=1)
        out = np.zeros(len(idx), bool)
        ii = idx[ok]
        out[ok] = wanted[p.labels[ii[:, 2], ii[:, 1], ii[:, 0]]]
        return out

    return fn


def _airway_tree(p: Painter, rng, max_generation: int) -> list[trees.Branch]:
    B = trees.Branch
    a = np.array
    tr = [B(0, -1, 0, a([0.0, 15, 330]), a([0.0, 8, 238]), 8.0, 7.5, "trachea"),
          B(1, 0, 1, a([0.0, 8, 238]), a([22.0, 2, 222]), 6.0, 5.6, "right_main_bronchus"),
          B(2, 0, 1, a([0.0, 8, 238]), a([-40.0, 0, 215]), 5.5, 5.0, "left_main_bronchus"),
          B(3, 1, 2, a([22.0, 2, 222]), a([45.0, 0, 238]), 4.2, 4.0, "right_upper_lobe_bronchus"),
          B(4, 1, 2, a([22.0, 2, 222]), a([32.0, 0, 198]), 5.0, 4.8, "bronchus_intermedius"),
          B(5, 4, 3, a([32.0, 0, 198]), a([45.0, 35, 195]), 3.5, 3.3, "right_middle_lobe_bronchus"),
          B(6, 4, 3, a([32.0, 0, 198]), a([45.0, -10, 170]), 4.3, 4.1, "right_lower_lobe_bronchus"),
          B(7, 2, 2, a([-40.0, 0, 215]), a([-55.0, 12, 232]), 4.2, 4.0, "left_upper_lobe_bronchus"),
          B(8, 2, 2, a([-40.0, 0, 215]), a([-52.0, -10, 190]), 4.3, 4.1, "left_lower_lobe_bronchus")]
    for b in tr[1:]:
        tr[b.parent].children.append(b.id)
    lobe_of = {3: "lung_upper_lobe_right", 5: "lung_middle_lobe_right", 6: "lung_lower_lobe_right",
               7: "lung_upper_lobe_left", 8: "lung_lower_lobe_left"}
    for seed_id, lobe in lobe_of.items():
        trees.grow(tr, [seed_id], _inside(p, [lobe]), rng, max_generation, min_radius=0.9,
                   wall_frac=0.25)
    return tr


def _vessel_tree(p: Painter, rng, roots, region, max_generation, min_radius):
    br = []
    for s, e, r in roots:
        br.append(trees.Branch(len(br), -1, 1, np.array(s, float), np.array(e, float), r, r * 0.95))
    trees.grow(br, list(range(len(br))), _inside(p, region), rng, max_generation, min_radius,
               angle_deg=(25.0, 40.0), avoid_collisions=True)
    return br


def _ball_only(p: Painter, center, radius, names) -> bool:
    """True when every voxel within ``radius`` mm of ``center`` has one of the ``names``."""
    sl = p.g.box(center - radius, center + radius)
    if sl is None:
        return False
    z, y, x = p.g.coords(sl)
    ball = (x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2 <= radius ** 2
    return bool(np.all(np.isin(p.labels[sl][ball], [p.v(n) for n in names])))


def _place(p: Painter, rng, organ_names, radius, clearance, avoid_mask=None, labels=None):
    """A centre (RAS) whose ball of radius+clearance lies in the organs of ``labels`` (default
    ``p.labels``); deterministic."""
    g = p.g
    organ = np.isin(p.labels if labels is None else labels, [p.v(n) for n in organ_names])
    lo, hi = [np.array(v) for v in zip(*[(s.start, s.stop) for s in ndimage.find_objects(organ.astype(np.uint8))[0]])]
    sub = organ[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if avoid_mask is not None:
        sub = sub & ~avoid_mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    import edt
    depth = edt.edt(sub, anisotropy=(g.spacing,) * 3, black_border=True)
    cand = np.argwhere(depth >= radius + clearance)
    if len(cand) == 0:
        return None
    kji = cand[rng.integers(len(cand))] + lo
    return g.lo + kji[::-1] * g.spacing


def airway_wall_share(g, tree, lumen_r, wall_mm, wall_frac: float) -> np.ndarray:
    """uint8 [k, j, i]: 255 x the share of each painted airway-wall voxel that is wall (partial
    volume, as the fissures' in ``ct_model``), 0 elsewhere. A small airway's lumen (at least
    0.87 voxel) and wall (at least 1 mm) are painted thicker than they are, so its wall would hold
    several times the soft tissue of the real one: a 0.9 mm-radius bronchiole's wall (25 % of the
    lumen radius: Hasegawa M et al., AJRCCM 2006; 1/6-1/10 of the diameter: Webb WR, Muller NL,
    Naidich DP, High-Resolution CT of the Lung) is 1.4 mm^2 in cross-section, its painted ring
    11.3 mm^2 at 1.5 mm, a soft-tissue tube brighter than its own artery. The share is the true
    wall's cross-section over the painted ring's, per branch (1 where the floors do not act:
    lobar and larger); where rings overlap the larger share holds. ``lumen_r``: (n, 2) painted
    lumen radii at each end per branch of ``tree``, ``wall_mm``: (n,) painted wall (mm)."""
    segs = trees.segments(tree)
    r = segs[:, 6:8].mean(1)
    true = (r * (1 + wall_frac)) ** 2 - r ** 2
    rp = lumen_r.mean(1)
    painted = (rp + wall_mm) ** 2 - rp ** 2
    code = np.rint(255 * np.clip(true / painted, 0.0, 1.0)).astype(int)
    out = np.zeros(g.shape, np.uint8)
    for i in np.argsort(code, kind="stable"):   # ascending: the larger share is painted last
        capsules(g, out, np.r_[segs[i, :6], lumen_r[i] + wall_mm[i]][None], int(code[i]))
    return out


def wall_partial_volume(ct, p: Painter, lut) -> None:
    """In place: each airway-wall voxel of ``ct`` (HU, before blur) at under + share x (wall -
    under), the share of `airway_wall_share` (``p.wall_share``; nothing when absent) and under
    the HU (``lut`` of labels) of the tissue the wall was painted over (``p.wall_under``: lung,
    a vessel running beside the bronchus, mediastinum): the voxel holds that much wall and the
    rest of what lay there."""
    share = getattr(p, "wall_share", None)
    if share is None:
        return
    m = p.labels == p.v("airway_wall")
    under = lut[p.wall_under[m]]
    ct[m] = under + share[m].astype(np.float32) / 255.0 * (HU["airway_wall"] - under)


SMALL_AIRWAY_WALLS = ("floor", "partial_volume")


def finish(p: Painter, names, rng, tree, n_liver_tumors: int, n_lung_nodules: int, spacing: float,
           seed: int, params: dict, geometry: dict, ct_fn=None, small_airway_walls: str = "floor") -> Phantom:
    """Paint the airway ``tree`` (lumen and wall), place the lesions, make the CT and return the
    `Phantom`. ``ct_fn(p, lesions, rng) -> int16 array`` (default `_ct_from_labels`).
    ``small_airway_walls``: "floor" paints every airway wall voxel at the wall's HU (a wall at
    least 1 mm thick, several times a small airway's own); "partial_volume" paints each wall voxel
    at the share of it the anatomical wall fills (`airway_wall_share`); the labels are the same."""
    if small_airway_walls not in SMALL_AIRWAY_WALLS:
        raise ValueError(f"unknown small_airway_walls {small_airway_walls!r}; one of {SMALL_AIRWAY_WALLS}")
    g = p.g
    # airways: lumen with wall, over lung, vessels and mediastinum
    wall_frac = 0.25  # wall thickness ~ 25% of lumen radius (Hasegawa M et al., AJRCCM 2006)
    segs = trees.segments(tree)
    lumen_r = np.maximum(segs[:, 6:8], 0.87 * spacing)  # >= half a voxel diagonal: 26-connected
    protect = [p.v(n) for n in VERTEBRAE + RIBS + ["sternum"]]
    # a branch without children is where the tree stops being drawn, not where the airway ends:
    # the bronchi divide on to the terminal bronchioles (~0.6 mm, generation ~16: Weibel 1963)
    # and fade below CT resolution, lumen and wall together (airways under ~2 mm across, walls
    # under ~0.2-0.3 mm, are not seen: Webb WR, Radiology 2006;239:322-338). No wall cap closes
    # them; a closed cap drew a soft-tissue plug, denser than the lumen, at every terminal end
    # (median peak -460 HU 1.5 mm past the lumen's end on the 1.5 mm screening phantom, where
    # the real chest CTA's visible airway ends read flat lung, -790 HU, issue 17)
    terminal = np.array([not b.children for b in tree], bool)
    wall_mm = np.maximum(segs[:, 6] * wall_frac, 1.0)
    under = p.labels.copy() if small_airway_walls == "partial_volume" else None
    closed = p.labels.copy()   # the closed ends, for lesion placement only (Phantom.placement_labels)
    capsules(g, closed, np.c_[segs[:, :6], lumen_r], p.v("airways"), p.v("airway_wall"),
             wall=wall_mm, protect=protect)
    capsules(g, p.labels, np.c_[segs[:, :6], lumen_r], p.v("airways"), p.v("airway_wall"),
             wall=wall_mm, protect=protect, open_end=terminal)
    if small_airway_walls == "partial_volume":
        p.wall_share = airway_wall_share(g, tree, lumen_r, wall_mm, wall_frac)
        p.wall_under = under
    capsules(g, p.labels, np.c_[segs[:1, :6], segs[:1, 6:8]], p.v("trachea"))
    caps = (closed == p.v("airway_wall")) & ~np.isin(p.labels, [p.v("airway_wall"), p.v("trachea")])
    del closed
    airway_tree = [AirwayBranch(b.id, b.parent, b.generation, b.start, b.end, b.r0, b.r1,
                                max(b.r0 * wall_frac, 1.0), b.name) for b in tree]
    # lesions
    lesions: list[Lesion] = []
    tumor_radii = [15.0, 9.0, 12.0, 20.0, 7.0]
    vessels = np.isin(p.labels, [p.v(n) for n in ("portal_vein", "hepatic_vein", "inferior_vena_cava",
                                                  "gallbladder", "portal_vein_and_splenic_vein")])
    for i in range(n_liver_tumors):
        rad = tumor_radii[i % len(tumor_radii)]
        c = _place(p, rng, ["liver"], rad, 4.0, vessels)
        if c is None:
            continue
        name = f"liver_tumor_{i + 1}"
        ellipsoid(g, p.labels, p.v(name), c, (rad,) * 3)
        lesions.append(Lesion(name, "liver_tumor", "hypodense", c, rad, "liver"))
    subtypes = ["solid", "part_solid", "ground_glass"]
    nodule_radii = [7.5, 10.0, 6.0, 12.0, 4.0]
    placing = p.labels.copy()   # the labels with the closed ends' caps (Phantom.placement_labels)
    placing[caps] = p.v("airway_wall")
    caps = np.argwhere(caps)
    held = p.labels[tuple(caps.T)]
    not_parenchyma = np.isin(placing, [p.v(n) for n in ("lung_vessels", "airways", "airway_wall")])
    for i in range(n_lung_nodules):
        rad = nodule_radii[i % len(nodule_radii)]
        name = f"lung_nodule_{i + 1}"
        c, touches = None, False
        if i == 0:  # a nodule at the end of a peripheral bronchus: bronchus sign by construction
            ends = sorted((b for b in tree if b.generation >= 5 and not b.children),
                          key=lambda b: (b.generation, b.id))
            for b in ends:
                cand = b.end + b.direction * (rad + 0.5 * b.r1)
                if _ball_only(p, cand, rad + 3.0, LUNG_LOBES + ["airways", "airway_wall"]):
                    c, touches = cand, True
                    break
        if c is None:
            c = _place(p, rng, LUNG_LOBES, rad, 5.0, not_parenchyma, placing)
        if c is None:
            continue
        kji = np.rint((c - g.lo) / g.spacing).astype(int)[::-1]
        organ = names[p.labels[tuple(kji)] - 1] if p.labels[tuple(kji)] else "lung"
        if organ not in LUNG_LOBES:
            organ = next((n for n in LUNG_LOBES if n.endswith("right") == (c[0] > 0)), organ)
        ellipsoid(g, p.labels, p.v(name), c, (rad,) * 3)
        ellipsoid(g, placing, p.v(name), c, (rad,) * 3)
        lesions.append(Lesion(name, "lung_nodule", subtypes[i % 3], c, rad, organ, touches))
    del placing, not_parenchyma
    keep = p.labels[tuple(caps.T)] == held   # a lesion painted over a cap voxel holds it, as it did the cap
    caps_ras, held = g.lo + caps[keep][:, ::-1] * g.spacing, held[keep]
    ct = (ct_fn or _ct_from_labels)(p, lesions, rng)
    present = np.bincount(p.labels.ravel(), minlength=len(names) + 1) > 0
    labels = Volume(p.labels, g.ijk_to_ras(), "phantom_labels",
                    {i + 1: n for i, n in enumerate(names) if present[i + 1]})
    ctv = Volume(ct, g.ijk_to_ras(), "phantom_ct")
    return Phantom(ctv, labels, lesions, airway_tree, spacing, seed, params, geometry, caps_ras, held)


def paint_nodule_subtypes(ct, p: Painter, lesions) -> None:
    """Ground-glass and part-solid (a solid core half the radius in a ground-glass halo) lung
    nodules: their CT numbers, in place."""
    g, L = p.g, p.labels
    for les in lesions:
        if les.kind != "lung_nodule" or les.subtype == "solid":
            continue
        m = L == p.v(les.name)
        ct[m] = HU["nodule_ground_glass"]
        if les.subtype == "part_solid":
            sl = g.box(les.center_ras - les.radius_mm, les.center_ras + les.radius_mm)
            zz, yy, xx = g.coords(sl)
            d = np.sqrt((xx - les.center_ras[0]) ** 2 + (yy - les.center_ras[1]) ** 2 + (zz - les.center_ras[2]) ** 2)
            sub = ct[sl]
            sub[(d <= 0.5 * les.radius_mm) & m[sl]] = HU["nodule_solid"]


def _ct_from_labels(p: Painter, lesions, rng) -> np.ndarray:
    g, L, names = p.g, p.labels, p.names
    lut = np.full(len(names) + 1, HU["air"], np.float32)
    for i, n in enumerate(names):
        key = n
        if n.startswith(("rib_", "vertebrae_")) or n == "sternum":
            key = "bone_trabecular"
        elif n.startswith("lung_") and n != "lung_vessels" and not n.startswith("lung_nodule"):
            key = "lung"
        elif n.startswith("kidney"):
            key = "kidney"
        elif n in ("trachea", "airways"):
            key = "airway_lumen"
        elif n.startswith("liver_tumor"):
            key = "liver_tumor"
        elif n.startswith("lung_nodule"):
            key = "nodule_solid"
        lut[i + 1] = HU[key]
    ct = lut[L]
    wall_partial_volume(ct, p, lut)
    # cortical shell of the bones
    bone_vals = [p.v(n) for n in names if n.startswith(("rib_", "vertebrae_")) or n == "sternum"]
    bone = np.isin(L, bone_vals)
    import edt
    depth = edt.edt(bone, anisotropy=(g.spacing,) * 3)
    ct[bone & (depth <= max(CORTEX_MM, g.spacing))] = HU["bone_cortical"]  # at least one voxel
    # fissures: a thin denser sheet where lobes meet
    z, y, x = g.full()
    from .torso import HORIZONTAL_FISSURE_Z, oblique_fissure_z
    lungm = np.isin(L, [p.v(n) for n in LUNG_LOBES])
    sheet = (np.abs(z - oblique_fissure_z(y)) * 0.78 < 0.5 * g.spacing) | \
            ((np.abs(z - HORIZONTAL_FISSURE_Z) < 0.5 * g.spacing) & (x > 0) & (z >= oblique_fissure_z(y)))
    ct[lungm & sheet] = HU["fissure"]
    paint_nodule_subtypes(ct, p, lesions)
    ct[table_mask(g)] = HU["table"]
    ct = ndimage.gaussian_filter(ct, BLUR_SIGMA_MM / g.spacing, mode="nearest")
    ct += rng.normal(0.0, NOISE_SD, size=ct.shape).astype(np.float32)
    return np.clip(np.rint(ct), -1024, 3071).astype(np.int16)


