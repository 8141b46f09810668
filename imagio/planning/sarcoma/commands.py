"""``imagio plan --procedure sarcoma-biopsy``: the sarcoma biopsy from the command line.

    imagio plan CT --labels SEG --target TUMOUR --out DIR --procedure sarcoma-biopsy
                [--incision CURVE.mrk.json|CSV] [--incision-tolerance MM] [--cores N]
                [--bundle-margin MM] [--compartment KEY ...] [--no-compartments]
                [--needle-length MM] [--needle-diameter MM] [--uncertainty MM] [--gantry-tilt DEG]
                [--position POS] [--max-skin-angle DEG] [--skin-spacing MM] [--no-rule RULE] [--role N=R]

The needle planner's options are honoured (`needle_options`: the core needle bounds and widens
every tract; --gantry-tilt / --position switch the craniocaudal / table-side rules on, which are
off for a limb by default); the ablation options (--device, --setting, --multi-probe, --devices)
are refused with one line, exit code 2 (`reject_unsupported`): none is ever ignored silently.

Writes DIR/plan.json (the needle plan with a ``sarcoma`` section), DIR/viable_tumour.seg.nrrd
(the viable tumour as a segment), DIR/plan.png (3D), DIR/report.pdf + .html with the axial
picture (compartments coloured), DIR/scene/plan.mrml (Slicer scene: proposals, cores, entry to
tattoo, incision, viable tumour, rules table; with slicer-core). No compartments in the label map and no --no-compartments:
one line, exit code 2. A failed plan (no core) writes only DIR/plan_failed.json (``"status": "failed"``,
the reason, the warnings, the planner's exclusion report), nothing that looks like a plan, and
exits with code 2 and one error line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ...errors import InputError


def add_arguments(s) -> None:
    """The sarcoma options of ``imagio plan``."""
    g = s.add_argument_group("sarcoma biopsy (--procedure sarcoma-biopsy)")
    g.add_argument("--incision", help="planned surgical incision: a Slicer markups curve (.mrk.json) or a "
                                      "text file of R,A,S points one per line (--lps for L,P,S); default: the line "
                                      "along the limb's long axis over the tumour on the shortest compliant side")
    g.add_argument("--incision-tolerance", type=float, help="max distance of the entry from the incision, mm (default 10)")
    g.add_argument("--cores", type=int, help="number of core trajectories from the entry, 3-5 (default 4)")
    g.add_argument("--throw", type=float, help="core needle throw, mm (default 10): the tract ends at the target, the "
                                               "fired needle's deepest point; the specimen before it must lie in viable "
                                               "tumour")
    g.add_argument("--bundle-margin", type=float, help="clearance from the neurovascular bundle, mm (default 5)")
    g.add_argument("--compartment", action="append", metavar="KEY",
                   help="compartment occupied by the tumour (repeatable; default: from the tumour's contact), "
                        "e.g. thigh_medial_left")
    g.add_argument("--no-compartments", action="store_true",
                   help="plan without the compartment rules when the label map has no compartments (said in the plan)")


def read_curve(path, lps: bool = False) -> np.ndarray:
    """(m, 3) RAS points of a markups curve (.mrk.json, its coordinateSystem honoured) or of a
    text file with one 'R,A,S' (or L,P,S with ``lps``) per line. InputError when unreadable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--incision {p}: no such file")
    try:
        if p.name.endswith(".json"):
            doc = json.loads(p.read_text(encoding="utf-8"))
            mk = doc["markups"][0]
            pts = np.array([c["position"] for c in mk["controlPoints"]], float)
            if mk.get("coordinateSystem", "LPS") == "LPS":
                pts[:, :2] *= -1.0
        else:
            rows = [r.replace(";", ",").split(",") for r in p.read_text(encoding="utf-8").splitlines() if r.strip() and not r.startswith("#")]
            pts = np.array([[float(x) for x in r[:3]] for r in rows], float)
            if lps:
                pts[:, :2] *= -1.0
    except (KeyError, IndexError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise InputError(f"--incision {p}: not a markups curve or R,A,S point list ({e})") from None
    if pts.ndim != 2 or len(pts) < 2:
        raise InputError(f"--incision {p}: a curve needs at least 2 points")
    return pts


PLAN_FILES = ("plan.json", "viable_tumour.seg.nrrd", "plan.png", "plan_compartments_axial.png", "report.pdf",
              "report.html", "scene")


def _fail(sp, doc: dict, out: Path) -> None:
    """A failed plan (no core): only ``out``/plan_failed.json (status "failed", the reason) is
    written, the warnings go to stderr, a plan left in ``out`` by an earlier run is named as not
    this run's (never deleted), and the error is raised: InputError for an incision that no
    compliant entry lies near, else NoFeasiblePath (the sarcoma reason when known), one line, exit 2."""
    from ...io import say_warnings
    from ...outputs import write_text
    from ..planner import NoFeasiblePath

    doc = {"status": "failed", "failure": sp.failure or "no feasible tract: see the exclusion report",
           **{k: v for k, v in doc.items() if k not in ("proposals", "pareto")}}
    write_text(out / "plan_failed.json", json.dumps(doc, indent=1))
    say_warnings(doc.get("warnings", []),   # the failure is said once, below
                 unless=lambda w: w.startswith("no feasible path") or w == sp.failure)
    stale = [n for n in PLAN_FILES if (out / n).exists()]
    if stale:
        say_warnings([f"{', '.join(stale)} in {out} are from an earlier run, not this one (this plan failed)"])
    print(f"imagio: the failed plan's reasons: {out / 'plan_failed.json'}", file=sys.stderr)
    if sp.failure and "incision" in sp.failure:
        raise InputError(sp.failure)
    err = NoFeasiblePath(sp.plan.report)
    if sp.failure:
        err.args = (sp.failure,)
    raise err


UNSUPPORTED = {"device": ("--device", "an ablation device"), "setting": ("--setting", "an ablation setting"),
               "multi_probe": ("--multi-probe", "multi-probe ablation"),
               "devices": ("--devices", "an ablation device file")}


def reject_unsupported(args) -> None:
    """InputError (one line, exit 2) naming the ``imagio plan`` options given that a core-needle
    sarcoma biopsy cannot honour (the ablation ones): never ignored silently."""
    bad = [flag for k, (flag, _) in UNSUPPORTED.items() if getattr(args, k, None)]
    if bad:
        raise InputError(f"{', '.join(bad)}: not used by --procedure sarcoma-biopsy (a core-needle biopsy, no "
                         "ablation); leave {} out".format("them" if len(bad) > 1 else "it"))


def needle_options(args) -> dict:
    """The needle planner's options of ``imagio plan`` for `plan_sarcoma_biopsy`: the core needle
    (--needle-length, --needle-diameter, --uncertainty, --beyond-tip; `plan.sarcoma_needle`), --gantry-tilt and
    --position (their rules switched on when given), --max-skin-angle, --skin-spacing, --no-rule
    and --role. InputError (one line) for a bad value."""
    from ..commands import _parse_roles, beyond_tip_given, parse_gantry_tilt
    from .plan import sarcoma_needle

    return {"needle": sarcoma_needle(args.needle_length, args.needle_diameter, args.uncertainty,
                                     beyond_tip_given(args)),
            "max_craniocaudal_deg": parse_gantry_tilt(args.gantry_tilt), "patient_position": args.position,
            "max_skin_angle_deg": args.max_skin_angle, "skin_spacing_mm": args.skin_spacing,
            "disabled_rules": tuple(args.no_rule or ()), "roles_override": _parse_roles(args.role)}


# every file a sarcoma plan writes (the report adds report.pdf, report.html and its pictures)
SARCOMA_OUTPUTS = ("plan.json", "plan_failed.json", "viable_tumour.seg.nrrd", "plan.png",
                   "plan_compartments_axial.png")


def cmd_sarcoma(args) -> int:
    from ... import io
    from ...outputs import write_text
    from ...progress import printer
    from ...report import build_report
    from .plan import plan_sarcoma_biopsy
    from .report import axial_picture, picture_3d

    from ..commands import issue_held, read_plan_inputs

    reject_unsupported(args)
    out, ct, labels, held = read_plan_inputs(args, SARCOMA_OUTPUTS, prefixes=("report",))   # and scene/ (trial 30 M2)
    # RAS-canonical copies of the CT and labels on rounded affines, as the Slicer module plans them
    # (`canonical_grids`: the same cores for every storage and every front-end; trial 36 M2, 95 F8)
    from .plan import canonical_grids

    cover = getattr(labels, "lesion_cover", [])   # `io.with_lesions`' record: not carried by the reordered copy
    ct, labels = canonical_grids(ct, labels)
    if "," in str(args.target):
        raise InputError("--procedure sarcoma-biopsy: give the tumour's label name as --target "
                         "(targets are chosen in its viable part)")
    curve = read_curve(args.incision, args.lps) if args.incision else None
    sp = plan_sarcoma_biopsy(ct, labels, args.target, incision=curve,
                             incision_tolerance_mm=args.incision_tolerance, n_cores=args.cores,
                             bundle_margin_mm=args.bundle_margin, involved=args.compartment,
                             allow_no_compartments=args.no_compartments, throw_mm=args.throw, k=args.proposals,
                             progress=printer(args.quiet), **needle_options(args))
    issue_held(held)   # the inputs are accepted (a refusal above is its one line): the outlines' cover warnings
    from ..commands import say_beyond_tip_off

    if sp.feasible:   # a failed plan stays its one error line
        say_beyond_tip_off(sp.plan.problem.needle.beyond_tip_mm, getattr(args, "beyond_tip", None),
                           "each core's tract ends where the fired needle stops")
    doc = sp.to_dict()
    # a target outline `imagio lesion` flagged (accepted with --accept-flagged-target, or a flag not
    # refused): the first warning, as the needle plan's (`PlanningProblem.build`; trial 75)
    from ... import anatomy
    from ...outline_doubts import target_warning

    tname = anatomy.name_in(args.target, labels.labels.values())
    flagged = target_warning(tname, labels.outline_doubts.get(tname))
    if flagged:
        doc["warnings"] = [flagged] + [w for w in doc.get("warnings", []) if w != flagged]
        doc["target_outline_doubts"] = labels.outline_doubts[tname]
    from ...volume import world_digest
    doc["inputs"] = {"ct": str(Path(args.ct).resolve()), "series": args.series, "ct_digest": world_digest(ct),
                     "labels": str(Path(args.labels).resolve()), "labels_digest": getattr(args, "labels_digest", None),
                     "label_names": str(Path(args.label_names).resolve()) if args.label_names else None,
                     "picture_3d": None if args.no_png or not sp.feasible else "plan.png",
                     "extra_pictures": [] if args.no_png or not sp.feasible else
                     [["plan_compartments_axial.png", "axial slice through core 1's target: compartments "
                                                      "(green occupied, red uninvolved), bundle magenta, viable tumour cyan"]]}
    if getattr(args, "lesions", None):   # what each --lesions outline covered, what was kept (trial 36 H1)
        doc["lesion_outline_covered"] = cover
    if ct.warnings or labels.warnings:
        doc["input_warnings"] = ct.warnings + labels.warnings
    out.mkdir(parents=True, exist_ok=True)
    if not sp.feasible:
        _fail(sp, doc, out)
    write_text(out / "plan.json", json.dumps(doc, indent=1))
    written = [out / "plan.json"]
    via = ct.with_array(sp.viable.mask.astype(np.uint8), name="viable_tumour",
                        labels={1: f"{sp.tumour}_viable"})
    written.append(Path(io.write_labels(via, out / "viable_tumour.seg.nrrd")))
    if not args.no_png and sp.feasible:
        written.append(Path(picture_3d(sp, out / "plan.png")))
        written.append(axial_picture(sp, out / "plan_compartments_axial.png"))
        written += list(build_report(doc, out / "report.pdf", sp.plan.problem.ct, sp.plan.problem.labels,
                                     out / "plan.png", extra_pictures=[(out / p, c) for p, c in doc["inputs"]["extra_pictures"]]))
    if not args.no_scene:
        from ...mrml.sarcoma import sarcoma_to_scene
        from ..commands import write_plan_scene

        written += write_plan_scene(sp.plan, out, add=lambda scene: sarcoma_to_scene(scene, sp), ct_path=args.ct)
    for p in written:
        print(p)
    io.say_warnings(doc.get("warnings", []))
    c0 = doc["sarcoma"]["cores"][0]
    print(f"sarcoma biopsy: entry {doc['sarcoma']['tattoo_entry']['ras']} RAS mm, {len(sp.cores)} cores, "
          f"tract {c0['length_mm']} mm in {', '.join(sp.involved) or 'no compartment'}; rules: " +
          ", ".join(f"{k} {'met' if v['met'] else 'not checked' if v['met'] is None else 'VIOLATED'}"
                    for k, v in c0["rules"].items()))
    return 0
