"""The plan report: one HTML and one PDF document per plan, for the patient's record.

Built from a plan JSON (``imagio plan`` / ``imagio demo`` output) plus, when available, the CT
and label map for pictures: the 3D view, the axial slice through the target with the needle,
and an oblique reformat containing the whole needle. Sections appear only for what the plan
has; patient and series identifiers are copied as found in the input, never invented.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import textwrap
from pathlib import Path

import numpy as np

from . import __version__, anatomy
from .volume import Volume

IDENTIFIERS = ("PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyInstanceUID",
               "SeriesInstanceUID", "SeriesDescription", "Modality")
# the angles of a path, each defined once (computed in imagio.planning.scoring.angles), in degrees
ANGLES = (("skin_angle_deg", "angle to the skin normal (deg)",
           "between the needle and the inward normal of the skin at the entry"),
          ("craniocaudal_deg", "craniocaudal = out of the axial plane (deg)",
           "between the needle and the axial plane (0 = the whole needle in one axial slice)"),
          ("inplane_deg", "in-plane, from the A-P axis (deg)",
           "between the needle's projection onto the axial plane and the anterior-posterior axis"),
          ("gantry_tilt_deg", "gantry tilt for one scan plane (deg)",
           "between the needle's projection onto the sagittal plane and the anterior-posterior axis: "
           "the gantry tilt about the left-right axis that puts the whole needle in one scan plane"))
PROPOSAL_FIELDS = (("length_mm", "length (mm)"), ("closest_structure", "closest structure"),
                   ("closest_clearance_mm", "clearance (mm)"), *[(k, label) for k, label, _ in ANGLES],
                   ("pleural_crossings", "pleural crossings"),
                   ("fissure_crossings", "fissure crossings"), ("aerated_lung_mm", "aerated lung (mm)"),
                   ("liver_before_target_mm", "liver before target (mm)"), ("score", "score (lower is better)"))
# what a field's null (None) means, where it is not "no value" (new-user trial 92 H1: no liver label)
NULL_TEXT = {"liver_before_target_mm": "unknown (no liver label)"}


def field_text(p: dict, key: str):
    """The value of proposal field ``key`` of ``p`` (a plan.json proposal) for a table: its
    ``NULL_TEXT`` where it is null, "" where it has none."""
    v = p.get(key)
    return NULL_TEXT.get(key, "") if v is None and key in p else "" if v is None else v


def _plane_grid(center, u, v, half_mm, step_mm):
    n = int(2 * half_mm / step_mm) + 1
    s = np.linspace(-half_mm, half_mm, n)
    a, b = np.meshgrid(s, s, indexing="xy")
    return center + a[..., None] * u + b[..., None] * v, s


NEEDLE_COLOR = "#20e0ff"
TARGET_COLOR = "#ffff00"
# letters at the picture's edges: the patient direction each edge faces (RAS axes, + and -)
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("S", "I"))


def edge_letters(direction, min_component: float = 0.3) -> str:
    """Orientation letters of a picture edge facing the RAS unit vector ``direction``: the
    patient directions (R/L, A/P, S/I) whose component is at least ``min_component``, largest
    first (e.g. (-1, 0, 0) -> "L"; an oblique (0.7, 0, 0.7) -> "RS")."""
    d = np.asarray(direction, float)
    order = np.argsort(-np.abs(d), kind="stable")
    return "".join(_AXIS_LETTERS[a][0 if d[a] > 0 else 1] for a in order if abs(d[a]) >= min_component)


def slab_interval(s_entry: float, s_target: float, half_slab_mm: float) -> tuple[float, float] | None:
    """Part of the needle within ``half_slab_mm`` of a plane: the needle point at parameter
    ``lam`` (0 at the entry, 1 at the target) lies at signed distance ``s_entry + lam * (s_target
    - s_entry)`` mm from the plane. Returns (lam_lo, lam_hi) within [0, 1], or None when no part
    of the needle is in the slab."""
    ds = s_target - s_entry
    if abs(ds) < 1e-9:
        return (0.0, 1.0) if abs(s_entry) <= half_slab_mm else None
    a, b = sorted(((-half_slab_mm - s_entry) / ds, (half_slab_mm - s_entry) / ds))
    lo, hi = max(0.0, a), min(1.0, b)
    return (lo, hi) if lo < hi else None


def slice_figure(ct: Volume, labels: Volume | None, center, u, v, entry=None, target=None, title="",
                 half_mm=90.0, step_mm=0.5, half_slab_mm: float | None = None):
    """Matplotlib (figure, axes) of the plane through ``center`` (RAS mm) spanned by unit vectors
    ``u`` (towards the picture's right) and ``v`` (up): CT at window 400/40 HU, label outlines,
    orientation letters at the four edges (text objects with gid "orientation"), and the needle
    projected onto the plane: solid where it lies within ``half_slab_mm`` of the plane (default
    half the CT's thickest voxel side), dashed where it is projected from outside; target as a
    yellow dot, entry as a cross. Data coordinates are mm from ``center`` along ``u`` and ``v``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    center, u, v = (np.asarray(x, float) for x in (center, u, v))
    pts, s = _plane_grid(center, u, v, half_mm, step_mm)
    img = ct.sample(pts, order=1, fill=-1024)
    fig, ax = plt.subplots(figsize=(5, 5.3), dpi=110)
    ext = (s[0], s[-1], s[0], s[-1])
    ax.imshow(img, cmap="gray", vmin=-160, vmax=240, origin="lower", extent=ext)
    if labels is not None:
        lab = labels.sample(pts, order=0)
        for value in np.unique(lab):
            if value == 0:
                continue
            name = labels.labels.get(int(value), "")
            s_ = anatomy.get(name)
            if s_.role in ("passable",) and name not in ("liver",):
                continue
            ax.contour(lab == value, levels=[0.5], colors=[s_.color_float], linewidths=0.8, extent=ext,
                       origin="lower")
    note = ""
    if entry is not None and target is not None:
        h = float(0.5 * ct.spacing.max()) if half_slab_mm is None else float(half_slab_mm)
        w = np.cross(u, v)
        e, t = (np.asarray(entry, float) - center), (np.asarray(target, float) - center)
        pe, pt = np.array([e @ u, e @ v]), np.array([t @ u, t @ v])
        inside = slab_interval(float(e @ w), float(t @ w), h)
        pieces = [(0.0, 1.0, False)] if inside is None else \
            [(0.0, inside[0], False), (inside[0], inside[1], True), (inside[1], 1.0, False)]
        for lo, hi, solid in pieces:
            if hi - lo < 1e-9:
                continue
            a, b = pe + lo * (pt - pe), pe + hi * (pt - pe)
            ax.plot([a[0], b[0]], [a[1], b[1]], color=NEEDLE_COLOR, lw=2.0 if solid else 1.5,
                    ls="-" if solid else "--", gid="needle_in_slab" if solid else "needle_projected")
        ax.plot([pe[0]], [pe[1]], "x", color=NEEDLE_COLOR, ms=6, mew=1.5, gid="entry")
        ax.plot([pt[0]], [pt[1]], "o", color=TARGET_COLOR, ms=4, gid="target")
        note = f"needle solid within ±{h:.1f} mm of this plane, dashed: projected; x entry"
        if abs(e @ w) > h:
            note += f" ({abs(e @ w):.0f} mm {edge_letters(w if e @ w > 0 else -w)} of the plane)"
    for (x, y, ha, va), d in (((0.02, 0.5, "left", "center"), -u), ((0.98, 0.5, "right", "center"), u),
                              ((0.5, 0.98, "center", "top"), v), ((0.5, 0.02, "center", "bottom"), -v)):
        ax.text(x, y, edge_letters(d), transform=ax.transAxes, ha=ha, va=va, color="#ff9900",
                fontsize=12, fontweight="bold", gid="orientation")
    ax.set_xlim(s[0], s[-1])
    ax.set_ylim(s[0], s[-1])
    ax.set_title(title, fontsize=9)
    unit = axis_ticks_ras(ax, center, u, v)
    # wrapped to the axes' width so the note (needle solid/dashed, entry offset) is never cut off
    ax.set_xlabel(textwrap.fill(unit + (f"; {note}" if note else ""), width=80), fontsize=7)
    fig.tight_layout()
    return fig, ax


def axis_ticks_ras(ax, center, u, v) -> str:
    """Tick labels of a :func:`slice_figure` (data: mm from ``center`` along ``u``, ``v``) as
    absolute RAS mm when ``u`` and ``v`` lie along RAS axes (the coordinates plan.json gives);
    returns the axis caption, which for an oblique plane says what the mm are relative to."""
    from matplotlib.ticker import FuncFormatter

    def along(d):
        k = int(np.argmax(np.abs(d)))
        return (k, float(np.sign(d[k]))) if abs(d[k]) > 1.0 - 1e-6 else None

    au, av = along(np.asarray(u, float)), along(np.asarray(v, float))
    c = np.asarray(center, float)
    if au is None or av is None:
        return (f"mm from the picture's centre, RAS ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm, "
                "towards the picture's right and top")
    for axis, (k, sg), lim in ((ax.xaxis, au, ax.get_xlim()), (ax.yaxis, av, ax.get_ylim())):
        a = sorted(c[k] + sg * np.asarray(lim, float))           # absolute range shown
        step = next((x for x in (10, 20, 25, 50, 100, 200) if (a[1] - a[0]) / x <= 8), 500)
        ticks = np.arange(np.ceil(a[0] / step) * step, a[1] + 1e-6, step)
        axis.set_ticks(sg * (ticks - c[k]))                      # data = mm from the centre
        axis.set_major_formatter(FuncFormatter(lambda t, _, k=k, sg=sg: f"{c[k] + sg * t:.0f}"))
    return f"RAS mm (horizontal: {'RAS'[au[0]]}, vertical: {'RAS'[av[0]]})"


def render_slice_png(ct: Volume, labels: Volume | None, center, u, v, path, entry=None, target=None,
                     title="", half_mm=90.0, step_mm=0.5, half_slab_mm: float | None = None) -> Path:
    """PNG of :func:`slice_figure` at ``path`` (written atomically); returns the path."""
    import matplotlib.pyplot as plt

    from .outputs import atomic_path

    fig, _ = slice_figure(ct, labels, center, u, v, entry, target, title, half_mm, step_mm, half_slab_mm)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


# radiological display, as Slicer shows an axial slice: patient right on the picture's left, anterior up
AXIAL_U, AXIAL_V = np.array([-1.0, 0, 0]), np.array([0, 1.0, 0])


def axial_half_mm(entry, target, least_mm: float = 90.0, margin_mm: float = 15.0) -> float:
    """Half-width (mm) of the axial picture centred on ``target``: at least ``least_mm``, and wide
    enough that the skin entry's in-plane position (RAS mm) lies ``margin_mm`` inside its edge, so
    the body wall the needle crosses is in the picture (new-user trial 112 F4: an entry 133 mm from
    the target fell off a 90 mm picture whose legend still marked it)."""
    d = np.asarray(entry, float) - np.asarray(target, float)
    return max(least_mm, float(max(abs(d @ AXIAL_U), abs(d @ AXIAL_V))) + margin_mm)


def needle_pictures(ct: Volume, labels: Volume | None, entry, target, out_dir, stem: str = "plan") -> list[tuple]:
    """Axial slice through the target (needle projected, in-slice part solid) and the oblique
    plane holding the whole needle and the patient's S axis (or A when the needle is
    craniocaudal), written as ``out_dir/<stem>_axial.png`` and ``<stem>_needle_plane.png``.
    Returns [(path, caption), ...]."""
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    half_ax = axial_half_mm(entry, target)
    axial = render_slice_png(ct, labels, target, AXIAL_U, AXIAL_V, out_dir / f"{stem}_axial.png", entry, target,
                             f"axial slice through the target (S = {target[2]:.1f} mm)", half_mm=half_ax,
                             step_mm=max(0.5, half_ax / 300))
    d = (target - entry) / np.linalg.norm(target - entry)
    ref = np.array([0, 0, 1.0]) if abs(d[2]) < 0.9 else np.array([0, 1.0, 0])
    v = ref - (ref @ d) * d
    v /= np.linalg.norm(v)
    half = max(90.0, 0.6 * np.linalg.norm(target - entry))
    oblique = render_slice_png(ct, labels, 0.5 * (entry + target), d, v, out_dir / f"{stem}_needle_plane.png",
                               entry, target, "reformat containing the whole needle", half_mm=half,
                               step_mm=max(0.5, half / 300))
    return [(axial, "axial slice through the target (radiological view: patient right on the left)"),
            (oblique, "reformat containing the whole needle")]


def _table(rows, head=None) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head) if head else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{'<tr>' + h + '</tr>' if h else ''}{body}</table>"


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.1f}"
    if isinstance(x, (list, tuple)) and x and all(isinstance(c, (int, float)) for c in x):
        return "(" + ", ".join(f"{c:.1f}" for c in x) + ")"
    return str(x)


