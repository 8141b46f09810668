"""The criteria of the needle-path score, defined once (imagio/data/planning_criteria.json).

Each criterion: name, the per-path metric it reads, unit, direction (lower/higher is better),
the range [lo, hi] mapped to a cost in [0, 1], the default weight and its source. The numpy and
torch scorers, the score table, plan.json and the report all use this table.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np


def criteria_table() -> list[dict]:
    """The score's criteria (name, metric, unit, direction, lo, hi, weight, source) from
    imagio/data/planning_criteria.json: each defined once for every scorer and the report."""
    return _criteria()


@lru_cache(maxsize=1)
def _criteria() -> list[dict]:
    doc = json.loads(resources.files("imagio.data").joinpath("planning_criteria.json").read_text(encoding="utf-8"))
    return list(doc["criteria"])


CRITERIA = tuple(c["name"] for c in _criteria())


def criterion_costs(metrics: dict) -> np.ndarray:
    """(n, len(CRITERIA)) costs in [0, 1] from per-path metric arrays named as the table's
    ``metric`` fields (see planning_criteria.json). numpy arrays -> a float32 numpy array; torch
    tensors (the torch scorer, same formula in float64 on their device) -> a float32 tensor."""
    t = next((x for x in metrics.values() if type(x).__module__.startswith("torch")), None)
    if t is not None:
        import torch

        cols = []
        for c in _criteria():
            x = torch.as_tensor(metrics[c["metric"]], dtype=torch.float64, device=t.device)
            f = torch.clamp((x - c["lo"]) / (c["hi"] - c["lo"]), 0.0, 1.0)
            cols.append(f if c["direction"] == "lower" else 1.0 - f)
        return torch.stack(cols, dim=1).to(torch.float32)
    cols = []
    for c in _criteria():
        x = np.asarray(metrics[c["metric"]], np.float64)
        f = np.clip((x - c["lo"]) / (c["hi"] - c["lo"]), 0.0, 1.0)
        cols.append(f if c["direction"] == "lower" else 1.0 - f)
    return np.stack(cols, axis=1).astype(np.float32)


def default_weights() -> dict:
    """{criterion: default weight}."""
    return {c["name"]: float(c["weight"]) for c in _criteria()}
