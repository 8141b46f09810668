"""The screening report of one scan (HTML and PDF): the nodule table sorted by risk
(Lung-RADS category, then Brock: `stratification.screening.risk_key`), each nodule in three
planes with its outline, the nodules' positions on a 3-D rendering of the lungs, Lung-RADS v2022
category with the guideline's management summarised, and for each
actionable nodule (Lung-RADS 4A or higher) the commands of its percutaneous and bronchoscopic
plans (``imagio plan`` / ``imagio bronch`` with the nodule as target).

Pictures (PNG, matplotlib): ``<stem>_nodule<id>.png`` (axial, coronal, sagittal through the
nodule's centre, 50 mm wide, lung window, outline of its segmentation) and ``<stem>_lungs3d.png``
(the lung surface, marching cubes on a 4 mm grid, with the nodules numbered). Coordinates in the
tables: RAS mm (as 3D Slicer shows them). A support for the reader, never a diagnosis.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import numpy as np

from ..stratification.screening import type_words
from ..volume import Volume

ACTIONABLE = ("4A", "4B", "4X")
HALF_MM = 25.0


def _plane(ct: Volume, centre, u, v, half=HALF_MM, step=0.5, order=1, vol=None):
    """Samples of ``vol`` (default ct) on the plane through ``centre`` spanned by u, v (RAS)."""
    s = np.arange(-half, half + step / 2, step)
    g = centre + s[None, :, None] * np.asarray(u)[None, None] + s[:, None, None] * np.asarray(v)[None, None]
    return (vol or ct).sample(g.reshape(-1, 3), order=order).reshape(len(s), len(s))


def nodule_figure(ct: Volume, mask: np.ndarray | None, centre, title: str, path: Path) -> Path:
    """Axial, coronal and sagittal crops (lung window -1350..150 HU) through ``centre`` (RAS)
    with the outline of ``mask`` (on the CT grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = np.asarray(centre, float)
    planes = (("axial", (1, 0, 0), (0, -1, 0)), ("coronal", (1, 0, 0), (0, 0, -1)),
              ("sagittal", (0, 1, 0), (0, 0, -1)))
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), dpi=90)
    mv = ct.with_array(mask.astype(np.uint8)) if mask is not None and mask.any() else None
    for ax, (name, u, v) in zip(axes, planes):
        img = _plane(ct, c, u, v)
        ax.imshow(img, cmap="gray", vmin=-1350, vmax=150, extent=(-HALF_MM, HALF_MM, HALF_MM, -HALF_MM))
        if mv is not None:
            m = _plane(ct, c, u, v, order=0, vol=mv)
            if m.any():
                ax.contour(np.linspace(-HALF_MM, HALF_MM, m.shape[1]), np.linspace(-HALF_MM, HALF_MM, m.shape[0]),
                           m, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].text(-HALF_MM + 1, HALF_MM - 2, "R", color="w", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def anterior_view(ax) -> None:
    """Point a matplotlib 3-D axes (RAS data) at the patient from the front, as a radiologist
    looks at a patient facing them: the camera on +A, patient's right (+x) on the left of the
    picture, superior up."""
    ax.view_init(elev=10, azim=90)


def lungs_figure(ct: Volume, lungs: np.ndarray, nodules: list[dict], path: Path) -> Path:
    """The lung surface (marching cubes of the lung mask on a 4 mm grid) seen from the front,
    with each nodule's centre numbered (red: Lung-RADS 4A or higher)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.measure import marching_cubes

    lv = ct.with_array(lungs.astype(np.float32))
    coarse = lv.resampled(np.maximum(lv.spacing, 4.0), order=1)
    fig = plt.figure(figsize=(5, 5), dpi=90)
    ax = fig.add_subplot(projection="3d")
    if coarse.array.max() > 0.5 and min(coarse.shape) >= 2:
        verts, faces, _, _ = marching_cubes(np.pad(coarse.array, 1), 0.5)
        ras = coarse.kji_to_world(verts - 1)
        ax.plot_trisurf(ras[:, 0], ras[:, 1], faces, ras[:, 2], color=(0.6, 0.75, 0.9), alpha=0.15,
                        linewidth=0)
    for d in nodules:
        p = d.get("center_ras") or d["candidate"]["center_ras"]
        cat = d.get("stratification", {}).get("lung_rads", {}).get("category", "")
        col = "red" if cat in ACTIONABLE else "orange"
        ax.scatter(*p, color=col, s=30)
        ax.text(*p, f" {d['id']}", fontsize=8)
    anterior_view(ax)
    ax.set_xlabel("R-L (mm)")
    ax.set_ylabel("P-A")
    ax.set_zlabel("I-S")
    ax.set_title("nodules on the lungs (anterior view)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def _brock_text(s: dict) -> str:
    b = s.get("brock", {})
    if "refused" in b:
        return f"not given: {b['refused']}"
    lo, hi = b["probability_range"]
    return f"{100 * lo:.1f}%" if b.get("probability") is not None and hi - lo < 1e-9 else \
        f"{100 * lo:.1f}-{100 * hi:.1f}%"


def _words(t: str) -> str:
    from ..stratification.screening import TYPE_WORDS

    return TYPE_WORDS[t]


def _category_text(lr: dict) -> str:
    """The Lung-RADS cell: the category ("at least" when the size is a lower bound), or the
    refusal's first clause with the floor when there is one."""
    from ..stratification.screening import size_cut_words

    if lr.get("category"):
        cut = size_cut_words(lr)
        return lr["category"] + (" (at least: size a lower bound)" if lr.get("size_lower_bound") else "") + (
            f" ({cut})" if cut else "") + (
            # trial 65 M3: the category under the other plausible type (`screening.type_dependent`)
            f" (typed {_words(lr['if_other_type']['typed'])}: {lr['if_other_type']['category']} if "
            f"{_words(lr['if_other_type']['type'])})" if lr.get("if_other_type") else "")
    if not lr.get("refused"):
        return "not given"
    o = lr.get("if_other_type")   # a floor's under the other plausible type (trial 66 M1)
    floor = (f" (at least {lr['category_at_least']} by size" + (
        f"; at least {o['category']} if {_words(o['type'])}" if o else "") + ")") if lr.get("category_at_least") else ""
    return "not given" + floor + ": " + lr["refused"].split(" (")[0]


def nodule_rows(nodules: list[dict]) -> list[list]:
    rows = []
    for d in nodules:
        s = d.get("stratification", {})
        lr = s.get("lung_rads", {})
        size = d.get("mean_diameter_mm")
        loc = d.get("lobe") or (d.get("side", "") + (" (no lobe labels)" if d.get("lobe_note") else ""))
        if d.get("juxta_pleural"):
            loc += ", juxta-pleural"
        if d.get("juxta_vascular"):
            loc += ", juxta-vascular"
        typ = type_words(d["type"])
        if d["type"] == "calcified" and d.get("size_uncertain"):   # its outline ran on: maybe bone
            typ += " or bone"
        # a candidate found again in the same outline was dropped (characterise._drop_duplicates)
        ident = d["id"] if not d.get("also_found_as") else \
            f"{d['id']} (also #{', #'.join(str(k) for k in d['also_found_as'])})"
        rows.append([ident, typ,
                     "-" if size is None else _size_text(d),
                     "-" if d.get("volume_ml") is None else f"{1000 * d['volume_ml']:.0f}",
                     loc, _category_text(lr),
                     _brock_text(s),
                     "(" + ", ".join(f"{v:.0f}" for v in (d.get("center_ras") or d["candidate"]["center_ras"])) + ")",
                     f"{d['candidate']['probability']:.2f}"])
    return rows


def _size_text(d: dict) -> str:
    """The size cell: the Lung-RADS mean diameter, the RECIST axial long x short axes it is the mean of,
    and the 3-D long axis ("52.2 (57.1 x 47.3) / 59.6"; new-user trial 106 L6: the axial short axis was
    in no output, and the mean could not be rebuilt from them)."""
    from ..stratification.lungrads import rounded_mm

    ax = (f" ({rounded_mm(d['axial_long_axis_mm']):.1f} x {rounded_mm(d['axial_short_axis_mm']):.1f})"
          if d.get("axial_long_axis_mm") is not None and d.get("axial_short_axis_mm") is not None else "")
    return f"{d['mean_diameter_mm']:.1f}{ax} / {d.get('long_axis_mm') or 0:.1f}"


HEAD = ["#", "type", "size mm (Lung-RADS mean (axial long x short) / 3-D long axis)", "volume mm3", "location",
        "Lung-RADS", "Brock", "centre RAS mm", "detector score"]


def _q(path) -> str:
    """A path for a shell command: absolute (the commands run from any folder; new-user trial 22:
    relative paths only worked from the detect output folder) and quoted where it needs it."""
    import shlex

    return shlex.quote(str(Path(path).resolve()))


def _save(fig, path) -> None:
    """Save a matplotlib figure through `outputs.atomic_path` (recorded; a user's file refused)."""
    import matplotlib.pyplot as plt

    from ..outputs import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def segment_command(ct_path: str, folder=".") -> str:
    """The structures the planners need (body, bones, lungs, airways, vessels), once per scan,
    written to ``folder`` (the detect output folder)."""
    return f"imagio segment {_q(ct_path)} --out {_q(Path(folder) / 'structures.seg.nrrd')}"


def plan_commands(ct_path: str, d: dict, ct: Volume | None = None, folder=".") -> list[str]:
    """Commands that plan the biopsy of nodule ``d`` (its centre as target, RAS mm), after
    :func:`segment_command`, with every detected nodule (``nodules.seg.nrrd`` of the detect
    output folder ``folder``) merged in: the others are kept out of the path (new-user trial 21:
    the suggested path ran 11.6 mm through another detected nodule). The bronchoscopic one only
    where ``imagio bronch`` accepts the CT (slices up to ``airway_limits.json`` ``max_slice_mm``);
    otherwise a comment line says why (new-user trial 4: lung1's 5 mm report offered a command
    that bronch refuses). Paths are absolute: the commands run from any folder."""
    from ..segmentation.airways import check_slice_thickness

    c = ",".join(f"{v:.1f}" for v in (d.get("center_ras") or d["candidate"]["center_ras"]))
    n = d["id"]
    f = Path(folder)
    why = check_slice_thickness(ct, "CT", refuse=False) if ct is not None else ""
    inputs = f"--lesions {_q(f / 'nodules.seg.nrrd')} --target={c}"
    return [f"imagio plan {_q(ct_path)} --labels {_q(f / 'structures.seg.nrrd')} {inputs} "
            f"--out {_q(f / f'plan_nodule{n}')}",
            f"# no bronchoscopic plan: {why}" if why else
            f"imagio bronch {_q(ct_path)} --airways {_q(f / 'structures.seg.nrrd')} {inputs} "
            f"--out {_q(f / f'bronch_nodule{n}')}"]


def report_threshold() -> float:
    """Detector score from which a characterised candidate is in the report's nodule table
    (``characterise.report_probability_min`` of detection.json); the others are listed apart
    as low-probability candidates."""
    from . import constants

    return float(constants()["characterise"]["report_probability_min"]["value"])


def split_by_score(nodules: list[dict]) -> tuple[list[dict], list[dict]]:
    """(nodules at or above :func:`report_threshold`, low-probability candidates), each in the
    given order (by risk)."""
    t = report_threshold()
    hi = [d for d in nodules if d["candidate"]["probability"] >= t]
    return hi, [d for d in nodules if d["candidate"]["probability"] < t]


def _category(d: dict):
    return d.get("stratification", {}).get("lung_rads", {}).get("category")


def undecided(nodules: list[dict], low: list[dict] | None = None) -> list[dict]:
    """The candidates that leave the scan's Lung-RADS not decided: those whose size is a lower
    bound or cut by the scan's edge, so their category is unknown and no routine follow-up may be
    recommended below their floor. Every reported one (``nodules``) counts while the measured
    ones stay below 3 (a clipped piece of a large lesion can measure under 6 mm); one of the
    reported or low-probability (``low``) candidates with a floor of 3 or more above the measured
    categories counts always (most scans hold low-probability ones at the scan's edge). A
    candidate whose outline measures no nodule (``not_assessable``: no category, no floor) counts
    always when reported, and while the measured categories stay below 4B when of low probability:
    the scan would otherwise go back to routine annual screening (Lung-RADS 1-2) with a candidate
    of any category unread (issue 17 trial M1: a 22 mm clipped concavity of lung2 and a 13.5 mm fat
    outline of the chest CTA, below the report's threshold, were named only in its low-probability
    table; the mass channel's real masses score below it too, detection.json
    ``report_probability_min``), and above 1-2 too while a higher category exists: Lung-RADS v2022
    codes each exam by the nodule with the highest degree of suspicion (``lungrads_v2022.json``
    ``exam_category``), so beside a measured 3 an unmeasured candidate that may be 4A or 4B leaves
    the scan at least 3, not 3 (review finding M1, detect22). A scan at 4B stands: 4B is the
    highest category a size gives (4X adds features only the reader judges, on any nodule) and its
    work-up (diagnostic CT, PET/CT, tissue sampling) is 4X's, so the unmeasured one cannot raise
    it; `review_no_category` names it for review."""
    from ..stratification.lungrads import CATEGORY_ORDER as order

    top = max((order.index(_category(d)) for d in nodules if _category(d) in order), default=-1)

    def at_least(d):   # its floor, the higher under the other plausible type (trial 66 M1)
        from ..stratification.screening import type_dependent

        return order.index(type_dependent(d["stratification"]["lung_rads"])[0] or "1")

    unsure = [d for d in nodules if d.get("size_uncertain") and top < 2]
    unsure += [d for d in nodules + list(low or []) if d.get("size_uncertain") and d not in unsure
               and at_least(d) >= 2 and at_least(d) > top]
    # a reported candidate whose outline measures no nodule (fat density, a concavity clipped to its
    # sphere: ``not_assessable``) has no category and no floor, so any category may be its own (review
    # 44 H1: the scan read "Lung-RADS 3, LDCT in 6 months" beside a 22 mm clipped concavity)
    unsure += [d for d in nodules if d.get("not_assessable") and d not in unsure]
    unsure += [d for d in low or [] if d.get("not_assessable") and top < order.index("4B") and d not in unsure]
    return unsure


def low_floors(nodules: list[dict], low: list[dict] | None = None) -> list[dict]:
    """The candidates of `undecided` that are of low probability (of ``low``) and have a floor (a
    size that is a lower bound: ``category_at_least``). Their floor is a condition, "at least 4A if
    #11 is a nodule" (`pipeline.if_a_nodule`), like a low-probability candidate's category, never
    the scan's own (new-user trial 63 M1: lung1's headline read ">=4A" from the floors of three
    clipped candidates of scores 0.04-0.10); the follow-up of a scan measured at 1-2 is still
    withheld until they are read (`management_lines`)."""
    ids = {id(d) for d in nodules}
    return [d for d in undecided(nodules, low) if id(d) not in ids
            and d["stratification"]["lung_rads"].get("category_at_least")]


def firm_undecided(nodules: list[dict], low: list[dict] | None = None) -> list[dict]:
    """The candidates that leave the scan's category not decided whatever the low-probability ones
    are: `undecided` less `low_floors` (reported ones; low-probability ones with no category nor
    floor, not assessable)."""
    cond = {id(d) for d in low_floors(nodules, low)}
    return [d for d in undecided(nodules, low) if id(d) not in cond]


def _unsure_text(d: dict) -> str:
    """'#id at least X' of an undecided candidate, or '#id not assessable (reason)'."""
    if d.get("not_assessable"):
        return f"#{d['id']} not assessable ({d['not_assessable']})"
    return f"#{d['id']} at least {d['stratification']['lung_rads'].get('category_at_least') or 'not known'}"


def _floor(d: dict) -> str | None:
    """A candidate's Lung-RADS category, or ">= floor" when its size is a lower bound."""
    lr = d.get("stratification", {}).get("lung_rads", {})
    return lr.get("category") or (f">= {lr['category_at_least']}" if lr.get("category_at_least") else None)


def _no_category(d: dict) -> str | None:
    """Why a characterised candidate has no Lung-RADS category: its refusal's code
    (`stratification.screening.NO_CATEGORY`), or None when it has one."""
    lr = d.get("stratification", {}).get("lung_rads", {})
    return None if not lr or lr.get("category") else lr.get("no_category") or "other"


# the low-probability candidates named for review although they have no category: no floor either, and
# the reason is not a size too small to measure (issue 17 trial M1)
REVIEW_NO_CATEGORY = ("not_assessable", "calcium_or_bone", "calcium_or_contrast")
_REVIEW_WORDS = {"not_assessable": "not assessable", "calcium_or_bone": "calcium or bone, size uncertain",
                 "calcium_or_contrast": "calcium or contrast (contrast CT)"}


def review_no_category(low: list[dict] | None) -> list[dict]:
    """The low-probability candidates with no Lung-RADS category and no floor whose outline hides
    what they are: not assessable (fat density, a concavity of the lung outline clipped to its
    sphere; `undecided` counts them while the measured categories stay below 4B) and calcium
    density of uncertain size (a calcified nodule, Lung-RADS 1 with a benign pattern, or bone, no
    nodule: neither raises the scan's category, so it stands; the reader confirms which), and
    calcium-or-contrast density on a contrast-enhanced CT (a calcified nodule or a contrast-filled
    vessel: neither raises it either)."""
    return [d for d in low or [] if _no_category(d) in REVIEW_NO_CATEGORY]


def _review_text(d: dict) -> str:
    """'#id not assessable', '#id calcium or bone, size uncertain' or '#id calcium or contrast
    (contrast CT)' (the summary's review names)."""
    return f"#{d['id']} " + _REVIEW_WORDS[_no_category(d)]


def _actionable(low: list[dict] | None, named=()) -> list[str]:
    """["#id category"] of the low-probability candidates that would be Lung-RADS 4A+ if they were
    nodules, under their type or the other plausible one, and of those whose ids are in ``named``,
    with a size cut's note ("#1 4B (on the 15 mm mean diameter cut: may be 4A)": `size_cut_words`),
    with every category their type allows ("#7 4A as part-solid, 4B if solid", ">= 3" for a floor:
    `stratification.screening.category_words`; trial 66 M1: "#7 4A" said nothing of the type, #3
    "3 as part-solid, 4A if solid" was not listed); in the order of ``low``."""
    from ..stratification.screening import category_words, size_cut_words, type_dependent

    named = set(named)
    # with its size cut (trial 89 L: lung1 #1 "4B" here, "may be 4A" in the tables)
    return [f"#{d['id']} {category_words(lr)}" + (f" ({size_cut_words(lr)})" if size_cut_words(lr) else "")
            for d in (low or []) for lr in [d.get("stratification", {}).get("lung_rads", {})]
            if type_dependent(lr)[0] in ACTIONABLE or d["id"] in named]


def for_review(low: list[dict] | None, conditions: list[dict] | None = None) -> list[str]:
    """["#id category"] of the low-probability candidates that would be Lung-RADS 4A+ if they
    were nodules or that the scan's headline names (``conditions``: `pipeline.if_a_nodule`'s
    clauses over the same scan, as ``scan_lung_rads`` gives them: a category above the scan's and
    at least 3, a floor at its level and at least 2; detect30: the review list beside a headline
    naming "3 if #5" and ">=2 if #10" named neither), then ["#id not assessable" | "#id calcium or
    bone, size uncertain"] of those with no category nor floor (`review_no_category`): named for
    the reader's review, never the scan's category."""
    named = {x["id"] for c in conditions or () for x in c["candidates"]}
    return _actionable(low, named) + [_review_text(d) for d in review_no_category(low)]


def uncategorised(nodules: list[dict]) -> str | None:
    """How many of the characterised candidates ``nodules`` (reported and low-probability) have
    no Lung-RADS category, and why (each reason of `stratification.screening.NO_CATEGORY` with its
    count and ids), or None when every one has a category (issue 17 trial L2: lung2's scan read
    "4B" while 14 of its 19 characterised candidates had none, unsaid)."""
    from ..stratification.screening import NO_CATEGORY

    why: dict = {}
    for d in nodules:
        code = _no_category(d)
        if code:
            why.setdefault(code, []).append(f"#{d['id']}")
    if not why:
        return None
    n = sum(len(v) for v in why.values())
    return (f"{n} of {len(nodules)} characterised candidates have no Lung-RADS category: "
            + "; ".join(f"{len(why[k])} {NO_CATEGORY.get(k, 'other reasons (see their rows)')} ({', '.join(why[k])})"
                        for k in sorted(why, key=lambda k: list(NO_CATEGORY).index(k) if k in NO_CATEGORY else 99)))


def management_lines(nodules: list[dict], low: list[dict] | None = None) -> list[tuple[str, str]]:
    """(category, management) of the scan: the highest category among the nodules decides the
    follow-up (Lung-RADS: the scan is categorised by its most suspicious nodule). ``low``: the
    low-probability candidates; those at 4A+ are named so the reader reviews them."""
    from ..stratification.lungrads import CATEGORY_ORDER as order
    cats = [(d["stratification"]["lung_rads"].get("category"), d["stratification"]["lung_rads"])
            for d in nodules if "category" in d.get("stratification", {}).get("lung_rads", {})]
    out = []
    unsure = undecided(nodules, low)
    firm = firm_undecided(nodules, low)   # the low-probability floors are conditions (trial 63 M1): below
    if firm:
        from .pipeline import highest_lung_rads

        # the floor the summary and candidates.json give (">=3"), said here too (trial 58 M4: the
        # chest CTA's summary read ">=3", its report only "not decided")
        floor = highest_lung_rads(nodules, low)
        floor = f"; the scan is at least Lung-RADS {floor[2:]} ({floor})" if floor.startswith(">=") else ""
        out.append(("Lung-RADS not decided", f"{len(firm)} candidate(s) could not be measured "
                    "reliably and may be above the categorised ones ("
                    + ", ".join(_unsure_text(d) for d in firm)
                    + "; outline clipped, cut by the scan's edge, or not a nodule's outline): read them on the "
                    f"images before choosing the follow-up; do not return to routine screening on this report{floor}"))
    few = uncategorised(list(nodules) + list(low or []))

    def if_nodule(rows):   # new-user trials 60 M3, 63 M1/L1: the headline's conditions, one row each
        from .pipeline import if_a_nodule, if_a_nodule_text

        from ..stratification.screening import category_words

        by_id = {d["id"]: d for d in list(nodules) + list(low or [])}
        mine = {d["id"] for d in nodules}
        for c in if_a_nodule(nodules, low):
            score = (f"the detector's score ranks, it is not calibrated; the report's table starts at "
                     f"{report_threshold():g}")
            cut = "".join(f"; #{x['id']}: {by_id[x['id']]['stratification']['lung_rads']['at_size_cut']['note']}"
                          for x in c["candidates"] if x.get("at_size_cut") and x["id"] in by_id)
            # trial 65 M3 / 66 M1: the categories of an uncertain type (`screening.category_words`)
            cut += "".join(f"; #{x['id']}: typing uncertain (thick sections or a sub-solid rim), Lung-RADS "
                           f"{category_words(lr)} ({lr['if_other_type']['reason']})"
                           for x in c["candidates"] if x.get("type") and x["id"] in by_id
                           for lr in [by_id[x["id"]]["stratification"]["lung_rads"]])
            who = ("reported nodule(s) whose category under the other plausible type is above the scan's"
                   if all(x["id"] in mine for x in c["candidates"]) else
                   f"candidate(s) of low probability ({score})" + (
                       " or reported, under the other plausible type"
                       if any(x["id"] in mine for x in c["candidates"]) else ""))
            rows.append((f"Lung-RADS {'>=' if c['at_least'] else ''}{c['category']} if a nodule",
                         f"the scan is Lung-RADS {if_a_nodule_text([c])}: {who}" + (
                             ", whose size is a lower bound (outline clipped, part of a mass, or cut by the "
                             "scan's edge), so their category is a floor: read them on the images before "
                             "choosing the follow-up; do not return to routine screening on this report"
                             if c["at_least"] else ": read them first") + cut))

    if not cats:
        out.append(("-", "no nodule categorised"))
        if_nodule(out)
        if few:
            out.append(("no category", few))
    else:
        cat, lr = max(cats, key=lambda c: order.index(c[0]))
        tops = [c[1] for c in cats if c[0] == cat]
        if unsure:
            cat = f"{cat} among the measured nodules"
        manage = lr.get("management", "")
        if unsure and (order.index(cat.split()[0]) < 2 or any(d.get("not_assessable") for d in unsure)):
            # never a routine follow-up then; with no floor at all (not assessable) no follow-up either
            manage = ("withheld until the candidates above are read" if firm else
                      "withheld until the low-probability candidates below are read")
        out.append((f"Lung-RADS {cat}", manage))
        if all(t.get("at_size_cut") for t in tops):   # trial 63 L2: 14.995 -> 15.0 mm read 4B, unsaid
            out.append(("note: size cut", lr["at_size_cut"]["note"]))
        if_nodule(out)
        if few:   # issue 17 trial L2: lung2's "4B" said nothing of the 14 of 19 candidates without one
            out.append(("no category", few))
        if lr.get("note"):
            out.append(("note", lr["note"]))
        out.append(("source", lr.get("source", "")))
    from ..stratification.screening import CALCIUM_TYPES, MASS_MM

    def is_mass(d):   # solid tissue wider than any intrapulmonary vessel or airway wall the score guards against
        return (d.get("mean_diameter_mm") or 0.0) > MASS_MM and d.get("type") not in CALCIUM_TYPES

    masses = [d for d in (low or []) if is_mass(d) and (_floor(d) or "").lstrip(">= ") in ACTIONABLE]
    mass_ids = {d["id"] for d in masses}
    no_cat = review_no_category([d for d in (low or []) if d not in unsure])
    high_low = _actionable([d for d in (low or []) if d["id"] not in mass_ids])
    if masses:   # new-user trial 49 M2: a 5 cm adenocarcinoma under "most are vessels"
        out.append(("review: mass", f"{len(masses)} low-probability candidate(s) segment as a mass over "
                    f"{MASS_MM:g} mm (" + ", ".join(f"#{d['id']} {d['mean_diameter_mm']:.0f} mm {_floor(d)}" for d in masses)
                    + "): wider than any intrapulmonary vessel (the main pulmonary artery itself measures under 29 mm, "
                    "Truong 2012) or airway wall, so the low detector score does not make it a mimic: read it as a "
                    "possible tumour"))
    if high_low:
        out.append(("review", f"{len(high_low)} low-probability candidate(s) would be Lung-RADS 4A+ "
                    "if they were nodules (" + "; ".join(high_low)
                    + "): most are vessels, airway walls or chest-wall structures; look at each"))
    if no_cat:   # issue 17 trial M1: named only in the low-probability table before
        out.append(("review: no category", f"{len(no_cat)} low-probability candidate(s) have no Lung-RADS category "
                    "nor floor (" + "; ".join(_no_category_text(d) for d in no_cat)
                    + "): what the outline holds is not measured; look at each on the images"))
    return out


def _no_category_text(d: dict) -> str:
    """'#id: why, N mm outline' of a candidate of `review_no_category`."""
    size = d.get("mean_diameter_mm")
    mm = "" if size is None else f", {size:.0f} mm outline"
    if _no_category(d) == "not_assessable":
        return f"#{d['id']} not assessable: {str(d.get('not_assessable', '')).split(' (')[0].split(':')[0]}{mm}"
    if _no_category(d) == "calcium_or_contrast":   # trial 93 F5: not "or bone" on a contrast CT
        from ..stratification.screening import NO_CATEGORY

        return f"#{d['id']} {NO_CATEGORY['calcium_or_contrast']}{mm}; confirm which"
    return (f"#{d['id']} calcium density of uncertain size{mm}: a calcified nodule (Lung-RADS 1 with a benign "
            "pattern) or bone; confirm which")


def picture_title(d: dict) -> str:
    """A nodule picture's title: 'nodule 3: part-solid, Lung-RADS 4A' (its type in `type_words`,
    as the report's table says it)."""
    cat = d.get("stratification", {}).get("lung_rads", {}).get("category", "-")
    return f"nodule {d['id']}: {type_words(d['type'])}, Lung-RADS {cat}"


def build_screening_report(doc: dict, ct: Volume, lungs: np.ndarray, masks: list[np.ndarray],
                           out_pdf: Path, ct_path: str = "CT", max_pictures: int = 10) -> tuple[Path, Path]:
    """Write ``out_pdf`` and the HTML next to it (same stem) with the pictures; return both."""
    from ..report import _existing, _table

    out_pdf = Path(out_pdf)
    folder = out_pdf.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = out_pdf.stem
    nodules = doc.get("nodules", [])
    pics = [(lungs_figure(ct, lungs, nodules, folder / f"{stem}_lungs3d.png"), "nodules on the lungs")]
    # pictures: the reported nodules first (by risk), then the low-probability candidates
    t_rep = report_threshold()
    pairs = sorted(zip(nodules, masks), key=lambda dm: dm[0]["candidate"]["probability"] < t_rep)
    for d, m in pairs[:max_pictures]:
        t = picture_title(d)
        pics.append((nodule_figure(ct, m, d.get("center_ras") or d["candidate"]["center_ras"], t,
                                   folder / f"{stem}_nodule{d['id']}.png"), t))
    main, low = split_by_score(nodules)
    rows, rows_low = nodule_rows(main), nodule_rows(low)
    t_rep = report_threshold()
    low_title = (f"Low-probability candidates (detector score < {t_rep:g}; categories only if "
                 "they were nodules)")
    scan = doc.get("scan", {})
    emph = scan.get("emphysema", {})
    facts = [("series", doc.get("seriesuid", "")), ("detector", doc.get("detector", "")),
             ("candidates / characterised", f"{doc.get('n_candidates', 0)} / {len(nodules)}"),
             ("emphysema (LAA-950)", f"{emph.get('laa950_percent')}% of the lungs "
                                     f"({ {True: 'yes', False: 'no'}.get(emph.get('emphysema'), 'unknown')}, "
                                     f"threshold {emph.get('threshold_percent')}%)"
                                     + ("" if emph.get("given") is None else
                                        f"; given: {'yes' if emph['given'] else 'no'} (used for Brock)")
              if emph else "-"),
             ("patient", ", ".join(f"{k} {v}" for k, v in doc.get("patient", {}).items()) or "not given (Brock/Mayo refused)")]
    if doc.get("input_warnings"):   # trial 103 F2.1: beside the headline, not only at the PDF's end
        facts.append(("how the CT was read", " | ".join(doc["input_warnings"])))
    actionable = [d for d in main if _category(d) in ACTIONABLE]
    when = f"{_dt.datetime.now():%Y-%m-%d %H:%M}"
    # HTML
    parts = [f"<h1>IMAGIO screening report</h1><p>generated {when}; computer-aided detection to "
             "support the reader, not a diagnosis. Coordinates RAS mm (as 3D Slicer shows them).</p>",
             "<h2>Scan</h2>", _table(facts), "<h2>Follow-up (most suspicious nodule)</h2>",
             _table(management_lines(main, low)),
             f"<h2>Nodules, by Lung-RADS category then Brock (detector score >= {t_rep:g})</h2>", _table(rows, HEAD)]
    if rows_low:
        parts += [f"<h2>{html.escape(low_title)}</h2>", _table(rows_low, HEAD)]
    if actionable:
        parts.append("<h2>Plans for actionable nodules (Lung-RADS 4A+)</h2><pre>"
                     + html.escape(segment_command(ct_path, folder)) + "</pre>")
        for d in actionable:
            parts.append(f"<p>nodule {d['id']}:</p><pre>" + html.escape("\n".join(plan_commands(ct_path, d, ct, folder))) + "</pre>")
    warn = ([f"input: {w}" for w in doc.get("input_warnings", [])] + doc.get("warnings", [])
            + [f"nodule {d['id']}: {w}" for d in nodules for w in d.get("warnings", [])])
    parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warn) + "</ul>")
    for p, cap in _existing(pics):
        parts.append(f'<figure><img src="{html.escape(p.name)}" width="560"><figcaption>{html.escape(cap)}'
                     "</figcaption></figure>")
    style = "body{font-family:sans-serif;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;font-size:90%}"
    from ..outputs import atomic_path, write_text

    html_path = write_text(folder / f"{stem}.html", "<!doctype html><html><head><meta charset='utf-8'>"
                           f"<title>IMAGIO screening</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
    # PDF
    from fpdf import FPDF

    def text(s):
        return str(s).encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(format="A4", orientation="L")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "IMAGIO screening report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, text(f"generated {when}; computer-aided detection to support the reader, not a "
                              "diagnosis. Coordinates RAS mm."), new_x="LMARGIN", new_y="NEXT")

    def kv(title, pairs):
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, text(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        with pdf.table(col_widths=(50, pdf.epw - 50), text_align="LEFT", first_row_as_headings=False) as t:
            for k, v in pairs:
                t.row([text(k), text(v)])

    kv("Scan", facts)
    kv("Follow-up (most suspicious nodule)", management_lines(main, low))
    for title, rr in ((f"Nodules, by Lung-RADS category then Brock (detector score >= {t_rep:g})", rows), (low_title, rows_low)):
        if not rr:
            continue
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, text(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 7)
        with pdf.table(text_align="LEFT") as t:
            t.row([text(h) for h in HEAD])
            for r in rr:
                t.row([text(c) for c in r])
    if actionable:
        kv("Plans for actionable nodules (Lung-RADS 4A+)",
           [("structures", segment_command(ct_path, folder))]
           + [(f"nodule {d['id']}", "\n".join(plan_commands(ct_path, d, ct, folder))) for d in actionable])
    if warn:
        kv("Warnings", [(str(i + 1), w) for i, w in enumerate(warn[:60])])
    for i, (p, cap) in enumerate(_existing(pics)):
        if i % 2 == 0:
            pdf.add_page()
        pdf.image(str(p), h=(pdf.eph - 20) / 2)
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(0, 4, text(cap), new_x="LMARGIN", new_y="NEXT")
    with atomic_path(out_pdf) as tmp:
        pdf.output(str(tmp))
    return html_path, out_pdf
