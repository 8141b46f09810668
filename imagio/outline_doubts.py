"""The doubts `imagio lesion` has about an outline, kept with the outline's file so that the
commands that read it later (`imagio plan --lesions`, `imagio report`, the Slicer scene) know them.

New-user trial 75 (finding 0): a click 1.5 mm inside STS_008's sarcoma grew a 337 mL outline (the
tumour: 27.6 mL); `imagio lesion` said it leaked and withheld its size, but its file kept only the
name and colour, so `imagio plan --lesions ... --target tumor` aimed at the leaked outline's centre,
2.8 mm outside the tumour, with exit 0 and no word of the leak.

The record (one per structure, JSON; ``RECORD_KEY`` in a ``.labels.json`` sidecar's label entry,
``Segment<N>_IMAGIO_lesion`` in a ``.seg.nrrd`` header, and the raised flags' names as the segment
tag ``SEGMENT_TAG`` that Slicer keeps when it saves the segmentation again)::

    {"written_by": "imagio lesion", "click_ras": [R, A, S] (mm),
     "flags": {"leaked": bool, "size_withheld": bool, "click_dependent": bool,
               "touches_image_edge": bool},
     "size_withheld_reason": str | None, "outline_volume_ml": float, "volume_ml": float | None,
     "volume_range_ml": [lo, hi] | None, "outline_centroid_ras": [R, A, S], "warnings": [str]}

A structure of `imagio segment` that the rules could not tell from another structure keeps a record
too (`structure_record`: no flags, nothing refused): ``{"written_by": "imagio segment", "flags": {},
"may_be": NAME, "warnings": [str]}``; a plan whose proposals pass within what ``may_be`` would need
says it (`proposal_doubts`; new-user trial 79: at 5 mm slices the contrast-filled subclavian vein
labelled bone, warned by segment, and a plan 2.8 mm from it never said so).

The flags are those of `segmentation.measurements.LesionMeasurements` (one definition: their
meaning is documented there). A file without a record (an older one, or one the user drew) has no
doubts: nothing is said of it.
"""

from __future__ import annotations

import json

import numpy as np

RECORD_KEY = "imagio_lesion"   # a .labels.json label entry's key
SEGMENT_TAG = "IMAGIO.outline_flags"   # a .seg.nrrd segment tag: the raised flags, comma-separated
MAY_BE_TAG = "IMAGIO.may_be"   # a segment tag: the structure a `structure_record`'s segment may hold
FLAGS = ("leaked", "size_withheld", "click_dependent", "touches_image_edge")
# an outline that grew beyond the lesion (leaked) or whose size the tool would not give (the border
# is not found from a click) does not give the lesion's centre: a plan aimed at it is refused
# unless the user confirms (``--accept-flagged-target``); the other flags are said only
REFUSED = ("leaked", "size_withheld")
SEGMENT_WRITER = "imagio segment"   # ``written_by`` of a `structure_record`
PARTLY_MISSED = "partly_missed"   # `missed_record`'s flag: the label may miss part of its structure
SEGMENT_FLAGS = (PARTLY_MISSED,)   # the flags `imagio segment` raises (the others are `imagio lesion`'s)
_WORDS = {"leaked": "leaked (grew beyond the lesion)",
          "size_withheld": "size withheld (no outline from a click gives the lesion's size)",
          "click_dependent": "depends on the click",
          "touches_image_edge": "touches the image's edge"}


def lesion_record(meas, click_ras, warnings=None) -> dict:
    """The record (module docstring) of an outline measured by `imagio lesion`: ``meas`` a
    `LesionMeasurements`, ``click_ras`` the click (RAS mm, 3), ``warnings`` the words said with it
    (default ``meas.warnings``)."""
    d = meas.to_dict()
    return {"written_by": "imagio lesion",
            "click_ras": [round(float(x), 2) for x in click_ras],
            "flags": {"leaked": bool(meas.leaked), "size_withheld": bool(meas.size_withheld),
                      "click_dependent": bool(meas.click_dependent),
                      "touches_image_edge": bool(meas.touches_image_edge)},
            "size_withheld_reason": meas.size_withheld,
            "outline_volume_ml": d.get("outline_volume_ml"), "volume_ml": d.get("volume_ml"),
            "volume_range_ml": d.get("volume_range_ml"),
            "outline_centroid_ras": d.get("outline_centroid_ras"),
            "warnings": list(meas.warnings if warnings is None else warnings)}


