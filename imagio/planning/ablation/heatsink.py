"""Heat sink: vessels with a lumen diameter >= 3 mm close to the ablation zone.

The lumen diameter along a vessel is the equivalent-circle diameter of its section normal to its
axis at the (ridge) centre voxels (local maxima of the inside distance; `segmentation.calibre`:
unbiased, known to one voxel). Centre voxels with a diameter >= the threshold, or within that
voxel below it (named as such: ``calibre_undecided``, its words in `heat_sink_words`), within ``search_distance_mm`` of the zone boundary are
flagged, strongest for radiofrequency (factor and sources: ablation_criteria.json). RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .criteria import heat_sink


@dataclass
class Centrelines:
    """Vessel centre voxels of the analysis grid: fine kji, RAS, lumen diameter (mm), name; the
    calibre's uncertainty (``voxel_mm``: one voxel of the labels' grid) and the heat-sink threshold
    it was judged against (``min_diameter_mm``; 0: the criteria's)."""

    kji: np.ndarray
    ras: np.ndarray
    diameter_mm: np.ndarray
    name: np.ndarray
    voxel_mm: float = 0.0
    min_diameter_mm: float = 0.0

    def __len__(self):
        return len(self.kji)


def vessel_values(label_names: dict) -> dict:
    """{label value: name} of the structures that count as vessels for the heat sink."""
    names = set(heat_sink()["vessel_structures"])
    return {v: n for v, n in label_names.items() if n in names}


def centrelines(fine_labels: np.ndarray, values: dict, spacing_kji, kji_to_ras,
                min_diameter_mm: float | None = None, voxel_mm: float | None = None) -> Centrelines:
    """Centre voxels of every vessel label with their lumen calibre (`segmentation.vessels.
    centre_calibres`: the section-area calibre) >= ``min_diameter_mm`` or within its uncertainty
    below it (`segmentation.calibre.at_least`: one voxel of the grid the labels were drawn on,
    ``voxel_mm``, the coarsest side of ``spacing_kji`` when not given; the fine grid subdivides it)."""
    import edt

    from ...segmentation import calibre
    from ...segmentation.vessels import centre_calibres  # the one lumen calibre

    hs = heat_sink()
    dmin = float(hs["min_diameter_mm"] if min_diameter_mm is None else min_diameter_mm)
    vox = float(np.max(spacing_kji)) if voxel_mm is None else float(voxel_mm)
    empty = Centrelines(np.zeros((0, 3), int), np.zeros((0, 3)), np.zeros(0), np.array([], object), vox, dmin)
    if not values:
        return empty
    vals = np.array(sorted(values))
    lab = np.where(np.isin(fine_labels, vals), fine_labels, 0)
    if not lab.any():
        return empty
    lab = lab.astype(np.uint16 if lab.max() > 255 else np.uint8, copy=False)
    d = edt.edt(lab, anisotropy=tuple(float(s) for s in spacing_kji), black_border=False)
    # each vessel's centre voxels (local maxima of its distance) whose lumen may reach dmin, with the
    # section-area calibre (unbiased; the inscribed figure 2 x distance - a voxel read round lumens
    # 0.9-1.5 voxels short: new-user trial 113 V2b, a 5 mm vessel 2.9 mm and no heat sink named);
    # one that reaches dmin less its uncertainty (one voxel of the labels' grid, ``voxel_mm``) counts
    kji, diam, names = [np.zeros((0, 3), int)], [np.zeros(0)], [np.array([], object)]
    for v, box in enumerate(ndimage.find_objects(lab), start=0):
        if box is None or (v + 1) not in values:
            continue
        # its box + one voxel where the array goes on (its section's background); a face of the
        # array is the grid's edge, where a section may be cut
        box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, lab.shape))
        m = lab[box] == v + 1
        k, c, _ = centre_calibres(m, spacing_kji, least_mm=dmin - vox, inside_mm=np.where(m, d[box], 0))
        keep = calibre.at_least(c, dmin, vox)
        kji.append(k[keep] + [b.start for b in box])
        diam.append(c[keep])
        names.append(np.full(int(keep.sum()), values[v + 1], dtype=object))
    del d
    kji = np.concatenate(kji)
    order = np.lexsort(kji.T[::-1])            # in the array's order, as one pass over it gives them
    kji = kji[order]
    return Centrelines(kji, kji_to_ras(kji.astype(float)), np.concatenate(diam)[order].astype(float),
                       np.concatenate(names)[order], vox, dmin)


