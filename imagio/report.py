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
from pathlib import Path

import numpy as np

from . import __version__, anatomy
from .volume import Volume

IDENTIFIERS = ("PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyInstanceUID",
               "SeriesInstanceUID", "SeriesDescription", "Modality")
PROPOSAL_FIELDS = (("length_mm", "length (mm)"), ("closest_structure", "closest structure"),
                   ("closest_clearance_mm", "clearance (mm)"), ("skin_angle_deg", "angle to skin normal (deg)"),
                   ("craniocaudal_deg", "craniocaudal (deg)"), ("inplane_deg", "in-plane (deg)"),
                   ("outofplane_deg", "out-of-plane (deg)"), ("pleural_crossings", "pleural crossings"),
                   ("fissure_crossings", "fissure crossings"), ("aerated_lung_mm", "aerated lung (mm)"),
                   ("liver_before_target_mm", "liver before target (mm)"), ("score", "score"))


def _plane_grid(center, u, v, half_mm, step_mm):
    n = int(2 * half_mm / step_mm) + 1
    s = np.linspace(-half_mm, half_mm, n)
    a, b = np.meshgrid(s, s, indexing="xy")
    return center + a[..., None] * u + b[..., None] * v, s


def render_slice_png(ct: Volume, labels: Volume | None, center, u, v, path, entry=None, target=None,
                     title="", half_mm=90.0, step_mm=0.5) -> Path:
    """PNG of the plane through ``center`` (RAS mm) spanned by unit vectors ``u`` (right in the
    picture) and ``v`` (up): CT at window 400/40 HU, label outlines, the needle as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, s = _plane_grid(np.asarray(center, float), u, v, half_mm, step_mm)
    img = ct.sample(pts, order=1, fill=-1024)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
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
    if entry is not None and target is not None:
        e, t = (np.asarray(entry, float) - center), (np.asarray(target, float) - center)
        ax.plot([e @ u, t @ u], [e @ v, t @ v], color="#20e0ff", lw=2)
        ax.plot([t @ u], [t @ v], "o", color="#ffff00", ms=4)
    ax.set_xlim(s[0], s[-1])
    ax.set_ylim(s[0], s[-1])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("mm")
    fig.tight_layout()
    path = Path(path)
    from .outputs import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def needle_pictures(ct: Volume, labels: Volume | None, entry, target, out_dir) -> list[Path]:
    """Axial slice through the target (needle projected) and the oblique plane holding the whole
    needle and the patient's S axis (or A when the needle is craniocaudal)."""
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # radiological display: patient right on the picture's left, anterior up
    axial = render_slice_png(ct, labels, target, np.array([-1.0, 0, 0]), np.array([0, 1.0, 0]),
                             out_dir / "axial_target.png", entry, target, "axial slice through the target")
    d = (target - entry) / np.linalg.norm(target - entry)
    ref = np.array([0, 0, 1.0]) if abs(d[2]) < 0.9 else np.array([0, 1.0, 0])
    v = ref - (ref @ d) * d
    v /= np.linalg.norm(v)
    half = max(90.0, 0.6 * np.linalg.norm(target - entry))
    oblique = render_slice_png(ct, labels, 0.5 * (entry + target), d, v, out_dir / "needle_plane.png",
                               entry, target, "reformat containing the whole needle", half_mm=half,
                               step_mm=max(0.5, half / 300))
    return [axial, oblique]


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


def _met(c: dict) -> str:
    return "" if not c else (" (met)" if c.get("met") else f" (below the required {c.get('required')})")


def ablation_rows(a: dict) -> list:
    """Rows of an ablation plan (``ablation_<tumour>.json``): device, probes, coverage, margin,
    heat sink, healthy tissue; the criteria say whether each threshold is met."""
    cov = a.get("coverage") or {}
    crit = cov.get("criteria") or {}
    shells = cov.get("margin_covered_pct") or {}
    rows = [("device and setting", f"{a.get('device')} {a.get('setting')} ({a.get('modality')})"),
            ("probes", f"{a.get('n_probes')}" + (f" (lower bound {a['lower_bound']})" if a.get("lower_bound") else "")),
            ("tumour covered (%)", f"{_fmt(cov.get('tumour_covered_pct'))}{_met(crit.get('tumour_covered'))}"),
            *[(f"tumour + {k} covered (%)", _fmt(v)) for k, v in shells.items()],
            ("minimal ablative margin (mm)", f"{_fmt(cov.get('mam_mm'))}{_met(crit.get('minimal_ablative_margin'))}"),
            ("margin's weakest point RAS (mm)", cov.get("mam_ras")),
            ("zone volume (mL)", cov.get("zone_volume_ml"))]
    healthy = cov.get("healthy_ml") or {}
    if healthy:
        rows.append(("healthy tissue ablated (mL)", ", ".join(f"{k} {_fmt(v)}" for k, v in healthy.items())))
    for h in cov.get("heat_sink") or []:
        rows.append((f"heat sink: {h.get('vessel')}",
                     f"{_fmt(h.get('diameter_mm'))} mm vessel, {_fmt(h.get('distance_to_zone_mm'))} mm from the zone, "
                     f"{h.get('level')} risk"))
    return rows


