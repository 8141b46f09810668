"""MRML nodes of an ablation plan (Slicer or slicer-core's ``slicer.vtkMRMLScene``).

- one semi-transparent ``vtkMRMLModelNode`` per probe zone (RAS mm), visible as an outline in
  the slice views (slice intersection on)
- the tumour surface model with per-vertex ablative margin scalars (``AblativeMarginMm``, mm;
  negative where the tumour lies outside the zone) on a red (< 0) - yellow - green (>= 10 mm)
  colour table
- a ``vtkMRMLTableNode`` of coverage, margins, healthy tissue and heat-sink flags
"""

from __future__ import annotations

import numpy as np

from ..planning.ablation.criteria import mam_text
from ..planning.ablation.heatsink import heat_sink_words
from ..planning.ablation.multiprobe import plan_for_probe  # noqa: F401 (the Slicer module, IMAGIO Web)

MARGIN_ARRAY = "AblativeMarginMm"
MARGIN_RANGE = (-5.0, 15.0)   # display range of the margin colours (mm)
ZONE_COLORS = [(1.0, 0.55, 0.1), (0.95, 0.3, 0.3), (0.9, 0.8, 0.2), (0.6, 0.4, 0.9), (0.2, 0.8, 0.8)]


def margin_color_node(scene, name: str = "IMAGIO ablative margin"):
    """Colour table over MARGIN_RANGE: red below 0 mm, orange to 5 mm, yellow to 10, green beyond."""
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    node.SetTypeToUser()
    n = 200
    node.SetNumberOfColors(n)
    lo, hi = MARGIN_RANGE
    node.GetLookupTable().SetTableRange(lo, hi)
    for i in range(n):
        v = lo + (hi - lo) * i / (n - 1)
        rgb = ((0.85, 0.1, 0.1) if v < 0 else (1.0, 0.55, 0.1) if v < 5 else (0.95, 0.9, 0.2) if v < 10
               else (0.15, 0.8, 0.25))
        node.SetColor(i, f"{v:.1f}", *rgb, 1.0)
    return node


def zone_model_nodes(scene, zones, prefix: str = "Ablation zone", opacity: float = 0.35) -> list:
    """One semi-transparent model node per zone (imagio Ellipsoid), slice intersections shown."""
    from ..planning.ablation.zones import ellipsoid_polydata

    out = []
    for n, z in enumerate(zones):
        node = scene.AddNewNodeByClass("vtkMRMLModelNode", f"{prefix} {n + 1}")
        node.SetAndObservePolyData(ellipsoid_polydata(z))
        node.CreateDefaultDisplayNodes()
        d = node.GetDisplayNode()
        d.SetColor(*ZONE_COLORS[n % len(ZONE_COLORS)])
        d.SetOpacity(opacity)
        d.SetVisibility2D(True)
        if hasattr(d, "SetSliceIntersectionThickness"):
            d.SetSliceIntersectionThickness(2)
        node.SetAttribute("IMAGIO.zone_length_mm", f"{2 * z.a_mm:.1f}")
        node.SetAttribute("IMAGIO.zone_diameter_mm", f"{2 * z.b_mm:.1f}")
        out.append(node)
    return out


def tumour_margin_model_node(scene, ctx, coverage, name: str = "Tumour ablative margin"):
    """The tumour surface coloured by the per-vertex ablative margin (mm)."""
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", name)
    node.SetAndObservePolyData(ctx.surface_with_margins(coverage, MARGIN_ARRAY))
    node.CreateDefaultDisplayNodes()
    d = node.GetDisplayNode()
    d.SetActiveScalarName(MARGIN_ARRAY)
    d.SetAndObserveColorNodeID(margin_color_node(scene).GetID())
    d.SetScalarRangeFlag(0)
    d.SetScalarRange(*MARGIN_RANGE)
    d.SetScalarVisibility(True)
    d.SetVisibility2D(True)
    node.SetAttribute("IMAGIO.mam_mm", f"{coverage.mam_mm:.2f}")
    return node


