"""FROC and CPM exactly as the LUNA16 evaluation defines them.

Source: Setio AAA et al. Validation, comparison, and combination of algorithms for automatic
detection of pulmonary nodules in CT images: the LUNA16 challenge. Med Image Anal
2017;42:1-13, and its evaluation script (``noduleCADEvaluationLUNA16.py``, LUNA16 website /
evaluationScript). The rules reproduced here:

* a candidate hits a reference nodule when its squared distance to the nodule's centre is
  below the squared radius (diameter / 2); an exclusion ("irrelevant finding") with no
  diameter (< 0) gets 10 mm, as in the script;
* a nodule hit by several candidates counts once, with the highest probability among them;
  those candidates are not false positives (a candidate may hit two nodules and count for both);
* candidates on an excluded finding are ignored (neither hit nor false positive);
* a missed nodule still counts in the sensitivity's denominator;
* the FROC curve: at each probability threshold, sensitivity = detected nodules / all nodules
  and false positives per scan = false positives / number of scans (all scans, also those
  without candidates); sensitivities at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP/scan are read by linear
  interpolation of that curve (``np.interp``, as the script does) and averaged: the CPM;
* confidence intervals: bootstrap over scans (scans drawn with replacement, 1000 times),
  2.5 and 97.5 percentiles.

Coordinates: any one world frame shared by candidates and references (LUNA16 uses the image's
LPS physical space; IMAGIO candidates are RAS: convert before comparing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import constants

EXCLUDED_DEFAULT_DIAMETER_MM = 10.0  # LUNA16 script: an excluded finding without a diameter


@dataclass
class FrocEntries:
    """The per-entry lists the LUNA16 script builds: one entry per detected nodule (its best
    probability), per false positive, and per missed nodule (counted, never plotted)."""

    is_nodule: np.ndarray  # bool
    probability: np.ndarray  # float
    scan: np.ndarray  # int index into scans
    missed: np.ndarray  # bool: a nodule no candidate hit
    n_scans: int
    n_nodules: int


def match(candidates: dict, references: dict, excluded: dict | None = None,
          scans=None) -> FrocEntries:
    """Build the FROC entries.

    candidates: {scan_id: (N, 4) array of x, y, z (mm), probability}; references: {scan_id:
    (M, 4) array x, y, z, diameter (mm)}; excluded: same layout as references (diameter < 0 ->
    10 mm); scans: all scan ids evaluated (default: the union of the keys; a scan without
    candidates still counts in FP/scan).
    """
    excluded = excluded or {}
    scans = sorted(set(candidates) | set(references) | set(excluded)) if scans is None else list(scans)
    isn, prob, scan, missed = [], [], [], []
    n_nod = 0
    for si, sid in enumerate(scans):
        cand = np.asarray(candidates.get(sid, np.zeros((0, 4))), float).reshape(-1, 4)
        ref = np.asarray(references.get(sid, np.zeros((0, 4))), float).reshape(-1, 4)
        exc = np.asarray(excluded.get(sid, np.zeros((0, 4))), float).reshape(-1, 4)
        exc = exc.copy()
        exc[exc[:, 3] < 0, 3] = EXCLUDED_DEFAULT_DIAMETER_MM
        d2 = ((cand[:, None, :3] - ref[None, :, :3]) ** 2).sum(-1)  # (N, M)
        hit = d2 < (ref[None, :, 3] / 2.0) ** 2
        d2e = ((cand[:, None, :3] - exc[None, :, :3]) ** 2).sum(-1)
        on_excluded = (d2e < (exc[None, :, 3] / 2.0) ** 2).any(axis=1)
        n_nod += len(ref)
        for m in range(len(ref)):
            isn.append(True)
            scan.append(si)
            if hit[:, m].any():
                prob.append(float(cand[hit[:, m], 3].max()))
                missed.append(False)
            else:
                prob.append(-np.inf)
                missed.append(True)
        fp = ~hit.any(axis=1) & ~on_excluded
        isn += [False] * int(fp.sum())
        prob += cand[fp, 3].tolist()
        scan += [si] * int(fp.sum())
        missed += [False] * int(fp.sum())
    return FrocEntries(np.array(isn, bool), np.array(prob, float), np.array(scan, int),
                       np.array(missed, bool), len(scans), n_nod)


def froc_curve(is_nodule, probability, missed, n_scans: int, n_nodules: int):
    """(fps per scan, sensitivity, thresholds), one point per distinct probability, from the
    highest threshold down, starting at (0, 0). Missed nodules are in ``n_nodules`` only."""
    use = ~np.asarray(missed, bool)
    y = np.asarray(is_nodule, bool)[use]
    p = np.asarray(probability, float)[use]
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(p) != 0), len(p) - 1] if len(p) else np.array([], int)
    tp = np.cumsum(y)[last] if len(p) else np.array([])
    fp = np.cumsum(~y)[last] if len(p) else np.array([])
    fps = np.r_[0.0, fp / max(n_scans, 1)]
    sens = np.r_[0.0, tp / n_nodules if n_nodules else np.zeros(len(tp))]
    return fps, sens, np.r_[np.inf, p[last] if len(p) else []]


def sensitivities_at(fps, sens, fp_rates=None) -> np.ndarray:
    """Sensitivity at each FP/scan rate by linear interpolation of the FROC curve."""
    rates = constants()["froc"]["fp_rates"] if fp_rates is None else fp_rates
    return np.interp(np.asarray(rates, float), fps, sens)


def cpm(fps, sens, fp_rates=None) -> float:
    """Competition performance metric: mean of :func:`sensitivities_at` (LUNA16)."""
    return float(np.mean(sensitivities_at(fps, sens, fp_rates)))


def evaluate(candidates: dict, references: dict, excluded: dict | None = None, scans=None,
             bootstrap: int | None = None, seed: int = 0, confidence: float = 0.95) -> dict:
    """LUNA16 evaluation: CPM, sensitivity at each FP rate, the FROC curve, bootstrap CIs.

    Inputs as :func:`match`. Returns a JSON-ready dict: ``cpm``, ``cpm_ci``, ``fp_rates``,
    ``sensitivities``, ``sensitivities_ci`` ([low, high] per rate), ``curve`` (fps, sens),
    ``n_scans``, ``n_nodules``, ``n_detected``, ``n_false_positives``, ``warnings``.
    """
    e = match(candidates, references, excluded, scans)
    rates = constants()["froc"]["fp_rates"]
    B = constants()["froc"]["bootstrap"] if bootstrap is None else int(bootstrap)
    fps, sens, _ = froc_curve(e.is_nodule, e.probability, e.missed, e.n_scans, e.n_nodules)
    s_at = sensitivities_at(fps, sens, rates)
    warnings = []
    if e.n_nodules == 0:
        warnings.append("no reference nodule: sensitivity and CPM are undefined (reported 0)")
    if e.n_scans < 10:
        warnings.append(f"only {e.n_scans} scan(s): FROC and CPM are rough; the bootstrap "
                        "interval over so few scans is not reliable")
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    boot = np.zeros((B, len(rates)))
    rng = np.random.default_rng(seed)
    per_scan = [np.flatnonzero(e.scan == s) for s in range(e.n_scans)]
    for b in range(B):
        pick = rng.integers(0, e.n_scans, e.n_scans)
        ix = np.concatenate([per_scan[s] for s in pick]) if e.n_scans else np.array([], int)
        n_nod = int(e.is_nodule[ix].sum())
        if n_nod == 0:
            boot[b] = np.nan
            continue
        f, s, _ = froc_curve(e.is_nodule[ix], e.probability[ix], e.missed[ix], e.n_scans, n_nod)
        boot[b] = sensitivities_at(f, s, rates)
    ok = ~np.isnan(boot[:, 0])
    if B and ok.any():
        ci = np.percentile(boot[ok], [lo_q, hi_q], axis=0).T
        cpm_ci = np.percentile(boot[ok].mean(axis=1), [lo_q, hi_q])
    else:
        ci = np.full((len(rates), 2), np.nan)
        cpm_ci = np.array([np.nan, np.nan])
    return {
        "cpm": float(np.mean(s_at)),
        "cpm_ci": [float(v) for v in cpm_ci],
        "fp_rates": list(rates),
        "sensitivities": [float(v) for v in s_at],
        "sensitivities_ci": [[float(a), float(b)] for a, b in ci],
        "curve": {"fps_per_scan": fps.tolist(), "sensitivity": sens.tolist()},
        "n_scans": e.n_scans,
        "n_nodules": e.n_nodules,
        "n_detected": int((e.is_nodule & ~e.missed).sum()),
        "n_false_positives": int((~e.is_nodule).sum()),
        "confidence": confidence,
        "bootstrap": B,
        "source": constants()["froc"]["source"],
        "warnings": warnings,
    }


def plot_froc(result: dict, path, title: str = "") -> "Path":
    """PNG of the FROC curve of an :func:`evaluate` result: sensitivity against false positives
    per scan on LUNA16's log2 axis (1/8..8), the seven CPM points with their bootstrap interval."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fps = np.asarray(result["curve"]["fps_per_scan"], float)
    sens = np.asarray(result["curve"]["sensitivity"], float)
    rates = np.asarray(result["fp_rates"], float)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    x = np.geomspace(rates[0], rates[-1], 200)
    ax.plot(x, np.interp(x, fps, sens), color="C0", label="FROC (linear interpolation)")
    ci = np.asarray(result["sensitivities_ci"], float)
    s = np.asarray(result["sensitivities"], float)
    err = np.vstack([s - ci[:, 0], ci[:, 1] - s])
    ax.errorbar(rates, s, yerr=None if np.isnan(err).any() else np.abs(err), fmt="o", color="C1",
                capsize=3, label="CPM undefined" if result["cpm"] is None else f"CPM {result['cpm']:.3f}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(rates, ["1/8", "1/4", "1/2", "1", "2", "4", "8"])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.set_title(title or f"{result['n_scans']} scan(s), {result['n_nodules']} nodule(s)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    from ..outputs import atomic_path

    with atomic_path(path) as tmp:   # recorded; a user's file refused
        fig.savefig(tmp)
    plt.close(fig)
    return path
