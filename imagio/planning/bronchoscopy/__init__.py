"""Bronchoscopic access planning: airway tree, scope reach, route to a nodule, transparenchymal
tunnel and virtual bronchoscopy. Positions RAS mm; arrays [k, j, i].

Typical use::

    from imagio.planning import bronchoscopy as bronch
    tree = bronch.extract_tree(labels, labels.mask("trachea", "airways"))
    plan = bronch.plan(tree, bronch.Target.from_mask(labels, labels.mask("lung_nodule_1")),
                       scope="thin", lungs=labels.with_array(lung_mask), vessels=vessel_mask)
    plan.to_dict()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...anatomy import AIRWAY_NAMES  # noqa: F401  (defined there; bronch.AIRWAY_NAMES)
from ...errors import InputError
from ...volume import Volume
from .route import (Route, Target, load_scopes, plan_all_scopes, plan_route, route_min_diameter, scope_and_tolerance,
                    scope_diameter, target_lobe)
from .tree import AirwayTree, Branch, extract_tree
from .tunnel import NoTunnel, Tunnel, other_lesions, plan_tunnels

__all__ = ["AirwayTree", "Branch", "airway_mask", "BronchPlan", "NoTunnel", "Route", "Target", "Tunnel", "extract_tree",
           "load_scopes", "plan", "plan_all_scopes", "plan_route", "target_lobe", "plan_tunnels", "route_min_diameter", "scope_diameter"]

LUNG_PREFIX = "lung_"
VESSEL_NAMES = ("lung_vessels", "pulmonary_artery", "pulmonary_vein", "pulmonary_venous_system",
                "lung_vessels_and_airways")


@dataclass
class BronchPlan:
    route: Route
    tunnels: list[Tunnel] = field(default_factory=list)
    tunnel_problem: str = ""
    camera_positions: np.ndarray | None = None
    camera_directions: np.ndarray | None = None
    scopes: list = field(default_factory=list)   # every catalogue scope: end, remaining, lobe
    warnings: list = field(default_factory=list)

    @property
    def all_warnings(self) -> list:
        """The plan's and its route's warnings, as bronch.json lists them."""
        return list(self.warnings) + list(self.route.warnings or [])

    def to_dict(self) -> dict:
        return {"route": self.route.to_dict(), "scopes": self.scopes,
                "warnings": self.all_warnings,
                "tunnel_needed": (None if self.route.reached_said is None or not self.route.stop_resolved
                                  else not self.route.reached),
                "tunnels": [t.to_dict() for t in self.tunnels],
                "tunnel_problem": self.tunnel_problem,
                "camera_path": self._camera_summary()}

    def _camera_summary(self) -> dict:
        """The camera path's size and length (mm), and how it differs from the route's length
        (new-user trial 47 L7: 223.4 mm of route and 194.4 mm of camera path, unexplained)."""
        from .flythrough import SMOOTH_MM

        cam = self.camera_positions
        if cam is None or len(cam) < 2:
            return {"n_positions": 0 if cam is None else len(cam), "step_mm": 1.0}
        return {"n_positions": len(cam), "step_mm": 1.0,
                "length_mm": round(float(np.linalg.norm(np.diff(cam, axis=0), axis=1).sum()), 1),
                "note": "route length_mm follows the airway centreline through its voxels (its steps counted); "
                        f"the camera path is that centreline smoothed over {SMOOTH_MM:g} mm, which cuts the steps "
                        "and the corners of bends, so it is shorter (neither is a measured insertion length)"}


def airway_mask(labels: Volume) -> np.ndarray:
    """The airway lumen of a label map: its airway labels (trachea, airways, ...) or, for a
    binary mask without such names, every non-zero voxel. Raises InputError for a map of several
    values none of which is named as an airway (new-user trial 30: --label-names that named body
    and vertebrae only: the whole map was taken for the airways and the route 'reached')."""
    names = [n for n in AIRWAY_NAMES if n in labels.labels.values()]
    if names:
        return labels.mask(*names)
    present = np.unique(labels.array)
    if np.count_nonzero(present) > 1:
        raise InputError(f"the airway label map has {np.count_nonzero(present)} label values and none is named as an "
                         f"airway ({', '.join(AIRWAY_NAMES[:3])}, ...): name them with --label-names, or give a mask "
                         "of the airways alone")
    return labels.array > 0


def _in_lung(target: Target, lungs: Volume) -> bool:
    """A point target inside the filled lung envelope (a nodule is in the lung though it is not
    aerated: the lung mask's enclosed holes are filled, 3-D, with fill_voids), or a lesion whose
    surroundings (2 mm out) touch lung."""
    if target.mask is None:
        if lungs.sample(target.centre[None], order=0)[0]:
            return True
        import fill_voids

        filled = lungs.with_array(fill_voids.fill(lungs.array > 0, in_place=False).astype(np.uint8))
        return bool(filled.sample(target.centre[None], order=0)[0])
    out = target.surface - target.centre
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return bool((lungs.sample(target.surface + 2.0 * out, order=0) > 0).any())


def _outside_lung_message(target: Target, lungs: Volume, ct: Volume | None) -> str:
    """Why a target is refused as outside the lungs, with how far from them it lies and, for a
    point in dense tissue near them, what to do: a point in a nodule on the pleura is outside
    the aerated lung and not enclosed by it (trial 10: the centre of LIDC-0001's 27 mm
    juxtapleural nodule was refused as 'outside the lungs', sending the user to the lung
    segments); given as a lesion label, its surface is checked against the lung instead."""
    import edt

    c = np.round(target.centre, 1).tolist()
    kji = lungs.nearest_kji(target.centre[None])[0]
    inside = bool(np.all((kji >= 0) & (kji < np.asarray(lungs.shape))))
    near = None
    if inside:   # the lung within 40 mm of the point: a box around it, no whole-volume work
        reach = np.ceil(40.0 / lungs.spacing_kji).astype(int) + 1
        lo, hi = np.maximum(kji - reach, 0), np.minimum(kji + reach + 1, lungs.shape)
        sub = lungs.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] > 0
        if sub.any():
            d = edt.edt(~sub, anisotropy=tuple(float(x) for x in lungs.spacing_kji), black_border=False)
            near = float(d[tuple(kji - lo)])
    where = (f"{near:.0f} mm from the aerated lung" if near is not None else
             "more than 40 mm from any lung" if inside else "outside the image")
    v = float(ct.sample(target.centre[None], order=1)[0]) if ct is not None and inside else None
    hu = "" if v is None else f", where the CT reads {v:.0f} HU"   # air too (trial 109 L5: "in tissue of -984 HU")
    if target.mask is None and near is not None and near <= 20.0 and v is not None and v > -300:
        return (f"the target point {c} (RAS mm) is outside the lungs, {where}{hu}: if it is a lesion on the "
                "pleura or in the lung wall, give it as a label (imagio lesion --point, then its label with "
                "--structures and --target NAME) so its surface is checked against the lung; bronchoscopic "
                "access is for lung lesions")
    return (f"the target {c} (RAS mm) is outside the lungs, {where}{hu}: bronchoscopic access is for lung lesions; check the "
            "target or the lung segments")


MAX_LEAK_REPLANS = 8   # leaks excluded one after the other before the route is given up on as checked


def _check_on_ct(tree: AirwayTree, route: Route, target: Target, ct: Volume | None, replan):
    """(tree, route, warnings) after reading the CT along the route and along the airway that
    gives the bronchus sign (`mask_checks.wall_less_runs`): a stretch where the CT shows neither
    an air core nor a bronchial wall though its lumen is wide enough to show them is a leak of
    the mask: excluded (a copy of the tree; the original is not changed) and the route planned
    again (``replan(tree)``), so neither 'reached' nor the bronchus sign rests on it. A stretch
    too narrow for the CT to show them leaves what rests on it unverified: warned where
    'reached' or the bronchus sign rests on it, and the verdict or the sign's reason says so.
    New-user trial 25 (H1) and later: a wall-less tube labelled airway through the parenchyma
    into a nodule gave 'reached' and a bronchus sign, a short one at the end of a long narrow
    tail without a word."""
    from .mask_checks import exclude_from, no_contrast, wall_less_runs, wall_less_warning

    if ct is None:
        return tree, route, []
    said = []
    for _ in range(MAX_LEAK_REPLANS):
        on_route = wall_less_runs(tree, route.point_ids, ct)
        on_sign = (wall_less_runs(tree, tree.path_to_root(route.sign_entry), ct)
                   if route.bronchus_sign and route.sign_entry >= 0 else [])
        leak = next((r for r in on_route + on_sign if r["resolved"]), None)
        if leak is None:
            break
        if tree.branches[int(tree.branch_of[leak["ids"][0]])].generation < 2:
            # the trachea or a main bronchus, wide enough for the CT to show its air core or wall
            # ("resolved"), shows neither: the mask is not on this CT's airways (another scan,
            # mirrored, moved) and every route, name and fit rests on it. Refused (new-user trial 39
            # M3: a mirrored mask got a route ending in parenchyma 16.8 mm from any real airway, exit 0)
            raise InputError(
                f"the CT shows no airway where the airway mask has its central airways ({leak['mm']:.0f} mm of "
                f"trachea or main bronchus at RAS {leak['ras']}, lumen {leak['lumen_mm']:.1f} mm: "
                f"{no_contrast(leak)}): the mask is not on this CT's "
                "airways (another scan, mirrored or moved?); give the airways segmented on this CT (imagio segment "
                "CT --structures airways)")
        said.append(wall_less_warning(leak, "the route" if any(r is leak for r in on_route) else
                                      "the airway leading into the lesion"))
        tree = exclude_from(tree, leak["ids"])
        route = replan(tree)
    else:
        on_route, on_sign = [], []
        said.append(f"more than {MAX_LEAK_REPLANS} stretches of the airway mask near the route show no bronchus on the CT "
                    "(no contrast between the core, the wall ring and the surroundings): the mask leaks there; the route is not checked further; "
                    "check the segmentation")
    seen = set()
    # an unresolved stretch matters where a claim rests on it: 'reached' or the bronchus sign
    for r in (on_route if route.reached else []) + on_sign:
        key = int(r["ids"][0])
        if key not in seen:
            seen.add(key)
            said.append(wall_less_warning(r, "the route" if any(r is x for x in on_route) else
                                          "the airway leading into the lesion"))
    if route.reached and any(not r["resolved"] for r in on_route):
        route.reach_verified = False
        route.verdict += ("; unverified: part of the airway it rests on is too narrow for the CT to show its wall or "
                          "air core, and the CT shows neither there (see the warnings)")
    if any(not r["resolved"] for r in on_sign):
        route.bronchus_sign_reason += ("; unverified: the airway leading in is too narrow for the CT to show its "
                                       "wall or air core along part of its course (see the warnings)")
    return tree, route, said


def plan(tree: AirwayTree, target: Target, scope="thin", tolerance_mm=None, lungs: Volume | None = None,
         vessels: np.ndarray | None = None, tunnel_margin_mm=None, tunnel_max_length_mm=None,
         lobes: Volume | None = None, ct: Volume | None = None, others: Volume | None = None) -> BronchPlan:
    """Route for the scope (into the target's lobe: ``lobes``, a label Volume with lobe names, or
    the tree's lobar territories); the same for every catalogue scope; when the scope does not
    reach the lesion and ``lungs`` is given, ranked tunnels from the reachable airways; the camera
    path along the route. ``vessels``: lung-vessel mask on ``lungs``' grid; ``ct``: the CT in HU,
    read along every tunnel for unlabelled dense tissue (`tunnel.plan_tunnels`). Without
    ``vessels`` (a label map with lungs but no lung-vessel label) and without ``ct``, the tunnels'
    vessel clearance is not checked: the plan warns, and the clearances are None. Raises
    InputError for a target outside the lungs, and for a route that ends in the other lung than the
    target (`side.require_same_lung`: by the lungs of ``others`` or ``lobes``, else the carina). ``others``: label Volume (the structures) whose
    lesions other than the target every tunnel keeps clear of (`tunnel.other_lesions`; listed
    in a warning)."""
    from .flythrough import camera_path

    if lungs is not None and not _in_lung(target, lungs):
        raise InputError(_outside_lung_message(target, lungs, ct))
    from .mask_checks import unchecked_reach, wall_less_runs
    from .side import require_same_lung

    rmin = route_min_diameter(tree)
    warnings = list(getattr(tree, "warnings", [])) + list(getattr(tree, "naming_warnings", []))
    route = plan_route(tree, target, scope, tolerance_mm, reach=rmin, lobes=lobes)
    tree, route, doubts = _check_on_ct(tree, route, target, ct,
                                       lambda t: plan_route(t, target, scope, tolerance_mm, reach=rmin, lobes=lobes))
    # an independent guard: a route never leads into the other lung than its target's (trial 99 F0)
    require_same_lung(route.end_ras, target.centre, others if others is not None else lobes, tree)

    def verified(r: Route) -> bool:   # the CT shows the airway a catalogue scope's 'reached' rests on
        return ct is None or not (wall_less_runs(tree, r.point_ids, ct) or unchecked_reach(tree, r, ct))

    out = BronchPlan(route, scopes=plan_all_scopes(tree, target, tolerance_mm, lobes, verify=verified),
                     warnings=warnings + doubts)
    doubt = unchecked_reach(tree, route, ct)
    if doubt:
        out.warnings.append(doubt)
        if route.reach_verified:
            route.reach_verified = False
            route.verdict += ("; unverified: its last stretch runs in airway mask too narrow to check whose centreline "
                              "the CT reads denser than a lumen (see the warnings)")
    if route.reached and not route.reach_verified:
        out.tunnel_problem = ("no tunnel planned: the airway mask reaches the lesion, but the CT does not confirm the "
                              "airway the route rests on (unverified); confirm on the CT that the bronchus reaches "
                              "the lesion")
    if not route.reached and lungs is not None:
        _, od, tol = scope_and_tolerance(scope, tolerance_mm)
        omask, onames = other_lesions(others, target) if others is not None else (None, [])
        if omask is not None and omask.shape != lungs.shape:
            omask = others.with_array(omask.astype(np.uint8)).resample_like(lungs, order=0).array > 0
        if onames:
            out.warnings.append(f"other lesions kept out of the tunnels (a tunnel through a second tumour mixes "
                                f"the specimen and can seed the tract): {', '.join(onames)}")
        try:
            ok = rmin >= od - tol
            if tree.excluded is not None:   # no tunnel from a leak of the mask
                ok = ok & ~tree.excluded
            out.tunnels = plan_tunnels(tree, target, lungs, vessels, ok, tunnel_margin_mm,
                                       tunnel_max_length_mm, ct=ct, others=omask,
                                       labels=others if others is not None and others.shape == lungs.shape else None)
        except NoTunnel as e:
            out.tunnel_problem = str(e)
        if vessels is None:
            out.warnings.append(
                "no lung-vessel mask: the tunnels' clearance from lung vessels is NOT checked "
                "(min_vessel_clearance_mm null)" + (
                    "; only the CT density (contrast-filled vessels, calcification) was checked: non-contrast "
                    "vessels are not seen" if ct is not None else
                    " and no CT was read: a tunnel may cross a vessel") +
                "; give lung-vessel labels (lung_vessels, pulmonary_artery/vein) or let `imagio bronch` segment them")
        elif ct is None:
            out.warnings.append("no CT given: the tunnels are checked against the vessel mask only, not against "
                                "unlabelled dense tissue (contrast-filled vessels, calcification) in the CT")
    if len(route.points) >= 2:
        out.camera_positions, out.camera_directions = camera_path(route.points, radii=route.diameters_mm / 2)
    return out
