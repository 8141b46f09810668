"""Unlabelled soft tissue deep to the body wall along a needle path: an organ the label map may lack.

The rule-based default structure set labels body, bones, lungs and airways, not the organs: on a
lung-bases CT the liver, spleen or heart are tissue of the ``body`` label, and the planner crossed
94 mm of it with no word (new-user trial 24). The CT density check (`density`) only looks above
250 HU; this check reads soft tissue. Numbers in imagio/data/planning_defaults.json
``unlabelled_organ``, with sources:

- **unlabelled soft tissue**: a voxel of no structure, or only of a body outline
  (``outline_names``), whose CT value lies above fat (``fat_max_hu``, -30 HU) and below the density
  check's dense tissue (``ct_density.dense_min_hu``): muscle, organ, blood or fluid; not fat, air,
  lung or bone.
- **read after a Gaussian**: the CT values of this check are read after a Gaussian of
  ``core_smoothing_mm`` (1 mm, scipy.ndimage.gaussian_filter over the path's neighbourhood):
  isolated noise voxels (a liver of 68 HU at SD 29 HU holds voxels of -40..-50 HU, 4 SD below)
  would otherwise count as fat and break every core (new-user trial 92 H1); fat planes of two
  voxels or more stay fat.
- **core**: a path sample whose nearest voxel is unlabelled soft tissue and with no other voxel
  within ``core_depth_mm`` (15 mm) of it: inside a soft-tissue mass at least 30 mm thick in every
  direction. The body wall's muscles are layers thinner than that, bounded by fat, lung, ribs or
  labelled structures, so its normal needle passage has no core; an unlabelled solid organ has.
  Voxels outside the image are not known and do not bound the core.
- a proposal with at least ``min_core_mm`` (10 mm) of core is warned, with the run of unlabelled
  soft tissue around it: its length, where along the path (mm from the skin entry), HU range and
  middle point, and the organs of ``organs`` that the label map lacks.

RAS mm, HU; arrays [k, j, i].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def limits() -> dict:
    """The ``unlabelled_organ`` section of planning_defaults.json."""
    from .problem import load_defaults

    return load_defaults()["unlabelled_organ"]


@dataclass
class SoftRun:
    """A run of unlabelled soft tissue along a path that holds a core (module doc)."""

    length_mm: float
    from_mm: float          # along the path, from the skin entry
    to_mm: float
    core_mm: float
    hu_range: tuple         # (5th, 95th percentile) HU of the run's samples
    middle_ras: list

    def text(self) -> str:
        return (f"{self.length_mm:.0f} mm of unlabelled soft tissue ({self.hu_range[0]:.0f} to {self.hu_range[1]:.0f} HU: "
                f"not fat, air, lung or bone) from {self.from_mm:.0f} to {self.to_mm:.0f} mm along the path from the "
                f"skin entry (middle at {self.middle_ras} RAS mm), {self.core_mm:.0f} mm of it at least "
                f"{limits()['core_depth_mm']:g} mm inside the tissue (deeper than the body wall's muscle layers)")


def unlabelled_values(problem) -> np.ndarray:
    """Bool per label value (covering every value of the map): 0 and the body-outline labels."""
    lab = problem.labels
    n = max(int(max(lab.labels, default=0)), int(lab.array.max(initial=0))) + 1
    ok = np.zeros(n, bool)
    ok[0] = True
    outline = set(limits()["outline_names"])
    for v, name in lab.labels.items():
        if name in outline:
            ok[int(v)] = True
    return ok


def smoothed_box(ct, entry_ras, target_ras, radius_mm: float, sigma_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(float32 block of ``ct``'s values after a Gaussian of ``sigma_mm`` (per-axis sigma in
    voxels from the spacing; scipy.ndimage.gaussian_filter, edges by nearest value), its [k, j, i]
    lower corner int (3,)): the index box of the segment ``entry_ras`` -> ``target_ras`` (RAS mm)
    grown by ``radius_mm`` (clipped to the array), read with 3 sigma more around it so the box's
    own values are those of the whole image's filter."""
    from scipy import ndimage

    shape = np.asarray(ct.shape)
    ends = ct.world_to_kji(np.stack([np.asarray(entry_ras, float), np.asarray(target_ras, float)]))
    sig = sigma_mm / np.asarray(ct.spacing_kji, float)
    rad = radius_mm / np.asarray(ct.spacing_kji, float)
    lo = np.clip(np.floor(ends.min(0) - rad) - 1, 0, shape).astype(int)
    hi = np.clip(np.ceil(ends.max(0) + rad) + 2, 0, shape).astype(int)
    pad = np.ceil(3 * sig).astype(int)
    plo, phi = np.maximum(lo - pad, 0), np.minimum(hi + pad, shape)
    block = ct.array[tuple(slice(a, b) for a, b in zip(plo, phi))].astype(np.float32)
    if sigma_mm > 0:
        block = ndimage.gaussian_filter(block, sig, mode="nearest")
    return block[tuple(slice(a - c, b - c) for a, b, c in zip(lo, hi, plo))], lo