def coverage_rows(plan) -> list[tuple[str, str]]:
    """(quantity, value) rows of a ProbePlan for the table; ``plan`` may also be its JSON form
    (`ProbePlan.to_dict`, as in plan.json's ``ablation``), one definition for both."""
    if isinstance(plan, dict):
        c, get = plan["coverage"], (lambda o, k: o[k])
        device, setting, probes, lower = plan["device"], plan["setting"], plan.get("probes", []), plan.get("lower_bound")
    else:
        c, get = plan.coverage, getattr
        device, setting, probes, lower = plan.device, plan.setting, plan.probes, plan.lower_bound
    from ..planning.ablation.commands import hollow_viscus_verdict, setting_choice_words
    from ..report import percent_covered

    note = plan.get("hollow_viscus") if isinstance(plan, dict) else plan.hollow_viscus
    ells = plan.get("zones") or [] if isinstance(plan, dict) else plan.zones
    sizes = dict.fromkeys((f"{z['length_mm']:.1f}", f"{z['diameter_mm']:.1f}") if isinstance(z, dict) else
                          (f"{2 * z.a_mm:.1f}", f"{2 * z.b_mm:.1f}") for z in ells)
    margins = {float(str(k).removesuffix("mm")): v for k, v in get(c, "margin_covered_pct").items()}
    rows = [("device", f"{device} {setting}"),
            # the zone drawn (its own setting's), and why IMAGIO chose it when it is not the asked one
            *[("zone length x diameter mm", f"{a} x {b}") for a, b in sizes],
            *([("setting chosen by IMAGIO", w)] if (w := setting_choice_words(note, device)) else []),
            ("probes", str(len(probes))),
            ("tumour covered %", percent_covered(get(c, 'tumour_covered_pct')))]
    rows += [(f"tumour + {m:g} mm covered %", f"{v:.1f}") for m, v in margins.items()]
    tol = c.get("outline_tolerance_mm", 0.0) if isinstance(c, dict) else getattr(c, "outline_tolerance_mm", 0.0)
    rows += [("minimal ablative margin mm", ("\u2265 " if get(c, "mam_capped") else "") + mam_text(get(c, 'mam_mm'))),
             *([("margin tolerance mm", f"\u00b1 {tol:g} (the tumour's true edge vs its label's voxel faces: half a CT voxel)")] if tol else []),
             ("MAM location RAS", ", ".join(f"{x:.1f}" for x in get(c, "mam_ras"))),
             # plan.json's: the proposals whose zones meet the margin this one misses (trial 107 F3)
             *([("margin met by another proposal", plan["margin_met_elsewhere"])]
               if isinstance(plan, dict) and plan.get("margin_met_elsewhere") else []),
             (f"MAM >= {float(get(c, 'criteria')['minimal_ablative_margin']['required']):g} mm",
              {None: "not verifiable (past the image)"}.get(
                 get(c, "criteria")["minimal_ablative_margin"]["met"], str(get(c, "criteria")["minimal_ablative_margin"]["met"]))),
             *([("no hollow viscus in the zone", hollow_viscus_verdict(get(c, "criteria")["no_hollow_viscus"]))]
               if "no_hollow_viscus" in get(c, "criteria") else []),   # trial 96 F4
             ("zone volume mL", f"{get(c, 'zone_volume_ml'):.1f}"),
             ("tumour volume mL", f"{get(c, 'tumour_volume_ml'):.1f}")]
    if lower is not None:
        rows.append(("probe lower bound (over the candidate zones)", str(lower)))
    rows += [(f"healthy {k} mL", f"{v:.1f}") for k, v in sorted(get(c, "healthy_ml").items(), key=lambda kv: -kv[1])]
    rows += [(f"near {k} mm", f"{v:.1f}") for k, v in get(c, "structures_near_mm").items()]
    rows += [(f"heat sink {h['vessel']}", f"{h['level']} ({h['diameter_mm']:.1f} mm lumen): {heat_sink_words(h)}")
             for h in get(c, "heat_sink")]
    rows += [(f"probe {i + 1} path", "feasible" if get(p, "feasible") else "NOT feasible: " + ", ".join(get(p, "violations")))
             for i, p in enumerate(probes)]
    return rows