def distinct_decimals(values, lo: int = 1, hi: int = 6) -> int:
    """Fewest decimals (``lo``..``hi``) at which the different numbers among ``values`` print
    differently (e.g. scores 0.4213 and 0.4248 need 3)."""
    vals = sorted({float(v) for v in values if isinstance(v, (int, float)) and np.isfinite(v)})
    for n in range(lo, hi + 1):
        if len({f"{v:.{n}f}" for v in vals}) == len(vals):
            return n
    return hi


def percent_of_probability(p) -> str:
    """A probability 0..1 as risk models are read: percent with one decimal, "<1 %" below 1 %
    and ">99 %" above 99 % (finer extremes change no decision: the BTS 2015 guideline's thresholds
    are 10 % (Brock) and 70 % (Herder); Callister et al., Thorax 2015;70 Suppl 2)."""
    if p is None:
        return ""
    x = 100.0 * float(p)
    return "<1 %" if x < 1.0 else ">99 %" if x > 99.0 else f"{x:.1f} %"


def percent_covered(x) -> str:
    """A coverage percentage with one decimal that never rounds to 100.0 or 0.0 unless exact:
    99.97 -> ">99.9", 0.02 -> "<0.1" (a tumour 99.97 % covered is not covered)."""
    if x is None:
        return ""
    x = float(x)
    if 99.95 <= x < 100.0:
        return ">99.9"
    if 0.0 < x < 0.05:
        return "<0.1"
    return f"{x:.1f}"


