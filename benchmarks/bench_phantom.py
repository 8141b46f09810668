"""Generation time of the digital patient: the realistic anatomy at 3 mm and 1.5 mm, the
cylinder phantom at the same spacings as the baseline (ratio = cylinder / realistic; < 1 means
the realistic anatomy is slower). Peak memory is not measured here (same process).

The user cache (`imagio.phantom.cache`, what ``imagio demo`` reads): the 1.5 mm patient written
to a temporary cache folder, then read back; baseline: its generation in the same run (ratio =
generation / read); the row says whether the read patient equals the generated one."""

from __future__ import annotations

import time


def _time(**kw) -> tuple[float, tuple]:
    from imagio import phantom

    t0 = time.perf_counter()
    ph = phantom.generate(**kw)
    return time.perf_counter() - t0, ph.ct.shape


def _cached(spacing: float, t_generate: float) -> dict:
    import os
    import tempfile

    import numpy as np

    from imagio.phantom.cache import load_or_generate

    old = os.environ.get("IMAGIO_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["IMAGIO_CACHE_DIR"] = d
        try:
            ph, s1, _ = load_or_generate(spacing=spacing, seed=0)
            t0 = time.perf_counter()
            again, s2, _ = load_or_generate(spacing=spacing, seed=0)
            t = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("IMAGIO_CACHE_DIR", None)
            else:
                os.environ["IMAGIO_CACHE_DIR"] = old
    same = (s1, s2) == ("miss", "hit") and all(
        np.array_equal(a.array, b.array) and a.array.dtype == b.array.dtype
        for a, b in ((ph.ct, again.ct), (ph.labels, again.labels))) and ph.to_json() == again.to_json()
    return {"name": f"phantom {spacing:g} mm read from the user cache ({'same' if same else 'DIFFERENT'})",
            "value": t, "unit": "s", "baseline": t_generate, "ratio": t_generate / t}


def run() -> list[dict]:
    rows = []
    for spacing in (3.0, 1.5):
        t_real, shape = _time(spacing=spacing, seed=0, anatomy="realistic")
        t_cyl, _ = _time(spacing=spacing, seed=0, anatomy="cylinder")
        rows.append({"name": f"phantom realistic {spacing:g} mm ({'x'.join(map(str, shape))} voxels)",
                     "value": t_real, "unit": "s", "baseline": t_cyl, "ratio": t_cyl / t_real})
        if spacing == 1.5:
            rows.append(_cached(spacing, t_real))
    t_f, _ = _time(spacing=3.0, seed=1, anatomy="realistic", sex="female", arms="up", phase="arterial")
    rows.append({"name": "phantom realistic 3 mm, female, arms up, arterial", "value": t_f, "unit": "s"})
    return rows
