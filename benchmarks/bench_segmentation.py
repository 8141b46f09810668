"""Rule-based segmenters: time and peak memory per structure, side by side with a naive baseline
(plain threshold + scipy.ndimage.label, no table removal, no leak control), on the chest CTA
of ../shared/data (233 x 167 x 191 at 1.5 mm) and, when the phantom is available, accuracy
(Dice, 95 % Hausdorff) against the phantom's ground truth and the whole set on the phantom at
0.8 mm.

Rows: name, value, unit, baseline, ratio (baseline / value; > 1 means ours is faster).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _timed(fn, *args, **kw):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return out, dt, peak


# naive baselines ------------------------------------------------------------------------------
def naive_body(a):
    lab, n = ndimage.label(a > -500)
    cnt = np.bincount(lab.ravel())
    cnt[0] = 0
    return ndimage.binary_fill_holes(lab == np.argmax(cnt))


def naive_lungs(a, body):
    lab, n = ndimage.label((a < -400) & body)
    cnt = np.bincount(lab.ravel())
    cnt[0] = 0
    top = np.argsort(cnt)[::-1][:2]
    return np.isin(lab, top)


def naive_bones(a, body):
    return (a > 200) & body


def naive_airways(a, seed):
    lab, _ = ndimage.label(a < -950)
    return lab == lab[tuple(seed)]


def run() -> list[dict]:
    from imagio import io
    from imagio.segmentation import airways, body, bones, lungs

    rows = []
    path = DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if path.exists():
        ct = io.read_image(path)
        a = ct.array
        tag = "chest CTA 233x167x191"
        b, t, mem = _timed(body.body_mask, ct)
        nb, tb, _ = _timed(naive_body, a)
        rows.append(dict(name=f"body ({tag})", value=t, unit="s", baseline=tb, ratio=tb / t))
        rows.append(dict(name="body peak memory", value=mem, unit="MiB"))
        rows.append(dict(name="body: naive keeps table/extra voxels", value=int((nb & ~b).sum()),
                         unit="voxels"))
        (tr, br, info), t, mem = _timed(airways.airway_masks, ct, b)
        nv, tb, _ = _timed(naive_airways, a, info["seed_kji"])
        rows.append(dict(name=f"airways ({tag})", value=t, unit="s", baseline=tb, ratio=tb / t))
        rows.append(dict(name="airways peak memory", value=mem, unit="MiB"))
        rows.append(dict(name="airway volume (ours / naive < -950 HU)",
                         value=float((tr | br).sum() * ct.voxel_volume_ml),
                         unit="mL", baseline=float(nv.sum() * ct.voxel_volume_ml)))
        lm, t, mem = _timed(lungs.lung_mask, ct, b, tr | br)
        nl, tb, _ = _timed(naive_lungs, a, b)
        rows.append(dict(name=f"lungs ({tag})", value=t, unit="s", baseline=tb, ratio=tb / t))
        (left, right), t2, _ = _timed(lungs.split_left_right, ct, lm)
        rows.append(dict(name="lungs left/right split", value=t2, unit="s"))
        rows.append(dict(name="lungs peak memory", value=mem, unit="MiB"))
        bm, t, mem = _timed(bones.bone_mask, ct, b, lungs=lm)
        nbm, tb, _ = _timed(naive_bones, a, b)
        rows.append(dict(name=f"bones ({tag})", value=t, unit="s", baseline=tb, ratio=tb / t))
        rows.append(dict(name="bones peak memory", value=mem, unit="MiB"))
        rows.append(dict(name="bones: naive >200 HU also takes (contrast blood)",
                         value=int((nbm & ~bm).sum()), unit="voxels"))
    rows += _phantom_rows()
    return rows


def _phantom_rows() -> list[dict]:
    try:
        from imagio import phantom
    except ImportError:
        return [dict(name="phantom accuracy: imagio.phantom not available", value=None, unit="")]
    from imagio.segmentation import rules
    from imagio.segmentation.common import dice, hausdorff95
    from imagio.segmentation.phantom_eval import phantom_truth

    rows = []
    ph = phantom.generate(spacing=1.5, seed=0)
    masks, meta = rules.segment_masks(ph.ct, ["body", "bones", "lungs", "airways"])
    truth = phantom_truth(ph.labels)
    sk = ph.ct.spacing_kji
    for name, ours in (("body", masks["body"]), ("bone", masks["vertebrae"] | masks["ribs"] | masks["bone"]),
                       ("lung_left", masks["lung_left"]), ("lung_right", masks["lung_right"]),
                       ("trachea", masks.get("trachea")), ("airways", masks.get("airways"))):
        if ours is None:
            continue
        rows.append(dict(name=f"phantom 1.5 mm Dice {name}", value=dice(ours, truth[name]), unit=""))
        rows.append(dict(name=f"phantom 1.5 mm HD95 {name}", value=hausdorff95(ours, truth[name], sk),
                         unit="mm"))
    big = phantom.generate(spacing=0.8, seed=0)
    _, t, mem = _timed(rules.segment_masks, big.ct, ["body", "bones", "lungs", "airways", "emphysema"])
    rows.append(dict(name=f"whole rule set, phantom 0.8 mm {'x'.join(map(str, big.ct.shape[::-1]))}",
                     value=t, unit="s"))
    rows.append(dict(name="whole rule set peak memory", value=mem, unit="MiB"))
    return rows
