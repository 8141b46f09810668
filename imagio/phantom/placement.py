"""Lesions at anatomical sites of a phantom: against the chest wall, against a vessel, in the
liver against a portal or hepatic vein (the heat-sink case of ablation), or free in an organ.

``add_lesion_at(ph, kind, diameter_mm, where, seed=0)`` finds a centre by exact distance maps of
the phantom's labels (``edt``) and paints the lesion with `imagio.phantom.lesions.insert_lesion`.
Sites:

- ``"chest_wall"``: a lung lesion whose surface touches the costal pleura (its centre one radius
  from the chest wall: muscle, ribs, cartilages), clear of the mediastinum;
- ``"vessel"``: a lung lesion touching a pulmonary vessel at least 2 mm in radius;
- ``"liver_vessel"``: a liver lesion touching a portal or hepatic vein;
- ``"lung"`` / ``"liver"``: free in the organ, at least 5 mm from its edge and its vessels.

RAS mm. Raises ValueError for an unknown site and when the phantom has no such site.
"""

from __future__ import annotations

import edt
import numpy as np

SITES = ("chest_wall", "vessel", "liver_vessel", "lung", "liver")
LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
         "lung_lower_lobe_right")
WALL = ("muscle", "costal_cartilages", "subcutaneous_fat", "sternum", "diaphragm")


def _values(lab, names=(), prefixes=()):
    return [v for v, n in lab.labels.items() if n in names or n.startswith(tuple(prefixes) or ("\0",))]


def _dist(mask, spacing):
    """Distance (mm) of every voxel to the nearest voxel of ``mask`` (exact EDT)."""
    return edt.edt(~mask, anisotropy=tuple(spacing), black_border=False)


def site_centre(ph, where: str, diameter_mm: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """(centre RAS, host organ name) for a lesion of ``diameter_mm`` at site ``where``."""
    if where not in SITES:
        raise ValueError(f"unknown lesion site {where!r}; one of {SITES}")
    lab = ph.labels
    arr = ph.placement_labels()   # clear of the airways where they run on past the drawn ends
    sp = np.asarray(lab.spacing_kji, float)
    r = diameter_mm / 2.0
    tol = 0.75 * float(sp.max())
    lung = np.isin(arr, _values(lab, LOBES))
    if where in ("chest_wall", "vessel", "lung"):
        host = lung
        vessels = np.isin(arr, _values(lab, ("lung_vessels", "pulmonary_artery", "pulmonary_vein")))
        airways = np.isin(arr, _values(lab, ("airways", "airway_wall", "trachea")))
        wall = np.isin(arr, _values(lab, WALL, ("rib_",)))
        other = ~(lung | vessels | airways | wall | (arr == 0))  # mediastinum and the rest
        d_other = _dist(other, sp)
        d_air = _dist(airways, sp)
        d_wall = _dist(wall, sp)
        if where == "chest_wall":
            ok = host & (np.abs(d_wall - r) <= tol) & (d_other > r + 5) & (d_air > r + 3)
        elif where == "vessel":
            big = vessels & (edt.edt(vessels, anisotropy=tuple(sp)) >= 2.0)
            d_big = _dist(big, sp)
            ok = host & (np.abs(d_big - r) <= tol) & (d_wall > r + 5) & (d_other > r + 5) & (d_air > r + 3)
        else:
            ok = host & (d_wall > r + 5) & (d_other > r + 5) & (d_air > r + 3) & (_dist(vessels, sp) > r + 2)
    else:
        host = np.isin(arr, _values(lab, ("liver",)))
        veins = np.isin(arr, _values(lab, ("portal_vein", "hepatic_vein", "inferior_vena_cava",
                                            "portal_vein_and_splenic_vein", "gallbladder")))
        d_edge = edt.edt(host | veins, anisotropy=tuple(sp))
        d_vein = _dist(veins, sp)
        if where == "liver_vessel":
            ok = host & (np.abs(d_vein - r) <= tol) & (d_edge > r + 5)
        else:
            ok = host & (d_vein > r + 5) & (d_edge > r + 5)
    cand = np.argwhere(ok)
    if len(cand) == 0:
        raise ValueError(f"no {where} site for a {diameter_mm:g} mm lesion in this phantom")
    kji = cand[np.random.default_rng(seed).integers(len(cand))]
    c = lab.kji_to_world(kji[None].astype(float))[0]
    organ = lab.labels.get(int(arr[tuple(kji)]), "")
    return c, organ


def add_lesion_at(ph, kind: str, diameter_mm: float, where: str, seed: int = 0, **shape):
    """Paint a lesion of ``kind`` (``lesions.KINDS``) at site ``where`` (``SITES``); returns the
    `PaintedLesion` (also appended to ``ph.lesions``)."""
    from .lesions import insert_lesion

    c, _ = site_centre(ph, where, diameter_mm, seed)
    # lung sites replace parenchyma only, so the vessel or wall the lesion abuts stays whole
    organ = list(LOBES) if where in ("chest_wall", "vessel", "lung") else None
    return insert_lesion(ph, kind, c, diameter_mm, organ=organ, seed=seed, **shape)
