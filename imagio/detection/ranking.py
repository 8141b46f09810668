"""False-positive reduction of the weights-free detector: a ranking of its candidates by features
with a physical meaning, read on the working grid around each candidate.

What the candidate generation (:mod:`imagio.detection.blobs`) cannot tell apart is a nodule from
a vessel bifurcation or crossing at the same scale (the dot filter's classic false positive: Li Q,
Sone S, Doi K, Med Phys 2003;30:2040-2051). Classical CAD separates them after candidate
generation, by features of each candidate's segmented region and of its surroundings, combined by
a classifier trained on candidates (Murphy K et al., A large-scale evaluation of automatic
pulmonary nodule detection in chest CT using local image features and k-nearest-neighbour
classification, Med Image Anal 2009;13:757-770; Jacobs C et al., Automatic detection of subsolid
pulmonary nodules in thoracic computed tomography images, Med Image Anal 2014;18:374-384: region,
intensity, shape and context features; Setio AAA et al., Automatic detection of large pulmonary
solid nodules in thoracic CT images, Med Phys 2015;42:5642-5653).

Features (:func:`region_features`), per candidate of radius r (half its diameter) centred at
``kji`` on the working-grid CT ``a`` (HU), gap = the grid's largest spacing (one voxel):

* the candidate's region: the tissue at least half as dense as the candidate (above the mean of
  its centre's HU and the parenchyma's: the half-maximum edge of its own contrast, as
  :func:`imagio.detection.blobs.calibre_exit_scores` reads it) inside the search region (the
  lungs' closing: the chest wall behind a juxta-pleural nodule is not part of it), connected to
  the centre, within a ball of radius ``2 r + 2 gap``;
* ``contained``: the share of that region inside the candidate's own sphere (r + gap). A nodule
  is a rounded opacity (Fleischner glossary, Hansell DM et al., Radiology 2008;246:697-722):
  alone it is all inside (1); a juxta-vascular nodule has thinner vessels leaving it (volume
  ~ (rho / r)^2 of a tube of radius rho); a bifurcation or crossing is mostly vessel, leaving in
  3 or 4 tubes of its own calibre;
* ``branches`` and ``branch_calibre``: the region's connected pieces in the outer shell
  (1.5 r + gap .. 2 r + 2 gap, past the nodule's bulk), counted when at least one voxel across,
  and the largest one's equivalent diameter over the candidate's diameter. A bifurcation: three
  tubes of about the candidate's calibre (ratio ~ 1); a juxta-vascular nodule: one or two
  vessels thinner than itself (ratio < 1);
* ``flatness``: smallest over largest principal axis (square roots of the eigenvalues of the
  covariance of the region's voxel positions in mm) of the region within 1.5 r + gap: a ball 1,
  a Y-shaped bifurcation lies in the plane of its three branches (small), a tube less still;
* ``line_ratio``: |lambda2| / |lambda1| of the scale-normalised Hessian at the candidate's own
  scale (sigma = d / (2 sqrt 3)), eigenvalues sorted by magnitude: Li 2003's line measure divided
  by its largest term (a tube 1 with lambda3 ~ 0, a ball 1 with lambda3 ~ lambda1; the dot filter
  already read |lambda3| / |lambda1|, the blobness, so the pair places the candidate between
  ball, tube and plate).

The score (:func:`ranking_probability`): a logistic model on these features and the candidate
generation's own score terms, its weights in ``imagio/data/detection.json`` (``ranking``), fitted
on phantom screening scans outside the benchmark's (:func:`fit_logistic`;
``benchmarks/fit_detection_ranking.py``). It ranks candidates (FROC needs an order); it is not a
calibrated probability of a nodule in a real scan and says nothing about malignancy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import constants
from .ball import ball_box


FEATURES = ("contained", "branches", "core_to_branch", "flatness", "line_ratio")
CORE_TO_BRANCH_CAP = 4.0


def region_features(a: np.ndarray, search: np.ndarray, kji, diam_mm: float, centre_hu: float,
                    parenchyma: float, spacing_kji, hessian_eigenvalues) -> dict:
    """The region features of one candidate (module docstring): dict of ``FEATURES`` (floats).

    a: working-grid CT (HU) [k, j, i]; search: boolean [k, j, i], where tissue may belong to the
    candidate (the lungs' closing); kji: (3,) int voxel of its centre; diam_mm: its diameter;
    centre_hu: median HU within half its radius; parenchyma: the lungs' median HU; spacing_kji:
    (3,) mm; hessian_eigenvalues: (3,) of the scale-normalised Hessian at ``kji`` at the
    candidate's own scale, sigma = diam_mm / (2 sqrt 3) (:func:`imagio.detection.blobs.hessian_eigen_at`). A centre below the half-maximum (a ground-glass centre of a ring) takes the densest
    voxel within half the radius as its seed."""
    sk = np.asarray(spacing_kji, float)
    gap = float(sk.max())
    r = float(diam_mm) / 2.0
    outer = 2.0 * r + 2.0 * gap
    box, off, dist = ball_box(a.shape, np.asarray(kji, int), outer, sk, offsets=True)
    v = a[box].astype(np.float32)
    dense = (v > 0.5 * (centre_hu + parenchyma)) & search[box] & (dist <= outer)
    lab, _ = ndimage.label(dense)
    near = (dist <= max(r / 2.0, gap)) & dense
    if not near.any():
        return dict(contained=0.0, branches=0.0, core_to_branch=0.0, flatness=0.0,
                    line_ratio=_line_ratio(hessian_eigenvalues))
    seed = np.unravel_index(np.argmax(np.where(near, v, -np.inf)), v.shape)
    comp = lab == lab[seed]
    n = float(comp.sum())
    contained = float((comp & (dist <= r + gap)).sum()) / n
    inner_r = 1.5 * r + gap
    # the region's local thickness (twice its distance to its own edge, mm): the core's
    # inscribed diameter near the centre, each branch's calibre on its own axis
    import edt

    # (the distance transform reaches the centre of the first voxel outside, half a voxel beyond
    # the edge on either side: one voxel, the finest spacing, less is the thickness)
    vmin = float(sk.min())
    thick = 2.0 * edt.edt(np.ascontiguousarray(comp), anisotropy=tuple(map(float, sk)), black_border=False) - vmin
    core_d = float(thick[comp & (dist <= r + gap)].max())
    shell = comp & (dist > inner_r)
    bl, nb = ndimage.label(shell, structure=np.ones((3, 3, 3)))
    calib = np.zeros(0)
    if nb:
        calib = np.asarray(ndimage.maximum(thick, bl, np.arange(1, nb + 1)), float)
        calib = calib[calib >= vmin - 1e-6]   # a piece at least one voxel across
    core = comp & (dist <= inner_r)
    pts = off[:, core].T
    if len(pts) >= 4:
        ev = np.linalg.eigvalsh(np.cov(pts.T))
        flat = float(np.sqrt(max(ev[0], 0.0) / max(ev[-1], 1e-9)))
    else:
        flat = 0.0
    return dict(contained=contained, branches=float(len(calib)),
                core_to_branch=float(min(core_d / calib.max(), CORE_TO_BRANCH_CAP)) if len(calib) else CORE_TO_BRANCH_CAP,
                flatness=flat, line_ratio=_line_ratio(hessian_eigenvalues))


def _line_ratio(w: np.ndarray) -> float:
    m = np.sort(np.abs(np.asarray(w, float)))[::-1]
    return float(m[1] / m[0]) if m[0] > 0 else 0.0


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """(weights (F,), intercept) of an L2-penalised logistic regression of ``y`` (N,) bool on
    ``x`` (N, F), by L-BFGS on the mean log-loss plus ``l2`` / (2 N) times the squared weights of
    the standardised features (the intercept unpenalised); returned on the raw features' scale.
    For the fitting script only (benchmarks/fit_detection_ranking.py): the detector reads the
    weights from detection.json."""
    from scipy.optimize import minimize

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    n = len(y)

    def loss(p):
        w, b = p[:-1], p[-1]
        t = z @ w + b
        ll = np.logaddexp(0.0, t) - y * t
        g = 1.0 / (1.0 + np.exp(-t)) - y
        return ll.mean() + 0.5 * l2 / n * (w @ w), np.r_[z.T @ g / n + l2 / n * w, g.mean()]

    p = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                 options={"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-14}).x
    w = p[:-1] / sd
    return w, float(p[-1] - w @ mu)


# the model's inputs, by the names detection.json's ``ranking.inputs`` lists: each a transform of
# a candidate's generation score or of one region feature (:func:`region_features`)
SCORE_CLIP = (0.005, 0.995)


def model_inputs(generation_score, feats: dict, names) -> np.ndarray:
    """(N, len(names)) inputs of the ranking model. generation_score: (N,) the candidate
    generation's score in [0, 1] (:mod:`imagio.detection.blobs`, step 6); feats: {feature name:
    (N,) array} of :func:`region_features`' values; names: the inputs' names (``ranking.inputs``):

    * ``generation_logit``: log(p / (1 - p)) of the generation score clipped to ``SCORE_CLIP``
      (its terms: blobness, contrast, lung side, exits, perifissural shape: module docstring of
      :mod:`imagio.detection.blobs`);
    * ``contained``, ``flatness``, ``line_ratio``: as measured (0..1);
    * ``branches``: the count, clipped to 4 (a crossing's);
    * ``log_core_to_branch``: log of the core's inscribed diameter over the thickest branch's
      calibre, clipped to 1/4..4 (4: no branch).
    Raises KeyError for an unknown name."""
    p = np.clip(np.asarray(generation_score, float), *SCORE_CLIP)
    f = {k: np.asarray(v, float) for k, v in feats.items()}
    t = {"generation_logit": lambda: np.log(p / (1.0 - p)),
         "contained": lambda: f["contained"], "flatness": lambda: f["flatness"],
         "line_ratio": lambda: f["line_ratio"], "branches": lambda: np.clip(f["branches"], 0.0, 4.0),
         "log_core_to_branch": lambda: np.log(np.clip(f["core_to_branch"], 1.0 / CORE_TO_BRANCH_CAP,
                                                      CORE_TO_BRANCH_CAP))}
    return np.stack([t[n]() for n in names], axis=-1).reshape(len(p), len(names))


def ranking_probability(generation_score, feats: dict, model: dict | None = None) -> np.ndarray:
    """(N,) ranking scores in (0, 1): the logistic model of detection.json's ``ranking`` (or
    ``model``: {"inputs", "weights", "intercept"}) on :func:`model_inputs`."""
    m = model or constants()["ranking"]
    x = model_inputs(generation_score, feats, m["inputs"])
    return 1.0 / (1.0 + np.exp(-(x @ np.asarray(m["weights"], float) + float(m["intercept"]))))