def raised(record: dict | None) -> list[str]:
    """The flags (``FLAGS`` order, then any other) that ``record`` raises; [] for None."""
    flags = (record or {}).get("flags") or {}
    return [f for f in FLAGS if flags.get(f)] + sorted(f for f, v in flags.items() if v and f not in FLAGS)


def refused_flags(record: dict | None) -> list[str]:
    """The raised flags for which a plan to that outline is refused without the user's word."""
    return [f for f in raised(record) if f in REFUSED]


def target_warning(name: str, record: dict | None) -> str | None:
    """The warning for a plan whose target is the outline ``name`` with ``record`` (None when it
    raises no flag)."""
    flags = raised(record)
    if not flags:
        return None
    size = record.get("outline_volume_ml")
    click = record.get("click_ras")
    at = f" from the click at {', '.join(f'{x:g}' for x in click)} (RAS mm)" if click else ""
    grown = f"; the outline holds {size:.1f} mL" if isinstance(size, (int, float)) else ""
    # a click nearer the centre helps an outline that depends on the click; one that leaked or whose
    # size no click gives is bounded by tissue of the lesion's density (trial 79: a click at
    # STS_002's centre was told to click nearer the centre)
    again = "click again nearer the lesion's centre, " if "click_dependent" in flags and not _click_at_centre(record) else ""
    return (f"the target outline {name} was flagged by imagio lesion{at}: "
            f"{', '.join(_WORDS.get(f, f) for f in flags)}{grown}; its centre, the plan's target, may lie "
            f"outside the tumour: check the outline before planning ({again}edit it with --remove, outline it "
            "by hand, or give the target as a point)")


def _click_at_centre(record: dict) -> bool:
    """Whether the record's click lies within half the outline's equivalent-sphere radius of the
    outline's centroid (there "click nearer the centre" is no advice; trial 80: a click 1.2 mm from
    STS_002's outline centre was told so). False when either is unknown."""
    click, centre, v = record.get("click_ras"), record.get("outline_centroid_ras"), record.get("outline_volume_ml")
    if click is None or centre is None or not isinstance(v, (int, float)) or v <= 0:
        return False
    radius = (3.0 * 1000.0 * float(v) / (4.0 * np.pi)) ** (1.0 / 3.0)   # mL -> mm
    return bool(np.linalg.norm(np.asarray(click, float) - np.asarray(centre, float)) <= 0.5 * radius)


def tag_value(record: dict | None) -> str:
    """The ``SEGMENT_TAG`` value: the raised flags, comma-separated ("" none)."""
    return ",".join(raised(record))


def from_tag(value: str) -> dict:
    """A record holding only the flags of a ``SEGMENT_TAG`` value (a segmentation saved again by
    Slicer keeps its tags, not IMAGIO's own header key); written by `imagio segment` when it
    raises only ``SEGMENT_FLAGS``."""
    flags = {f.strip(): True for f in value.split(",") if f.strip()}
    by = SEGMENT_WRITER if flags and set(flags) <= set(SEGMENT_FLAGS) else "imagio lesion"
    return {"written_by": by, "flags": flags}


def dumps(record: dict) -> str:
    """One line of JSON (ASCII: a NRRD header line)."""
    return json.dumps(record, separators=(",", ":"))


def loads(text: str) -> dict | None:
    """The record in ``text`` (`dumps`), None when it is not one (a damaged header is no doubt
    of IMAGIO's: the outline is read as a user's)."""
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("flags", {}), dict) else None


def structure_record(may_be: str, warnings, pieces=None) -> dict:
    """The record (module docstring) of a structure `imagio segment` wrote that may hold voxels of
    the structure ``may_be`` (a TotalSegmentator / IMAGIO name, e.g. "great_vessels"), with the
    words said of it (``warnings``, list of str) and, when known, where (``pieces``: [[R, A, S,
    radius], ...] mm, spheres that hold the doubtful voxels; None: anywhere in the structure)."""
    rec = {"written_by": SEGMENT_WRITER, "flags": {}, "may_be": str(may_be), "warnings": list(warnings)}
    if pieces is not None:
        rec["pieces_ras"] = [list(map(float, p)) for p in pieces]
    return rec


