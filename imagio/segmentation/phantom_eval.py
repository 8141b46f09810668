"""Merge the phantom's reference labels into the classes the rule-based segmenters produce,
for Dice / Hausdorff comparisons (tests, benchmarks)."""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def phantom_truth(labels: Volume) -> dict[str, np.ndarray]:
    """{our class: bool mask} from a phantom label Volume (names per imagio.anatomy)."""
    names = labels.labels
    arr = labels.array

    def sel(pred):
        vals = [v for v, n in names.items() if pred(n)]
        return np.isin(arr, vals)

    return {
        "body": arr > 0,
        "bone": sel(lambda n: n.startswith(("rib_", "vertebrae_", "scapula_", "clavicula_", "humerus_")) or n == "sternum"),
        "ribs": sel(lambda n: n.startswith("rib_")),
        "vertebrae": sel(lambda n: n.startswith("vertebrae_")),
        "lung_left": sel(lambda n: n.startswith("lung_") and n.endswith("_left")),
        "lung_right": sel(lambda n: n.startswith("lung_") and n.endswith("_right")),
        "trachea": sel(lambda n: n == "trachea"),
        "airways": sel(lambda n: n == "airways"),
    }
