"""Rule-based segmenters: time and peak memory per structure, side by side with a naive baseline
(plain threshold + scipy.ndimage.label, no table removal, no leak control), on the chest CTA
of ../shared/data (233 x 167 x 191 at 1.5 mm) and, when the phantom is available, accuracy
(Dice, 95 % Hausdorff) against the phantom's ground truth and the whole set on the phantom at
0.8 mm.

Real cases (issue 14): one-click lesions on pyradiomics lung1/lung2 and the STS sarcomas,
TotalSegmentator example lungs/bones Dice, chest CTA crops, volumes at 1.5 vs 3 mm.

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


def _hull_row(lungs_mask: np.ndarray, tag: str) -> dict:
    """The per-plane lung hull (`bone_shell.lung_hull_planes`, `planning.mediastinum`): every
    plane along each array axis with >= 3 lung voxels, `common.convex_hull_2d` (on the mask's
    box) against scikit-image's whole-plane ``convex_hull_image`` (the baseline, main before
    speed4), CPU time; the row says whether every plane's hull is identical."""
    from skimage.morphology import convex_hull_image

    from imagio.segmentation.common import convex_hull_2d

    planes = [np.take(lungs_mask, k, axis=ax) for ax in range(3) for k in range(lungs_mask.shape[ax])]
    planes = [p for p in planes if p.sum() >= 3]
    t0 = time.process_time()
    old = [convex_hull_image(p) for p in planes]
    t_old = time.process_time() - t0
    t0 = time.process_time()
    new = [convex_hull_2d(p) for p in planes]
    t_new = time.process_time() - t0
    same = all(np.array_equal(a, b) for a, b in zip(old, new))
    return dict(name=f"lung hull, {len(planes)} planes ({tag}; {'identical' if same else 'DIFFERENT'})",
                value=t_new, unit="CPU-s", baseline=t_old, ratio=t_old / max(t_new, 1e-9))


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
        rows.append(_hull_row(lm, tag))
        bm, t, mem = _timed(bones.bone_mask, ct, b, lungs=lm)
        nbm, tb, _ = _timed(naive_bones, a, b)
        rows.append(dict(name=f"bones ({tag})", value=t, unit="s", baseline=tb, ratio=tb / t))
        rows.append(dict(name="bones peak memory", value=mem, unit="MiB"))
        rows.append(dict(name="bones: naive >200 HU also takes (contrast blood)",
                         value=int((nbm & ~bm).sum()), unit="voxels"))
    rows += _real_case_rows()
    rows += _phantom_rows()
    return rows


def _random_inside(ref, ct, n, rng, depth_mm=5.0):
    """n random RAS points at least ``depth_mm`` inside a mask (or 60 % of its deepest point)."""
    import edt

    d = edt.edt(ref, anisotropy=tuple(ct.spacing_kji))
    cand = np.argwhere(d >= min(depth_mm, 0.6 * float(d.max())))
    return [ct.kji_to_world(cand[i][None].astype(float))[0] for i in rng.choice(len(cand), n, replace=False)]


