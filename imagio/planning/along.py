"""Length of a straight segment inside each label of a label map (the one definition, used by
the path evaluator's ``length_in_mm`` and by the ablation probes' ``crossed_mm``)."""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def label_lengths(labels: Volume, start_ras, end_ras, step_mm: float) -> dict[int, float]:
    """{label value: mm} of the segment ``start_ras`` -> ``end_ras`` (RAS mm, (3,)) inside each
    value of ``labels`` (a label `Volume`, any orientation and spacing); 0 holds the unlabelled
    part and the part outside the image. Midpoint rule: the segment is cut into
    n = ceil(length / ``step_mm``) equal pieces (at least one), each piece's centre takes the
    value of its nearest voxel (`Volume.sample`, order 0), so the values add up to the segment's
    length exactly and each boundary is placed to within half a piece. Only values crossed are
    listed; a zero-length segment gives {}. Raises ValueError for ``step_mm`` <= 0."""
    if not step_mm > 0:
        raise ValueError(f"step_mm must be > 0, got {step_mm}")
    e, t = np.asarray(start_ras, float).reshape(3), np.asarray(end_ras, float).reshape(3)
    length = float(np.linalg.norm(t - e))
    if length == 0.0:
        return {}
    n = max(int(np.ceil(length / step_mm)), 1)
    pts = e + (np.arange(n) + 0.5)[:, None] / n * (t - e)
    counts = np.bincount(labels.sample(pts, order=0, fill=0).astype(np.int64), minlength=1)
    piece = length / n
    return {int(v): float(counts[v] * piece) for v in np.flatnonzero(counts)}
