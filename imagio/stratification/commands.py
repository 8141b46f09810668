"""``imagio risk`` (nodule malignancy risk, Lung-RADS, guideline suggestion) and
``imagio eligibility`` (liver lesion ablation eligibility)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict


def check_risk_args(args) -> None:
    """Refuse (``InputError``: one line, exit 2) a nodule description Lung-RADS cannot be read
    from without guessing: a part-solid nodule without its solid component, a solid component
    given for a solid or non-solid nodule, or one larger than the nodule. Lung-RADS v2022 grades
    a part-solid nodule of >= 6 mm by its solid component's mean diameter (ACR 2022), so filling
    a missing value with 0 would give the least severe category without saying so."""
    from ..errors import InputError

    for flag, v in (("--age", args.age), ("--size-mm", args.size_mm),
                    ("--mean-diameter-mm", args.mean_diameter_mm), ("--count", args.count)):
        if v is not None and not v > 0:
            raise InputError(f"{flag} must be positive (got {v:g})")
    size = args.mean_diameter_mm or args.size_mm
    if args.type == "part_solid" and args.solid_mm is None:
        raise InputError("a part-solid nodule needs its solid component: give --solid-mm (mean diameter "
                         "of the solid part, mm; Lung-RADS grades part-solid nodules by it)")
    if args.solid_mm is not None:
        if args.type != "part_solid":
            raise InputError(f"--solid-mm applies to part-solid nodules; a {args.type} nodule has "
                             + ("no separate solid component" if args.type == "solid" else
                                "no solid component: with one it is part-solid (--type part_solid)"))
        if not 0 < args.solid_mm <= size:
            raise InputError(f"--solid-mm {args.solid_mm:g} must lie in (0, {size:g}]: the solid component "
                             "is part of the nodule")


def cmd_risk(args) -> int:
    from ..errors import InputError
    from . import guidelines, lungrads, nodule_risk, screening

    check_risk_args(args)
    out = {}
    if args.model in ("brock", "all"):
        try:
            if args.size_mm > screening.MASS_MM:  # a mass: outside the nodules Brock was built on
                raise InputError(screening.brock({"long_axis_mm": args.size_mm, "type": args.type},
                                                 {"age": args.age, "sex": args.sex}, args.count,
                                                 None, None)["refused"])
            out["brock"] = asdict(nodule_risk.brock(
                args.age, args.sex == "female", args.size_mm, args.type, args.family_history,
                args.emphysema, args.upper_lobe, args.count, args.spiculation))
        except InputError as e:  # outside the model's range: the reason, not a failure
            out["brock"] = {"model": "brock", "refused": str(e)}
    if args.model in ("mayo", "all"):
        try:
            out["mayo"] = asdict(nodule_risk.mayo(args.age, args.size_mm, args.smoker,
                                                  args.extrathoracic_cancer, args.spiculation,
                                                  args.upper_lobe))
        except InputError as e:
            out["mayo"] = {"model": "mayo", "refused": str(e)}
    small = screening.not_measurable({"mean_diameter_mm": args.mean_diameter_mm or args.size_mm})
    if small:  # below the 3 mm micronodule limit: no size-driven answer (Bankier 2017)
        out = {m: {"model": m, "refused": small} for m in ("brock", "mayo", "lung_rads") if m in out or m == "lung_rads"}
    else:
        out["lung_rads"] = lungrads.category(args.type, args.mean_diameter_mm or args.size_mm,
                                             args.solid_mm or 0.0, args.status)
    if (args.mean_diameter_mm or args.size_mm) > screening.MASS_MM:
        out["lung_rads"]["note"] = screening.lung_rads(
            {"type": args.type, "mean_diameter_mm": args.mean_diameter_mm or args.size_mm})["note"]
    if args.guideline:
        p = out.get("brock", {}).get("probability")
        try:
            out["suggestion"] = guidelines.suggestion(args.guideline, args.size_mm, p, args.type)
        except InputError as e:  # the risk figures stand (exit 0); the refusal is said on stderr too
            out["suggestion"] = {"guideline": args.guideline, "refused": str(e)}
            print(f"imagio: warning: {e}", file=sys.stderr)
    for m in ("brock", "mayo", "lung_rads"):   # a refusal is said on the terminal, not only in the JSON
        if "refused" in out.get(m, {}):
            print(f"imagio: warning: {m} not given: {out[m]['refused']}", file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


def cmd_eligibility(args) -> int:
    from .. import io
    from ..coords import point_or_name
    from .ablation_eligibility import assess

    ct = io.read_image(args.ct)
    labels = io.read_labels(args.labels, io.label_names_arg(args))
    res = assess(ct, labels, point_or_name(args.lesion, args.lps, "--lesion"))
    for w in res["warnings"]:
        print(f"imagio: warning: {w}", file=sys.stderr)
    print(json.dumps({**res, "input_warnings": ct.warnings + labels.warnings}, indent=1))
    return 0


def register(sub) -> None:
    from ..coords import add_point_argument

    s = sub.add_parser("risk", help="lung nodule malignancy risk (Brock, Mayo), Lung-RADS v2022, guideline",
                       description="Probability of malignancy from the published Brock (PanCan full model with "
                                   "spiculation) and Mayo Clinic models, the Lung-RADS v2022 category and, "
                                   "optionally, a guideline's suggested next step (a suggestion, not a decision).")
    s.add_argument("--age", type=float, required=True, help="years")
    s.add_argument("--sex", choices=["female", "male"], required=True)
    s.add_argument("--size-mm", type=float, required=True, help="maximum nodule diameter, mm")
    s.add_argument("--mean-diameter-mm", type=float, help="Lung-RADS mean diameter (default: --size-mm)")
    s.add_argument("--solid-mm", type=float, help="solid component size of a part-solid nodule, mm")
    s.add_argument("--type", choices=["solid", "part_solid", "nonsolid"], default="solid")
    s.add_argument("--status", choices=["baseline", "new", "growing"], default="baseline")
    s.add_argument("--count", type=int, default=1, help="number of nodules on the CT")
    for flag, text in (("--family-history", "lung cancer in a first-degree relative"),
                       ("--emphysema", "emphysema on CT"), ("--upper-lobe", "nodule in an upper lobe"),
                       ("--spiculation", "spiculated margin"), ("--smoker", "current or former smoker (Mayo)"),
                       ("--extrathoracic-cancer", "extrathoracic cancer > 5 years ago (Mayo)")):
        s.add_argument(flag, action="store_true", help=text)
    s.add_argument("--model", choices=["brock", "mayo", "all"], default="all")
    s.add_argument("--guideline", choices=["bts_2015"], help="show this guideline's suggested next step")
    s.set_defaults(func=cmd_risk)

    s = sub.add_parser("eligibility", help="ablation eligibility of a liver lesion",
                       description="Size, subcapsular and perivascular location, and closeness to gallbladder, "
                                   "bowel, diaphragm and bile ducts, each with its source.")
    s.add_argument("ct", help="CT image")
    s.add_argument("--labels", required=True, help="label map with the liver, vessels and the lesion")
    add_point_argument(s, "--lesion", "the lesion's structure name (e.g. liver_tumor_1), or R,A,S in mm of a point "
                       "inside it: the lesion piece holding the point is judged (one label of several tumours)",
                       metavar="NAME|R,A,S")
    from ..io import add_label_names_argument

    add_label_names_argument(s)
    s.set_defaults(func=cmd_eligibility)
