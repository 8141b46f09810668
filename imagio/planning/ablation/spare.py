"""One ablation probe on one path whose zone keeps hollow viscera out when a setting of the
device or a position along the path allows it (`spare_hollow_viscus`; see `hollow`), as an
interventional radiologist chooses them; else why none does."""

from __future__ import annotations

import numpy as np

from .criteria import mam_text, value
from .hollow import hollow_points, names_text, within_margin_text
from .multiprobe import _zone_blocks, place_on_path

SHIFT_STEP_MM = 2.0   # step of the zone centre's positions along the path (as multiprobe.ADVANCE_STEP_MM)
MAX_PLACEMENTS = 12   # geometric candidates placed and evaluated (path re-checked, coverage on the grid)


def zones_touch(P: np.ndarray, C: np.ndarray, U: np.ndarray, a_mm: float, b_mm: float) -> np.ndarray:
    """Bool (len(P), len(C)): point p (RAS mm) inside the zone of centre C, unit axis U,
    semi-axes a along, b across (mm): the voxel-centre test of `zones.rasterize`."""
    out = np.zeros((len(P), len(C)), bool)
    for z0, z1, inside in _zone_blocks(P, C, U, a_mm, b_mm):
        out[:, z0:z1] = inside
    return out


def hull_points(P: np.ndarray) -> np.ndarray:
    """The vertices of the convex hull of the points ``P`` (RAS mm, (n, 3); scipy.spatial.ConvexHull,
    Qhull), or ``P`` itself when it has no 3-D hull (fewer than 4 points, all in a plane). An
    ablation zone is an ellipsoid, a convex set: it holds every point of ``P`` exactly when it holds
    the hull's vertices, so the test whether a zone covers tumour + margin reads the few hundred
    vertices instead of every voxel centre (the same answer)."""
    from scipy.spatial import ConvexHull, QhullError

    if len(P) < 4:
        return P
    try:
        return P[ConvexHull(P).vertices]
    except QhullError:
        return P