def coverage_table_node(scene, plan, name: str = "Ablation coverage", node=None):
    """Table node with columns 'quantity' and 'value' (see `coverage_rows`)."""
    from ..vtklib import vtk

    node = node or scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = vtk.vtkTable()
    q, v = vtk.vtkStringArray(), vtk.vtkStringArray()
    q.SetName("quantity")
    v.SetName("value")
    for a, b in coverage_rows(plan):
        q.InsertNextValue(a)
        v.InsertNextValue(b)
    table.AddColumn(q)
    table.AddColumn(v)
    node.SetAndObserveTable(table)
    return node


def ablation_to_scene(scene, plan, ctx, table_node=None) -> dict:
    """Zone models, the tumour margin model and the coverage table for a ProbePlan."""
    zones = zone_model_nodes(scene, plan.zones)
    return {"zones": [n.GetID() for n in zones],
            "tumour": tumour_margin_model_node(scene, ctx, plan.coverage).GetID(),
            "table": coverage_table_node(scene, plan, node=table_node).GetID()}


def ablation_json_to_scene(scene, abl: dict) -> dict:
    """plan.json's ``ablation`` (`planning.ablation.commands.ablation_for_plan`) as nodes: for the
    best proposal's single probe and, when planned, the multi-probe plan, each zone as a model
    (`zone_model_nodes`), each probe as a markups line from its entry to its TIP (RAS mm; the
    tip lies ``centre_offset_mm`` beyond the zone centre, which is the plan's target: trial 10
    found a scene with only the path to the target, 14 mm short of the tip) and a coverage
    table. Returns {"zones": [ids], "probes": [ids], "tables": [ids]}."""
    from ..vtklib import vtk

    from ..planning.ablation.zones import Ellipsoid

    out = {"zones": [], "probes": [], "tables": []}
    plans = [("Ablation", abl["single_probe"][0])] if abl.get("single_probe") else []
    if abl.get("multi_probe", {}).get("n_probes"):
        plans.append(("Multi-probe", abl["multi_probe"]))
    for prefix, pp in plans:
        ells = [Ellipsoid(np.asarray(z["centre_ras"], float), np.asarray(z["axis"], float), z["length_mm"] / 2,
                          z["diameter_mm"] / 2) for z in pp["zones"]]
        out["zones"] += [n.GetID() for n in zone_model_nodes(scene, ells, prefix=f"{prefix} zone")]
        for i, p in enumerate(pp["probes"]):
            node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"{prefix} probe {i + 1}")
            for label, ras in (("entry", p["entry_ras"]), ("tip", p["tip_ras"])):
                node.AddControlPoint(vtk.vtkVector3d(*map(float, ras)), label)
            node.SetAttribute("IMAGIO.tip_ras", ",".join(f"{x:.2f}" for x in p["tip_ras"]))
            node.SetAttribute("IMAGIO.device", f"{abl['device']} {pp.get('setting') or abl['setting']}")   # its own
            node.CreateDefaultDisplayNodes()
            node.SetLocked(True)
            out["probes"].append(node.GetID())
        out["tables"].append(coverage_table_node(scene, pp, name=f"{prefix} coverage").GetID())
    return out