def _met(c: dict) -> str:
    if not c:
        return ""
    if c.get("met") is None and c.get("not_verifiable"):   # trial 90 1b: a margin in tissue past the image
        return f" (not verifiable: {c['not_verifiable']})"
    return " (met)" if c.get("met") else f" (below the required {c.get('required')})"


def ablation_rows(a: dict) -> list:
    """Rows of an ablation plan (``ablation_<tumour>.json``, or one entry of plan.json's
    ``ablation``): device, its own setting (power, time, zone size; and why IMAGIO chose it when
    it is not the asked one: ``setting_choice``), probes, coverage, margin, heat sink, healthy
    tissue; the criteria say whether each threshold is met."""
    from .planning.ablation.commands import hollow_viscus_verdict
    from .planning.ablation.criteria import mam_text

    cov = a.get("coverage") or {}
    crit = cov.get("criteria") or {}
    shells = cov.get("margin_covered_pct") or {}
    rows = [("device and setting", f"{a.get('device')} {a.get('setting')} ({a.get('modality')})"
             + (f": {a['setting_words']}" if a.get("setting_words") else "")),   # its own setting's power, time, zone
            *([("setting chosen by IMAGIO", a["setting_choice"])] if a.get("setting_choice") else []),
            *([("zone edge", a["zone_edge"])] if a.get("zone_edge") else []),
            ("probes", f"{a.get('n_probes')}" + (f" (proposal {a['from_proposal']}'s probe: the fewest possible)"
                                                 if a.get("from_proposal") else
                                                 f" (lower bound {a['lower_bound']} over the candidate zones)"
                                                 if a.get("lower_bound") else "")),
            ("tumour covered (%)", f"{percent_covered(cov.get('tumour_covered_pct'))}" + (
                " (every voxel, but the tumour's surface lies partly outside the zone)"
                if crit.get("tumour_covered") and crit["tumour_covered"].get("met") is False
                and (cov.get("tumour_covered_pct") or 0) >= 99.95 else _met(crit.get("tumour_covered")))),
            *[(f"tumour + {k} covered (%)", f"{percent_covered(v)}" + (
                f" (every voxel of it, but the minimal margin is {mam_text(cov['mam_mm'])} mm: its outer surface lies "
                "partly outside the zone)" if v is not None and v >= 99.95 and cov.get("mam_mm") is not None
                and cov["mam_mm"] < float(str(k).removesuffix("mm")) else ""))   # trial 50 L1
              for k, v in shells.items()],
            ("minimal ablative margin (mm)", f"{_fmt(cov.get('mam_mm')) if cov.get('mam_mm') is None else mam_text(cov['mam_mm'])}{_met(crit.get('minimal_ablative_margin'))}"
             + (f" (from the tumour label's voxel faces to the zone's ellipsoid, never above it; the true edge "
                f"+/- {cov['outline_tolerance_mm']:g} mm: half a CT voxel)"
                if cov.get("outline_tolerance_mm") else "")),
            ("margin's weakest point RAS (mm)", cov.get("mam_ras")),
            # the proposals whose zones meet the margin this one misses (trial 107 F3, the summary line's words)
            *([("margin met by another proposal", a["margin_met_elsewhere"])] if a.get("margin_met_elsewhere") else []),
            *([("no hollow viscus in the zone", hollow_viscus_verdict(crit["no_hollow_viscus"]))]
              if crit.get("no_hollow_viscus") else []),   # trial 96 F4
            ("zone volume (mL)", cov.get("zone_volume_ml")),
            *([("zone past the image (mL)", f"{_fmt((cov.get('unimaged') or {}).get('zone_ml'))} ("
                + ", ".join(f"{k} {_fmt(v)}" for k, v in ((cov.get('unimaged') or {}).get('sides') or {}).items())
                + "): tissue not imaged, not judged")] if (cov.get("unimaged") or {}).get("zone_ml") else [])]
    for k, p in enumerate(a.get("probes") or [], start=1):   # trial 32 L2/H4: the plan could not be executed
        rows.append((f"probe {k} entry -> tip RAS (mm)",
                     f"{[round(x, 1) for x in p['entry_ras']]} -> {[round(x, 1) for x in p['tip_ras']]}, "
                     f"{_fmt(p.get('length_mm'))} mm" + ("" if p.get("feasible", True) else ", INFEASIBLE")))
    from .planning.ablation.commands import shared_entry_words

    for g in a.get("shared_entries") or []:
        rows.append((f"probes {', '.join(map(str, g))}",
                     "one skin entry: " + ("cryoprobes cannot share it (they freeze together)"
                                           if a.get("modality") == "cryoablation" else
                                           f"{shared_entry_words(a['probes'], g)}, ablations one after the other")))
    healthy = cov.get("healthy_ml") or {}
    if healthy:
        rows.append(("healthy tissue ablated (mL)", ", ".join(f"{k} {_fmt(v)}" for k, v in healthy.items())))
    for h in cov.get("heat_sink") or []:
        from .planning.ablation.heatsink import heat_sink_words

        rows.append((f"heat sink: {h.get('vessel')}",
                     f"{h.get('level')} risk ({_fmt(h.get('diameter_mm'))} mm lumen): {heat_sink_words(h)}"))
    return rows