def flag(cl: Centrelines, margin_at: np.ndarray, modality: str | None, voxel_mm: float = 0.0) -> list[dict]:
    """Vessels near the zone: ``margin_at`` is the zone's signed distance (mm, > 0 inside) at
    each centre voxel. Distances are the vessel WALL's: a centre voxel of lumen diameter D lies
    D / 2 inside its wall, so the wall's signed distance is ``margin_at`` + D / 2 (new-user trial
    104 A1: the IVC's centre line 7.4 mm from the zone was said as the vessel's distance while its
    wall lay 3.9 mm from it; the heat sink is the flow beside the ablated tissue, Lu 2002). One
    entry per vessel structure within ``search_distance_mm`` of the zone (wall): its largest lumen
    diameter near the zone (``diameter_mm``, which scores the risk) with the location (``ras``, a
    centre voxel) and wall distance to the zone (``largest_distance_to_zone_mm``) of that lumen
    (the nearest of its centre voxels within one voxel side of it); how near the vessel comes
    (``distance_to_zone_mm``, ``inside_zone``: its wall reaches into the zone; at its nearest centre
    voxel by wall distance, also ``nearest_ras``, ``nearest_distance_to_zone_mm``,
    ``nearest_diameter_mm``, ``centreline_distance_to_zone_mm``), the risk level and score.
    New-user trial 36 (L2): the largest lumen was reported at the nearest voxel's place, so one
    point of one vessel read 5.2 mm in one plan and 8.8 mm in another. The caller
    (`coverage.AblationContext`) replaces ``distance_to_zone_mm`` by the vessel label's own distance
    where that is nearer (the one ``structures_near_mm`` gives)."""
    from ...segmentation import calibre

    hs = heat_sink()
    wall = margin_at + 0.5 * cl.diameter_mm       # the wall's signed distance (mm, > 0 inside)
    near = wall >= -float(hs["search_distance_mm"])
    if not near.any():
        return []
    factor = float(hs["modality_factor"].get(modality or "", 1.0))
    out = []
    for name in np.unique(cl.name[near]):
        sel = np.flatnonzero(near & (cl.name == name))
        i = sel[np.argmax(wall[sel])]               # its wall nearest to (or deepest inside) the zone
        dmax = float(cl.diameter_mm[sel].max())
        big = sel[cl.diameter_mm[sel] >= dmax - voxel_mm]
        j = big[np.argmax(wall[big])]               # where that lumen lies (nearest of its voxels)
        thr = float(cl.min_diameter_mm or hs["min_diameter_mm"])
        # a lumen within its uncertainty below the threshold is a heat sink, scored as one at it
        und = bool(calibre.undecided(dmax, thr, cl.voxel_mm or voxel_mm))
        score = factor * max(dmax, thr if und else 0.0) / float(hs["min_diameter_mm"])
        level = ("high" if score >= hs["levels"]["high"] else
                 "moderate" if score >= hs["levels"]["moderate"] else "low")
        out.append({"vessel": str(name), "diameter_mm": round(dmax, 1),
                    "ras": np.round(cl.ras[j], 1).tolist(),
                    "largest_distance_to_zone_mm": round(max(0.0, -float(wall[j])), 1),
                    # how near the vessel comes: its wall at its nearest centre voxel (inside the zone when it reaches in)
                    "distance_to_zone_mm": round(max(0.0, -float(wall[i])), 1),
                    "inside_zone": bool(wall[i] > 0),
                    "nearest_ras": np.round(cl.ras[i], 1).tolist(),
                    "nearest_distance_to_zone_mm": round(max(0.0, -float(wall[i])), 1),
                    "centreline_distance_to_zone_mm": round(max(0.0, -float(margin_at[i])), 1),
                    "nearest_diameter_mm": round(float(cl.diameter_mm[i]), 1),
                    "level": level, "score": round(score, 2), "modality": modality})
        if und:
            out[-1]["calibre_undecided"] = calibre.undecided_words(dmax, thr, cl.voxel_mm or voxel_mm, "a heat sink")
    return sorted(out, key=lambda r: -r["score"])


def heat_sink_words(h: dict) -> str:
    """How near a heat-sink vessel (a `flag` entry) comes, each figure with its own point (new-user
    trial 106 LOW 5: "portal_vein (8.9 mm lumen at [8.5, 18.0, 170.3]) its wall 6.3 mm from the zone"
    where 6.3 mm was another point's, of 6.9 mm lumen): its wall's distance to the zone (or that it
    reaches into it) at its nearest point (``nearest_ras``: the centre voxel whose wall that is, or
    the vessel's voxel nearest the zone where the label's faces are nearer, `coverage`) with the
    lumen there; then, where it lies elsewhere, its largest lumen near the zone (which scores the
    level) with its place and wall distance. Entries written before the nearest point was kept
    (no ``nearest_ras``) give the one point they hold."""
    at = h.get("nearest_ras") or h.get("ras")
    lumen = h.get("nearest_diameter_mm", h.get("diameter_mm"))
    near = ("its wall reaches into the zone at" if h.get("inside_zone") else
            f"its wall {float(h['distance_to_zone_mm']):.1f} mm from the zone nearest at")
    out = f"{near} {list(at)} RAS mm (lumen {float(lumen):.1f} mm there)"
    if h.get("ras") is not None and list(h["ras"]) != list(at):
        far = h.get("largest_distance_to_zone_mm")
        out += (f"; its largest lumen near the zone, {float(h['diameter_mm']):.1f} mm, at {list(h['ras'])} RAS mm"
                + (f", its wall {float(far):.1f} mm from the zone" if far is not None else ""))
    if h.get("calibre_undecided"):
        out += f" ({h['calibre_undecided']})"
    return out