def ablation_from_nodes(scene, volume_node, segmentation_node, path_node, tumour_segment: str,
                        device: str, setting: str | None = None, multi_probe: bool = False,
                        margin_mm: float = 5.0, plan=None, progress=None):
    """Ablation for the IMAGIOPlanning Logic and IMAGIO Web: the zone of ``device``/``setting``
    on the path ``path_node`` (line: entry, target; RAS mm), or with ``multi_probe`` the fewest
    probes covering the tumour + ``margin_mm`` (needs ``plan``, the trajectory Plan). Returns
    (ProbePlan, node ids, AblationContext); keep the context for live updates (`update_zone`).

    The zone is centred on the path's end, as the CLI centres it on the target: the probe's tip
    goes ``centre_offset_mm`` (the device's tip-to-zone-centre offset) past it along the path
    (`Probe.centred_on`). With ``plan`` the placement is the CLI's own
    (`multiprobe.place_on_path`: the advanced track checked for the device's shaft, advanced less
    when the full advance breaks a hard constraint, said in ``status``) and a zone taking in a
    hollow viscus gives way to the device's other setting or zone position along the path that
    keeps it out, as `imagio plan --device` proposes (`spare.spare_hollow_viscus`: the result's
    ``setting`` is then not ``setting``, `placement_note` says which and why; follow it live with
    `chosen_setting`); without it the track is not checked (``status_kind`` "manual"). Trial 95
    F3: the tip was put on the path's end, the zone's centre 10-19 mm short of the tumour (39.5 %
    covered where the CLI gave 66.6 %)."""
    from ..errors import InputError
    from ..planning.ablation import AblationContext, get_device
    from ..planning.ablation.multiprobe import ProbePlan, place_on_path, plan_multiprobe
    from ..planning.ablation.spare import spare_hollow_viscus
    from ..planning.ablation.commands import padding_voxels
    from ..planning.ablation.mediastinum_near import add_mediastinum
    from ..planning.ablation.zones import Probe, zones
    from .planning import line_points
    from .segmentations import segmentation_to_labels
    from .volumes import node_to_volume

    if volume_node is None or segmentation_node is None:
        raise InputError("select the CT volume and the segmentation holding the tumour first")
    dev = get_device(device)
    s = dev.setting(setting)
    plan = plan_for_probe(plan, dev)
    if multi_probe:
        if plan is None:
            raise InputError("plan the needle trajectories first: multi-probe planning picks among them")
        ctx = AblationContext(plan.problem.labels, tumour_segment, unimaged=padding_voxels(plan.problem))
        add_mediastinum(ctx, plan.problem)   # the plan's lung target: its mediastinum named, as in plan.json
        result = plan_multiprobe(plan, ctx, dev, s, margin_mm=margin_mm, progress=progress)
    else:
        if path_node is None or path_node.GetNumberOfControlPoints() < 2:
            raise InputError("select a needle path (a line with entry and tip points)")
        labels = segmentation_to_labels(segmentation_node, reference=node_to_volume(volume_node))
        ctx = AblationContext(labels, tumour_segment,
                              unimaged=padding_voxels(plan.problem, labels) if plan is not None else None)
        if plan is not None:
            add_mediastinum(ctx, plan.problem)   # the plan's lung target: its mediastinum named, as in plan.json
        e, c = line_points(path_node)
        if np.linalg.norm(c - e) < 1e-6:
            raise InputError("the needle path's entry and end are the same point: move one of them")
        if plan is not None:
            result = place_on_path(plan, ctx, dev, s, e, centre_ras=c)
            # as the CLI proposes it: another setting or position when this zone takes in a hollow viscus
            result, _ = spare_hollow_viscus(plan, ctx, dev, s, e, placed=result, centre_ras=c)
            result.status = (f"{result.status} (the target: the selected path's end); clearances judged "
                             f"for the probe's {plan.problem.needle.diameter_mm:g} mm shaft")
        else:
            ells = zones([Probe.centred_on(e, c, s)], s)
            result = ProbePlan(dev.name, s.id, dev.modality, [], ctx.evaluate(ells, dev.modality),
                               status=f"single probe on the selected path, its tip {s.centre_offset_mm:g} mm past the "
                                      "path's end so that the zone is centred there; the track is not checked "
                                      "(no trajectory plan)", status_kind="manual")
            result._zones = ells
    return result, ablation_to_scene(scene, result, ctx), ctx


def probe_note(setting, live: bool = False) -> str:
    """The words shown beside a zone placed on a path (`ablation_from_nodes`, `update_zone`): the
    zone is centred on the path's end and the probe's tip goes the setting's tip-to-zone-centre
    offset (mm) past it, so the user advances the probe that far past the target."""
    return (f"zone centred on the path's end: advance the probe tip {setting.centre_offset_mm:g} mm past it "
            "(the device's tip-to-zone-centre offset)" + ("; track not re-checked while dragging" if live else ""))


