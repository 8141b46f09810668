"""The demo's terminal summary: what a user reads after `imagio demo` (the full summary is in
OUT/summary.json; `imagio demo --json` prints that instead)."""

from __future__ import annotations

from pathlib import Path


def _ras(p) -> str:
    return "[" + ", ".join(f"{float(v):.1f}" for v in p) + "]"


def _lesion_line(name: str, m: dict) -> str:
    size = (f"{m['volume_ml']:.2f} mL, mean diameter {m['mean_diameter_mm']:.1f} mm"
            if m.get("volume_ml") is not None and m.get("mean_diameter_mm") is not None
            else "size withheld")
    return f"  {name}: {m.get('kind') or 'lesion'}, {size}{_count(m)}"


def _plan_line(name: str, p: dict) -> str:
    if not p.get("feasible"):
        return f"  {name}: no feasible path ({p.get('candidates', 0)} candidates)"
    b = p["best"]
    near = (f", closest {b['closest_structure']} at {b['closest_clearance_mm']:.1f} mm"
            if b.get("closest_structure") else "")
    return (f"  {name}: best of {p['feasible_candidates']} feasible paths: entry RAS {_ras(b['entry_ras'])} mm, "
            f"{b['length_mm']:.1f} mm long{near}{_count(p)}")


def _count(d: dict) -> str:
    """", N warning(s): read FILE" for an item whose JSON carries warnings the summary does not print."""
    n = len(d.get("warnings") or [])
    where = f": read {Path(d['file']).name}" if d.get("file") else ""
    return f", {n} warning{'s' if n != 1 else ''}{where}" if n else ""


def _said(d: dict) -> list[str]:
    """Each warning of ``d`` in full, indented under its item's line."""
    return [f"    warning: {w}" for w in d.get("warnings") or []]


def _ablation_line(name: str, a: dict) -> str:
    if a.get("feasible") is False:
        return f"  {name}: no placeable probe (see its report)"
    from .planning.ablation.criteria import mam_text

    mam = f", minimal ablative margin {mam_text(a['mam_mm'])} mm" if a.get("mam_mm") is not None else ""
    bound = f" (lower bound {a['lower_bound']})" if a.get("lower_bound") is not None else ""
    cov = a.get("tumour_covered_pct")
    from .report import percent_covered

    cov = f", tumour covered {percent_covered(cov)} %" if cov is not None else ""
    # the margin check's verdict on the MAM's own outline and figure (`multiprobe.margin_check`), not a
    # second margin (abl101: it was the voxel centres' "guaranteed" margin, up to half a voxel above the MAM)
    p = a.get("margin_proven")
    g = "" if p is None else f" ({a.get('margin_mm', 5.0):g} mm margin {'proven' if p else 'NOT proven'})"
    from .planning.ablation.commands import hollow_viscus_clause

    hv = hollow_viscus_clause({"criteria": a.get("criteria")})   # trial 96 F4: a hollow viscus in the zone
    return f"  {name}: {a.get('n_probes')} probe(s){bound}{cov}{mam}{g}{hv}"


def _route_line(name: str, r: dict) -> str:
    where = f" ({Path(r['file']).name})" if r.get("file") else ""
    if r.get("reached"):
        return f"  {name}: reached with the {r.get('scope')} scope ({r.get('length_mm', 0):.0f} mm route){where}"
    rem = r.get("remaining_mm")
    rem = f" {rem:.1f} mm short of the lesion" if rem is not None else " short of the lesion"
    # trial 75: "not reached ... 38.4 mm short" as a fact where the stopping lumen was at the
    # CT's resolution limit (verdict.stop_is_resolved)
    doubt = (" as measured; not a firm stop: the lumen that stops it is at the CT's resolution limit"
             if r.get("stop_resolved") is False else "")
    return f"  {name}: not reached: the {r.get('scope')} scope ends{rem}{doubt}{where}"


def format_summary(summary: dict) -> str:
    """A few lines per part of ``summary`` (`demo.run_demo`'s dict): lesions measured, the best
    needle path per target (entry in RAS mm) with the count of its plan's warnings and its file,
    the ablation probe counts and the bronchoscopic routes each with every warning in full, the
    total time and peak memory, and where the full JSON and the scene are."""
    out = summary.get("out_dir", "")
    lines = [f"IMAGIO demo: {len(summary.get('files', []))} files in {out}"]
    seg = summary.get("segmentation") or {}
    lines.append(f"segmentation: {len(seg.get('structures', []))} structures"
                 f" ({len(seg.get('rule_based', []))} by the rule-based segmenters)")
    if seg.get("lesions"):
        lines.append("lesions (one click each):")
        lines += [_lesion_line(n, m) for n, m in seg["lesions"].items()]
    if summary.get("plans"):
        lines.append("needle plans:")
        lines += [_plan_line(n, p) for n, p in summary["plans"].items()]
    if summary.get("ablation"):
        lines.append("ablation:")
        for n, a in summary["ablation"].items():
            if isinstance(a, dict):
                lines += [_ablation_line(n, a)] + _said(a)
    routes = {n: r for n, r in (summary.get("bronchoscopy") or {}).items()
              if n != "tree" and isinstance(r, dict)}
    if routes:
        lines.append("bronchoscopy:")
        for n, r in routes.items():
            lines += [_route_line(n, r)] + _said(r)
    t = summary.get("timings_s") or {}
    peaks = [v for v in (summary.get("peak_rss_mib") or {}).values() if v is not None]
    lines.append(f"time {sum(t.values()):.1f} s" + (f", peak memory {max(peaks):.0f} MiB" if peaks else ""))
    lines.append(f"full summary: {out}/summary.json; Slicer scene: {out}/scene/IMAGIO-demo.mrml")
    return "\n".join(lines)
