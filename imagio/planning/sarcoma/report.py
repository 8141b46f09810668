"""The sarcoma biopsy section of the plan report and its pictures.

`sarcoma_sections(doc["sarcoma"])` gives (title, rows) sections for `imagio.report.sections`:
tract and compartments, the rules met or violated by name, the entry point to tattoo (RAS and
distances from the palpable landmarks), the cores' targets. `axial_picture` draws the axial
slice through the first core's target with the compartments coloured (involved green,
uninvolved red), the bundle, the viable tumour and the cores; `picture_3d` the 3D view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _met(v) -> str:
    return "met" if v is True else "VIOLATED" if v is False else "not checked"


def sarcoma_sections(s: dict) -> list:
    out = []
    rows = [("tumour", s.get("tumour")),
            ("compartments labelled", ", ".join(s.get("compartments") or {}) or "none"),
            ("compartment(s) occupied (tract allowed)", ", ".join(s.get("involved_compartments") or {}) or "none"),
            ("compartment rules checked", "yes" if s.get("compartments_checked") else "NO (no compartments)")]
    v = s.get("viable") or {}
    lv = v.get("levels_hu") or {}
    how = (f"two components: necrosis {lv.get('necrosis')} HU, solid {lv.get('solid')} HU, boundary half-way"
           if v.get("method") == "two components" else v.get("method") or "")
    rows += [("viable tumour", f"{v.get('viable_ml')} of {v.get('tumour_ml')} mL ({v.get('viable_pct')}%) above "
                               f"{v.get('threshold_hu')} HU ({how}; CT smoothed {v.get('smoothing_mm')} mm); "
                               f"deepest {v.get('max_depth_mm')} mm")]
    inc = s.get("incision") or {}
    rows.append(("incision", f"{inc.get('source')}; entry within {inc.get('tolerance_mm')} mm"))
    out.append(("Sarcoma biopsy: tract and compartments", rows))
    tat = s.get("tattoo_entry")
    if tat:
        tr = [("entry point RAS (mm)", tat["ras"])]
        for k, d in (tat.get("landmarks") or {}).items():
            where = "proximal" if d["along_limb_mm"] > 0 else "distal"
            tr.append((f"from the {k.replace('_', ' ')}" + (" (superior pole)" if k == "patella" else ""), f"{d['distance_mm']} mm straight; {abs(d['along_limb_mm'])} mm "
                                                         f"{where} along the limb"))
        if not tat.get("landmarks"):
            tr.append(("landmarks", "no patella or greater trochanter in the image"))
        out.append(("Entry point to tattoo", tr))
    cores = s.get("cores") or []
    if cores:
        head = ["", *[f"core {i + 1}" for i in range(len(cores))]]
        body = [("target RAS (mm): deepest point, needle fired", *[c["target_ras"] for c in cores]),
                ("tip before firing RAS (mm)", *[c["fire_from_ras"] for c in cores]),
                ("core (throw) length (mm)", *[c["throw_mm"] for c in cores]),
                ("specimen not in viable tumour (%)", *[c.get("specimen_nonviable_pct") for c in cores]),
                ("depth in viable tumour (mm)", *[c["depth_mm"] for c in cores]),
                ("tract length (mm)", *[c["length_mm"] for c in cores]),
                ("angle to core 1's tract (deg)", *[c["fan_deg"] for c in cores]),
                ("compartments crossed", *[(", ".join(c["compartments_crossed"]) or "none (fat, fascia, tumour)")
                                           if s.get("compartments_checked", True) else
                                           "not checked: no compartments labelled" for c in cores])]
        names = list(cores[0]["rules"])
        body += [(r, *[_met(c["rules"][r]["met"]) for c in cores]) for r in names]
        out.append(("Cores (one entry)", [("table", head, body)]))
        out.append(("Rules, first core", [(r, x["detail"] if str(x["detail"]).startswith(_met(x["met"]))
                                            else f"{_met(x['met'])}: {x['detail']}") for r, x in cores[0]["rules"].items()]))
    out.append(("Sarcoma rules and sources", [(r["name"], f"{r['wording']} [{r['source']}]") for r in s.get("rules", [])]
                + [(k, v) for k, v in (s.get("sources") or {}).items()]))
    return out


COMP_COLOURS = {True: (0.1, 0.8, 0.2, 0.28), False: (0.9, 0.15, 0.1, 0.28)}


def axial_picture(sp, path, half_mm: float = 110.0) -> Path:
    """Axial slice (radiological view) through the first core's target: compartments filled
    (green: occupied by the tumour, red: uninvolved), septa, joints and bones outlined, bundle
    in magenta, tumour yellow, viable tumour cyan, cores projected, entry a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...outputs import atomic_path
    from ...report import AXIAL_U, AXIAL_V, slice_figure, _plane_grid

    p = sp.plan.problem
    ct, labels = p.ct, p.labels
    tgt = np.asarray(sp.cores[0]["metrics"].target_ras if sp.cores else p.target.point_ras)
    entry = np.asarray(sp.cores[0]["metrics"].entry_ras) if sp.cores else None
    fig, ax = slice_figure(ct, None, tgt, AXIAL_U, AXIAL_V, entry, tgt if entry is not None else None,
                           f"axial, S = {tgt[2]:.1f} mm: compartments (green occupied, red uninvolved)", half_mm, 0.5)
    pts, s = _plane_grid(tgt, AXIAL_U, AXIAL_V, half_mm, 0.5)
    lab = labels.sample(pts, order=0)
    ext = (s[0], s[-1], s[0], s[-1])
    rgba = np.zeros(lab.shape + (4,))
    from .rules import classify

    anat = classify(labels)
    for key, names in anat.compartments.items():
        m = np.isin(lab, [anat.values[n] for n in names])
        rgba[m] = COMP_COLOURS[key in sp.involved]
    ax.imshow(rgba, origin="lower", extent=ext)
    for group, colour in ((anat.bundle, "#ff00ff"), (anat.septa, "#ffffff"), (anat.joints, "#ff8800"),
                          (anat.bones, "#dddddd"), ({sp.tumour: anat.values[sp.tumour]}, "#ffff00")):
        for n, v in group.items():
            if (lab == v).any():
                ax.contour(lab == v, levels=[0.5], colors=[colour], linewidths=0.8, extent=ext, origin="lower")
    via = sp.viable.mask
    vv = ct.with_array(via.astype(np.uint8)).sample(pts, order=0)
    if vv.any():
        ax.contour(vv > 0, levels=[0.5], colors=["#00ffff"], linewidths=0.8, extent=ext, origin="lower")
    for c in sp.cores[1:]:
        e, t = np.asarray(c["metrics"].entry_ras) - tgt, np.asarray(c["metrics"].target_ras) - tgt
        ax.plot([e @ AXIAL_U, t @ AXIAL_U], [e @ AXIAL_V, t @ AXIAL_V], color="#20e0ff", lw=1.0, ls=":")
        ax.plot([t @ AXIAL_U], [t @ AXIAL_V], "o", color="#ffff00", ms=3)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def picture_3d(sp, path) -> Path:
    """3D view: skin risk map and obstacles (`render_plan_png`), the compartments occupied
    (translucent green), the viable tumour (cyan) and every core (tubes)."""
    from dataclasses import replace

    from ...vtklib import vtk

    from ...surfaces import mask_surface
    from ..render import render_plan_png

    p = sp.plan.problem
    extra = []
    from .rules import classify

    anat = classify(p.labels)
    for key in sp.involved:
        vals = [anat.values[n] for n in anat.compartments.get(key, [])]
        m = np.isin(p.labels.array, vals)
        if m.any():
            extra.append((mask_surface(m, p.labels.ijk_to_ras), (0.2, 0.8, 0.3), 0.15))
    if sp.viable.mask.any():
        extra.append((mask_surface(sp.viable.mask, p.ct.ijk_to_ras), (0.0, 0.9, 0.9), 0.6))
    for c in sp.cores:
        line = vtk.vtkLineSource()
        line.SetPoint1(*c["metrics"].entry_ras)
        line.SetPoint2(*c["metrics"].target_ras)
        tube = vtk.vtkTubeFilter()
        tube.SetInputConnection(line.GetOutputPort())
        tube.SetRadius(1.5)
        tube.SetNumberOfSides(10)
        tube.Update()
        extra.append((tube.GetOutput(), (0.1, 0.9, 1.0), 1.0))
    return render_plan_png(replace(sp.plan, proposals=[]), path, extra=extra)