def ablation_sections(a: dict) -> list:
    """(title, rows) sections of an ablation: ``ablation_<tumour>.json`` (one plan), or the
    ``ablation`` of ``imagio plan --device``'s plan.json (a plan per proposal in
    ``single_probe``, the best proposal's first, and optionally ``multi_probe``, planned or
    failed with its reason). Trial 10: the plan.json layout was read as the first and the
    report showed 'probes None' and an empty coverage."""
    if "single_probe" not in a:
        return [("Ablation", ablation_rows(a))]
    out = []
    if a["single_probe"]:
        best = a["single_probe"][0]
        out.append((f"Ablation: one probe on proposal {best.get('proposal', 1)}", ablation_rows(best)))
    m = a.get("multi_probe") or {}
    if m.get("n_probes"):
        out.append(("Ablation: multi-probe plan", ablation_rows(m)))
    elif m.get("failed"):
        out.append(("Ablation: multi-probe plan", [("not planned", m["failed"])]))
    return out


def bronchoscopy_rows(b: dict) -> list:
    """Rows of a bronchoscopic plan (``bronch_<nodule>.json``)."""
    r = b.get("route") or {}
    rows = [("scope", f"{r.get('scope')} ({_fmt(r.get('scope_diameter_mm'))} mm)"),
            ("reaches the lesion", r.get("reach") or r.get("reached")), ("remaining to the lesion (mm)", r.get("remaining_mm")),
            ("route length (mm)", r.get("length_mm")), ("generation", r.get("generation")),
            ("branches", " > ".join(r["route_names"] if "route_names" in r
                                    else [n or "-" for n in r.get("branch_names") or []])
             + (f" {r['route_names_note']}" if r.get("route_names_note") else "")),
            ("bronchus sign", r.get("bronchus_sign_reason") or r.get("bronchus_sign")),
            ("verdict", r.get("verdict"))]
    for k, t in enumerate(b.get("tunnels") or []):
        c, d = t.get("min_vessel_clearance_mm"), t.get("min_dense_tissue_clearance_mm")
        rows.append((f"tunnel {k + 1}", f"{_fmt(t.get('length_mm'))} mm, vessel clearance "
                                        f"{'NOT CHECKED' if c is None else _fmt(c) + ' mm'}"
                                        + ("" if d is None else f", dense-tissue (CT) clearance {_fmt(d)} mm")))
    if b.get("tunnel_problem"):
        rows.append(("tunnel", b["tunnel_problem"]))
    return rows


def stratification_rows(val: dict) -> list:
    """Rows of a risk or eligibility result: a model's probability as a percentage (see
    :func:`percent_of_probability`), other values as they are (nested ones as short JSON)."""
    rows = []
    for k, v in val.items():
        if isinstance(v, dict) and "suggestion" in v and "guideline" in v:   # the whole text, with its note
            rows.append((f"{k} ({v['guideline']})", f"{v['suggestion']} ({v.get('note', '')}; {v.get('source', '')})"))
        elif isinstance(v, dict) and "category" in v and "management" in v:   # Lung-RADS, whole (trial 31)
            rows.append((f"{k} category", " ".join(x for x in (f"{v['category']}: {v['management']}", v.get("note", ""),
                                                               (v.get("at_size_cut") or {}).get("note", ""),
                                                               f"({v.get('source', '')})") if x)))
        elif isinstance(v, dict) and "probability" in v:
            rng = v.get("probability_range")
            txt = (percent_of_probability(v["probability"]) if v["probability"] is not None or not rng else
                   f"{percent_of_probability(rng[0])} to {percent_of_probability(rng[1])} (not given: "
                   f"{', '.join(x.replace('_', ' ') for x in v.get('unknown', []))})")
            rows.append((f"{k} probability of malignancy", txt))
        elif k == "probability" or k.endswith("_probability"):
            rows.append((k, percent_of_probability(v)))
        elif k == "inputs" and isinstance(v, dict):   # what the models read: value, unit, how it was had
            rows += [(f"input: {n.replace('_', ' ')}", " ".join(str(x) for x in (
                "-" if e.get("value") is None else e["value"], e.get("unit"), f"({e.get('how')})") if x))
                for n, e in v.items() if isinstance(e, dict)]
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):   # e.g. risk's "assumed", whole
            rows.append((k, "; ".join(v)))
        else:
            rows.append((k, v if not isinstance(v, (dict, list)) else json.dumps(v)[:200]))
    return rows


def shown_proposals(props: list[dict], first: int = 3) -> list[int]:
    """Indices of the proposals (plan.json ``proposals``, best first) the report's trajectory
    table shows: the first ``first``, and every later one ranked last for a finding
    (``findings_ranked_last``), all of the needle's part outside the skin (`planning.findings.
    finding_rank` 1), whose score is better (lower) than proposal 1's. The ranking rule
    puts such a path after every path without a finding whatever the scores (new-user trial 88
    M1: the chest CTA's two best-scored paths, 59-61 mm with 7-8 mm of aerated lung, were
    proposals 4 and 5 behind 133-147 mm paths with 85-93 mm of lung, and the report, showing
    #1-#3 only, gave no entry or figures for them)."""
    from .planning.findings import held_back_better

    s0 = props[0].get("score") if props else None
    later = [i for i, p in enumerate(props[first:], first)
             if isinstance(s0, (int, float)) and isinstance(p.get("score"), (int, float))
             and held_back_better(p.get("findings_ranked_last") or [], p["score"], s0)]
    return list(range(min(first, len(props)))) + later


