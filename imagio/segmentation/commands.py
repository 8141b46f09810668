"""CLI: ``imagio segment CT --structures ... --out SEG`` (or ``--model NAME`` for a deep model), ``imagio lesion CT --point R,A,S --out SEG``
and ``imagio vessels CT --organ SEG --organ-labels liver --out VESSELS``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ImagioError, InputError
from ..outputs import check_outputs
from ..progress import printer


def cmd_segment(args) -> int:
    from ..cohort import SegmentOptions, cmd_cohort, is_cohort

    from .rules import DEFAULT_STRUCTURES

    chosen = args.structures is not None   # the default set does not require lungs
    structures = args.structures.split(",") if chosen else list(DEFAULT_STRUCTURES)
    if is_cohort(Path(args.ct)):  # a folder / CSV / list of scans: one Dask task per scan
        return cmd_cohort(args, SegmentOptions(tuple(structures), args.model, args.device,
                                               lungs_optional=not chosen))
    if args.model:
        from .model_commands import segment_with_model

        return segment_with_model(args)
    from .. import io
    from .rules import segment

    out = io.require_image_output(args.out)
    check_outputs([out], [args.ct], args.force)
    ct = io.read_image(Path(args.ct), args.series)
    seg = segment(ct, structures, progress=printer(args.quiet), lungs_optional=not chosen)
    if not seg.labels:   # nothing found: say why (the segmenters' warnings), not that the map is unnamed
        # the asked structures' own notes first (a note of another structure, read only as context,
        # is no reason; trial 106 L9)
        notes = seg.meta.get("warnings", [])
        asked = tuple(f"{s.strip()}:" for s in structures)
        notes = [n for n in notes if n.startswith(asked)] + [n for n in notes if not n.startswith(asked)]
        why = "; ".join(notes) or "no structure found"
        raise InputError(f"nothing to write for --structures {','.join(structures)}: none of them was found in "
                         f"this CT ({why}); give a CT whose field of view holds them")
    io.write_labels(seg, out)
    summary = {
        "output": str(out),
        "structures": {n: round(float((seg.array == v).sum() * seg.voxel_volume_ml), 2)
                       for v, n in sorted(seg.labels.items())},
        **{k: v for k, v in seg.meta.items() if v},
        "input_warnings": io.input_warnings(ct),
    }
    print(json.dumps(summary, indent=1, default=str))
    io.say_warnings(seg.meta.get("warnings", []))
    return 0


def _say_registration(ct, on_ct, path, unchecked: str) -> None:
    """`label_registration.check_map_on_ct` of the --organ map (refused when displaced or mirrored),
    its doubt said on stderr."""
    from ..label_registration import check_map_on_ct

    said = check_map_on_ct(ct, on_ct, f"the label map {path} (--organ)", unchecked)
    if said:
        print(f"warning: {said}", file=sys.stderr)


def _organ_mask(lab, names: list, path):
    """``lab.mask(*names)``; InputError (one line) naming the structures the label map has when
    one of ``names`` (--organ-labels) is not among them."""
    try:
        return lab.mask(*names)
    except KeyError as e:
        raise InputError(f"--organ-labels {','.join(names)}: {path}: {e.args[0]}; give names it has") from None


def cmd_lesion(args) -> int:
    import numpy as np

    from .. import io
    from ..coords import parse_point
    from .lesion import forced_kind_note, segment_lesion

    point = parse_point(args.point, args.lps, "--point")
    out = io.require_image_output(args.out)
    check_outputs([out], [args.ct, args.organ] if args.organ else [args.ct], args.force)
    ct = io.read_image(Path(args.ct), args.series)
    organ, lab = None, None
    if args.organ:
        lab = io.read_labels(Path(args.organ), io.label_names_arg(args))
        names = args.organ_labels.split(",") if args.organ_labels else list(lab.labels.values())
        on_ct = io.labels_on_grid(lab, ct, args.organ)
        _say_registration(ct, on_ct, args.organ, "the organ bounding the lesion rests on it")
        organ = _organ_mask(on_ct, names, args.organ)
    add = [parse_point(t, args.lps, "--add") for t in args.add or []]
    remove = [parse_point(t, args.lps, "--remove") for t in args.remove or []]
    try:
        mask, meas = segment_lesion(ct, point, organ=organ, kind=args.kind, include=add, exclude=remove,
                                    progress=printer(args.quiet))
    except ImagioError as e:   # InputError among them
        hint = _mirrored_frame_hint(ct, point, organ, args.kind, args.lps)
        if hint:
            raise type(e)(f"{e}; {hint}") from None
        raise
    forced = forced_kind_note(ct, point, args.kind, mask, organ=organ)
    if forced:
        meas.warnings.append(forced)
    name = args.name or ("lung_nodule" if meas.kind == "lung_nodule" else "tumor")
    from ..outline_doubts import lesion_record

    written = ct.with_array(mask.astype(np.uint8), name=name, labels={1: name})
    # its doubts (leaked, size withheld, ...) stay with the outline, for plan, report and the scene (trial 75)
    written.outline_doubts = {name: lesion_record(meas, point)}
    io.write_labels(written, out)
    print(json.dumps({"output": str(out), "structure": name, **meas.to_dict(),
                      "input_warnings": io.input_warnings(ct, lab)}, indent=1))
    io.say_warnings(meas.warnings)   # on the terminal too, as segment and detect say theirs (trial 29)
    return 0


def _mirrored_frame_hint(ct, point, organ, kind, lps: bool) -> str:
    """When a click finds no lesion, the words for a point typed in the other frame: the same three
    numbers read as L,P,S (or as R,A,S when ``--lps`` was given; the two differ by the signs of
    the first two) that lie inside the image and give a lesion there (new-user trial 102 F4:
    LUNA16's and a PACS viewer's LPS centre typed without --lps landed on the mirrored point in
    fat and said only "not inside a distinct lesion"). '' otherwise."""
    import numpy as np

    from ..coords import lps_to_ras, other_frame_words
    from .lesion import segment_lesion

    other = lps_to_ras(point)   # the mirrored reading: the same flip of R and A either way
    if not bool(np.all(ct.contains_world(other[None]))):
        return ""
    try:
        mask, meas = segment_lesion(ct, other, organ=organ, kind=kind)
    except ImagioError:
        return ""
    if not mask.any():
        return ""
    return other_frame_words(point, lps, f"lie in a lesion of {float(mask.sum()) * ct.voxel_volume_ml:.2f} mL")


def cmd_vessels(args) -> int:
    import numpy as np

    from .. import io
    from .vessels import refuse_an_organ_on_bone, vessel_mask

    out = io.require_image_output(args.out)
    if args.diameter_out:
        io.require_image_output(args.diameter_out, "--diameter-out")
        if Path(args.diameter_out).resolve() == Path(out).resolve():   # trial 114: the mask was overwritten
            from ..errors import InputError

            raise InputError(f"--diameter-out {args.diameter_out} is the --out file: the diameter map would "
                             "replace the vessel mask; give it another name")
    check_outputs([out], [args.ct, args.organ] + ([args.label_names] if args.label_names else []), args.force)
    ct = io.read_image(Path(args.ct), args.series)
    lab = io.read_labels(Path(args.organ), io.label_names_arg(args))
    given = lab
    lab = io.labels_on_grid(lab, ct, f"{args.organ}")
    _say_registration(ct, lab, args.organ, "the organ searched for vessels rests on it")
    warned = io.input_warnings(ct, given)   # after placing it: its coverage words too (trial 114)
    names = args.organ_labels.split(",")
    organ = _organ_mask(lab, names, args.organ)
    if not organ.any():
        raise InputError(f"the organ {names} is empty in {args.organ}")
    name = args.name or ("lung_vessels" if any(n.startswith("lung") for n in names) else
                         "liver_vessels" if "liver" in names else "vessels")
    refuse_an_organ_on_bone(ct.array, organ)   # another CT's map, its 'liver' on the ribs (trial 116 H3)
    notes: list = []
    m, diam = vessel_mask(ct, organ, progress=printer(args.quiet), notes=notes)
    for w in notes:
        print(f"warning: {w}", file=sys.stderr)
    io.write_labels(ct.with_array(m.astype(np.uint8), name=name, labels={1: name}), out)
    if args.diameter_out:
        io.write_image(ct.with_array(diam.astype(np.float32), name="lumen diameter mm", labels={}),
                       Path(args.diameter_out))
    d = diam[m]
    print(json.dumps({"output": str(out), "structure": name,
                      "volume_ml": round(float(m.sum() * ct.voxel_volume_ml), 2),
                      "diameter_mm": {"median": round(float(np.median(d)), 2) if d.size else None,
                                      "max": round(float(d.max()), 2) if d.size else None},
                      "warnings": notes, "input_warnings": warned}, indent=1))
    return 0


def register(subparsers) -> None:
    from ..coords import add_point_argument
    from ..io import IMAGE_SUFFIXES, add_label_names_argument
    from ..dicom import add_series_argument
    from .rules import DEFAULT_STRUCTURES, STRUCTURE_CONTENTS, STRUCTURES

    s = subparsers.add_parser(
        "segment", help="segment a CT: HU rules (body, bones, lungs, airways, ...) or a deep model (--model)",
        description="Segment a CT with HU rules (no model weights) into one label map with named "
                    "structures. Structures (what each writes): "
                    + "; ".join(f"{k}: {STRUCTURE_CONTENTS[k]}" for k in STRUCTURES) + ".")
    s.add_argument("ct", help="CT image (NIfTI/NRRD/DICOM folder) in HU")
    s.add_argument("--structures", default=None,
                   help=f"comma-separated (default {','.join(DEFAULT_STRUCTURES)}; with the default a scan "
                        "without lungs, e.g. a limb, gets the other structures and a warning, while a set "
                        "that names lungs refuses it)")
    s.add_argument("--out", required=True, help="output label map (.seg.nrrd, or .nii.gz + sidecar)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists (never an input)")
    add_series_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    m = s.add_argument_group("deep model (instead of the rules)")
    m.add_argument("--model", help="catalogue name (see 'imagio models list') or an nnU-Net v2 model folder")
    m.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    m.add_argument("--folds", default=None, help="comma-separated folds (default: all present / catalogue's)")
    m.add_argument("--mirror", action="store_true", help="mirroring test-time augmentation (8x slower in 3D)")
    m.add_argument("--step", type=float, default=None,
                   help="tile step as a fraction of the patch (default 0.5; TotalSegmentator tasks 0.8)")
    m.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass")
    from ..cohort import add_cohort_arguments

    add_cohort_arguments(s)
    s.set_defaults(func=cmd_segment)

    s = subparsers.add_parser(
        "lesion", help="one-click lesion (liver tumour / lung nodule) segmentation and measurements",
        description="Segment the lesion under a RAS point (mm) and print its volume (mL) and "
                    "long/short axes (mm, 3-D and axial) as JSON.")
    s.add_argument("ct", help="CT image in HU")
    add_point_argument(s, "--point", "the lesion: R,A,S in mm (as Slicer shows it)")
    s.add_argument("--out", required=True,
                   help="output label map; its file suffix picks the format and is required: .seg.nrrd (Slicer "
                        f"segmentation) or {', '.join(IMAGE_SUFFIXES)} (with a .labels.json sidecar)")
    s.add_argument("--organ", help="optional label map bounding the lesion (e.g. the liver)")
    s.add_argument("--organ-labels", help="comma-separated label names in --organ to use")
    add_label_names_argument(s, "names of --organ's label values")
    s.add_argument("--kind", choices=("lung_nodule", "soft_tissue"),
                   help="lesion type (default: detected from the surroundings)")
    s.add_argument("--name", help="structure name (default lung_nodule or tumor)")
    s.add_argument("--add", action="append", metavar="R,A,S",
                   help="a second click: add the lesion part under this point (repeatable; --lps applies)")
    s.add_argument("--remove", action="append", metavar="R,A,S",
                   help="remove the part of the lesion nearer to this point than to --point (repeatable)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists (never an input)")
    add_series_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_lesion)

    s = subparsers.add_parser(
        "vessels", help="contrast vessels inside an organ (vesselness) with lumen diameter",
        description="Multiscale Hessian vesselness inside an organ of a label map (e.g. the "
                    "liver or the lungs); writes the vessel mask and optionally the lumen "
                    "diameter (mm) per voxel.")
    s.add_argument("ct", help="contrast CT in HU")
    s.add_argument("--organ", required=True, help="label map holding the organ")
    s.add_argument("--organ-labels", required=True, help="comma-separated organ label names")
    add_label_names_argument(s, "names of --organ's label values: a file holding e.g. {\"5\": \"liver\"}")
    s.add_argument("--out", required=True, help="output vessel label map")
    s.add_argument("--diameter-out", help="optional float image of the lumen diameter (mm)")
    s.add_argument("--name", help="structure name (default liver_vessels / lung_vessels)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists (never an input)")
    add_series_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_vessels)
