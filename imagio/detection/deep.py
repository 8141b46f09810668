"""Candidates from a nodule probability map (the deep path).

A segmentation network such as TotalSegmentator's ``lung_nodules`` nnU-Net gives, per voxel,
the probability of nodule. Candidates are its connected components above the foreground
threshold (26-connected, ``cc3d``); each is kept when it is at least the smallest nodule
counted (3 mm equivalent-sphere diameter) and its centroid lies in the lungs (closed per axial
section, so juxta-pleural nodules stay). Centre = centroid of the component (RAS mm);
probability = the component's maximum probability (its mean is in the features).
Constants and sources: ``imagio/data/detection.json`` ("deep").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume
from . import Candidate, constants


def candidates_from_probability(prob: Volume, lung_mask=None, threshold: float | None = None,
                                min_diameter_mm: float | None = None) -> list[Candidate]:
    """Candidates (sorted by decreasing probability) from a probability Volume in [0, 1].

    prob: Volume [k, j, i] of nodule probability, any orientation/spacing; lung_mask: optional
    boolean lung mask (array on prob's grid or a Volume on any grid); threshold: foreground
    probability (default 0.5); min_diameter_mm: smallest equivalent-sphere diameter kept
    (default 3 mm). Raises InputError when the map is not a probability (values outside [0, 1]).
    """
    import cc3d

    c = constants()["deep"]
    thr = c["probability_threshold"] if threshold is None else float(threshold)
    dmin = c["min_diameter_mm"] if min_diameter_mm is None else float(min_diameter_mm)
    a = np.asarray(prob.array, np.float32)
    if a.size and (float(a.min()) < -1e-6 or float(a.max()) > 1 + 1e-6):
        raise InputError(f"the probability map has values {float(a.min()):g}..{float(a.max()):g}; "
                         "give probabilities in [0, 1] (softmax output, not logits or labels)")
    lab, n = cc3d.connected_components(a > thr, connectivity=26, return_N=True)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    stats = cc3d.statistics(lab)
    counts = np.asarray(stats["voxel_counts"][1:], float)
    cen_kji = np.asarray(stats["centroids"][1:], float)
    vol_ml = counts * prob.voxel_volume_ml
    diam = (6.0 * vol_ml * 1000.0 / np.pi) ** (1.0 / 3.0)
    pmax = np.asarray(ndimage.maximum(a, lab, idx), float)
    pmean = np.asarray(ndimage.mean(a, lab, idx), float)
    keep = diam >= dmin
    dist = None
    if lung_mask is not None:
        from .blobs import lungs_on, search_region

        lungs = lungs_on(prob, lung_mask)
        search, _ = search_region(lungs, prob, constants()["juxtapleural_closing_mm"]["value"])
        ci = np.clip(np.rint(cen_kji).astype(int), 0, np.array(prob.shape) - 1)
        keep &= search[tuple(ci.T)]
        import edt

        dist = edt.edt(np.ascontiguousarray(lungs), anisotropy=tuple(map(float, prob.spacing_kji)),
                       black_border=False)[tuple(ci.T)]
    centres = prob.kji_to_world(cen_kji)
    out = []
    for i in np.flatnonzero(keep):
        d_pl = None if dist is None else float(dist[i])
        out.append(Candidate(
            center_ras=centres[i], diameter_mm=float(diam[i]), volume_ml=float(vol_ml[i]),
            type="unknown", probability=float(pmax[i]), distance_to_pleura_mm=d_pl,
            juxta_pleural=None if d_pl is None else bool(d_pl <= diam[i] / 2.0), detector="deep",
            features=dict(mean_probability=float(pmean[i]), voxels=int(counts[i])),
            warnings=["type not assessed (probability map only)"]))
    out.sort(key=lambda cd: -cd.probability)
    return out


NODULE_CLASSES = ("lung_nodules", "lung_nodule", "nodule", "nodules")


def engine_for(model: str, device: str | None):
    """(Engine, label_map, catalogue entry) for a catalogue model name or a model folder path;
    the Engine is built once per process (:func:`imagio.segmentation.models.cached_engine`: a
    cohort's Dask worker loads the network once). Raises ModelError (one line saying how to
    fetch/import it) for a model that is not ready or not found."""
    from ..segmentation import models

    e, folders = models.resolve(model)
    if len(folders) != 1:
        raise InputError(f"model {model!r} has {len(folders)} parts; the deep detector needs a one-part model")
    dev = None if device in (None, "auto") else device
    return models.cached_engine(folders[0], models.engine_options(e, device=dev)), e.get("label_map", {}), e


def nodule_class(engine, label_map: dict) -> str:
    """The dataset.json name of the model's nodule class (one of NODULE_CLASSES, directly or
    through ``label_map``). Raises InputError when the model has none."""
    for v, n in sorted(engine.model.labels.items()):
        if v and (n in NODULE_CLASSES or label_map.get(n) in NODULE_CLASSES):
            return n
    raise InputError(f"the model has no nodule class ({', '.join(NODULE_CLASSES)}); its classes: "
                     f"{', '.join(engine.model.labels.values())}")


def nodule_probability(ct: Volume, model: str = "lung_nodules", device: str | None = None, progress=None):
    """Run a nodule segmentation model on ``ct`` (HU) and return (labels Volume, probability
    Volume of the nodule class, float32 in [0, 1], on exactly the CT's grid).

    model: catalogue name (``imagio/data/models.json``, installed with ``imagio models fetch``)
    or an nnU-Net v2 model folder path; device: "auto"/None, "cpu", "cuda".
    Raises ModelError / InputError (one line) for a missing model, a non-CT input or a model
    without a nodule class."""
    from ..ct_check import check_hu

    check_hu(ct, f"the deep nodule model {model}")
    engine, label_map, _ = engine_for(str(model), device)
    name = nodule_class(engine, label_map)
    labels, probs = engine.segment(ct, progress, label_map, return_probabilities=(name,))
    return labels, probs[name]


def detect_deep(ct: Volume, lung_mask=None, model: str = "lung_nodules", device: str | None = None,
                progress=None) -> list[Candidate]:
    """Candidates from a deep nodule model: :func:`nodule_probability` then
    :func:`candidates_from_probability`. lung_mask: as in ``candidates_from_probability``;
    default: the model's own lung class when it has one, else no lung check (said in each
    candidate's warnings)."""
    labels, prob = nodule_probability(ct, model, device, progress)
    from .blobs import lung_label_values

    warn = []
    if lung_mask is None:
        lung_values = lung_label_values(labels.labels)
        if not lung_values:
            warn.append("not checked against a lung mask (the model has no lung class and none was given)")
        elif not np.isin(labels.array, lung_values).any():
            warn.append("not checked against a lung mask (the model found no lung in this CT)")
        else:
            lung_mask = labels
    cands = candidates_from_probability(prob, lung_mask=lung_mask)
    for c in cands:
        c.warnings += warn
        c.features["model"] = str(model)
    return cands