# a criterion's source longer than this is cut in the table at a word boundary ("... [n]") and
# given whole in the "Score criteria sources" notes (the citation is at its end)
SOURCE_CELL_CHARS = 160


def sections(doc: dict, meta: dict) -> list[tuple[str, list]]:
    """Report content as (title, [(label, value) rows or ('table', head, rows)]) sections."""
    out = []
    ids = [(k, meta[k]) for k in IDENTIFIERS if meta.get(k)]
    if ids:
        out.append(("Patient and series (as in the input)", ids))
    if doc.get("report_warnings"):  # what this report could not show (no CT for the pictures, ...)
        out.append(("Report warnings", [(f"{i + 1}", w) for i, w in enumerate(doc["report_warnings"])]))
    if doc.get("input_warnings"):  # how the images were read (tilt corrected, slices dropped, ...)
        out.append(("Input warnings", [(f"{i + 1}", w) for i, w in enumerate(doc["input_warnings"])]))
    t = doc.get("target") or {}
    if t:
        rows = [("target", t.get("name")), ("tip position RAS (mm)", t.get("ras")), ("organ", t.get("organ"))]
        rows += [(k, v) for k, v in (doc.get("target_measurements") or {}).items()
                 if k in ("volume_ml", "long_axis_mm", "short_axis_mm", "size_withheld", "nodule_type", "mean_hu")
                 and not (k == "size_withheld" and v is None)]
        if "warnings" in doc:
            rows.append(("warnings", f"{len(doc['warnings'])} (listed below the trajectories)"
                         if doc["warnings"] else "none"))
        out.append(("Target", rows))
    n = doc.get("needle")
    if n:
        out.append(("Needle", [(k, v) for k, v in n.items()]))
    props = doc.get("proposals") or []
    if props:
        cols = shown_proposals(props)
        head = ["", *[props[i].get("label") or f"#{i + 1}" for i in cols]]
        shown = [props[i] for i in cols]
        rows = [("entry RAS (mm)", *[p["entry_ras"] for p in shown])]
        rows += [(label, *[field_text(p, key) for p in shown])   # a field no path has: no row
                 for key, label in PROPOSAL_FIELDS if key != "score" and any(key in p for p in shown)]
        if any(p.get("length_in_mm") for p in shown):   # what each needle runs through (mm)
            rows.append(("runs through (mm)", *[", ".join(f"{k} {float(v):.1f}" for k, v in
                                                          sorted((p.get("length_in_mm") or {}).items(),
                                                                 key=lambda kv: -float(kv[1])))
                                                or "none" for p in shown]))
        scores = [p.get("score") for p in shown]
        n = distinct_decimals(scores)
        rows.append(("score (lower is better)", *[f"{s:.{n}f}" if isinstance(s, (int, float)) else "" for s in scores]))
        rows.append(("constraint violations", *[", ".join(p.get("violations") or []) or "none" for p in shown]))
        if any(p.get("findings_ranked_last") for p in shown):
            rows.append(("warned findings (ranked by them first)", *[", ".join(p.get("findings_ranked_last") or []) or "none" for p in shown]))
        out.append(("Proposed trajectories", [("table", head, rows)]))
        out.append(("Angles (degrees)", [(label, why) for _, label, why in ANGLES]))
    chosen = doc.get("chosen_path")
    if chosen:   # the path the user settled on (web workstation, Slicer): the pictures show it
        rows = [("entry RAS (mm)", chosen.get("entry_ras")), ("target RAS (mm)", chosen.get("target_ras")),
                ("feasible", chosen.get("feasible"))]
        rows += [(label, field_text(chosen, key)) for key, label in PROPOSAL_FIELDS if key != "score"]
        rows.append(("constraint violations", "; ".join(chosen.get("details") or chosen.get("violations") or [])
                     or "none"))
        out.append(("Chosen path", rows))
    if not props and "report" in doc:
        rep = doc["report"] or {}
        rows = [(k, json.dumps(v)) for k, v in rep.get("excluded_by", {}).items()]
        if rep.get("nearest_skin_mm") is not None:
            rows.append(("reach: nearest skin (mm)", f"{_fmt(float(rep['nearest_skin_mm']))}, beyond the needle"))
        out.append(("No feasible path", [("table", ["constraint", "candidates excluded"], rows)]))
        nm = rep.get("best_near_miss") or {}
        if nm:   # why even the closest candidate fails, in the planner's words
            out.append(("Best near-miss (not feasible)",
                        [("entry RAS (mm)", nm.get("entry_ras")),
                         *[(f"{i + 1}", d) for i, d in enumerate(nm.get("details") or nm.get("violations") or [])]]))
    warns = doc.get("warnings") or []
    if "warnings" in doc:   # a plan: every doubt listed, "none" only when there are none
        out.append(("Warnings", [(f"{i + 1}", w) for i, w in enumerate(warns)] or [("warnings", "none")]))
    rules = doc.get("rules") or {}
    if rules:
        rr = [("host organ", rules.get("host_organ") or "unknown")]
        rr += [(k, ("applies" if v.get("applies") else "not applied") + (f" ({v['why']})" if v.get("why") else ""))
               for k, v in rules.items() if isinstance(v, dict) and "applies" in v]
        if rules.get("roles_overridden"):
            rr.append(("roles overridden", json.dumps(rules["roles_overridden"])))
        if rules.get("disabled"):
            rr.append(("rules disabled", ", ".join(rules["disabled"])))
        rr += rule_extra_rows(rules)
        out.append(("Rules used", rr))
    crit = doc.get("criteria") or []
    if crit:
        rows, notes = [], []
        for c in crit:
            src = c["source"]
            if len(src) > SOURCE_CELL_CHARS:   # cut at a word, the whole source in a note below (trial 95 F12)
                notes.append((f"[{len(notes) + 1}] {c['name']}", src))
                src = f"{src[:SOURCE_CELL_CHARS].rsplit(' ', 1)[0].rstrip(' ,;:')} ... [{len(notes)}]"
            rows.append((c["name"], c["unit"], f"{c['direction']} is better", f"{c['lo']:g} .. {c['hi']:g}",
                         f"{c['weight']:g}", src))
        out.append(("Score criteria", [("table", ["criterion", "unit", "direction", "cost range",
                                                   "weight", "source"], rows)]))
        if notes:
            out.append(("Score criteria sources", notes))
    if doc.get("ablation"):
        out += ablation_sections(doc["ablation"])
    # a plan's bronchoscopy, or `imagio bronch`'s own bronch.json (its route at the top level;
    # trial 10: its report held only the warnings)
    bronch = doc.get("bronchoscopy") or (doc if "route" in doc and "tree" in doc else None)
    if bronch:
        out.append(("Bronchoscopic route", bronchoscopy_rows(bronch)))
    if doc.get("sarcoma"):   # issue 18: imagio.planning.sarcoma.report
        from .planning.sarcoma.report import sarcoma_sections

        out += sarcoma_sections(doc["sarcoma"])
    for key, title in (("risk", "Nodule risk"), ("eligibility", "Ablation eligibility")):
        if doc.get(key):
            val = doc[key]
            out.append((title, stratification_rows(val)))
    return out


