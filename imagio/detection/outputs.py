"""Files of a detection run: the nodule table (CSV, LUNA16 columns first) and, for 3D Slicer, a
markups point list (``nodules.mrk.json``), a table (``nodules.tsv``) and one segmentation of
every nodule (``nodules.seg.nrrd``), saved as a scene (``nodules.mrml``) through IMAGIO's MRML
helpers.

Coordinates: the CSV's coordX/coordY/coordZ are LPS mm (ITK/DICOM patient frame, as LUNA16
writes them; stated in ``candidates.json`` and in ``pipeline.CSV_FRAME``); the markups file
states its own frame in its ``coordinateSystem`` field (Slicer writes LPS); the segmentation has
the CT's geometry.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..volume import Volume
from .pipeline import CSV_FIELDS   # LUNA16's columns (candidates.csv)

# detector_scale_mm: the detector's own size estimate (blob scale, concavity piece), not a measurement; the nodule's
# size is mean_diameter_mm (Lung-RADS) and long_axis_mm (new-user trial 26: a column named
# "diameter_mm", LUNA16's name for the size, held the 19 mm scale of a 25 mm nodule); axial_long_axis_mm
# is the size Brock and Mayo read (the longest diameter on an axial section: van Riel 2017) and
# axial_short_axis_mm RECIST 1.1's short axis (the longest diameter perpendicular to it in the same axial
# section): mean_diameter_mm = (axial_long_axis_mm + axial_short_axis_mm) / 2, each axis to 0.1 mm, the mean
# to 0.1 mm, halves up (`segmentation.measurements.lung_rads_mean_mm`; new-user trials 106 L6, 107 F5).
# Column order: LUNA16's five first, then the nodule's own columns, then the row's place in the report
# (``table``) and last the scan's facts repeated on every row (SCAN_FIELDS; issue 17 trial L4: the scan's
# emphysema sat between Lung-RADS and Brock). emphysema: the scan's emphysema as Brock read it (given, or
# LAA-950 measured): yes / no / unknown, the same on every row (trial 52: only candidates.json had it);
# input_warnings: how the CT was read (a missing slice interpolated, a gantry tilt corrected: the
# reader's warnings, " | " between them), the same on every row (new-user trial 102 F2: only stderr had them)
SCAN_FIELDS = ("emphysema", "input_warnings")
NODULE_FIELDS = CSV_FIELDS + (
    "id", "type", "detector_scale_mm", "mean_diameter_mm", "long_axis_mm", "axial_long_axis_mm", "axial_short_axis_mm",
    "volume_ml",
    "solid_component_mm", "side", "lobe", "distance_to_pleura_mm", "juxta_pleural", "juxta_vascular",
    "lung_rads", "lung_rads_note", "brock_low", "brock_high", "mayo_low", "mayo_high", "refused", "warnings", "table") + SCAN_FIELDS


def _rng(s: dict, model: str) -> tuple:
    r = s.get(model, {}).get("probability_range")
    return ("", "") if not r else (f"{r[0]:.4f}", f"{r[1]:.4f}")


def _emphysema(s: dict) -> str:
    """yes / no / unknown: the emphysema Brock read for this nodule (its stratification's inputs)."""
    return {True: "yes", False: "no"}.get(s.get("inputs", {}).get("emphysema", {}).get("value"), "unknown")


def lung_rads_note(lr: dict) -> str:
    """The ``lung_rads_note`` cell: what may change the category of ``lr``
    (`stratification.screening.lung_rads`), "" when nothing: a size on a cut ("on the 15 mm mean
    diameter cut: may be 4A", `stratification.lungrads.at_size_cut`), an uncertain type ("4B if
    solid" / "4B as part-solid, 4A if solid", `stratification.screening.type_dependent`), a floor
    ("size a lower bound: >= 2": no category, the size clipped or cut by the scan's edge; ">= 4B"
    beside a clipped 4B, whose floor is its category) and a
    not-assessable outline. New-user trial 65 L1: nodules.csv and nodules_table.tsv gave lung1 #1 a
    plain "4B" on the 4A/4B cut; trial 68 L: a floor and a not-assessable one only in `refused`."""
    from ..stratification.screening import category_words, size_cut_words

    out = [size_cut_words(lr)] if size_cut_words(lr) else []
    if lr.get("if_other_type"):   # a floor's too (trial 66 M1): ">= 3 as part-solid, >= 4A if solid"
        out.append(f"typing uncertain: {category_words(lr)}")
    elif lr.get("category_at_least") and (not lr.get("category") or lr.get("size_lower_bound")):
        # trial 68 L: said in `refused` only; trial 86 L3: a clipped 4B (a category and a floor) said nothing
        out.append(f"size a lower bound: >= {lr['category_at_least']}")
    if lr.get("no_category") == "not_assessable":
        out.append("not assessable: read it on the images")
    if lr.get("no_category") == "calcium_or_contrast":   # trial 91 M2: said in `refused` only
        out.append("no category: calcium_or_contrast (calcium or iodinated contrast on a contrast CT): read it on the "
                   "images")
    return "; ".join(out)


def nodule_rows(sid: str, nodules: list[dict], input_warnings=()) -> list[list]:
    """Rows of the nodule table (``NODULE_FIELDS``), one per characterised nodule: as the
    screening report lists them, the nodules at or above the report's probability threshold
    first (``table`` "main"), then the low-probability candidates (``table`` "low_probability"),
    each in the given (risk) order. New-user trial 46 M2b: a 0.0096-probability hilum candidate
    rated 4B came first in the CSV while the report kept it out of its nodule table.
    ``input_warnings``: the reader's warnings of the scan (`io.input_warnings`), on every row."""
    from ..stratification.screening import shown_category
    from .commands import ras_to_lps
    from .report import split_by_score

    main, low = split_by_score(nodules)
    in_main = {id(d) for d in main}
    rows = []
    for d in main + low:
        c = d["candidate"]
        ras = d.get("center_ras") or c["center_ras"]
        lps = ras_to_lps(ras)[0]
        s = d.get("stratification", {})
        refused = "; ".join(f"{m}: {v['refused']}" for m, v in s.items() if "refused" in v)
        rows.append([sid, *(f"{v:.2f}" for v in lps), f"{c['probability']:.4f}", d["id"], d["type"],
                     f"{c['diameter_mm']:.1f}", d.get("mean_diameter_mm", ""),
                     d.get("long_axis_mm", ""), d.get("axial_long_axis_mm", ""), d.get("axial_short_axis_mm", ""),
                     d.get("volume_ml", ""), d.get("solid_component_mm", ""),
                     d.get("side", ""), d.get("lobe") or d.get("lobe_note") or "", d.get("distance_to_pleura_mm", ""),
                     d.get("juxta_pleural", ""), d.get("juxta_vascular", ""),
                     shown_category(s.get("lung_rads", {})), lung_rads_note(s.get("lung_rads", {})),
                     *_rng(s, "brock"), *_rng(s, "mayo"),
                     refused, " | ".join(d.get("warnings", [])), "main" if id(d) in in_main else "low_probability",
                     _emphysema(s), " | ".join(input_warnings)])
    return rows


def write_nodule_csv(path: Path, sid: str, nodules: list[dict], input_warnings=()) -> Path:
    from ..outputs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(NODULE_FIELDS)
        w.writerows(nodule_rows(sid, nodules, input_warnings))
    return path


SCREENING_REPORT = "screening.pdf"   # --report: this PDF, its HTML (same stem) and pictures <stem>_*.png
SLICER_FILES = ("nodules.mrml", "nodules.mrk.json", "nodules_table.tsv", "nodules.seg.nrrd")   # `write_slicer`


def scan_files(out: Path, opts, evaluate: bool = False) -> list[Path]:
    """The files one scan's ``imagio detect`` may write in ``out`` (`pipeline.run_scan`,
    `write_slicer`, the screening report, ``--evaluate``'s evaluation.json and froc.png), for a
    refusal before any work (`outputs.refuse_foreign`). The report's nodule pictures are named
    after nodule ids not known yet: every existing ``<stem>_*.png`` is listed."""
    out = Path(out)
    files = [out / n for n in ("candidates.json", "candidates.csv", "nodules.csv")]
    if opts.slicer:
        files += [out / n for n in SLICER_FILES]
    if opts.report:
        pdf = out / SCREENING_REPORT
        files += [pdf, pdf.with_suffix(".html"), *sorted(out.glob(f"{pdf.stem}_*.png"))]
    if evaluate:
        files += [out / "evaluation.json", out / "froc.png"]
    return files


def nodule_labels(ct: Volume, masks: list[np.ndarray], nodules: list[dict]) -> Volume:
    """One label per nodule (value = its id, name ``lung_nodule_<id>``) on the CT grid; a voxel
    claimed by two nodules keeps the more urgent (earlier in the risk-sorted list)."""
    dtype = np.uint8 if len(nodules) < 255 else np.uint16
    arr = np.zeros(ct.shape, dtype)
    names = {}
    for d, m in reversed(list(zip(nodules, masks))):
        if m.any():
            arr[m] = d["id"]
            names[int(d["id"])] = f"lung_nodule_{d['id']}"
    return ct.with_array(arr, name="nodules", labels=dict(sorted(names.items())))


def write_slicer(out: Path, ct: Volume, nodules: list[dict], masks: list[np.ndarray]) -> dict:
    """``out/nodules.mrml`` with the point list, the table and the segmentation (their own files
    next to it). Returns {kind: path}."""
    from ..vtklib import vtk

    from ..mrml.logic import _fill_table
    from ..mrml.scene import new_scene, save_scene
    from ..stratification.screening import type_categories
    from ..mrml.segmentations import labels_to_segmentation

    scene = new_scene()
    pts = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "nodules")
    for d in nodules:
        ras = d.get("center_ras") or d["candidate"]["center_ras"]
        lr = d.get("stratification", {}).get("lung_rads", {})
        # every category its uncertain type allows, "3/4A" (`screening.type_categories`), not the typed one alone
        cat = "/".join(c for c, _ in type_categories(lr)) if lr.get("category") else "-"
        pts.AddControlPoint(vtk.vtkVector3d(*map(float, ras)),
                            f"N{d['id']} {d['type']} LR{cat}")
    pts.CreateDefaultDisplayNodes()
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "nodules table")
    rows = nodule_rows("", nodules, ct.warnings)
    _fill_table(table, list(NODULE_FIELDS[5:]), [[str(v) for v in r[5:]] for r in rows])
    files = {}
    lab = nodule_labels(ct, masks, nodules)
    if lab.labels:
        from ..mrml.volumes import volume_to_node

        ref = volume_to_node(ct.with_array(np.zeros(ct.shape, np.uint8)), scene, name="geometry")
        labels_to_segmentation(lab, scene, name="nodules", reference_node=ref)
        scene.RemoveNode(ref)  # only its geometry is kept (in the segmentation); no CT copy
    out.mkdir(parents=True, exist_ok=True)
    files["scene"] = str(save_scene(scene, out / SLICER_FILES[0]))
    for suffix, kind in ((".mrk.json", "markups"), (".tsv", "table"), (".seg.nrrd", "segmentation")):
        found = sorted(out.glob(f"*{suffix}"))
        if found:
            files[kind] = str(found[0])
    return files