def bronchoscopy_rows(b: dict) -> list:
    """Rows of a bronchoscopic plan (``bronch_<nodule>.json``)."""
    r = b.get("route") or {}
    rows = [("scope", f"{r.get('scope')} ({_fmt(r.get('scope_diameter_mm'))} mm)"),
            ("reaches the lesion", r.get("reached")), ("remaining to the lesion (mm)", r.get("remaining_mm")),
            ("route length (mm)", r.get("length_mm")), ("generation", r.get("generation")),
            ("branches", " > ".join(n or "-" for n in r.get("branch_names") or [])),
            ("bronchus sign", r.get("bronchus_sign"))]
    for k, t in enumerate(b.get("tunnels") or []):
        rows.append((f"tunnel {k + 1}", f"{_fmt(t.get('length_mm'))} mm, vessel clearance "
                                        f"{_fmt(t.get('min_vessel_clearance_mm'))} mm"))
    if b.get("tunnel_problem"):
        rows.append(("tunnel", b["tunnel_problem"]))
    return rows


def sections(doc: dict, meta: dict) -> list[tuple[str, list]]:
    """Report content as (title, [(label, value) rows or ('table', head, rows)]) sections."""
    out = []
    ids = [(k, meta[k]) for k in IDENTIFIERS if meta.get(k)]
    if ids:
        out.append(("Patient and series (as in the input)", ids))
    if doc.get("input_warnings"):  # how the images were read (tilt corrected, slices dropped, ...)
        out.append(("Input warnings", [(f"{i + 1}", w) for i, w in enumerate(doc["input_warnings"])]))
    t = doc.get("target") or {}
    if t:
        rows = [("target", t.get("name")), ("tip position RAS (mm)", t.get("ras")), ("organ", t.get("organ"))]
        rows += [(k, v) for k, v in (doc.get("target_measurements") or {}).items()
                 if k in ("volume_ml", "long_axis_mm", "short_axis_mm", "nodule_type", "mean_hu")]
        if "warnings" in doc:
            rows.append(("warnings", f"{len(doc['warnings'])} (listed below the trajectories)"
                         if doc["warnings"] else "none"))
        out.append(("Target", rows))
    n = doc.get("needle")
    if n:
        out.append(("Needle", [(k, v) for k, v in n.items()]))
    props = doc.get("proposals") or []
    if props:
        head = ["", *[props[i].get("label") or f"#{i + 1}" for i in range(min(3, len(props)))]]
        rows = [("entry RAS (mm)", *[p["entry_ras"] for p in props[:3]])]
        rows += [(label, *[p.get(key, "") for p in props[:3]]) for key, label in PROPOSAL_FIELDS]
        rows.append(("constraint violations", *[", ".join(p.get("violations") or []) or "none" for p in props[:3]]))
        out.append(("Proposed trajectories", [("table", head, rows)]))
    elif "report" in doc:
        rep = doc["report"] or {}
        rows = [(k, json.dumps(v)) for k, v in rep.get("excluded_by", {}).items()]
        out.append(("No feasible path", [("table", ["constraint", "candidates excluded"], rows)]))
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
        out.append(("Rules used", rr))
    crit = doc.get("criteria") or []
    if crit:
        rows = [(c["name"], c["unit"], f"{c['direction']} is better", f"{c['lo']:g} .. {c['hi']:g}",
                 f"{c['weight']:g}", c["source"][:160]) for c in crit]
        out.append(("Score criteria", [("table", ["criterion", "unit", "direction", "cost range",
                                                   "weight", "source"], rows)]))
    if doc.get("ablation"):
        out.append(("Ablation", ablation_rows(doc["ablation"])))
    if doc.get("bronchoscopy"):
        out.append(("Bronchoscopic route", bronchoscopy_rows(doc["bronchoscopy"])))
    for key, title in (("risk", "Nodule risk"), ("eligibility", "Ablation eligibility")):
        if doc.get(key):
            val = doc[key]
            rows = [(k, v if not isinstance(v, (dict, list)) else json.dumps(v)[:200]) for k, v in val.items()]
            out.append((title, rows))
    return out