def rule_extra_rows(rules: dict) -> list[tuple[str, str]]:
    """Rows for the rules a plan records beside the organ rules (plan.json ``rules``): the bone
    target (`planning.problem._enter_target_bone`), the target organ entered, the other lesions
    kept out (`planning.problem._other_lesions_kept_out`), the vessel calibre split and the ranking of paths with unresolved findings (`planning.findings`)."""
    rr = []
    tb = rules.get("target_bone")
    if tb:
        canal = f"; spinal canal: {tb['canal']}" if tb.get("canal") else ""
        rr.append(("bone target", f"only the piece of {tb['structure']} that holds the target ({tb.get('piece_ml')} mL "
                                  f"within reach) may be entered, once, as the last part of the path (shortest "
                                  f"course through bone counted); other bone keeps its role{canal}"))
    elif rules.get("target_organ_entered"):
        rr.append(("target organ entered", str(rules["target_organ_entered"])))
    if (rules.get("other_lesions") or {}).get("kept_out"):
        ol = rules["other_lesions"]
        rr.append(("other lesions kept out", f"{', '.join(ol['kept_out'])} (role {ol.get('role', 'forbidden')}: "
                                             "a needle through a second tumour mixes the specimen and can seed the "
                                             "tract; --role NAME=passable crosses one)"))
    if rules.get("vessel_calibre"):
        rr.append(("vessel calibre split", ", ".join(f"{k}: {v.get('small_structure')} ({v.get('small_role')})"
                                                     for k, v in rules["vessel_calibre"].items()
                                                     if isinstance(v, dict))))
    if rules.get("findings_ranked_last"):
        rr.append(("ranking", str(rules["findings_ranked_last"])))
    return rr


def report_title(doc: dict) -> tuple[str, str]:
    """(title, what the document supports) of a report of ``doc``: a risk or eligibility JSON
    alone is no plan (new-user trial 31: `imagio report risk.json` was titled "plan report")."""
    kinds = {k for k in REPORTABLE_KEYS if doc.get(k)}
    only = {frozenset({"risk"}): "IMAGIO nodule risk report", frozenset({"eligibility"}): "IMAGIO ablation eligibility report",
            frozenset({"risk", "eligibility"}): "IMAGIO risk and eligibility report"}.get(frozenset(kinds))
    return (only, "decision support") if only else ("IMAGIO plan report", "planning support")


def write_html(doc, meta, pictures, path) -> Path:
    heading, support = report_title(doc)
    parts = [f"<h1>{heading}</h1><p>generated {_dt.datetime.now():%Y-%m-%d %H:%M} by IMAGIO "
             f"{__version__}; {support}, to be checked by the treating physician</p>"]
    for title, rows in sections(doc, meta):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if rows and rows[0][0] == "table":
            parts.append(_table(rows[0][2], rows[0][1]))
        else:
            parts.append(_table(rows))
    for p, caption in _existing(pictures):
        src = Path(os.path.relpath(Path(p).resolve(), Path(path).resolve().parent)).as_posix()
        parts.append(f'<figure><img src="{html.escape(src)}" width="480"><figcaption>'
                     f'{html.escape(caption)}</figcaption></figure>')
    style = "body{font-family:sans-serif;max-width:900px}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    from .outputs import write_text

    return write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>{heading}</title>"
                            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_pdf(doc, meta, pictures, path) -> Path:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    heading, support = report_title(doc)
    pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 5, f"generated {_dt.datetime.now():%Y-%m-%d %H:%M} by IMAGIO {__version__}; {support}, "
                   "to be checked by the treating physician", new_x="LMARGIN", new_y="NEXT")

    def text(s):
        return str(s).encode("latin-1", "replace").decode("latin-1")

    for title, rows in sections(doc, meta):
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, text(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        if rows and rows[0][0] == "table":
            head, body = rows[0][1], rows[0][2]
            w = [48] + [(pdf.epw - 48) / max(1, len(head) - 1)] * (len(head) - 1)
            with pdf.table(col_widths=w, text_align="LEFT") as tbl:
                tbl.row([text(h) for h in head])
                for r in body:
                    tbl.row([text(_fmt(c)) for c in r])
        else:
            with pdf.table(col_widths=(60, pdf.epw - 60), text_align="LEFT", first_row_as_headings=False) as tbl:
                for k, v in rows:
                    tbl.row([text(k), text(_fmt(v))])
    pics = _existing(pictures)
    if pics:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, "Pictures", new_x="LMARGIN", new_y="NEXT")
        for i, (p, caption) in enumerate(pics):
            if i and i % 2 == 0:
                pdf.add_page()
            pdf.image(str(p), w=pdf.epw * 0.62)
            pdf.set_font("Helvetica", "", 8)
            pdf.multi_cell(0, 4, text(caption), new_x="LMARGIN", new_y="NEXT")
    from .outputs import atomic_path

    with atomic_path(path) as tmp:
        pdf.output(str(tmp))
    return Path(path)


def _existing(pictures) -> list[tuple[Path, str]]:
    """(path, caption) pairs of the pictures that exist (a bare path gets its stem as caption)."""
    pairs = [(Path(p[0]), p[1]) if isinstance(p, tuple) else (Path(p), Path(p).stem.replace("_", " "))
             for p in pictures]
    return [(p, c) for p, c in pairs if p.is_file()]


def html_beside(out_pdf) -> Path:
    """The HTML copy of the report ``out_pdf``: the same name with ``.html``, in the same folder."""
    return Path(out_pdf).with_suffix(".html")


