"""CLI: ``imagio bronch CT --airways SEG --target NAME|R,A,S --scope NAME --out DIR``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ...errors import InputError


def register(subparsers) -> None:
    from ...coords import add_point_argument

    s = subparsers.add_parser(
        "bronch", help="bronchoscopic route to a nodule: airway tree, scope reach, tunnel, fly-through",
        description="Extract the airway tree from an airway segmentation, find the route for a scope to "
                    "the airway closest to the target, and, when the scope does not reach it, ranked "
                    "transparenchymal tunnels. Writes bronch.json, camera_path.json, flythrough.png and "
                    "a Slicer scene (when slicer-core is installed).")
    s.add_argument("ct", help="the CT in HU: checked, used to find leaks of the airway mask and, when --structures "
                              "has no lungs, to segment the lungs and their vessels (tunnels, in-lung check)")
    s.add_argument("--airways", required=True, help="label map with the airways (trachea/airways labels, or a binary mask)")
    s.add_argument("--structures", help="label map with lungs, lung vessels and the nodule (default: --airways)")
    from ...io import add_label_names_argument

    add_label_names_argument(s, "names the values of --structures, or of --airways when no --structures is given")
    s.add_argument("--lesions", help="a label map of lesions (imagio detect's nodules.seg.nrrd) merged over "
                                     "--structures: the target and the other nodules, which tunnels keep clear of")
    add_point_argument(s, "--target", "a label name in --structures (e.g. lung_nodule_1) or R,A,S in mm",
                       metavar="NAME|R,A,S")
    s.add_argument("--scope", default="thin", help="scope name from imagio/data/scopes.json or a diameter in mm")
    s.add_argument("--tolerance", type=float, default=None, help="mm a lumen may be narrower than the scope")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--no-pictures", action="store_true", help="skip the fly-through PNG")
    s.add_argument("--force", action="store_true", help="replace an earlier route (bronch.json) in --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_bronch)


def _target(arg, structures, lps=False):
    from ...coords import point_or_name
    from . import Target

    point = point_or_name(arg, lps, "--target")
    if not isinstance(point, str):
        lesion = lesion_at(point, structures)
        if lesion is not None:
            return (*lesion, "")
        return Target.from_point(point), None, ""
    if structures is not None:
        from ... import anatomy

        arg = anatomy.name_in(arg, structures.labels.values())
    if structures is None or arg not in structures.labels.values():
        have = sorted(structures.labels.values()) if structures is not None else []
        raise InputError(f"target {arg!r} is neither R,A,S nor a label of the structures ({', '.join(have[:12])}...)")
    mask, note = largest_piece(structures, arg)
    return Target.from_mask(structures, mask), arg, note


def target_record(text: str, lps: bool, target) -> dict:
    """bronch.json's record of ``--target``: ``ras`` (mm, RAS: the point given, converted from
    L,P,S under --lps; for a structure name, the centre of its outline ``target.centre``),
    ``given`` (the text as typed) and ``convention`` ("RAS", "LPS (--lps)" or "structure name"),
    so that a reader never takes an L,P,S text for R,A,S (trial 95 F10)."""
    from ...coords import point_or_name

    point = point_or_name(text, lps, "--target")
    named = isinstance(point, str)
    return {"ras": [round(float(v), 4) for v in (target.centre if named else point)], "given": text,
            "convention": "structure name" if named else ("LPS (--lps)" if lps else "RAS")}


def target_tissue(ct, target, name: str, structures) -> list:
    """Warnings on the CT's tissue at the target, the needle planner's checks (one definition,
    `imagio.planning.problem`): an outline over air or aerated lung (`outline_tissue`; the point is
    not moved: the route is measured to the outline's surface), a point in aerated lung that no
    lesion label holds (`point_in_aerated_lung`). New-user trial 39 H4: an outline of another scan
    over plain aerated lung (median -827 HU) and a point at -843 HU were routed to, exit 0, no word."""
    from ..problem import outline_tissue, point_in_aerated_lung

    if target.mask is None:
        return point_in_aerated_lung(ct, structures, target.centre, tool="scope")
    m = target.mask if ct.same_grid(target.mask) else target.mask.resample_like(ct, order=0, fill=0)
    return outline_tissue(ct, m.array > 0, name, target.centre, fluid=False, move=False,
                          flags="--structures, --lesions")[0]


def largest_piece(structures, name: str):
    """(mask [k, j, i], warning or "") of the label ``name``: for a lesion label of separate
    pieces (TotalSegmentator's lung_nodules, LiTS' tumor) its largest 26-connected piece, the
    others being other lesions the tunnels keep clear of (`tunnel.other_lesions`); else the
    whole label. New-user trial 22: the verdict was measured to one nodule of such a label and
    the tunnel went to another."""
    from ..problem import is_lesion, kept_lesion_piece

    if not is_lesion(name):
        return structures.mask(name), ""
    value = next(v for v, n in structures.labels.items() if n == name)
    kept, note = kept_lesion_piece(structures, value)
    return (structures.mask(name) if kept is None else kept), note


def lesion_at(point, structures):
    """(Target from the outline, label name) of the lesion segment of ``structures`` holding the
    RAS ``point`` (its 26-connected piece there), or None when the point lies in no lesion label:
    a point clicked in a segmented nodule is that nodule (its bronchus sign and the distance from
    its surface need its outline). A lesion label is what the needle planner calls one
    (`imagio.planning.problem.is_lesion`: catalogue role 'target', or a name it does not know)."""
    from ..problem import is_lesion
    from . import Target

    if structures is None:
        return None
    kji = structures.nearest_kji(np.asarray(point, float).reshape(1, 3))[0]
    if not structures.in_array(kji):
        return None
    v = int(structures.array[tuple(kji)])
    name = structures.labels.get(v, "")
    if not v or not is_lesion(name):
        return None
    import cc3d

    piece = cc3d.connected_components(structures.array == v, connectivity=26)
    return Target.from_mask(structures, piece == piece[tuple(kji)]), name


BRONCH_OUTPUTS = ("bronch.json", "camera_path.json", "flythrough.png")   # its files in --out (and scene/)
PADDING_HU = -1024  # below air: padding values (DICOM pixel padding), read as air
WALL_VOXELS = 2     # bronchial wall around the segmented lumen (about 1-3 mm: Hasegawa M et al., AJRCCM 2006)


SEGMENT_GRID_MM = 1.5   # the grid the lung envelope is segmented on (at most this fine)
VESSEL_CONTEXT_MM = 15.0   # context beyond the tunnels' reach (their crop adds 5 mm): > 2 x the largest vesselness scale (4 mm)


def _check_in_ct(ct, target) -> None:
    """InputError when the target's centre lies outside the CT."""
    if not ct.contains_world(np.asarray(target.centre, float)[None])[0]:
        raise InputError(f"the target {np.round(target.centre, 1).tolist()} (RAS mm) lies outside the CT: give a "
                         "point in the lungs of this CT (RAS mm; --lps for L,P,S)")


def _lungs_from_ct(ct, target, progress=None):
    """(lung Volume, vessel mask on its grid) for the in-lung check and the tunnels, segmented from
    the CT by the rule-based segmenter, where the plan uses them:

    - the lungs (each hole-filled in 3-D with fill_voids, so that a nodule inside belongs to it)
      and the intrapulmonary airways with their walls, on a grid of at least ``SEGMENT_GRID_MM``
      (the CT Gaussian-smoothed against aliasing, then resampled): the envelope is a region, not
      a calibre, and 1.5 mm is the finest grid the bronchoscopy truth tests run on. On a 0.66 mm
      CT of 54 M voxels (an ATM'22 case) the whole segmentation at the native grid took 396 s;
    - the lung vessels at the CT's own resolution, only in the box the tunnels search
      (`tunnel.plan_tunnels`: its length limit plus the lesion's radius, the vessel margin and
      ``VESSEL_CONTEXT_MM`` around the target's centre): a vessel's clearance is a calibre question.
      The vesselness is normalised over that box, not over both lungs, so the mask differs a
      little from a whole-lung one (1.0 mm phantom, within 45 mm of two nodules: 98 % and 89 % of
      the whole-lung mask's vessel voxels found within 1.5 voxels, 17-41 % more voxels marked;
      the same tunnel verdicts).

    The returned lung Volume covers that box on the CT's grid (the envelope resampled trilinearly,
    >= 0.5). ``progress``: `imagio.progress.Progress`-style callback. InputError when the target's
    centre lies outside the CT."""
    import fill_voids
    from scipy import ndimage

    from ...progress import Progress
    from ...segmentation.rules import segment_masks
    from ...segmentation.vessels import vessels_and_blobs

    _check_in_ct(ct, target)
    p = Progress(progress)
    sp = np.asarray(ct.spacing, float)
    grid = np.maximum(sp, SEGMENT_GRID_MM)
    coarse = ct
    if np.any(grid > sp * 1.01):
        sig = np.sqrt(np.maximum((grid / sp) ** 2 - 1.0, 0.0)) / 2.355   # target FWHM = the new spacing (voxels)
        sm = ndimage.gaussian_filter(ct.array.astype(np.float32), sig[::-1])
        coarse = ct.with_array(sm).resampled(grid, order=1)
    masks, _ = segment_masks(coarse, ("lungs", "airways"), progress=p.sub(0.0, 0.6))
    lung_c = masks["lung_left"] | masks["lung_right"]
    env = fill_voids.fill(masks["lung_left"], in_place=False) | fill_voids.fill(masks["lung_right"], in_place=False)
    air = masks.get("airways")
    if air is not None and air.any() and env.any():
        # the intrapulmonary bronchi with their walls (the segmenter leaves them out of the lungs):
        # a tunnel leaves its airway through the wall, not through the pleura
        sl = ndimage.find_objects(env.astype(np.uint8))[0]
        wall = max(1, int(round(WALL_VOXELS * float(sp.min()) / float(grid.min()))))
        near = ndimage.binary_dilation(env[sl], iterations=wall + 1)
        env[sl] |= ndimage.binary_dilation(air[sl], iterations=wall) & near
    box = tunnel_box(ct, target)
    p(0.6, "lungs: resampled to the CT grid around the target")
    env_b = coarse.with_array(env.astype(np.float32)).resample_like(box, order=1, fill=0.0).array >= 0.5
    lung_b = coarse.with_array(lung_c.astype(np.float32)).resample_like(box, order=1, fill=0.0).array >= 0.5
    ves = None
    if lung_b.any():
        p(0.62, "lung vessels around the target (CT resolution)")
        # the CT is judged whole (segment_masks above); the box around the target need not hold air
        ves, _, _ = vessels_and_blobs(box, lung_b, progress=p.sub(0.62, 1.0), hu_checked=True)
        env_b |= ves
    p(1.0, "lungs and vessels done")
    return box.with_array(env_b.astype(np.uint8)), ves


def tunnel_box(ct, target):
    """The CT cropped to the box the tunnels search (`tunnel.plan_tunnels`: its length limit plus
    the lesion's radius and the vessel margin) plus ``VESSEL_CONTEXT_MM`` around the target's centre."""
    from ...volume import reach_box
    from .route import load_scopes

    cfg = load_scopes()["tunnel"]
    radius = float(np.linalg.norm(target.surface - target.centre, axis=1).max()) if len(target.surface) else 0.0
    reach = float(cfg["max_length_mm"]) + radius + float(cfg["vessel_margin_mm"]) + VESSEL_CONTEXT_MM
    lo, hi = reach_box(ct, target.centre, reach)
    return ct.crop(lo, hi)


def vessels_from_ct(ct, target, lungs, progress=None):
    """(lung Volume, vessel mask on its grid) when the label map has lungs (``lungs``: mask
    Volume on any grid, e.g. `tunnel.lung_envelope`'s) but no lung-vessel label (what
    `imagio segment` writes): the lung vessels segmented from the CT by the rule-based
    segmenter (`segmentation.vessels.vessels_and_blobs`, as `_lungs_from_ct` does) at the CT's
    resolution in the tunnels' box, inside the given lungs. The lungs are returned resampled to
    that box (nearest), with the vessels added. InputError when the target's centre is outside the CT."""
    from ...progress import Progress
    from ...segmentation.vessels import vessels_and_blobs

    from ...segmentation.common import check_ct

    _check_in_ct(ct, target)
    check_ct(ct)   # judged whole (its verdict kept): the box around the target need not hold air (trial 110)
    p = Progress(progress)
    box = tunnel_box(ct, target)
    lung_b = lungs.resample_like(box, order=0, fill=0).array > 0
    if target.mask is not None:   # the nodule is no vessel (the vesselness would see its rim)
        lung_b &= ~(target.mask.resample_like(box, order=0, fill=0).array > 0)
    ves = np.zeros(box.shape, bool)
    if lung_b.any():
        p(0.0, "lung vessels around the target (CT resolution)")
        ves, _, _ = vessels_and_blobs(box, lung_b, progress=p.sub(0.0, 1.0), hu_checked=True)
    p(1.0, "lung vessels done")
    env = (lungs.resample_like(box, order=0, fill=0).array > 0) | ves
    return box.with_array(env.astype(np.uint8)), ves


def _lobes(structures):
    from .anatomy import LOBAR

    names = [n for n in structures.labels.values() if n in LOBAR]
    return structures if names else None


def _reference_inputs(scene, ct_path, airways_path, air, structures_path, structures) -> None:
    """The CT and the label maps the plan read, referenced in place by the scene (read by Slicer
    from the user's files, never copied or written: `mrml.scene.reference_volume` /
    `reference_labels`, as the needle plan's scene does), so that bronch.mrml opens on its images;
    what cannot be referenced so (a DICOM folder) is said on stderr."""
    from ...mrml.scene import reference_labels
    from ..commands import reference_ct

    reference_ct(scene, ct_path)
    for path, vol, name in ((airways_path, air, "Airways"), (structures_path, structures, "Structures")):
        if path and reference_labels(scene, path, vol.labels, name) is None:
            print(f"imagio: note: the scene does not load {path} (not a label file Slicer reads in place)",
                  file=sys.stderr)


def cmd_bronch(args) -> int:
    from ... import io
    from ...io import say_warnings
    from .tunnel import lung_envelope
    from ...outputs import atomic_path, write_text
    from ...segmentation.common import check_ct
    from . import airway_mask, extract_tree, plan
    from .mask_checks import reformat_note, require_mask_on_air
    from ...segmentation.airways import check_slice_thickness, slice_thickness_doubt
    from ...label_registration import classes_from_labels, require_registered
    from .route import check_root, implausible_scope, names_side_note, route_names, scope_and_tolerance, scope_diameter
    from ...progress import Progress, printer
    from ..commands import check_fixed_outputs
    from ...coords import with_other_frame_hint
    from ..problem import with_frame_question
    from ...volume import as_ras_canonical

    scope_diameter(args.scope, allow_zero=False)   # trial 28: --scope 0 planned a route
    scope_and_tolerance(args.scope, args.tolerance)   # before any work
    odd_scope = implausible_scope(args.scope)      # trial 31: a 0.6 mm "scope" planned without a word
    if odd_scope:
        say_warnings([odd_scope])
    # a user's file among bronch's outputs is refused before any work (trial 28 M3); an earlier
    # route too, without --force, as `imagio plan` does (new-user trial 77 L3: replaced unasked)
    # (the user's file first: --force is offered only for IMAGIO's own; new-user trial 100 F4)
    check_fixed_outputs(args, BRONCH_OUTPUTS)
    p = Progress(printer(getattr(args, "quiet", False)))
    timings = {}
    t_all = t0 = time.perf_counter()
    p(0.0, "reading the CT and the airways")
    ct_path = Path(args.ct)
    ct = as_read = io.read_ct(ct_path, task="bronchoscopic planning")
    if ct.array.dtype.kind in "if" and ct.array.min() < PADDING_HU:
        # scanner padding outside the scan circle (-2048, -3024, -32768): air for every use here
        ct = ct.with_array(np.maximum(ct.array, ct.array.dtype.type(PADDING_HU)))
    check_ct(ct)
    check_slice_thickness(as_read, "CT")   # the reader's record of overlapping slices (trial 30 H3)
    thick_doubt = slice_thickness_doubt(as_read)   # thick overlapping sections, header silent (trial 95 F5)
    names = io.label_names_arg(args)
    air = io.read_labels(Path(args.airways), None if args.structures else names)
    io.require_overlap(air, ct, f"--airways {args.airways}")   # another scan's mask (trial 32 M2)
    structures = io.read_labels(Path(args.structures), names) if args.structures else air
    if args.structures:
        io.require_overlap(structures, ct, f"--structures {args.structures}")
    # every grid in RAS-canonical storage (`volume.as_ras_canonical`; every voxel keeps its world
    # position): the skeleton, the branch order and every tie see one array, so the tree and the
    # route do not depend on how the same images are stored (new-user trial 32 M1: the chest CTA
    # flipped or permuted gave 113, 120 or 116 branches and routes of 200.5 or 206.4 mm)
    ct = as_ras_canonical(ct)[0]
    air = as_ras_canonical(air)[0]
    structures = as_ras_canonical(structures)[0] if args.structures else air
    mask = airway_mask(air)
    require_mask_on_air(ct, mask, air, f"--airways {args.airways}")   # another scan's tree (trial 34 F2)
    # a tree displaced inside the chest (other series, wrong origin): its lumen and the bones and
    # lungs of its label map fit the CT better when moved (new-user trial 36 H4: 8 mm off, every
    # branch "trachea", the scope's fit on the mask's own diameters, "short by 6.0 mm" for 45.5)
    from ...label_orientation import check_orientation

    side_notes = check_orientation(structures, f"the label map {args.structures or args.airways}", ct)   # trial 39
    reg = classes_from_labels(air)
    reg["air"] = reg["air"] | mask if "air" in reg else mask
    shift_note = require_registered(ct, air, reg, f"the airway mask {args.airways} (--airways)",
                                    "unchecked then: the route, its branch names and generations and whether the "
                                    "scope fits rest on the mask where it lies, not on the CT's airways")
    # a map covering part of the CT (the airways past its edge are unknown, not absent) is said (new-user
    # trial 114), after the checks that refuse a tree off the CT's air (`require_mask_on_air`, registration)
    io.check_placed(structures, ct, f"the label map {args.structures or args.airways}", tissues=False)
    structures_read = structures
    if args.lesions:
        structures = io.with_lesions(structures, args.lesions)
    lobes = _lobes(structures)
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tree = extract_tree(air, mask, progress=p.sub(0.05, 0.25), ct=ct, lobes=lobes)
    check_root(tree)   # before any segmentation: a tree without its trachea is refused
    timings["tree"] = time.perf_counter() - t0
    target, target_name, piece_note = _target(args.target, structures, args.lps)
    lungs, vessels = lung_envelope(structures)
    notes = side_notes + [x for x in (odd_scope, shift_note, piece_note) if x]
    notes += [x for x in (reformat_note(air, mask, f"the airway mask {args.airways}", as_read),) if x]   # trial 78 L4
    notes += with_frame_question(target_tissue(ct, target, target_name or args.target, structures), ct,
                                 args.target, args.lps)
    if target_name and target_name != args.target:
        notes.append(f"the target point lies in the segment {target_name!r}: planned to that lesion's outline "
                     "(distances from its surface, bronchus sign from it)")
    if lungs is None:
        t0 = time.perf_counter()
        try:
            lungs, vessels = _lungs_from_ct(ct, target, progress=p.sub(0.25, 0.9))
        except InputError as e:
            raise with_other_frame_hint(e, ct, args.target, args.lps) from e
        timings["lung_segmentation"] = time.perf_counter() - t0
        notes.append(f"no lung segments given: lungs segmented from the CT (rule-based) on a "
                     f"{SEGMENT_GRID_MM:g} mm grid (or the CT's, if coarser), lung vessels at the CT's resolution "
                     "within reach of the tunnels; give --structures with lung and vessel labels for better ones")
    elif vessels is None:
        t0 = time.perf_counter()
        lungs, vessels = vessels_from_ct(ct, target, lungs, progress=p.sub(0.25, 0.9))
        timings["vessel_segmentation"] = time.perf_counter() - t0
        notes.append("the label map has lungs but no lung-vessel label (lung_vessels, pulmonary_artery/vein): lung "
                     "vessels segmented from the CT (rule-based) at its resolution within reach of the tunnels; "
                     "give --structures with lung-vessel labels for better ones")
    t0 = time.perf_counter()
    p(0.9, "route and tunnels")
    try:
        bp = plan(tree, target, args.scope, args.tolerance, lungs=lungs, vessels=vessels, lobes=lobes, ct=ct,
                  others=structures)
    except InputError as e:   # a point refused where it lies: typed in the other frame? (new-user trial 109 L5)
        raise with_other_frame_hint(e, ct, args.target, args.lps) from e
    bp.warnings += notes
    if thick_doubt:
        bp.warnings.insert(0, thick_doubt)
    # the route's names against the label map's side at the target (trial 92 L4: mirrored inputs)
    at = int(np.asarray(structures.sample(np.asarray(target.centre, float)[None], order=0)).ravel()[0])
    bp.route.names_note = names_side_note(route_names(bp.route.branch_names), structures.labels.get(at))
    # a target outline `imagio lesion` flagged (leaked, size withheld, ...): the route is measured to
    # that outline's surface, so "reached" may be the leak's; said first (trial 75; `outline_doubts`)
    from ...outline_doubts import target_warning

    flagged = target_warning(target_name, structures.outline_doubts.get(target_name)) if target_name else None
    if flagged:
        bp.warnings.insert(0, flagged)
    timings["plan"] = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"inputs": {"ct": str(ct_path.resolve()), "airways": str(Path(args.airways).resolve()),
                      "structures": str(Path(args.structures).resolve()) if args.structures else None,
                      "label_names": str(Path(args.label_names).resolve()) if args.label_names else None,
                      "target": target_record(args.target, args.lps, target),
                      "target_segment": target_name, "scope": args.scope},
           "tree": tree.summary(), "branches": [b.to_dict() for b in tree.branches],
           **bp.to_dict(), "timings_s": {k: round(v, 3) for k, v in timings.items()},
           "input_warnings": ct.warnings + air.warnings + (structures.warnings if structures is not air else [])}
    p(0.95, "writing the outputs")
    t0 = time.perf_counter()
    if bp.camera_positions is not None:
        write_text(out / "camera_path.json", json.dumps(
            {"coordinates": "RAS mm", "positions": np.round(bp.camera_positions, 2).tolist(),
             "view_directions": np.round(bp.camera_directions, 4).tolist()}))
        if not args.no_pictures:
            from .flythrough import key_positions, render_strip

            idx = key_positions(bp.route.points, tree.branch_of[bp.route.point_ids], bp.camera_positions)
            with atomic_path(out / "flythrough.png") as tmp:
                render_strip(mask, air.ijk_to_ras, bp.camera_positions, bp.camera_directions, idx, tmp)
    try:
        from ... import mrml
        from ...mrml.bronchoscopy import bronchoscopy_to_scene

        scene = mrml.new_scene()
        _reference_inputs(scene, ct_path, args.airways, air, args.structures, structures_read)
        bronchoscopy_to_scene(scene, tree, bp)
        mrml.save_scene(scene, out / "scene" / "bronch.mrml")
    except ImportError:
        print("slicer-core is not installed: no Slicer scene written", file=sys.stderr)
    timings["outputs"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all   # the whole command but Python's start and imports
    doc["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    write_text(out / "bronch.json", json.dumps(doc, indent=1, default=float))
    p(1.0, "done")
    r = bp.route
    print(json.dumps({"out": str(out), "scope": r.scope, "reached": r.reached_said, "reach": r.reach, "remaining_mm": round(r.remaining_mm, 1),
                      "generation": r.generation, "route_length_mm": round(r.length_mm, 1),
                      "bronchus_sign": r.bronchus_sign, "target_segment": target_name, "verdict": r.verdict,
                      "bronchus_sign_reason": r.bronchus_sign_reason, "tunnels": len(bp.tunnels),
                      **({"tunnel_problem": bp.tunnel_problem} if bp.tunnel_problem else {}),
                      "route": " -> ".join(route_names(r.branch_names)) + (f" {r.names_note}" if r.names_note else ""),
                      "target_lobe": r.target_lobe, "end_lobe": r.end_lobe,
                      "branches": tree.summary()["n_branches"], "warnings": doc["warnings"]}, indent=1))
    # on stderr too, as every command says them (trial 34 F2: in the JSON only); the scope's said before any work
    say_warnings(doc["warnings"], unless=lambda w: w == odd_scope)
    return 0