def write_html(doc, meta, pictures, path) -> Path:
    parts = [f"<h1>IMAGIO plan report</h1><p>generated {_dt.datetime.now():%Y-%m-%d %H:%M} by IMAGIO "
             f"{__version__}; planning support, to be checked by the treating physician</p>"]
    for title, rows in sections(doc, meta):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if rows and rows[0][0] == "table":
            parts.append(_table(rows[0][2], rows[0][1]))
        else:
            parts.append(_table(rows))
    for p in pictures:
        parts.append(f'<figure><img src="{html.escape(Path(p).name)}" width="480"><figcaption>'
                     f'{html.escape(Path(p).stem.replace("_", " "))}</figcaption></figure>')
    style = "body{font-family:sans-serif;max-width:900px}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    from .outputs import write_text

    return write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>IMAGIO plan</title>"
                            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_pdf(doc, meta, pictures, path) -> Path:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "IMAGIO plan report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 5, f"generated {_dt.datetime.now():%Y-%m-%d %H:%M} by IMAGIO {__version__}; planning support, "
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
    pics = [p for p in pictures if Path(p).exists()]
    if pics:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, "Pictures", new_x="LMARGIN", new_y="NEXT")
        for i, p in enumerate(pics):
            if i and i % 2 == 0:
                pdf.add_page()
            pdf.image(str(p), w=pdf.epw * 0.62)
            pdf.set_font("Helvetica", "", 8)
            pdf.cell(0, 5, text(Path(p).stem.replace("_", " ")), new_x="LMARGIN", new_y="NEXT")
    from .outputs import atomic_path

    with atomic_path(path) as tmp:
        pdf.output(str(tmp))
    return Path(path)


def build_report(doc: dict, out_pdf, ct: Volume | None = None, labels: Volume | None = None,
                 picture_3d=None) -> tuple[Path, Path]:
    """Write ``out_pdf`` and the same content as HTML beside it; returns (html, pdf)."""
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    pictures = [Path(picture_3d)] if picture_3d and Path(picture_3d).exists() else []
    props = doc.get("proposals") or []
    if ct is not None and props:
        pictures += needle_pictures(ct, labels, props[0]["entry_ras"], props[0]["target_ras"], out_pdf.parent)
    read = [w for v in (ct, labels) if v is not None for w in v.warnings]
    if read:
        doc = {**doc, "input_warnings": list(dict.fromkeys((doc.get("input_warnings") or []) + read))}
    meta = dict(ct.meta) if ct is not None else {}
    meta.update(doc.get("inputs", {}).get("meta", {}))
    html_path = write_html(doc, meta, pictures, out_pdf.with_suffix(".html"))
    return html_path, write_pdf(doc, meta, pictures, out_pdf)


def cmd_report(args) -> int:
    from . import io

    plan_path = Path(args.plan)
    if not plan_path.exists():
        from .errors import InputError

        raise InputError(f"{plan_path}: no such plan file")
    doc = json.loads(plan_path.read_text())
    inputs = doc.get("inputs", {})
    base = plan_path.parent
    ct_path = args.ct or (base / inputs["ct"] if inputs.get("ct") else None)
    lab_path = args.labels or (base / inputs["labels"] if inputs.get("labels") else None)
    ct = io.read_image(ct_path) if ct_path else None
    labels = io.read_labels(lab_path) if lab_path else None
    pic = args.picture or (base / inputs["picture_3d"] if inputs.get("picture_3d") else None)
    for p in build_report(doc, args.out, ct, labels, pic):
        print(p)
    return 0


def register(sub) -> None:
    s = sub.add_parser("report", help="HTML and PDF report of a plan",
                       description="Write a PDF (and the same as HTML beside it) from a plan JSON: identifiers "
                                   "as found in the input, target, trajectories with every metric and warning, "
                                   "and pictures (3D view, axial slice, reformat along the needle).")
    s.add_argument("plan", help="plan JSON written by `imagio plan` or `imagio demo`")
    s.add_argument("--out", required=True, help="output PDF path")
    s.add_argument("--ct", help="CT image (default: the plan's recorded input)")
    s.add_argument("--labels", help="label map (default: the plan's recorded input)")
    s.add_argument("--picture", help="3D view PNG (default: the plan's recorded picture)")
    s.set_defaults(func=cmd_report)