def picture_stem(out_pdf) -> str:
    """Prefix of a report's picture files: the PDF's name without suffix, so that two reports in
    one folder never share a picture (``a.pdf`` -> ``a_axial.png``, ``a_3d.png``, ...)."""
    return Path(out_pdf).stem


def pictured_path(doc: dict) -> dict | None:
    """The needle path the pictures show: the user's chosen path when the document has one, else
    the best proposal, else None."""
    chosen = doc.get("chosen_path")
    if chosen and chosen.get("entry_ras") is not None:
        return chosen
    return (doc.get("proposals") or [None])[0]


def missing_picture_note(path) -> str:
    return f"the 3D picture {path} is not there; the report has no 3D view"


def build_report(doc: dict, out_pdf, ct: Volume | None = None, labels: Volume | None = None,
                 picture_3d=None, notes=(), extra_pictures=()) -> tuple[Path, Path]:
    """Write ``out_pdf`` and the same content as HTML beside it; returns (html, pdf).

    Pictures are written beside the PDF and named after it (:func:`picture_stem`): the 3D view
    ``picture_3d`` (a PNG, copied), and with ``ct`` the axial slice through the target and the
    reformat along the best proposal. ``notes``: what the caller could not find (e.g. the plan's
    CT); they and any picture left out are listed under "Report warnings" in both documents.
    ``extra_pictures``: (PNG, caption) pairs (e.g. the bronchoscopic fly-through strip), copied
    beside the report as ``<stem>_extra<N>.png``."""
    import shutil

    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    stem = picture_stem(out_pdf)
    notes = list(notes)
    pictures = []
    if picture_3d:
        if Path(picture_3d).is_file():
            own = out_pdf.parent / f"{stem}_3d.png"
            if Path(picture_3d).resolve() != own.resolve():
                from .outputs import atomic_path

                with atomic_path(own) as tmp:
                    shutil.copyfile(picture_3d, tmp)
            pictures.append((own, "3D view: skin risk map, structures and proposals"))
        else:
            notes.append(missing_picture_note(picture_3d))
    for n, (png, caption) in enumerate(extra_pictures):
        if not Path(png).is_file():
            notes.append(missing_picture_note(png))
            continue
        own = out_pdf.parent / f"{stem}_extra{n + 1}.png"
        from .outputs import atomic_path

        with atomic_path(own) as tmp:
            shutil.copyfile(png, tmp)
        pictures.append((own, caption))
    path = pictured_path(doc)
    if path and ct is None and not notes:
        notes.append("no CT given: the axial slice and the reformat along the needle are left out")
    if ct is not None and path:
        which = "chosen path" if path is doc.get("chosen_path") else "proposal #1"
        pictures += [(p, f"{which}: {c}") for p, c in
                     needle_pictures(ct, labels, path["entry_ras"], path["target_ras"], out_pdf.parent, stem)]
    read = [w for v in (ct, labels) if v is not None for w in v.warnings]
    if read:
        doc = {**doc, "input_warnings": list(dict.fromkeys((doc.get("input_warnings") or []) + read))}
    if notes:
        doc = {**doc, "report_warnings": list(dict.fromkeys((doc.get("report_warnings") or []) + notes))}
    meta = dict(ct.meta) if ct is not None else {}
    meta.update(doc.get("inputs", {}).get("meta", {}))
    html_path = write_html(doc, meta, pictures, html_beside(out_pdf))
    return html_path, write_pdf(doc, meta, pictures, out_pdf)


def recorded_path(plan_dir: Path, recorded) -> Path | None:
    """A path recorded in a plan's ``inputs``: as written when absolute, else relative to the plan's
    folder (then to the working folder); None when it is not there."""
    if not recorded:
        return None
    p = Path(recorded)
    for c in ([p] if p.is_absolute() else [plan_dir / p, p]):
        if c.exists():
            return c
    return None


def plan_inputs(plan_dir: Path, inputs: dict, ct=None, labels=None, label_names=None, series=None):
    """Read the CT and label map that made a plan, for its pictures: the given paths (``--ct``,
    ``--labels``; an unreadable given path raises), else those the plan records (``inputs.ct``,
    ``inputs.labels``, ``inputs.label_names``, ``inputs.series``). Returns (ct Volume or None,
    labels Volume or None, notes): each note says what was not found and how to give it."""
    from . import io
    from .errors import ImagioError

    notes = []

    def find(given, key, what, flag):
        if given:
            return Path(given)
        p = recorded_path(plan_dir, inputs.get(key))
        if p is None:
            notes.append(f"the plan's {what} " + (f"{inputs[key]} was not found" if inputs.get(key) else
                                                  "is not recorded in the plan")
                         + f"; give it with {flag}")
        return p

    ct_path = find(ct, "ct", "CT", "--ct")
    lab_path = find(labels, "labels", "label map", "--labels")
    names_path = label_names or (recorded_path(plan_dir, inputs.get("label_names")) if not labels else None)
    ct_vol = lab_vol = None
    if ct_path is not None:
        try:
            ct_vol = io.read_image(ct_path, series if ct else (series or inputs.get("series")))
        except ImagioError as e:
            if ct:
                raise
            notes.append(f"the plan's CT {ct_path} could not be read ({e}); give it with --ct")
    if lab_path is not None:
        try:
            lab_vol = io.read_labels(lab_path, io.read_label_names(names_path) if names_path else None)
        except ImagioError as e:
            if labels:
                raise
            notes.append(f"the plan's label map {lab_path} could not be read ({e}); give it with --labels")
    if ct_vol is None and notes:
        notes.append("without the CT the axial slice and the reformat along the needle are left out")
    elif lab_vol is None and notes:
        notes.append("without the label map the pictures show no structure outlines")
    return ct_vol, lab_vol, notes


def target_outside(ct: Volume, doc: dict) -> str | None:
    """A note when the plan's target is outside the CT's extent (another image than the plan's)."""
    t = (doc.get("target") or {}).get("ras")
    if t is None:
        return None
    kji = ct.world_to_kji(np.asarray(t, float)[None])[0]
    if np.all((kji >= -0.5) & (kji <= np.asarray(ct.shape) - 0.5)):
        return None
    return (f"the target {[round(float(x), 1) for x in t]} RAS mm lies outside the given CT: it is not the CT "
            "that made the plan; the CT pictures (axial slice, reformat along the needle) are left out")


