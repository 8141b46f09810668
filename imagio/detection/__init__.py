"""Lung nodule detection: chest CT in, a list of candidate nodules out.

One interface, two detectors:

* ``detector="blobs"`` (default, no weights): multi-scale Hessian dot filter inside the lung
  mask with vessel suppression (:mod:`imagio.detection.blobs`);
* ``detector="deep"``: a nodule segmentation model (the catalogue's ``lung_nodules`` nnU-Net or
  a model folder) run by IMAGIO's engine, its nodule-class softmax probability on the CT grid
  turned into candidates by :func:`imagio.detection.deep.candidates_from_probability`.

Every candidate is a :class:`Candidate` in RAS mm. Evaluation as in LUNA16:
:mod:`imagio.detection.froc`. Constants and their sources: ``imagio/data/detection.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import InputError
from ..volume import Volume

NODULE_TYPES = ("solid", "part_solid", "ground_glass", "calcified", "unknown")


@lru_cache(maxsize=1)
def constants() -> dict:
    """The detector constants of ``imagio/data/detection.json`` (each with its source)."""
    return json.loads(resources.files("imagio.data").joinpath("detection.json").read_text(encoding="utf-8"))


@dataclass
class Candidate:
    """One detected nodule candidate.

    center_ras: (3,) RAS mm; diameter_mm: equivalent-sphere diameter (mm); volume_ml: mL;
    type: one of NODULE_TYPES; probability: ranking score in [0, 1] (see the detector's
    docstring for what it means); distance_to_pleura_mm: from the centre to the nearest
    non-lung voxel of the (unclosed) lung mask, 0 when the centre lies outside it;
    juxta_pleural: the candidate's sphere reaches the pleura; features: detector-specific
    numbers (contrast, blobness, scale...); warnings: doubts that travel with the result.
    """

    center_ras: np.ndarray
    diameter_mm: float
    volume_ml: float
    type: str
    probability: float
    distance_to_pleura_mm: float | None = None
    juxta_pleural: bool | None = None
    detector: str = ""
    features: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["center_ras"] = [round(float(c), 2) for c in self.center_ras]
        for k in ("diameter_mm", "probability"):
            d[k] = round(float(d[k]), 4)
        d["volume_ml"] = round(float(d["volume_ml"]), 4)
        if d["distance_to_pleura_mm"] is not None:
            d["distance_to_pleura_mm"] = round(float(d["distance_to_pleura_mm"]), 2)
        d["features"] = {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v)
                         for k, v in self.features.items()}
        return d


DETECTORS = ("blobs", "deep")


def detect(ct: Volume, lung_mask: Volume | np.ndarray | None = None, detector: str = "blobs",
           progress=None, model: str = "lung_nodules", device: str | None = None,
           airways: dict | None = None, notes: list | None = None) -> list[Candidate]:
    """Candidate lung nodules of a chest CT (HU), sorted by decreasing probability.

    lung_mask: optional boolean mask of the lungs, an array on the CT grid [k, j, i] or a Volume
    on any grid (resampled, nearest); default: IMAGIO's HU-rule lung segmenter (blobs) or the
    deep model's lung class (deep).
    detector: ``"blobs"`` (weights-free, :func:`imagio.detection.blobs.detect_blobs`) or
    ``"deep"`` (:func:`imagio.detection.deep.detect_deep`: the nodule probability of ``model``,
    a catalogue name or an nnU-Net model folder, run on ``device`` "auto"/"cpu"/"cuda").
    airways: a dict that receives the airway tree the weights-free detector found
    (:func:`imagio.detection.blobs.airway_tree`), for the caller to reuse; notes: a list that
    receives the weights-free detector's doubts about the scan (`blobs.detect_blobs`).
    Raises InputError for a non-CT input, an unknown detector or an empty lung mask; ModelError
    (one line: how to fetch/import it) for a deep model that is not installed.
    """
    if detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if detector == "deep":
        from .deep import detect_deep

        return detect_deep(ct, lung_mask=lung_mask, model=model, device=device, progress=progress)
    from .blobs import detect_blobs

    return detect_blobs(ct, lung_mask=lung_mask, progress=progress, airways=airways, notes=notes)
