"""Ball morphology in mm (issue 20): `segmentation.common.erode_mm` / `dilate_mm` / `close_mm`
(now `segmentation.ballmorph`: bit-packed row shifts) against the ``edt`` distance-map
thresholds they computed before (the baseline, main's code up to e34f009, quoted here), in the
same run: CPU-s (process time, all threads: ``edt`` ran on 2), traced peak memory (MiB) and
whether the voxels are identical; then the rule-based segmentation (body, bones, lungs, airways)
of the same CT with the baseline swapped in for every importer of those functions, against the
code as it is: CPU-s and identical labels.

Cases: the chest CTA of ../shared/data (233 x 167 x 191 at 1.5 mm) and pyradiomics lung1
(512 x 512 x 48 at 0.57 x 0.57 x 5 mm, anisotropic); without ../shared/data, a synthetic body.
Masks: tissue (> -500 HU) and dense (> 200 HU); radii 1.5, 3 and 6 mm.

Rows: name, value (this code), unit, baseline (edt), ratio (baseline / value; > 1: cheaper).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# the baseline: main's edt thresholds (imagio/segmentation/common.py at e34f009) ---------------
def _edt(mask, sk, black_border=False):
    import edt

    return edt.edt(np.ascontiguousarray(mask), anisotropy=tuple(float(s) for s in sk),
                   black_border=black_border, parallel=2)


def edt_dilate(mask, r, sk):
    from imagio.segmentation.common import bbox_slices

    sl = bbox_slices(mask, r, sk)
    out = np.zeros(mask.shape, bool)
    if sl is not None:
        out[sl] = _edt(~mask[sl], sk) <= r
    return out


def edt_erode(mask, r, sk):
    from imagio.segmentation.common import bbox_slices

    sl = bbox_slices(mask, 0.0, sk)
    out = np.zeros(mask.shape, bool)
    if sl is None:
        return out
    pad = [(0 if s.start == 0 else 1, 0 if s.stop == n else 1) for s, n in zip(sl, mask.shape)]
    e = _edt(np.pad(mask[sl], pad), sk) > r
    out[sl] = e[tuple(slice(p0, e.shape[i] - p1) for i, (p0, p1) in enumerate(pad))]
    return out


def edt_close(mask, r, sk):
    from imagio.segmentation.common import bbox_slices

    sl = bbox_slices(mask, 0.0, sk)
    if sl is None:
        return mask.copy()
    pad = int(np.ceil(r / float(np.min(sk)))) + 1
    m = np.pad(mask[sl], pad)
    c = _edt(_edt(~m, sk) <= r, sk, black_border=True) > r
    out = mask.copy()
    out[sl] |= c[pad:-pad, pad:-pad, pad:-pad]
    return out


def edt_open(mask, r, sk):
    return edt_dilate(edt_erode(mask, r, sk), r, sk) & mask


def _measured(fn, *args):
    tracemalloc.start()
    c0 = time.process_time()
    out = fn(*args)
    cpu = time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return out, cpu, peak


def _cases():
    from imagio import io

    out = []
    for name, rel in (("chest CTA 1.5 mm", "totalsegmentator-chest-cta/chest_cta.nii.gz"),
                      ("lung1 0.57x0.57x5 mm", "pyradiomics-lung/lung1_image.nrrd")):
        if (DATA / rel).exists():
            out.append((name, io.read_image(DATA / rel)))
    if not out:   # no shared data: a synthetic ellipsoidal body with a dense spine
        from imagio.volume import Volume

        k, j, i = np.ogrid[:120, :200, :240]
        a = np.full((120, 200, 240), -1000, np.int16)
        a[((j - 100) / 80.0) ** 2 + ((i - 120) / 110.0) ** 2 <= 1] = 40
        a[((j - 150) / 12.0) ** 2 + ((i - 120) / 12.0) ** 2 <= 1] = 700
        aff = np.diag([1.5, 1.5, 2.0, 1.0])
        out.append(("synthetic 1.5x1.5x2 mm", Volume(a, aff, "synthetic")))
    return out


def _swap_baseline():
    """Put the edt baseline into `common` and every segmentation module that imported the
    functions; returns the undo."""
    return swap_in_segmentation({"erode_mm": edt_erode, "dilate_mm": edt_dilate, "close_mm": edt_close,
                                 "open_mm": edt_open})


def swap_in_segmentation(new: dict):
    """Set each ``name: function`` of ``new`` in every ``imagio.segmentation`` module that has
    that name (defined or imported); returns the undo."""
    import importlib
    import pkgutil

    import imagio.segmentation as seg

    saved = []
    for mi in pkgutil.iter_modules(seg.__path__):
        try:
            mod = importlib.import_module(f"imagio.segmentation.{mi.name}")
        except ImportError:
            continue
        for k, f in new.items():
            if hasattr(mod, k):
                saved.append((mod, k, getattr(mod, k)))
                setattr(mod, k, f)

    def undo():
        for mod, k, f in saved:
            setattr(mod, k, f)
    return undo


def run() -> list[dict]:
    from imagio.segmentation.common import close_mm, dilate_mm, erode_mm
    from imagio.segmentation.rules import segment

    rows = []
    tot_new = tot_old = 0.0
    for cname, ct in _cases():
        sk = np.asarray(ct.spacing_kji, float)
        for mname, mask in (("tissue", ct.array > -500), ("dense", ct.array > 200)):
            for r in (1.5, 3.0, 6.0):
                for op, new, old in (("erode", erode_mm, edt_erode), ("dilate", dilate_mm, edt_dilate),
                                     ("close", close_mm, edt_close)):
                    b, cb, pb = _measured(old, mask, r, sk)
                    a, ca, pa = _measured(new, mask, r, sk)
                    tot_new, tot_old = tot_new + ca, tot_old + cb
                    tag = f"{cname}: {op} {mname} r={r:g}"
                    rows.append({"name": f"{tag} CPU-s", "value": ca, "unit": "s", "baseline": cb,
                                 "ratio": cb / max(ca, 1e-9)})
                    rows.append({"name": f"{tag} peak", "value": pa, "unit": "MiB", "baseline": pb,
                                 "ratio": pb / max(pa, 1e-9)})
                    rows.append({"name": f"{tag} identical voxels", "value": int(np.array_equal(a, b)), "unit": ""})
        # the whole rule-based segmentation, baseline swapped in, then as it is
        undo = _swap_baseline()
        try:
            c0 = time.process_time()
            ref = segment(ct, ("body", "bones", "lungs", "airways"))
            cb = time.process_time() - c0
        finally:
            undo()
        c0 = time.process_time()
        got = segment(ct, ("body", "bones", "lungs", "airways"))
        ca = time.process_time() - c0
        rows.append({"name": f"{cname}: segmentation CPU-s", "value": ca, "unit": "s", "baseline": cb,
                     "ratio": cb / max(ca, 1e-9)})
        same = np.array_equal(ref.array, got.array) and ref.labels == got.labels
        rows.append({"name": f"{cname}: segmentation labels identical", "value": int(same), "unit": ""})
    rows.append({"name": "all morphology calls above, CPU-s", "value": tot_new, "unit": "s",
                 "baseline": tot_old, "ratio": tot_old / max(tot_new, 1e-9)})
    return rows