def differs_from_record(vol: Volume, inputs: dict, key: str) -> bool:
    """Whether ``vol``'s world image (`volume.world_digest`) differs from the digest the plan
    recorded under ``inputs[key]``; False when the plan recorded none (an older plan)."""
    from .volume import world_digest

    want = inputs.get(key)
    return bool(want) and world_digest(vol) != want


def not_the_plans_ct(ct: Volume, inputs: dict) -> str | None:
    """A note when ``ct`` is not the image the plan recorded (``inputs.ct_digest``,
    `volume.world_digest`: other voxel values or geometry; the same image stored in another
    axis order or with flipped axes is the same); None when equal or when the plan recorded none."""
    if not differs_from_record(ct, inputs, "ct_digest"):
        return None
    return ("the CT for the pictures is not the image the plan was made on (its voxels or geometry differ "
            "from the plan's record): another scan or a changed file; the CT pictures (axial slice, reformat along the needle) are left out, the 3-D view (from the labels) is kept; give the "
            "plan's CT with --ct")


def not_the_plans_labels(labels: Volume, inputs: dict) -> str | None:
    """A note when ``labels`` is not the label map the plan recorded (``inputs.labels_digest``,
    `volume.world_digest`, as `not_the_plans_ct`); None when equal or when the plan recorded none
    (new-user trial 39 M2: another label map, mirrored, was drawn under the plan without a word)."""
    if not differs_from_record(labels, inputs, "labels_digest"):
        return None
    return ("the label map for the pictures is not the one the plan was made on (its voxels or geometry differ "
            "from the plan's record): another segmentation or a changed file; the structure outlines are left "
            "out; give the plan's label map with --labels")


# top-level keys of the JSON documents `imagio report` reads (plan, sarcoma plan, bronch, risk, eligibility)
REPORTABLE_KEYS = ("proposals", "feasible", "route", "bronchoscopy", "sarcoma", "risk", "eligibility")


def as_reportable(doc: dict) -> dict:
    """``doc`` itself, or the JSON that `imagio risk` / `imagio eligibility` print put under the
    key the report reads ("risk": Brock/Mayo/Lung-RADS; "eligibility": suitable/reasons), so
    that their own output is reported as the refusal message promises (new-user trial 30)."""
    if any(k in doc for k in REPORTABLE_KEYS):
        return doc
    if "lung_rads" in doc and ("brock" in doc or "mayo" in doc):
        return {"risk": doc}
    if "suitable" in doc and "reasons" in doc:
        return {"eligibility": doc}
    return doc


def cmd_report(args) -> int:
    from .errors import InputError
    from .io import say_warnings

    plan_path = Path(args.plan)
    if Path(args.out).suffix.lower() != ".pdf":   # the HTML is written beside it as NAME.html
        raise InputError(f"--out {args.out}: the report is a PDF (an HTML copy is written beside it); "
                         f"name it e.g. {Path(args.out).with_suffix('.pdf').name}")
    # the HTML beside the PDF is refused up front as the PDF is (`cli._run`: an input, never; an
    # earlier report only with --force, as every command's outputs; new-user trial 80 L: report
    # replaced its earlier PDF and HTML without --force)
    from .outputs import check_outputs, command_paths

    check_outputs([html_beside(args.out)], command_paths(args)[0], force=args.force)
    if not plan_path.exists():
        raise InputError(f"{plan_path}: no such plan file")
    try:
        doc = json.loads(plan_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{plan_path}: not a plan JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{plan_path}: not a plan JSON (an object is expected)")
    doc = as_reportable(doc)
    if not any(k in doc for k in REPORTABLE_KEYS):   # new-user trial 25 (M4): {"a": 1} gave a PDF, exit 0
        raise InputError(f"{plan_path}: not a plan IMAGIO wrote (it has none of {', '.join(REPORTABLE_KEYS)}); give "
                         "the plan.json of imagio plan, the bronch.json of imagio bronch, or a risk/eligibility JSON")
    inputs = doc.get("inputs") or {}
    base = plan_path.parent
    if pictured_path(doc) or args.ct:   # the pictures follow the best (or chosen) needle path
        ct, labels, notes = plan_inputs(base, inputs, args.ct, args.labels, args.label_names, args.series)
    else:
        ct, labels, notes = None, None, []
    if ct is not None and (why := target_outside(ct, doc) or not_the_plans_ct(ct, inputs)):
        notes.append(why)
        ct = labels = None
    if labels is not None and (why := not_the_plans_labels(labels, inputs)):
        notes.append(why)
        labels = None
    pic = args.picture or (recorded_path(base, inputs.get("picture_3d")) or
                           (base / inputs["picture_3d"] if inputs.get("picture_3d") else None))
    if pic and not Path(pic).is_file():
        notes.append(missing_picture_note(pic))
    say_warnings(notes)
    extra = [(recorded_path(base, p) or base / p, c) for p, c in inputs.get("extra_pictures") or []]
    paths = build_report(doc, args.out, ct, labels, pic, notes, extra_pictures=extra)
    if not args.quiet:   # the files written; warnings and errors go to stderr either way
        for p in paths:
            print(p)
    return 0


def register(sub) -> None:
    s = sub.add_parser("report", help="HTML and PDF report of a plan",
                       description="Write a PDF (and the same as HTML beside it) from a plan JSON: identifiers "
                                   "as found in the input, target, trajectories with every metric and warning, "
                                   "and pictures (3D view, axial slice, reformat along the needle).")
    s.add_argument("plan", help="plan JSON written by `imagio plan` or `imagio demo`")
    s.add_argument("--out", required=True, help="output PDF path (the HTML is written beside it as NAME.html)")
    s.add_argument("--force", action="store_true", help="replace an earlier report (PDF and HTML) IMAGIO wrote there; "
                   "a file IMAGIO did not write, or an input, is never replaced")
    s.add_argument("--ct", help="CT image (default: the plan's recorded input)")
    s.add_argument("--labels", help="label map (default: the plan's recorded input)")
    from .io import add_label_names_argument

    add_label_names_argument(s, "default: the plan's recorded one")
    from .dicom import add_series_argument

    add_series_argument(s)   # default: the series the plan records
    s.add_argument("--picture", help="3D view PNG (default: the plan's recorded picture)")
    s.add_argument("--quiet", action="store_true", help="do not list the files written (warnings still go to stderr)")
    s.set_defaults(func=cmd_report)
