"""Scopes, reach and the route from the trachea to a lesion along the airway centrelines.

A centreline point is reachable by a scope when the smoothed lumen diameter at every point from
the trachea to it is at least the scope's outer diameter minus a tolerance. The route ends at
the reachable point whose airway wall is closest to the lesion. Positions RAS mm.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputError
from ...volume import Volume
from . import verdict as verdicts
from .mask_checks import limits
from .tree import AirwayTree

SCOPES_FILE = Path(__file__).resolve().parents[2] / "data" / "scopes.json"
DIRECTION_WINDOW_MM = 5.0   # airway axis at a point: from the centreline point this far proximal


def load_scopes() -> dict:
    """The scope catalogue (``imagio/data/scopes.json``, or the file named by $IMAGIO_SCOPES);
    read once per file version, not on every route query."""
    path = Path(os.environ.get("IMAGIO_SCOPES", SCOPES_FILE))
    try:
        return _read_scopes(str(path), path.stat().st_mtime_ns)
    except OSError as e:
        raise InputError(f"scope catalogue {path} is not usable: {e}") from None


@lru_cache(maxsize=4)
def _read_scopes(path: str, mtime_ns: int) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        for name, s in doc["scopes"].items():
            if not (0 < float(s["outer_diameter_mm"]) < 20) or not s.get("source"):
                raise ValueError(f"scope {name!r} needs outer_diameter_mm in (0, 20) and a source")
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"scope catalogue {path} is not usable: {e}") from None
    return doc


def scope_diameter(scope: str | float, allow_zero: bool = True) -> tuple[str, float]:
    """(name, outer diameter mm) of a catalogue scope, or of a number given in mm. Raises
    InputError for an unknown name or a diameter that is negative or not finite (new-user trial
    28: --scope -3 planned a route); 0, the airway itself for any instrument, only with
    ``allow_zero`` (the command line refuses it)."""
    try:
        od = float(scope)
    except (TypeError, ValueError):
        od = None
    if od is not None:
        if not (0 <= od < np.inf and (od > 0 or allow_zero)):   # 0: the airway itself, any instrument
            raise InputError(f"--scope {scope}: a scope's outer diameter must be a positive number of mm "
                             "(or a name from imagio/data/scopes.json)")
        return f"{od:g} mm scope", od
    scopes = load_scopes()["scopes"]
    if scope not in scopes:
        raise InputError(f"unknown scope {scope!r}; choose one of {', '.join(scopes)} or give a diameter in mm")
    return str(scope), float(scopes[scope]["outer_diameter_mm"])


def device_range_mm() -> tuple[float, float, str]:
    """(min, max, source) outer diameter (mm) of the devices advanced along an airway route
    (``outer_diameter_range_mm`` of the catalogue in use, else of IMAGIO's own)."""
    r = load_scopes().get("outer_diameter_range_mm") or _read_scopes(str(SCOPES_FILE), SCOPES_FILE.stat().st_mtime_ns)[
        "outer_diameter_range_mm"]
    return float(r["min"]), float(r["max"]), str(r["source"])


def implausible_scope(scope: str | float) -> str:
    """A warning ('' when none) for a ``--scope`` diameter in mm outside the range of real
    bronchoscopes and catheters (`device_range_mm`): new-user trial 31 planned a 0.6 mm "scope"
    (a typo for 6, or a needle) to 'reached' without a word."""
    name, od = scope_diameter(scope)
    lo, hi, _ = device_range_mm()
    if od == 0 or lo <= od <= hi:
        return ""
    return (f"--scope {scope}: a {od:g} mm outer diameter is {'thinner' if od < lo else 'wider'} than any "
            f"bronchoscope or catheter advanced along the airways ({lo:g}-{hi:g} mm, outer_diameter_range_mm in "
            "imagio/data/scopes.json): check the value (mm); the route is planned for it as given")


def scope_and_tolerance(scope: str | float, tolerance_mm: float | None = None) -> tuple[str, float, float]:
    """(name, outer diameter mm, tolerance mm) of a scope and a tolerance (None: the catalogue's
    default). Raises InputError for a tolerance outside [0, diameter), naming what is wrong: the
    scope when the user gave no tolerance (new-user trial 31: --scope 0.3 blamed the default
    --tolerance), else the tolerance (trial 28: -20 mm blamed the airway tree's root)."""
    name, od = scope_diameter(scope)
    tol = load_scopes().get("default_tolerance_mm", 0.5) if tolerance_mm is None else float(tolerance_mm)
    if not (0 <= tol and (tol < od or od == 0)):
        if tolerance_mm is None:
            lo, hi, _ = device_range_mm()
            raise InputError(f"--scope {scope}: a {od:g} mm scope is not wider than the default tolerance ({tol:g} mm "
                             f"a lumen may be narrower than the scope), and thinner than any bronchoscope or catheter "
                             f"({lo:g}-{hi:g} mm, imagio/data/scopes.json): check the value (mm), or give "
                             f"--tolerance below {od:g}")
        raise InputError(f"--tolerance {tol:g}: the mm a lumen may be narrower than the scope must lie in "
                         f"[0, {od:g}) for the {verdicts.scope_words(name)}")
    return name, od, tol


def route_min_diameter(tree: AirwayTree) -> np.ndarray:
    """[N] the narrowest lumen calibre (mm) from the carina to each centreline point: the least
    `section.calibre_profile` (the equivalent-circle diameter of the mask's mean cross-sectional
    area over a few voxels of centreline, clear of the branch points) from the main bronchus to
    the point (inf in the trachea, which no bronchoscope
    is too wide for, and its cut top's centreline may hug a wall; inf for points pruned from the
    tree). Not twice the wall distance at the centreline points: that reads up to a voxel diagonal
    short, in steps of the grid, at whichever voxel the skeleton passes (new-user trial 111: a
    right middle lobe bronchus 4.08 mm on its grid, 3.20 mm re-gridded; a branch 3.00 or 4.24 mm by
    a cut in another lobe), so the scope's reach moved with the grid and the rest of the tree."""
    from .section import calibre_profile

    diam = np.nan_to_num(calibre_profile(tree), nan=np.inf)
    out = np.full(len(diam), np.inf)
    for b in tree.branches:  # parents before children
        ids = b.point_ids
        if b.generation == 0:
            continue
        start = out[tree.parent[ids[0]]] if b.parent >= 0 else np.inf
        out[ids] = np.minimum.accumulate(np.minimum(diam[ids], start))
    return out


@dataclass
class Target:
    """A lesion as surface points (RAS mm) with its centre; a point target is a one-point lesion."""
    centre: np.ndarray
    surface: np.ndarray
    mask: Volume | None = None

    @classmethod
    def from_mask(cls, lesion: Volume, mask: np.ndarray | None = None) -> "Target":
        from scipy import ndimage

        from ...segmentation.common import bbox_slices

        m = (lesion.array > 0) if mask is None else np.asarray(mask, bool)
        box = bbox_slices(m)   # the mask's box + one voxel: the erosion's neighbours all in it
        if box is None:
            raise InputError("the target lesion mask is empty: segment the nodule first")
        lo = np.array([s.start for s in box])[:, None]
        mb = m[box]
        edge = mb & ~ndimage.binary_erosion(mb)   # (a box face on the image's border: outside, as there)

        def kji(a):   # np.argwhere(a) on the whole grid: the same indices, order and layout
            return (np.asanyarray(np.nonzero(a)) + lo).T

        surf = lesion.kji_to_world(kji(edge))
        centre = lesion.kji_to_world(kji(mb).mean(axis=0)[None])[0]
        return cls(centre, surf, lesion.with_array(m.astype(np.uint8)))

    @classmethod
    def from_point(cls, ras) -> "Target":
        p = np.asarray(ras, float).reshape(3)
        return cls(p, p[None].copy(), None)


@dataclass
class Route:
    scope: str
    scope_diameter_mm: float
    reached: bool                     # the scope's end touches the lesion (wall distance <= 0)
    end_point_id: int
    end_ras: np.ndarray
    remaining_mm: float               # airway wall to lesion surface at the route's end (0 if touching)
    exit_angle_deg: float             # airway axis at the end vs the direction to the lesion
    length_mm: float
    generation: int
    branch_ids: list
    branch_names: list                # one per branch id ("" unnamed); see route_names for the airways passed
    point_ids: np.ndarray
    points: np.ndarray                # [M, 3] RAS, trachea to end
    diameters_mm: np.ndarray          # [M]
    bronchus_sign: bool | None        # some airway of the mask (reachable or not) enters or touches the lesion;
                                      # None for a point target (not assessable); see verdict.bronchus_sign
    closest_airway_mm: float          # from any airway wall, whatever its size
    narrowest_mm: float = float("inf")  # narrowest lumen from the carina to the end
    target_lobe: str = ""             # the lobe the target lies in ("" when unknown)
    target_lobe_from: str = ""        # "lobe masks" | "the bronchus leading into it" | "airway territories" | ""
    end_lobe: str = ""                # the lobe of the branch the route ends in
    warnings: list = None             # doubts that travel with the route
    reach_within_mm: dict = None      # {N mm: largest scope outer diameter (mm) that gets within N mm}
    turns: list = None                # [(branch name or id, turn angle deg)] at each branch point passed
    verdict: str = ""                 # "reached: ..." or "short by N mm: ... (why it stops)" (verdict.reach)
    bronchus_sign_reason: str = ""    # "present: ..." | "not seen in the airway mask: ..." | "not assessable: ..."
    sign_entry: int = -1              # the centreline point of the airway leading into the lesion (-1 none)
    reach_verified: bool = True       # False: 'reached' rests on airway mask the CT does not confirm
    stop_resolved: bool = True        # False: not reached, but the lumen that stops the scope is at the CT's
                                      # resolution limit (verdict.stop_is_resolved): the airway may be wide enough
    left_out_piece: dict | None = None  # not reached: the airway piece left out of the tree that comes closer
                                        # to the lesion than the route's end (verdict.left_out_piece), else None
    names_note: str = ""              # the route's names contradict the label map's side at the target
                                      # (`names_side_note`), said beside the names wherever they are written

    @property
    def reached_said(self) -> bool | None:
        """'reached' as the outputs give it: True, False, or None when the airway mask reaches the
        lesion but the CT does not confirm the airway it rests on (unverified; trial 30 L3: the
        JSON said true while the verdict said unverified)."""
        return None if self.reached and not self.reach_verified else bool(self.reached)

    @property
    def reach(self) -> str:
        """"reached", "unverified" or "not reached" (see `reached_said`)."""
        return {True: "reached", None: "unverified", False: "not reached"}[self.reached_said]

    def to_dict(self) -> dict:
        return {"scope": self.scope, "scope_diameter_mm": self.scope_diameter_mm, "reached": self.reached_said,
                "reach": self.reach,
                "end_ras": [round(float(c), 2) for c in self.end_ras],
                "remaining_mm": round(self.remaining_mm, 2), "exit_angle_deg": round(self.exit_angle_deg, 1),
                "length_mm": round(self.length_mm, 1), "generation": self.generation,
                "branch_ids": self.branch_ids, "branch_names": self.branch_names,
                "route_names": route_names(self.branch_names),
                **({"route_names_note": self.names_note} if self.names_note else {}),
                "min_diameter_mm": round(self.narrowest_mm, 2) if np.isfinite(self.narrowest_mm) else None,
                "verdict": self.verdict, "stop_resolved": self.stop_resolved,
                "left_out_piece": self.left_out_piece,
                "bronchus_sign": self.bronchus_sign, "bronchus_sign_reason": self.bronchus_sign_reason,
                "closest_airway_mm": round(self.closest_airway_mm, 2),
                "target_lobe": self.target_lobe, "target_lobe_from": self.target_lobe_from,
                "end_lobe": self.end_lobe, "warnings": list(self.warnings or []),
                "largest_scope_within_mm": self.reach_within_mm or {},
                "turns_deg": [[n, round(a, 1)] for n, a in (self.turns or [])],
                "n_points": int(len(self.points))}


def wall_distance(tree: AirwayTree, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """([N] distance from each centreline point's airway wall to the lesion surface, mm,
    negative when the lumen overlaps it; [N] index of the nearest surface point)."""
    d, idx = cKDTree(target.surface).query(tree.points)
    inside = np.zeros(len(d), bool)
    if target.mask is not None:
        inside = target.mask.sample(tree.points, order=0) > 0
    d = np.where(inside, -d, d)
    return d - tree.radius, idx


def axis_at(tree: AirwayTree, pid: int) -> np.ndarray:
    """Unit airway direction (distal) at a centreline point, over the last few mm."""
    path = tree.path_to_root(pid)
    s = tree.dist_from_root[path]
    j = int(np.searchsorted(s, s[-1] - DIRECTION_WINDOW_MM))
    v = tree.points[path[-1]] - tree.points[path[min(j, len(path) - 2)]] if len(path) > 1 else np.zeros(3)
    n = np.linalg.norm(v)
    return v / n if n > 0 else np.array([0.0, 0.0, -1.0])


TERRITORY_NEIGHBOURS = 5   # terminal airway points that vote for a target's lobe
REACH_WITHIN_MM = (0.0, 5.0, 10.0, 20.0)
# the territory vote is uncertain when the runner-up lobe has at least this share of the winner's weight
LOBE_VOTE_MARGIN = 0.5
MIN_TRACHEA_MM = float(limits()["min_trachea_mm"]["value"])   # airway_limits.json (Breatnach 1984)
MIN_TRACHEA_IN_VIEW_MM = float(limits()["min_trachea_in_view_mm"]["value"])   # idem


def target_lobe(tree: AirwayTree, target: Target, lobes: Volume | None = None) -> tuple[str, str]:
    """(lobe name, how it was found) of a target: the lobe mask at its centre, or around it
    within 20 mm when the centre is in a nodule (``anatomy.LobeMap``), when ``lobes`` (a label
    Volume with TotalSegmentator lobe names) has one there; otherwise the majority lobe of
    the ``TERRITORY_NEIGHBOURS`` terminal airway points nearest to its centre, weighted by inverse
    squared distance (the territories of the lobar subtrees); ("", "") when the tree has no lobar names."""
    from .anatomy import LobeMap

    lm = LobeMap(lobes)
    if lm:
        # a nodule's centre: the lobe around it (nodules up to 30 mm: spheres up to 20 mm)
        name = str(lm.of(target.centre[None], radii=np.arange(2.0, 21.0, 2.0))[0])
        if name:
            return name, "lobe masks"
    leaves = [b for b in tree.branches if b.lobe and not b.children]
    if not leaves:
        return "", ""
    ends = tree.points[[b.point_ids[-1] for b in leaves]]
    d, idx = cKDTree(ends).query(target.centre, k=min(TERRITORY_NEIGHBOURS, len(leaves)))
    w = 1.0 / np.maximum(np.atleast_1d(d), 1.0) ** 2   # nearer terminal points weigh more
    lob = np.array([leaves[i].lobe for i in np.atleast_1d(idx)])
    names = np.unique(lob)
    score = np.array([w[lob == n].sum() for n in names])
    order = np.argsort(-score)
    if len(order) > 1 and score[order[1]] >= LOBE_VOTE_MARGIN * score[order[0]]:
        return str(names[order[0]]), f"airway territories (uncertain: near {names[order[1]]})"
    return str(names[order[0]]), "airway territories"


def root_width_mm(tree: AirwayTree) -> float:
    """The width (mm) of ``tree``'s root: the median over its generation-0 branches' points of the
    equivalent-circle diameter of the mask's section normal to the centreline
    (`section.branch_diameters`: the mean calibre, unbiased by the voxel grid); twice the median
    centreline radius (the wall distance) where the tree has no mask or no section is measured.
    The wall distance is the inscribed radius of the voxelised lumen: it reads about 8 % under the
    mask's width on a 15 mm trachea (ATM 305 YangLab: 14.2 mm against a section of 15.5 mm; trial
    93 F2: a normal 11-12 mm trachea read 9.9 mm and was refused as no trachea)."""
    from .section import branch_diameters

    gen0 = [b for b in tree.branches if b.generation == 0]
    d = np.concatenate([branch_diameters(tree, b.id) for b in gen0]) if gen0 else np.zeros(0)
    if np.isfinite(d).any():
        return float(np.nanmedian(d))
    return 2 * float(np.median(tree.radius[np.concatenate([b.point_ids for b in gen0])]))


def check_root(tree: AirwayTree) -> float:
    """The tree's root width (mm, `root_width_mm`); InputError when it is narrower than any adult trachea (``min_trachea_mm``,
    airway_limits.json), or when the airway mask ends below the image's superior edge
    (``tree.top_gap_mm`` > 0: no airway leaves the field of view upwards) and the root is
    narrower than the narrowest adult trachea itself (``min_trachea_in_view_mm``), or when it ends
    there and does not divide at a carina into the two main bronchi (``anatomy.label_tree`` named
    none). The tree is rooted at its widest centreline point within a voxel of its top
    (``tree._rooted_tree``), which is the trachea only when the trachea is in the mask: a slab or
    crop below the carina, or a mask of the bronchi only (the rule-based `airways` label without
    `trachea`), roots it at a bronchus that a route would start from and name "trachea" (the
    phantom's bronchi were planned from a 3 mm root; its right lower airways alone, in some
    storage orders, from an 8.5 mm lower-lobe stump: trial 90b; its airways cut 5-15 mm below the
    carina from a 12-15 mm main bronchus, as wide as a trachea). A trachea in a chest CT leaves
    the scan through its superior edge (the larynx lies above the lung apices); one whose mask ends
    inside the image is a trachea only at a trachea's calibre and with the carina below it, where
    it divides into the two main bronchi (Standring S (ed), Gray's Anatomy, 41st ed, 2016, ch.
    'Trachea and bronchi'); a mask of one lung's airways only whose trachea leaves the image
    through its top (after a pneumonectomy) is not refused.
    Where the image's superior edge cuts the airways (``tree.top_view``), the scan is refused first
    when it starts below the carina (two lumens wider than a segmental bronchus that the mask does
    not join within the image) or at it (the lumen it cuts divides before the point where the two
    bronchi's axes meet is in view): `carina_view.trachea_problem`, independent of the tree, whose
    root there is a main bronchus named "trachea" (new-user trial 99 F4/F4b)."""
    from .carina_view import trachea_problem

    root_mm = root_width_mm(tree)
    problem = trachea_problem(getattr(tree, "top_view", None), tree)
    if problem:
        raise InputError(problem)
    gap = getattr(tree, "top_gap_mm", None)
    in_view = gap is not None and gap > 0
    what = f"this airway tree's root is {root_mm:.1f} mm wide (the mean calibre of the mask's sections across it)"
    todo = ("a route starts at the trachea: give a scan and an airway mask that include it (trachea and airways "
            "labels)")
    tilt = getattr(tree, "tilted_top_deg", None)
    if tilt is not None:
        # the root is the widest airway of the grid's top section (`tree._rooted_tree`); on a tilted grid a
        # trachea whose mask ends below that section leaves only bronchi there: not said to be missing
        todo = (f"the image's grid is tilted {tilt:.0f} degrees from axial (an oblique reformat), so its top section "
                "is not level and the airways it cuts need not include the trachea (its mask may end below that "
                "section, beside upper-lobe bronchi that reach it); resample the scan and its airway mask to an "
                f"axial grid, or give an airway mask whose trachea reaches the image's superior edge; {todo}")
    if root_mm < MIN_TRACHEA_MM:
        where = ("the trachea is not at the top of the airway mask (a slab or crop below the carina, a mask of the "
                 "bronchi only, a segmentation that stops short of it)" if tilt is not None else
                 "the trachea is not in the airway mask (a slab or crop below the carina, a mask of the bronchi only) "
                 "or the segmentation stops short of it")
        ends = (f"; the airway mask ends {gap:.0f} mm below the image's superior edge (along S, from its highest "
                "point)" if in_view else "")
        raise InputError(f"{what}, not a trachea (adult tracheal lumen 10-25 mm, Breatnach 1984): {where}{ends}; {todo}")
    if in_view and root_mm < MIN_TRACHEA_IN_VIEW_MM:
        # the mask may hold a narrow trachea that the segmentation stopped short of: not said
        # to be absent (trial 93 F2)
        raise InputError(f"{what} and the airway mask ends {gap:.0f} mm below the image's superior edge (along S, from its highest point): not a "
                         f"trachea's calibre for a mask that ends inside the image (a trachea leaves a chest CT "
                         f"through its superior edge, and the narrowest adult trachea is {MIN_TRACHEA_IN_VIEW_MM:g} "
                         "mm wide, Breatnach 1984): the root is a bronchus (a slab or crop below the carina, a mask "
                         "of the bronchi only) or a narrow trachea whose segmentation stops short of the image's "
                         f"top; {todo}, up to the image's superior edge")
    if in_view and not any(b.name in ("right_main_bronchus", "left_main_bronchus") for b in tree.branches):
        raise InputError(f"{what} and the airway mask ends {gap:.0f} mm below the image's superior edge (along S, from its highest point) with no carina "
                         "(it does not divide into two main bronchi, one to each lung): not a trachea (a trachea "
                         "leaves a chest CT through its superior edge and divides at the carina): the root is a "
                         "bronchus (a slab or crop below the carina, one lung's airways only) or the segmentation "
                         f"misses a lung and stops short of the image's top; {todo}, up to the image's superior edge")
    return root_mm


def plan_route(tree: AirwayTree, target: Target, scope: str | float = "thin", tolerance_mm: float | None = None,
               reach: np.ndarray | None = None, lobes: Volume | None = None, _bound: bool = False) -> Route:
    """The route for ``scope``: into the target's lobe (``target_lobe``), along the airway that
    leads towards the lesion (the lobe's airway closest to it), as deep as the scope fits on it,
    ending at the reachable point of that branch's subtree closest (wall to lesion) to the target
    (or, when the scope stops before the lobe there, at the lobe's reachable point closest to it).
    Without a lobe (an unnamed tree), the reachable point closest to the target.
    When the route is not reached and the lumen that stops the scope is at the CT's resolution
    limit (``verdict.stop_is_resolved``), ``stop_resolved`` is False and the verdict says what the
    route gives if every lumen is its uncertainty (a voxel) wider than measured
    (``_bound``: that second plan, which does not recurse)."""
    name, od, tol = scope_and_tolerance(scope, tolerance_mm)
    alive = tree.branch_of >= 0
    excluded = getattr(tree, "excluded", None)
    if excluded is not None:
        alive &= ~excluded
    rmin = route_min_diameter(tree) if reach is None else reach
    ok = alive & (rmin >= od - tol)
    root_mm = check_root(tree)
    if not ok.any() or od - tol > root_mm:
        # trial 10: on a slab without the trachea this said "the thin (4.2 mm) does not fit the
        # trachea"; the root's width and the other possible causes are named
        raise InputError(f"the {verdicts.scope_words(name, od)} does not fit the root of this airway tree ({root_mm:.1f} mm "
                         "wide, the mean calibre of its sections): if the scan does not show the trachea (a slab, a crop) "
                         "or the airway mask stops short of it, give a scan or an airway mask that includes it; "
                         "else choose a thinner scope")
    wd, near = wall_distance(tree, target)
    wd_alive = np.where(alive, wd, np.inf)
    sign, sign_reason, entry = verdicts.bronchus_sign(tree, target, wd, alive)
    warn = []
    lobe, lobe_from = target_lobe(tree, target, lobes)
    if entry >= 0 and lobe_from.startswith("airway territories") and tree.branches[tree.branch_of[entry]].lobe:
        # without lobe masks, a lesion that a bronchus leads into lies in that bronchus' territory
        # (a segment is the parenchyma its segmental bronchus ventilates: Boyden 1955), whatever
        # the nearest terminal airways of other lobes vote
        lobe, lobe_from = tree.branches[tree.branch_of[entry]].lobe, "the bronchus leading into it"
    if "uncertain" in lobe_from:
        warn.append(f"the target lies between lobar territories ({lobe_from}): its lobe is uncertain without "
                    "lobe masks; give lung lobe segments (e.g. TotalSegmentator) to be sure")
    point_lobe = np.array([tree.branches[b].lobe if b >= 0 else "" for b in tree.branch_of], object)
    in_lobe = alive & (point_lobe == lobe) if lobe else np.zeros(len(wd), bool)
    if in_lobe.any():
        # the airway leading towards the lesion: the lobe's airway (any calibre) closest to it
        approach = int(np.flatnonzero(in_lobe)[np.argmin(wd[in_lobe])])
        on_path = np.zeros(len(wd), bool)
        on_path[tree.path_to_root(approach)] = True
        # as deep as the scope fits along that airway (reach only shrinks along a path), then the
        # reachable point of that branch's subtree nearest the lesion (a neighbouring segmental
        # branch the scope fits may end closer than the narrow one leading straight to it)
        cand = np.flatnonzero(ok & on_path)
        deepest = int(cand[np.argmax(tree.dist_from_root[cand])])
        sub = np.zeros(len(wd), bool)
        for x in tree.subtree(int(tree.branch_of[deepest])):
            sub[tree.branches[x].point_ids] = True
        cand = np.flatnonzero(ok & sub & (in_lobe if point_lobe[deepest] == lobe else True))
        if point_lobe[cand[0]] != lobe and (ok & in_lobe).any():
            # the scope stops before the lobe on this airway but enters the lobe elsewhere
            cand = np.flatnonzero(ok & in_lobe)
        if not (ok & in_lobe).any():
            warn.append(f"the {name} reaches no airway of the target's lobe ({lobe}): the route ends before "
                        "the lobe; try a thinner scope")
    else:
        if lobe:
            warn.append(f"no airway of the target's lobe ({lobe}) in the tree: route to the closest airway")
        else:
            warn.append("the target's lobe is unknown (no lobe masks, no lobar names): route to the closest airway")
        approach = int(np.flatnonzero(alive)[np.argmin(wd_alive[alive])])
        on_path = np.zeros(len(wd), bool)
        on_path[tree.path_to_root(approach)] = True
        cand = np.flatnonzero(ok)
    pid = int(cand[np.argmin(wd[cand])])
    path = tree.path_to_root(pid)
    to_lesion = (target.surface[near[pid]] if wd[pid] > 0 else target.centre) - tree.points[pid]
    nrm = np.linalg.norm(to_lesion)
    ang = float(np.degrees(np.arccos(np.clip(axis_at(tree, pid) @ (to_lesion / nrm), -1, 1)))) if nrm > 0 else 0.0
    bids = list(dict.fromkeys(int(b) for b in tree.branch_of[path]))
    # the largest scope that gets within N mm of the lesion along the airway leading to it
    apath = tree.path_to_root(approach)
    within = {}
    for n in REACH_WITHIN_MM:
        m = wd[apath] <= n
        within[f"{n:g}"] = round(float(np.max(rmin[apath][m]) + tol), 2) if m.any() else None
        if within[f"{n:g}"] is not None and not np.isfinite(within[f"{n:g}"]):
            within[f"{n:g}"] = None
    turns = route_turns(tree, path, bids)
    bend = max_bending_deg(scope)
    sharp = [(n, a) for n, a in turns if bend is not None and a > bend]
    if sharp:
        warn.append(f"the route turns {max(a for _, a in sharp):.0f} deg into {sharp[0][0]}: more than the {name}'s "
                    f"tip deflection ({bend:g} deg); the scope may not enter it")
    end_lobe = tree.branches[bids[-1]].lobe
    if lobe and end_lobe != lobe:
        warn.append(f"the route ends outside the target's lobe ({end_lobe or tree.branches[bids[-1]].name or 'central airway'})")
    stop_at = verdicts.stopping_lumen(rmin, apath, od - tol)
    vox = float(getattr(tree, "voxel_mm", 0.0) or 0.0)
    from .section import calibre_uncertainty_mm

    unc = calibre_uncertainty_mm(tree)
    stop_resolved = bool(wd[pid] <= 0 or stop_at < 0 or
                         verdicts.stop_is_resolved(verdicts.stopping_calibre(tree, rmin, apath, stop_at), od - tol, vox, unc))
    wider = ""
    if not stop_resolved and not _bound:
        w = plan_route(tree, target, scope, tolerance_mm, reach=rmin + unc,
                       lobes=lobes, _bound=True)
        wider = (f"with every lumen {unc:.1f} mm (its uncertainty, a voxel) wider than measured it "
                 + (f"reaches {'the lesion' if target.mask is not None else 'the target point'} (generation "
                    f"{w.generation})" if w.reached else
                    f"ends {w.remaining_mm:.1f} mm short at generation {w.generation}"))
    piece = verdicts.left_out_piece(tree, target, float(wd[pid])) if wd[pid] > 0 else None
    left_out = verdicts.left_out_closer(target, piece) if piece is not None else ""
    said = verdicts.reach(tree, target, name, od, tol, pid, wd, rmin, apath, wider, stop_resolved, left_out)
    if wd[pid] > 0:
        warn.append(f"not reached, {said}")
    calibre = verdicts.unresolved_calibre(tree, path, name, od, tol)
    if calibre:
        warn.append(calibre)
    return Route(name, od, bool(wd[pid] <= 0), pid, tree.points[pid].copy(), float(max(wd[pid], 0.0)), ang,
                 float(tree.dist_from_root[pid]), int(tree.branches[bids[-1]].generation), bids,
                 [tree.branches[b].name for b in bids], path, tree.points[path], 2 * tree.radius[path],
                 sign, 0.0 if sign else float(max(wd_alive.min(), 0.0)), float(rmin[pid]), lobe, lobe_from, end_lobe, warn, within,
                 turns, said, sign_reason, entry, stop_resolved=stop_resolved, left_out_piece=piece)


TURN_WINDOW_MM = 6.0  # airway axis before / after a branch point: over this length of centreline


def max_bending_deg(scope) -> float | None:
    """The largest tip deflection (deg) of a catalogue scope (the tip bends in one plane; the
    scope is rotated to bring a branch into it); None for a diameter given in mm."""
    s = load_scopes()["scopes"].get(str(scope))
    if s is None:
        return None
    return float(max(s.get("bending_up_deg", 180), s.get("bending_down_deg", 180)))


def route_turns(tree: AirwayTree, path: np.ndarray, bids: list) -> list:
    """[(branch name or id, angle deg)]: at each branch point on ``path`` (point ids, root
    first), the angle between the airway axis over ``TURN_WINDOW_MM`` before it and after it."""
    s = tree.dist_from_root[path]
    out = []
    for b in bids[1:]:
        first = int(np.flatnonzero(tree.branch_of[path] == b)[0])
        j = max(first - 1, 0)
        a0 = int(np.searchsorted(s, s[j] - TURN_WINDOW_MM))
        a1 = min(int(np.searchsorted(s, s[j] + TURN_WINDOW_MM)), len(path) - 1)
        u, v = tree.points[path[j]] - tree.points[path[a0]], tree.points[path[a1]] - tree.points[path[j]]
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        if nu < 1e-6 or nv < 1e-6:
            continue
        ang = float(np.degrees(np.arccos(np.clip(u @ v / (nu * nv), -1, 1))))
        out.append((tree.branches[b].name or str(b), ang))
    return out


def route_names(branch_names) -> list[str]:
    """The named airways a route passes, in order: unnamed pieces dropped, and consecutive pieces of
    one bronchus (a skeleton splits a bronchus at its side branches' branch points) listed once,
    e.g. [trachea, right_main_bronchus, bronchus_intermedius, right_lower_lobe_bronchus, RB10]."""
    out: list[str] = []
    for n in branch_names:
        if n and (not out or out[-1] != n):
            out.append(n)
    return out


def _side_of_name(name: str) -> str | None:
    """"left" / "right" as an airway or lung label name states its side (left_main_bronchus, LB3,
    lung_upper_lobe_right, lung_left), else None (trachea, a lesion's label)."""
    low = name.lower()
    for side, code in (("left", "lb"), ("right", "rb")):
        if low.startswith((side + "_", code)) or low.endswith("_" + side) or f"_{side}_" in low:
            return side
    return None


def names_side_note(names: list[str], label_name: str | None) -> str:
    """'' or the note a route's names carry when their side (the deepest named airway with one:
    `_side_of_name`) contradicts the side of ``label_name``, the label the target lies in (new-user
    trial 92 L4: on a mirrored CT and label map "left_main_bronchus -> left_upper_lobe_bronchus ->
    LB3" led to a target the label map calls lung_right; the mirror warnings were apart)."""
    route = next((s for s in map(_side_of_name, reversed(names)) if s), None)
    there = _side_of_name(label_name) if label_name else None
    if not route or not there or route == there:
        return ""
    return (f"(names contradict the label map's side: the route's names say {route}, the label map calls the "
            f"target's place {label_name}: see warning)")


def plan_all_scopes(tree: AirwayTree, target: Target, tolerance_mm: float | None = None,
                    lobes: Volume | None = None, verify=None) -> list[dict]:
    """For each catalogue scope: its route's end, remaining distance, lobe and warnings
    (or why it does not fit). ``verify(route)``: False when a route that reaches the lesion
    rests on airway mask the CT does not confirm (its "reached" is then None, "unverified")."""
    rmin = route_min_diameter(tree)
    out = []
    for s in load_scopes()["scopes"]:
        try:
            r = plan_route(tree, target, s, tolerance_mm, reach=rmin, lobes=lobes)
        except InputError as e:
            out.append({"scope": s, "fits": False, "problem": str(e)})
            continue
        if r.reached and verify is not None:
            r.reach_verified = bool(verify(r))
        out.append({"scope": s, "fits": True, "scope_diameter_mm": r.scope_diameter_mm, "reached": r.reached_said,
                    "reach": r.reach, "stop_resolved": r.stop_resolved,
                    "end_ras": [round(float(c), 2) for c in r.end_ras], "remaining_mm": round(r.remaining_mm, 2),
                    "end_lobe": r.end_lobe, "generation": r.generation,
                    "branch_names": route_names(r.branch_names), "warnings": r.warnings})
    return out