def missed_record(warnings) -> dict:
    """The record of a structure `imagio segment` wrote that may miss part of that structure
    (flag ``PARTLY_MISSED``; new-user trial 100 F2: on an oblique reformat of lung1 the costal
    cartilages came out at 1.3 of 46.7 mL, segment warned, and a plan on its labels passed 2.3 mm
    from the cartilage it missed with no word), with the words said of it (``warnings``, list of
    str). A plan treats the tissue around the label as possibly that structure
    (`planning.cartilage.costal_warnings`)."""
    return {"written_by": SEGMENT_WRITER, "flags": {PARTLY_MISSED: True}, "warnings": list(warnings)}


def partly_missed(records: dict | None, name: str) -> list[str] | None:
    """The words said of the structure ``name`` when its record (among ``records``, {structure
    name: record}) says the label may miss part of it (`missed_record`), else None."""
    rec = (records or {}).get(name)
    if isinstance(rec, dict) and (rec.get("flags") or {}).get(PARTLY_MISSED):
        return list(rec.get("warnings") or [])
    return None


def structure_doubts(records: dict | None) -> dict:
    """The `structure_record`s (written by `imagio segment`) among a label map's ``records``
    ({structure name: record}, as `io` reads them; None: none), the doubts a plan's proposals are
    checked against (`proposal_doubts`); a lesion's record or anything else is left out."""
    return {n: r for n, r in (records or {}).items() if isinstance(r, dict) and r.get("written_by") == SEGMENT_WRITER}


def _passes_near(entry, target, spheres: np.ndarray, within: float) -> bool:
    """Whether the segment ``entry`` -> ``target`` (RAS mm) passes within ``within`` mm of any of
    the ``spheres`` ((n, 4): centre RAS, radius; mm)."""
    a, b = np.asarray(entry, float), np.asarray(target, float)
    ab = b - a
    t = np.clip(((spheres[:, :3] - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    d = np.linalg.norm(a + t[:, None] * ab - spheres[:, :3], axis=1) - spheres[:, 3]
    return bool((d < within).any())


def proposal_doubts(doubts: dict, proposals, widening_mm: float) -> list[str]:
    """The warnings of a plan whose proposals (each with ``clearance_mm``: {structure: mm}, best
    first) pass a structure of ``doubts`` ({name: record}, `structure_record`s; others ignored)
    closer than its ``may_be`` structure's clearance would be (that structure's ``margin_mm`` of
    the catalogue + ``widening_mm``, the needle's radius and placement uncertainty, mm): one line
    per doubt (structures with the same words share it) naming the proposals, the closest
    clearance to each structure, what it may be and what the segmenter said. A proposal kept only
    the structure's own clearance there."""
    from . import anatomy

    said: dict[tuple, list] = {}
    for name, rec in sorted(structure_doubts(doubts).items()):
        if not rec.get("may_be"):
            continue
        need = anatomy.get(rec["may_be"]).margin_mm + float(widening_mm)
        spheres = np.asarray(rec["pieces_ras"], float).reshape(-1, 4) if rec.get("pieces_ras") is not None else None
        # near the structure, and (when the record says where) near the doubtful part of it (trial 80:
        # a path 120 mm below the doubtful pieces of 'ribs' was told of them)
        near = [(n, float(m.clearance_mm[name])) for n, m in enumerate(proposals, 1)
                if name in (m.clearance_mm or {}) and float(m.clearance_mm[name]) < need
                and (spheres is None or _passes_near(m.entry_ras, m.target_ras, spheres, need))]
        if near:
            said.setdefault((rec["may_be"], need, "; ".join(rec.get("warnings") or [])), []).append((name, near))
    out = []
    for (may, need, words), hits in said.items():
        which = sorted({n for _, near in hits for n, _ in near})
        where = ", ".join(f"{name} ({min(c for _, c in near):.1f} mm)" for name, near in hits)
        out.append(f"proposal(s) {', '.join(map(str, which))} pass near {where}, which imagio segment said may "
                   f"hold {may} ({may} would need {need:.1f} mm): check it on the images before the needle passes"
                   + (f" ({words})" if words else ""))
    return out