def near_line(P: np.ndarray, c: np.ndarray, u: np.ndarray, b_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(P[keep], keep): the points ``P`` (RAS mm, (n, 3)) at most ``b_mm`` (+ 1e-6 mm of rounding)
    from the line through ``c`` along the unit ``u`` (RAS mm). A zone centred on that line with
    axis ``u`` and semi-diameter at most ``b_mm`` holds no other point (its points lie within its
    semi-diameter of its axis), so testing only these gives the same answer. Vectorised."""
    d = P - np.asarray(c, float)
    t = d @ np.asarray(u, float)
    keep = np.einsum("pi,pi->p", d, d) - t * t <= (float(b_mm) + 1e-6) ** 2
    return P[keep], keep


def spare_hollow_viscus(plan, ctx, device, setting, entry_ras, placed=None, margin_mm: float | None = None,
                        centre_ras=None):
    """One probe on the path ``entry_ras`` -> ``centre_ras`` (RAS mm; default the plan's target,
    as `multiprobe.place_on_path`; the Slicer module and IMAGIO Web give their path's end) whose
    zone keeps hollow viscera out when one can: (`multiprobe.ProbePlan`, note).

    ``placed``: today's placement (`multiprobe.place_on_path` with ``setting``, zone centred on
    the target), made here when None. When its zone takes in no hollow viscus (criterion met or
    not verifiable), it is returned with note None. Otherwise the device's single-probe
    settings with ``setting``'s isotherm (``setting`` first, then the others from the smallest
    zone up) and the zone centre's positions along the same path (every `SHIFT_STEP_MM` up to
    half the zone's length either way, the nearest to the target first) are tested on the
    analysis grid's voxel centres: those whose zone holds all of tumour + ``margin_mm``
    (default ``minimal_ablative_margin_mm``) and no hollow-viscus voxel (`hollow_points`) are
    placed in that order (the path re-checked, `place_on_path`; at most `MAX_PLACEMENTS`) and
    the first whose evaluated coverage is not non-compliant (tumour covered, margin, no hollow
    viscus; `coverage.compliance` not False) with a placeable probe is returned, said with the
    zone's real centre (`centre_words`) and, where a criterion is not verifiable, on the imaged
    part (`claim_words`). When none is, ``placed`` is returned and the criterion gets
    ``unavoidable``: which criterion cannot be met together with which ("no setting of emprint ...
    covers the tumour with a 5 mm margin without taking in duodenum ..."), and for the zones that
    keep the viscera out but fail on evaluation, what each breaks with its figure
    (`rejection_words`), also in the note. The note: {"found", "setting", "shift_mm" (the zone
    centre's chosen shift along the path, + deeper), "zone_shift_mm" (where the placed zone's
    centre lies: less deep when the probe was held back), "text", "tried": {"settings",
    "positions", "placed"}}."""
    if placed is None:
        placed = place_on_path(plan, ctx, device, setting, entry_ras, centre_ras=centre_ras)
    hv = placed.coverage.criteria.get("no_hollow_viscus") or {}
    if hv.get("met") is not False:
        return placed, None
    margin = float(value("minimal_ablative_margin_mm") if margin_mm is None else margin_mm)
    if margin not in ctx.regions:
        margin = min(ctx.regions, key=lambda m: abs(m - margin))
    e = np.asarray(entry_ras, float)
    c = np.asarray(plan.problem.target.point_ras if centre_ras is None else centre_ras, float)
    u = (c - e) / np.linalg.norm(c - e)
    others = sorted((s for s in device.settings.values()
                     if s.probes == 1 and s.id != setting.id and s.isotherm_c == setting.isotherm_c),
                    key=lambda s: s.volume_ml)
    settings = [setting, *others]
    tried = {"settings": [s.id for s in settings], "positions": 0, "placed": 0}
    inside = within_margin_text(ctx, margin)   # hollow viscera inside tumour + margin: no zone keeps them out
    if inside:
        return _none(placed, hv, device, setting, margin, tried, hv.get("structures") or {}, f": {inside}")
    g = ctx.grid
    R = hull_points(g.kji_to_ras(np.argwhere(ctx.regions[margin]).astype(float)))   # tumour + margin: its hull
    reach = max(s.zone_length_mm for s in settings)
    H, hn, _ = hollow_points(ctx, reach)
    H, keep = near_line(H, c, u, max(0.5 * s.zone_diameter_mm for s in settings))   # only these can be in a zone
    hn = hn[keep]
    cands, covering, hit_names, n_pos = [], 0, set(), 0
    for s in settings:
        half = 0.5 * s.zone_length_mm
        sh = np.arange(-np.floor(half / SHIFT_STEP_MM), np.floor(half / SHIFT_STEP_MM) + 1) * SHIFT_STEP_MM
        sh = sh[np.argsort(np.abs(sh), kind="stable")]
        n_pos += len(sh)
        C = c[None] + sh[:, None] * u[None]
        U = np.repeat(u[None], len(sh), axis=0)
        cov = zones_touch(R, C, U, half, 0.5 * s.zone_diameter_mm).all(axis=0)
        touch = zones_touch(H, C, U, half, 0.5 * s.zone_diameter_mm) if len(H) else np.zeros((0, len(sh)), bool)
        spare = ~touch.any(axis=0)
        covering += int(cov.sum())
        for k in np.flatnonzero(cov & ~spare):
            hit_names.update(hn[touch[:, k]])
        cands += [(s, float(sh[k])) for k in np.flatnonzero(cov & spare)]
    tried["positions"] = int(n_pos)
    asked_at = centre_words(zone_offset_mm(placed, c, u), placed)
    rejected = []   # (setting, placed zone) of the candidates breaking a criterion on evaluation
    for s, shift in cands[:MAX_PLACEMENTS]:
        pp = place_on_path(plan, ctx, device, s, e, centre_ras=c + shift * u,
                           centre_words=f"the point {centre_words(shift)[len('centred '):]}" if shift else "the target")
        tried["placed"] += 1
        crit = pp.coverage.criteria
        if (pp.status_kind != "infeasible" and all(p.feasible for p in pp.probes) and pp.coverage.compliant is not False
                and (crit.get("no_hollow_viscus") or {}).get("met") is not False):
            off = zone_offset_mm(pp, c, u)
            text = (f"the {device.name} {setting.id} zone {asked_at} takes in "
                    f"{names_text((hv.get('structures') or {}).keys())}; {s.id} with the zone {centre_words(off, pp)} "
                    f"{claim_words(crit, margin, pp.coverage.unimaged)}")
            pp.status += f"; {text}"
            note = {"found": True, "asked": setting.id, "asked_words": setting.words, "setting": s.id,
                    "setting_words": s.words, "shift_mm": shift, "zone_shift_mm": round(off, 2), "text": text,
                    "tried": tried}
            pp.hollow_viscus = note
            return pp, note
        rejected.append((s, pp))
    if covering == 0:
        why = " (none covers it even taking it in)"
    elif not cands:
        why = ""
    else:
        first = {}   # each setting's first (nearest the target) rejected zone
        for s, pp in rejected:
            first.setdefault(s.id, (s, pp))
        them = "it" if len(set(hit_names or (hv.get("structures") or {}).keys())) == 1 else "them"
        said = [rejection_words(s, pp, c, u, them) for s, pp in first.values()]
        more = len(rejected) - len(said)
        why = (f" and meeting every criterion with a placeable probe (the {len(cands)} zone(s) that would keep "
               f"{them} out on the grid's voxel centres: {tried['placed']} placed and evaluated, none meets every "
               "criterion: "
               + "; ".join(said) + (f"; {more} more at other positions along the path" if more > 0 else "") + ")")
    return _none(placed, hv, device, setting, margin, tried, hit_names or (hv.get("structures") or {}).keys(), why)


def zone_offset_mm(pp, c: np.ndarray, u: np.ndarray) -> float:
    """How far (mm) the centre of the zone of a one-probe `multiprobe.ProbePlan` ``pp`` lies from
    ``c`` (RAS mm, the target) along the unit path direction ``u`` (+ deeper): where the zone
    really is, also when the probe was advanced less than its setting needs (its ``status``)."""
    return float((np.asarray(pp.zones[0].centre, float) - c) @ u)


def centre_words(off_mm: float, pp=None) -> str:
    """"centred on the target" (within 0.05 mm) or "centred 4 mm short of / deeper than the target
    along the path" for a zone whose centre lies ``off_mm`` (`zone_offset_mm`) along the path;
    with why when the probe of ``pp`` could not be advanced as far as its setting needs (new-user
    trial 101 F5: "centred on the target" said of a zone 4 mm short of it)."""
    if abs(off_mm) < 0.05:
        return "centred on the target"
    kind = str(getattr(pp, "status_kind", ""))
    held = (" (its probe cannot be advanced further: its track would run past the image's end)"
            if kind == "advanced_short_image" else
            " (its probe cannot be advanced further without breaking a hard constraint of the path)"
            if kind.startswith("advanced_short") else "")
    return (f"centred {round(abs(off_mm), 1):g} mm {'deeper than' if off_mm > 0 else 'short of'} the target along "
            f"the path{held}")


def claim_words(crit: dict, margin_mm: float, unimaged: dict | None) -> str:
    """What a zone whose ``crit`` (`coverage.Coverage.criteria`) none fails does: "covers the
    tumour with a 5 mm margin and keeps every hollow viscus out", made on the imaged part (or on
    the label map's names) with each reason it is not verifiable when a required criterion is not
    (``unimaged``: `coverage.Coverage.unimaged`, {} when the zone lies wholly in the image; new-user
    trial 101 F5: the claim stood unconditional beside NOT VERIFIABLE)."""
    from .coverage import REQUIRED

    base = f"covers the tumour with a {margin_mm:g} mm margin and keeps every hollow viscus out"
    why = [(crit.get(k) or {}).get("not_verifiable") for k in REQUIRED if (crit.get(k) or {}).get("met") is None]
    why = [w for w in why if w]
    if not why:
        return base
    where = "on the imaged part" if unimaged else "as far as the label map names them"
    return f"{base} {where} (NOT VERIFIABLE: {'; '.join(why)})"


def rejection_words(s, pp, c: np.ndarray, u: np.ndarray, them: str = "them") -> str:
    """Why the zone of setting ``s`` placed as ``pp`` (a one-probe `multiprobe.ProbePlan`) is not
    proposed although it keeps the hollow viscera (``them``: "it" for one) out on the analysis grid's
    voxel centres (the path's line ``c`` + t ``u``, RAS mm, as `zone_offset_mm`): each
    hard constraint it breaks and each required criterion it does not meet, with its figure
    ("45W_5min with the zone centred on the target would keep them out but its minimal ablative
    margin is 4.5 mm (needs 5 mm)"; new-user trial 101 F3: "a hard constraint" unnamed)."""
    crit = pp.coverage.criteria
    out = []
    bad = sorted({v for p in pp.probes if not p.feasible for v in p.violations})
    if pp.status_kind == "infeasible" or bad:
        out.append(f"its probe cannot be placed (the track violates {', '.join(bad) or 'a hard constraint'})")
    tc, mam = crit.get("tumour_covered") or {}, crit.get("minimal_ablative_margin") or {}
    if tc.get("met") is False:
        out.append(f"it leaves part of the tumour out (covered {pp.coverage.tumour_covered_pct:.1f} %, minimal "
                   f"ablative margin {mam_text(pp.coverage.mam_mm)} mm)")
    elif mam.get("met") is False:
        out.append(f"its minimal ablative margin is {mam_text(pp.coverage.mam_mm)} mm (needs {mam['required']:g} mm)")
    hv = crit.get("no_hollow_viscus") or {}
    if hv.get("met") is False:
        out.append("on evaluation it takes in "
                   + ", ".join(f"{n} {v:.2f} mL" for n, v in (hv.get("structures") or {}).items()))
    where = f"{s.id} with the zone {centre_words(zone_offset_mm(pp, c, u), pp)}"
    why = " and ".join(out) or "it breaks a hard constraint"
    return f"{where} would keep {them} out but {why}" if hv.get("met") is not False else f"{where}: {why}"


def _none(placed, hv: dict, device, setting, margin: float, tried: dict, names, why: str):
    """``placed`` with the note that no setting / position keeps the hollow viscera ``names`` out
    (``why``: what follows "... without taking in <names>"), also the criterion's ``unavoidable``."""
    text = (f"no setting of {device.name} ({', '.join(tried['settings'])}) at any zone position along this path "
            f"(the centre up to half the zone's length either side of the target, every {SHIFT_STEP_MM:g} mm) "
            f"covers the tumour with a {margin:g} mm margin without taking in {names_text(names)}{why}: "
            "hydrodissection / artificial ascites, another path, or another modality")
    hv["unavoidable"] = text
    note = {"found": False, "asked": setting.id, "asked_words": setting.words, "setting": setting.id,
            "setting_words": setting.words, "shift_mm": 0.0, "text": text, "tried": tried}
    placed.hollow_viscus = note
    return placed, note
