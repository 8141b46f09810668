"""Generation time of the digital patient: the realistic anatomy at 3 mm and 1.5 mm, the
cylinder phantom at the same spacings as the baseline (ratio = cylinder / realistic; < 1 means
the realistic anatomy is slower). Peak memory is not measured here (same process)."""

from __future__ import annotations

import time


def _time(**kw) -> tuple[float, tuple]:
    from imagio import phantom

    t0 = time.perf_counter()
    ph = phantom.generate(**kw)
    return time.perf_counter() - t0, ph.ct.shape


def run() -> list[dict]:
    rows = []
    for spacing in (3.0, 1.5):
        t_real, shape = _time(spacing=spacing, seed=0, anatomy="realistic")
        t_cyl, _ = _time(spacing=spacing, seed=0, anatomy="cylinder")
        rows.append({"name": f"phantom realistic {spacing:g} mm ({'x'.join(map(str, shape))} voxels)",
                     "value": t_real, "unit": "s", "baseline": t_cyl, "ratio": t_cyl / t_real})
    t_f, _ = _time(spacing=3.0, seed=1, anatomy="realistic", sex="female", arms="up", phase="arterial")
    rows.append({"name": "phantom realistic 3 mm, female, arms up, arterial", "value": t_f, "unit": "s"})
    return rows