def _real_case_rows() -> list[dict]:
    """Issue 14's real-case table: one-click lesions (pyradiomics lung1/lung2 from the centre
    and 10 random interior clicks, the five STS sarcomas from the centre), TotalSegmentator
    example lungs/bones vs its reference, chest CTA crops vs uncropped, volumes at 1.5 / 3 mm."""
    import json

    from imagio import io
    from imagio.segmentation import rules
    from imagio.segmentation.common import dice, ras_coordinate
    from imagio.segmentation.lesion import segment_lesion

    rows = []
    rng = np.random.default_rng(0)
    for case in ("lung1", "lung2"):
        d = DATA / "pyradiomics-lung"
        if not (d / f"{case}_image.nrrd").exists():
            continue
        ct = io.read_image(d / f"{case}_image.nrrd")
        ref = io.read_image(d / f"{case}_label.nrrd").array > 0
        clicks = [ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]] + _random_inside(ref, ct, 10, rng)
        res = [segment_lesion(ct, c) for c in clicks]
        ds = [dice(m, ref) for m, _ in res]
        vols = [meas.volume_ml for m, meas in res if dice(m, ref) >= 0.8]
        rows.append(dict(name=f"lesion {case}: Dice from the centre", value=ds[0], unit=""))
        rows.append(dict(name=f"lesion {case}: clicks (of 10) with Dice >= 0.80", value=sum(x >= 0.8 for x in ds[1:]), unit=""))
        rows.append(dict(name=f"lesion {case}: min Dice over 10 clicks", value=min(ds[1:]), unit=""))
        if vols:
            rows.append(dict(name=f"lesion {case}: volume spread (max/min) of those", value=max(vols) / min(vols), unit=""))
    for case in ("STS_002", "STS_008", "STS_010", "STS_014", "STS_022"):
        d = DATA / "sts-sarcoma" / case
        if not (d / "CT_image.nii.gz").exists():
            continue
        ct = io.read_image(d / "CT_image.nii.gz")
        ref = io.read_image(d / "CT_mask.nii.gz").array > 0
        m, meas = segment_lesion(ct, ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0])
        rows.append(dict(name=f"lesion {case} (sarcoma, one click): Dice [{len(meas.warnings)} warnings]",
                         value=dice(m, ref), unit=""))
    d = DATA / "totalsegmentator-example"
    if (d / "example_ct_sm.nii.gz").exists():
        ct = io.read_image(d / "example_ct_sm.nii.gz")
        seg = io.read_image(d / "example_seg.nii.gz").array
        names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text(encoding="utf-8")).items()}
        sel = lambda *p: np.isin(seg, [k for k, v in names.items() if v.startswith(p)])  # noqa: E731
        m, _ = rules.segment_masks(ct, ["body", "bones", "lungs"])
        rows.append(dict(name="TS example lungs Dice (lobes merged)", value=dice(m["lung_left"] | m["lung_right"], sel("lung_")), unit=""))
        # both sides the same classes: the reference's ribs, vertebrae, sternum and costal cartilages
        # against ours with our costal_cartilages (without it the row read 0.79: bones115)
        ours = m["vertebrae"] | m["ribs"] | m["bone"] | m.get("costal_cartilages", np.zeros_like(m["ribs"]))
        rows.append(dict(name="TS example bones Dice (ribs + vertebrae + sternum + costal cartilages)",
                         value=dice(ours, sel("rib_", "vertebrae_", "sternum", "costal")), unit=""))
    path = DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if path.exists():
        ct = io.read_image(path)
        ref, _ = rules.segment_masks(ct, ["body", "lungs", "bones"])
        nk, nj, ni = ct.shape
        x = ras_coordinate(ct, 0)[0, 0, :]
        right = slice(ni // 2, ni) if x[-1] > x[0] else slice(0, ni // 2)
        left = slice(0, ni // 2) if x[-1] > x[0] else slice(ni // 2, ni)
        full = slice(0, None)
        crops = {"right half": (full, full, right), "left half": (full, full, left),
                 "half z": (slice(nk // 4, nk // 4 + nk // 2), full, full),
                 "small FOV": (full, slice(nj // 6, nj - nj // 6), slice(ni // 6, ni - ni // 6))}
        for name, sl in crops.items():
            lo = [s.indices(n)[0] for s, n in zip(sl, ct.shape)]
            hi = [s.indices(n)[1] for s, n in zip(sl, ct.shape)]
            m, _ = rules.segment_masks(ct.crop(lo, hi), ["body", "lungs"])
            lungs = m["lung_left"] | m["lung_right"]
            r = (ref["lung_left"] | ref["lung_right"])[sl]
            wrong = (m["lung_left"] & ref["lung_right"][sl]).sum() + (m["lung_right"] & ref["lung_left"][sl]).sum()
            rows.append(dict(name=f"chest CTA {name}: lungs / uncropped same region", value=lungs.sum() / max(r.sum(), 1), unit=""))
            rows.append(dict(name=f"chest CTA {name}: lung on the wrong side", value=float(wrong * ct.voxel_volume_ml), unit="mL"))
        c3 = ct.resampled((3.0, 3.0, 3.0), order=1)
        m3, _ = rules.segment_masks(c3, ["body", "lungs", "bones"])
        for name, keys in (("body", ("body",)), ("lungs", ("lung_left", "lung_right")),
                           ("bones", ("vertebrae", "ribs", "bone"))):
            v15 = sum(ref[k].sum() for k in keys) * ct.voxel_volume_ml
            v3 = sum(m3[k].sum() for k in keys) * c3.voxel_volume_ml
            rows.append(dict(name=f"chest CTA {name} volume 3 mm / 1.5 mm", value=v3 / v15, unit=""))
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
