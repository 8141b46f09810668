"""Fit the weights-free detector's ranking model (:mod:`imagio.detection.ranking`) on phantom
screening scans OUTSIDE the benchmark's (bench_detection uses seeds 0-19; this fits on 20-59 by
default), and print the ``ranking`` entry for ``imagio/data/detection.json``.

Each candidate of the detector (the same steps as ``benchmarks/bench_detection.py``) is labelled a
nodule when it lies within a reference nodule's radius of its centre (the LUNA16 hit rule,
:mod:`imagio.detection.froc`), else a false positive; the inputs are
:func:`imagio.detection.ranking.model_inputs` of its generation score and region features (the mass
channel, which the phantom does not exercise, keeps its own score). L2-penalised logistic
regression (:func:`imagio.detection.ranking.fit_logistic`), as classical CAD combines candidate
features with a classifier trained on candidates (Murphy K et al., Med Image Anal
2009;13:757-770; Jacobs C et al., Med Image Anal 2014;18:374-384).

usage: python -m benchmarks.fit_detection_ranking [FIRST_SEED LAST_SEED]   (default 20 59)
"""

from __future__ import annotations

import json
import sys


def candidate_table(seeds, spacing: float = 1.5):
    """(generation scores (N,), {feature: (N,)}, labels (N,) bool, scan index (N,)) of every
    non-mass candidate on the phantom screening scans ``seeds``."""
    import numpy as np

    from imagio.detection.blobs import _canonical_ct_and_mask, _candidates_from_pool, candidate_pool
    from imagio.detection.ranking import FEATURES
    from imagio.phantom.screening import screening_scan
    from imagio.segmentation.common import as_progress

    g, f, y, scan = [], {k: [] for k in FEATURES}, [], []
    for seed in seeds:
        s = screening_scan(spacing=spacing, seed=seed)
        ct, mask = _canonical_ct_and_mask(s.phantom.ct, None)
        pool = candidate_pool(ct, mask)
        cs = _candidates_from_pool(ct, pool, as_progress(None)) if pool is not None else []
        for c in cs:
            if "generation_score" not in c.features:
                continue
            g.append(c.features["generation_score"])
            for k in FEATURES:
                f[k].append(c.features[k])
            y.append(any(np.linalg.norm(np.asarray(c.center_ras) - t["center_ras"]) < t["diameter_mm"] / 2.0
                         for t in s.truth))
            scan.append(seed)
        print(f"seed {seed}: {len(cs)} candidates", file=sys.stderr, flush=True)
    return np.array(g), {k: np.array(v) for k, v in f.items()}, np.array(y, bool), np.array(scan)


def main(argv=None) -> int:
    from imagio.detection import constants
    from imagio.detection.ranking import fit_logistic, model_inputs

    argv = sys.argv[1:] if argv is None else argv
    lo, hi = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (20, 59)
    if lo <= 19:
        print("fit_detection_ranking: seeds 0-19 are the benchmark's scans; fit on others", file=sys.stderr)
        return 2
    m = constants()["ranking"]
    g, f, y, _ = candidate_table(range(lo, hi + 1))
    w, b = fit_logistic(model_inputs(g, f, m["inputs"]), y, l2=m["l2"])
    print(json.dumps({"inputs": m["inputs"], "weights": [round(float(v), 4) for v in w],
                      "intercept": round(b, 4), "n_candidates": int(len(y)), "n_hits": int(y.sum())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