def soft_runs(problem, entry_ras, target_ras, step_mm: float = 0.5) -> list[SoftRun]:
    """The runs of unlabelled soft tissue with at least ``min_core_mm`` of core along the segment
    entry -> target (RAS mm), sampled every ``step_mm`` (module doc)."""
    from scipy import ndimage

    from .along import near_voxels, path_samples
    from .density import dense_min_hu

    lim = limits()
    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    if float(np.linalg.norm(t - e)) <= 0:
        return []
    ct, lab = problem.ct, problem.labels
    unl = unlabelled_values(problem)
    lo_hu, hi_hu = float(lim["fat_max_hu"]), dense_min_hu()

    def soft(hu, val):
        v = np.asarray(val, np.int64)
        return unl[np.minimum(v, len(unl) - 1)] & (v < len(unl)) & (hu > lo_hu) & (hu < hi_hu)

    s, pts = path_samples(e, t, step_mm)
    inside = ct.contains_world(pts)
    smooth, lo = smoothed_box(ct, e, t, float(lim["core_depth_mm"]), float(lim["core_smoothing_mm"]))
    kji = ct.nearest_kji(pts[inside]) - lo
    hu = np.full(len(s), np.nan)
    hu[inside] = smooth[tuple(kji.T)]
    is_soft = np.zeros(len(s), bool)
    is_soft[inside] = soft(hu[inside], lab.sample(pts[inside], order=0))
    if not is_soft.any():
        return []
    def edge_of_other(*sl):
        # the other voxels with a face neighbour of soft tissue (or on the block's faces): the
        # nearest other voxel of a soft sample is one of them (were all its face neighbours
        # other, the one towards the sample would be nearer), so the distances are exact
        box = tuple(slice(a.start - b, a.stop - b) for a, b in zip(sl, lo))
        other = ~soft(smooth[box], lab.array[sl])
        return other & ~ndimage.binary_erosion(other, border_value=0)

    shallow = near_voxels(ct, e, t, s, float(lim["core_depth_mm"]), edge_of_other)
    core = is_soft & ~shallow
    edges = np.diff(np.concatenate([[0], is_soft.astype(np.int8), [0]]))
    out = []
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):   # soft runs [a, b)
        c = float(core[a:b].sum()) * step_mm
        if c < float(lim["min_core_mm"]):
            continue
        p5, p95 = np.percentile(hu[a:b], [5, 95])
        out.append(SoftRun(length_mm=(b - a) * step_mm, from_mm=float(s[a]), to_mm=float(s[b - 1]),
                           core_mm=c, hu_range=(float(p5), float(p95)),
                           middle_ras=np.round(pts[(a + b - 1) // 2], 1).tolist()))
    return out


def absent_organs(problem) -> list[str]:
    """The organs of ``organs`` of which the label map holds none of the class names."""
    names = set(problem.labels.labels.values())
    return [o for o, classes in limits()["organs"].items() if not names.intersection(classes)]


def organ_warnings(problem, n: int, entry_ras, target_ras, skip=None) -> list[str]:
    """One line per run of `soft_runs` of proposal ``n`` (1-based): what and where, what to do;
    runs for which ``skip(run)`` is true are left out (said elsewhere)."""
    runs = [r for r in soft_runs(problem, entry_ras, target_ras) if skip is None or not skip(r)]
    if not runs:
        return []
    gone = absent_organs(problem)
    lacks = (f"the label map has no {', '.join(gone)}" if len(gone) == len(limits()["organs"]) else
             f"the label map lacks {', '.join(gone)}" if gone else "it is none of the labelled structures")
    # a point target inside that tissue: the run's last part is the tissue the target lies in, a mass
    # the label map does not outline as often as an organ (new-user trial 112 F8: a point in Lung_Dx's
    # perihilar mass, 'body', warned as "an organ may be unlabelled (liver, spleen, kidneys ...)")
    length = float(np.linalg.norm(np.asarray(target_ras, float) - np.asarray(entry_ras, float)))
    at_target = bool(getattr(problem.target, "point_given", False))
    return [f"proposal {n}: crosses {r.text()}" + (
        ", up to the target point: the target lies in soft tissue the label map does not outline, a lesion "
        f"or an unlabelled organ ({lacks}); outline the lesion (--lesions FILE --target LABEL; imagio lesion CT "
        "--point R,A,S --out FILE makes one) so that its own tissue is told from what the needle crosses before it"
        if at_target and r.to_mm >= length - 1.0 else
        f": an organ may be unlabelled there ({lacks}); segment the organs (e.g. imagio segment --model total) "
        "or check the path on the images") for r in runs]
