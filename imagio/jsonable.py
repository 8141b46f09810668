"""Plain JSON from IMAGIO's results: one conversion for every JSON file the project writes."""

from __future__ import annotations

import numpy as np


def to_jsonable(x):
    """``x`` with numpy scalars and arrays turned into Python numbers and lists, dict keys into
    strings, tuples into lists; floats kept to 6 significant digits (near-equal proposal scores
    stay apart) and NaN/Infinity written as null (strict JSON). Other values pass unchanged."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if not np.isfinite(x) else float(f"{x:.6g}")
    if isinstance(x, np.integer):
        return int(x)
    return x
