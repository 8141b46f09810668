"""One-click lesion from 10 seeded clicks at least 5 mm inside a lesion (issue 14): volume, type,
flags and the share inside the reference (Dice for lung1/lung2; for Lung_Dx-A0001 the share
inside the reader boxes, the clicks drawn from the boxes' soft tissue, above -100 HU on the
1 mm-smoothed CT, largest connected part).

    PYTHONPATH=. python -m benchmarks.lesion_clicks dx|lung1|lung2 [n]
"""

import sys
import time

import numpy as np
from scipy import ndimage

from benchmarks.bench_lesion import dice, interior_clicks, load_case, lung_dx_case
from imagio.segmentation.lesion import segment_lesion


def main(which: str, n: int = 10) -> None:
    rng = np.random.default_rng(0)
    if which == "dx":
        ct, ref, _ = lung_dx_case()
        sm = ndimage.gaussian_filter(ct.array.astype(np.float32), 1.0 / np.asarray(ct.spacing_kji))
        lab, _ = ndimage.label(ref & (sm > -100))
        mass = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
        pts = interior_clicks(mass, ct, n, rng)
    else:
        ct, ref = load_case(which)
        pts = interior_clicks(ref, ct, n, rng)
    for p in pts:
        t = time.time()
        try:
            m, meas = segment_lesion(ct, p)
        except Exception as e:  # noqa: BLE001 (a refused click is a result here)
            print(np.round(p, 1).tolist(), "refused:", str(e)[:150], flush=True)
            continue
        inside = float((m & ref).sum()) / max(float(m.sum()), 1.0)
        d = "" if which == "dx" else f" dice={dice(m, ref):.2f}"
        print(np.round(p, 1).tolist(), f"{meas.volume_ml:.1f} mL kind={meas.kind} inside={inside:.2f}{d} "
              f"click_dependent={meas.click_dependent} range={meas.volume_range_ml} part={meas.part_of_mass} "
              f"leaked={getattr(meas, 'leaked', None)} t={time.time() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10)