def placement_note(result) -> str:
    """The words for a single probe placed by `ablation_from_nodes` (``result``: its ProbePlan, its
    own setting): `probe_note` when the zone is centred on the path's end, else the placement's
    own status (advanced less than the device's offset, or infeasible: the CLI's words); when
    IMAGIO chose another setting or zone position than asked (`spare.spare_hollow_viscus`), first
    which and why (`commands.setting_choice_words`)."""
    from ..planning.ablation.commands import setting_choice_words

    s, shift = chosen_setting(result)
    choice = setting_choice_words(result.hollow_viscus, result.device)
    note = probe_note(s) if not shift else (
        f"zone centred {abs(shift):g} mm {'deeper than' if shift > 0 else 'short of'} the path's end: advance the "
        f"probe tip {s.centre_offset_mm:g} mm past the zone's centre (the device's tip-to-zone-centre offset)")
    if result.status_kind == "centred_graze":
        note = f"{note}; {result.status}"
    elif result.status_kind not in ("centred", "manual"):
        note = result.status
    return f"{choice}; {note}" if choice else note


def chosen_setting(result):
    """(setting, shift_mm) of a single probe placed by `ablation_from_nodes` (``result``: its
    ProbePlan): its own `devices.Setting` (the device catalogue's) and its zone centre's shift
    along the path from the path's end (mm, + deeper; 0 unless `spare.spare_hollow_viscus` moved
    it), for the live update (`observe_ablation`) to keep drawing the zone proposed."""
    from ..planning.ablation import get_device

    note = result.hollow_viscus or {}
    return (get_device(result.device).setting(result.setting),
            float(note.get("shift_mm") or 0.0) if note.get("found") else 0.0)


def update_zone(ctx, path_nodes, setting, modality=None, shift_mm: float = 0.0):
    """Live update: the zones of probes on ``path_nodes`` (lines entry -> target, RAS mm), each
    centred on its line's end (`Probe.centred_on`, as `ablation_from_nodes`) moved ``shift_mm``
    along the line (+ deeper: the position `spare.spare_hollow_viscus` chose, `chosen_setting`),
    and their coverage, for dragging (tens of ms on the analysis grid). The tracks are not re-checked."""
    from ..planning.ablation.zones import Probe, zones
    from .planning import line_points

    def centred(e, c):
        u = (c - e) / max(float(np.linalg.norm(c - e)), 1e-9)
        return Probe.centred_on(e, c + float(shift_mm) * u, setting)

    probes = [centred(*line_points(n)) for n in path_nodes]
    ells = zones(probes, setting)
    return ells, ctx.evaluate(ells, modality)


def observe_ablation(path_node, ctx, setting, device_name: str, modality=None, zone_node=None,
                     table_node=None, callback=None, shift_mm: float = 0.0):
    """Follow the probe on ``path_node`` (line entry -> target, the zone centred on the target,
    moved ``shift_mm`` along it: `update_zone`; ``setting`` and ``shift_mm``: the placed probe's
    own, `chosen_setting`): on every point move, recompute the zone and its coverage, update
    ``zone_node``'s mesh and ``table_node``, call ``callback(Coverage)``. Returns the observer tag."""
    import slicer

    from ..planning.ablation.multiprobe import ProbePlan
    from ..planning.ablation.zones import zones_polydata

    def on_modified(caller, event=None):
        if caller.GetNumberOfControlPoints() < 2:
            return
        ells, cov = update_zone(ctx, [caller], setting, modality, shift_mm)
        if zone_node is not None:
            zone_node.SetAndObservePolyData(zones_polydata(ells))
        if table_node is not None:
            pp = ProbePlan(device_name, setting.id, modality or "", [], cov, status="live", status_kind="live")
            pp._zones = ells
            coverage_table_node(None, pp, node=table_node)
        if callback is not None:
            callback(cov)

    return path_node.AddObserver(slicer.vtkMRMLMarkupsNode.PointModifiedEvent, on_modified)
