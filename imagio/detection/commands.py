"""CLI: ``imagio detect CT --out DIR [--detector blobs|deep [--model NAME|--model-folder DIR] [--device D]] [--evaluate REFERENCE.csv]``.

Writes ``DIR/candidates.json`` (RAS mm, all features and warnings) and ``DIR/candidates.csv``
in LUNA16's convention: ``seriesuid,coordX,coordY,coordZ,probability`` with coordX/Y/Z the
world position in the image's ITK physical space, i.e. LPS mm (as LUNA16 writes them; the
JSON states this too). ``--evaluate`` reads a LUNA16 annotation CSV
(``seriesuid,coordX,coordY,coordZ,diameter_mm``, LPS mm) and writes ``DIR/evaluation.json`` and
the FROC curve ``DIR/froc.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import printer
from ..volume import Volume
from .references import lps_to_ras

from .pipeline import CSV_FIELDS, CSV_FRAME, Options, ras_to_lps, run_scan  # noqa: F401


def series_id(ct, path: Path) -> str:
    uid = (ct.meta or {}).get("SeriesInstanceUID") or (ct.meta or {}).get("series_uid")
    if uid:
        return str(uid)
    name = path.name
    for suf in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def read_reference(path: Path) -> dict:
    """LUNA16 annotations CSV -> {seriesuid: (M, 4) x, y, z, diameter} in LPS mm."""
    if not path.exists():
        raise InputError(f"reference file {path} not found")
    out: dict = {}
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        need = {"seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"}
        if not r.fieldnames or not need <= set(r.fieldnames):
            raise InputError(f"{path}: expected LUNA16 columns {','.join(sorted(need))}; "
                             f"got {','.join(r.fieldnames or [])}")
        for row in r:
            try:
                v = [float(row[k]) for k in ("coordX", "coordY", "coordZ", "diameter_mm")]
            except ValueError:
                raise InputError(f"{path}: non-numeric value in row {row}") from None
            if not np.all(np.isfinite(v)) or v[3] <= 0:
                # a nodule has a size; a hit is judged within its radius (trial 40 M3: -3 gave CPM 0.0)
                raise InputError(f"{path}: line {r.line_num}: diameter_mm {row['diameter_mm']!r} and the coordinates must "
                                 "be finite, the diameter above 0 mm; correct the row")
            out.setdefault(row["seriesuid"], []).append(v)
    return {k: np.array(v) for k, v in out.items()}


def require_references_in_scan(ref: dict, sid: str, ct: Volume, path) -> None:
    """Refuse (InputError, one line) reference nodules of scan ``sid`` (LPS mm, diameter mm) whose
    sphere lies wholly outside ``ct``'s voxels (a sphere a slab cuts is kept): no detector can find them, and scored as misses they lower the CPM
    (new-user trial 40 M3: a reference 616 mm above the scan gave CPM 0.5 without a word); most
    often a reference in another convention (RAS, voxel indices) or of another series."""
    rows = ref.get(sid)
    if rows is None or not len(rows):
        return
    ras = lps_to_ras(rows[:, :3])
    # a nodule whose sphere reaches into the scan may be found there (a slab cut through it):
    # only a sphere wholly outside the voxels' box is refused
    n = np.asarray(ct.shape[::-1], float)
    ijk = ct.world_to_ijk(ras)
    beyond = (np.maximum(-0.5 - ijk, 0) + np.maximum(ijk - (n - 0.5), 0)) * np.asarray(ct.spacing, float)
    out = np.linalg.norm(beyond, axis=1) > 0.5 * rows[:, 3]
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InputError(f"{path}: {int(out.sum())} of the {len(rows)} reference nodules of {sid!r} lie wholly outside "
                         f"the scan (the first at RAS {np.round(ras[i], 1).tolist()} mm, LPS "
                         f"{np.round(rows[i, :3], 1).tolist()} in the file, {rows[i, 3]:g} mm across: "
                         f"{ct.outside_text(ras[i])}); give LUNA16 coordinates (LPS mm, world) of this series")


def patient_from_args(args) -> dict:
    """Patient facts for Brock / Mayo from the command line (absent ones stay absent: a yes/no
    fact not given is unknown, and the models give the range over it; the negative option states no)."""
    smoker = True if args.smoker else (False if args.never_smoker else None)
    d = {"age": args.age, "sex": args.sex, "smoker": smoker,
         "family_history": args.family_history, "extrathoracic_cancer": args.extrathoracic_cancer,
         "emphysema": args.emphysema}
    return {k: v for k, v in d.items() if v is not None}


def options_from_args(args) -> Options:
    if args.detector != "deep" and (args.model or args.model_folder):
        raise InputError("--model/--model-folder go with --detector deep")
    if args.model and args.model_folder:
        raise InputError("give --model NAME or --model-folder DIR, not both")
    model = args.model_folder or args.model or "lung_nodules"
    if args.model_folder and not Path(model).is_dir():
        raise InputError(f"--model-folder {model} is not a folder; give an nnU-Net v2 model folder")
    if args.characterise is not None and args.characterise < 0:
        raise InputError("--characterise N needs N >= 0 (0: no characterisation)")
    return Options(detector=args.detector, model=model,
                   device=None if args.device == "auto" else args.device,
                   characterise=args.characterise, patient=patient_from_args(args),
                   slicer=not args.no_slicer, report=args.report)


def cmd_detect(args) -> int:
    from .. import io
    from .froc import evaluate, plot_froc

    out = Path(args.out)
    opts = options_from_args(args)
    src = Path(args.ct)
    from ..cohort import cmd_cohort, is_cohort

    if is_cohort(src):
        return cmd_cohort(args, opts)
    from ..outputs import refuse_foreign
    from .outputs import scan_files

    for f in scan_files(out, opts, bool(args.evaluate)):   # a user's file: refused before any work
        refuse_foreign(f)
    files = [out / "candidates.json", out / "candidates.csv"] + (
        [out / "evaluation.json", out / "froc.png"] if args.evaluate else [])
    if any(f.exists() for f in files) and not args.force:
        raise InputError(f"{out} already holds results; choose another --out or pass --force")
    from ..outputs import remove_stale_outputs, snapshot

    # every file a detect run may write here: those this run does not write again are removed
    # after it (IMAGIO's own, unchanged; never a user's file)
    before = snapshot(scan_files(out, Options(slicer=True, report=True), True))
    ref = read_reference(Path(args.evaluate)) if args.evaluate else None
    ct = io.read_ct(src, task="nodule detection")
    lungs = io.read_labels(Path(args.lungs)) if args.lungs else None
    sid = series_id(ct, src)
    if ref is not None:
        require_references_in_scan(ref, sid, ct, args.evaluate)
    row = run_scan(ct, sid, out, opts, lungs=lungs, progress=printer(args.quiet), ct_path=str(src))
    summary = {"seriesuid": sid, "candidates": row["candidates"], "nodules": row["nodules"],
               "highest_lung_rads": row["highest_lung_rads"],
               "uncertain_lung_rads": row["uncertain_lung_rads"],
               "review_low_probability": row["review_low_probability"], "uncategorised": row["uncategorised"],
               "json": str(out / "candidates.json"),
               "csv": str(out / "candidates.csv"), "nodules_csv": str(out / "nodules.csv")}
    if ref is not None:
        doc = json.loads((out / "candidates.json").read_text(encoding="utf-8"))
        cands = doc["candidates"]
        lps = ras_to_lps([c["reported_center_ras"] for c in cands]).reshape(-1, 3)
        mine = {sid: np.c_[lps, [c["probability"] for c in cands]] if cands else np.zeros((0, 4))}
        r = {sid: ref[sid]} if sid in ref else {}
        ev = evaluate(mine, r, scans=[sid])
        if sid not in ref:
            seen = ", ".join(repr(k) for k in sorted(ref)[:3]) + (", ..." if len(ref) > 3 else "")
            msg = (f"no row of {args.evaluate} has this scan's seriesuid {sid!r} (it has {seen or 'none'}): "
                   "no reference nodule, CPM undefined (null); name the scan's rows by this seriesuid")
            ev["warnings"].append(msg)
            from ..io import say_warnings

            say_warnings([msg])
        if ev["n_nodules"] == 0:   # sensitivity over no nodule: undefined, never a 0 read as a score
            ev["cpm"] = None
            ev["warnings"] = [w.replace("(reported 0)", "(cpm null)") for w in ev["warnings"]]
        ev["coordinates"] = CSV_FRAME
        from ..outputs import write_text

        write_text(out / "evaluation.json", json.dumps(ev, indent=1))
        plot_froc(ev, out / "froc.png", f"{sid}: FROC")
        summary.update(cpm=None if ev["cpm"] is None else round(ev["cpm"], 4), detected=ev["n_detected"], reference_nodules=ev["n_nodules"],
                       false_positives=ev["n_false_positives"], evaluation=str(out / "evaluation.json"))
    gone = remove_stale_outputs(before)
    if gone:
        summary["removed_earlier_outputs"] = [f.name for f in gone]
        print(f"imagio: note: removed {', '.join(f.name for f in gone)} of an earlier run in {out} "
              "(not written by this run)", file=sys.stderr)
    print(json.dumps(summary, indent=1))
    io.say_warnings(json.loads((out / "candidates.json").read_text(encoding="utf-8")).get("warnings", []),
                    unless=lambda w: w.startswith("probability is a ranking score"))   # (a definition, in the json)
    return 0


def register(subparsers) -> None:
    from . import DETECTORS

    s = subparsers.add_parser(
        "detect", help="find lung nodule candidates in a chest CT (JSON + LUNA16 CSV), optionally score them",
        description="Detect lung nodule candidates. Writes candidates.json (RAS mm) and "
                    f"candidates.csv ({','.join(CSV_FIELDS)}; coordinates in {CSV_FRAME}). "
                    "--evaluate scores them against a LUNA16 annotation CSV (FROC, CPM).")
    s.add_argument("ct", help="chest CT in HU (NIfTI/NRRD/DICOM folder), or a cohort: a folder of "
                   "scans, a CSV with a 'path' column (optional seriesuid, age, sex, smoker, family_history, "
                   "extrathoracic_cancer, emphysema: the words --sex takes, yes/no/1/0/true/false, smoker "
                   "current/former/never, unknown or empty) or a "
                   "text file listing one scan or DICOM series folder per line")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--detector", default="blobs", choices=DETECTORS, help="detector: blobs (default, no weights) or deep (an nnU-Net nodule model: --model/--model-folder)")
    s.add_argument("--model", help="deep detector: catalogue model name (default lung_nodules; "
                   "install with 'imagio models fetch lung_nodules')")
    s.add_argument("--model-folder", metavar="DIR", help="deep detector: an nnU-Net v2 model folder instead of --model")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="deep detector: where the network runs (auto: CUDA when available)")
    s.add_argument("--lungs", help="optional lung mask (label map); default: IMAGIO's lung segmenter (blobs) or the deep model's lung class (deep)")
    s.add_argument("--evaluate", metavar="REFERENCE.csv",
                   help="LUNA16 annotations CSV (seriesuid,coordX,coordY,coordZ,diameter_mm; LPS mm)")
    s.add_argument("--characterise", type=int, metavar="N",
                   help="segment, measure, type and stratify the N most probable candidates "
                        "(default: max_characterised in imagio/data/detection.json; 0: none)")
    from ..stratification.patient import accepted, age_argument, sex_argument

    s.add_argument("--age", type=age_argument, help="patient age in years (Brock, Mayo)")

    s.add_argument("--sex", type=sex_argument, metavar="female|male",
                   help=f"patient sex (Brock): {accepted('sex').replace('%', '%%')}")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--smoker", action="store_true", help="current or former smoker (Mayo)")
    g.add_argument("--never-smoker", "--no-smoker", dest="never_smoker", action="store_true",
                   help="never smoked (Mayo; --no-smoker as `imagio risk` spells it)")
    unknown = "; not given: unknown, the probability is the range over yes and no"
    s.add_argument("--family-history", action=argparse.BooleanOptionalAction, default=None,
                   help="lung cancer in a first-degree relative (Brock)" + unknown)
    s.add_argument("--extrathoracic-cancer", action=argparse.BooleanOptionalAction, default=None,
                   help="extrathoracic cancer > 5 years ago (Mayo)" + unknown)
    s.add_argument("--emphysema", action=argparse.BooleanOptionalAction, default=None,
                   help="emphysema on CT as a reader sees it (Brock); not given: measured on the lung "
                        "segmentation without the airways (LAA-950), and unknown (a range) where it cannot be measured")
    s.add_argument("--no-slicer", action="store_true", help="do not write the Slicer scene files")
    s.add_argument("--report", action="store_true",
                   help="write the screening report (screening.html and screening.pdf with pictures)")
    from ..cohort import add_cohort_arguments

    add_cohort_arguments(s)
    s.add_argument("--force", action="store_true",
                   help="overwrite results already in --out (IMAGIO's own files of an earlier run that this run "
                        "does not write are removed, a user's never); a cohort: run every case again")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_detect)
